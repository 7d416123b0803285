"""Engine evaluation: DuckLake (SQLite catalog, local Parquet) with a writer committing
while a second process reads, against today's DuckDB file + read snapshot.

Not part of the project's environment (DuckLake needs DuckDB 1.5.x, the project pins
2.0.1). Run it from a scratch venv outside the repository, extensions loaded by path:

    python3 -m venv /tmp/ducklake-venv
    /tmp/ducklake-venv/bin/pip install duckdb==1.5.5 duckdb-extension-ducklake==1.5.5 \
        duckdb-extension-sqlite_scanner==1.5.5
    /tmp/ducklake-venv/bin/python benchmarks/eval_ducklake.py [--commits 120] [--rows 5000]

Prints one JSON object: commit latency, reader lag and errors, files written, and the
effect of compaction. Figures in docs/architecture.md, "Readers and the warehouse engine".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

ROW_SQL = (
    "SELECT md5(({base} + range)::VARCHAR) AS tx_id, 'contract_call' AS tx_type,"
    " 'success' AS tx_status, 'SP' || (({base} + range) % 5000)::VARCHAR AS sender_address,"
    " (range % 1000)::BIGINT AS fee_ustx, ({base} + range)::BIGINT AS block_height,"
    " to_timestamp(1700000000 + {base} + range) AS block_time FROM range({rows})"
)


def _load(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb_extension_ducklake as dl
    import duckdb_extension_sqlite_scanner as sq

    v = duckdb.__version__
    for mod, name in ((sq, "sqlite_scanner"), (dl, "ducklake")):
        path = Path(mod.__file__).parent / "extensions" / f"v{v}" / f"{name}.duckdb_extension"
        con.execute(f"LOAD '{path}'")


def _attach(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    _load(con)
    con.execute(
        f"ATTACH 'ducklake:sqlite:{root / 'catalog.sqlite'}' AS lake"
        f" (DATA_PATH '{root / 'data'}/')"
    )


def writer(root: str, commits: int, rows: int, out: mp.Queue) -> None:
    con = duckdb.connect()
    _attach(con, Path(root))
    con.execute(f"CREATE TABLE lake.t AS {ROW_SQL.format(base=0, rows=0)}")
    latencies, times = [], []
    for i in range(commits):
        t0 = time.perf_counter()
        con.execute(f"INSERT INTO lake.t {ROW_SQL.format(base=i * rows, rows=rows)}")
        latencies.append(time.perf_counter() - t0)
        times.append((time.time(), (i + 1) * rows))
    out.put({"latencies": latencies, "commit_times": times})
    con.close()


def reader(root: str, stop: mp.Event, out: mp.Queue) -> None:
    reads, errors = [], []
    con = duckdb.connect()
    _load(con)
    while not stop.is_set():
        try:
            con.execute(
                f"ATTACH IF NOT EXISTS 'ducklake:sqlite:{Path(root) / 'catalog.sqlite'}' AS lake"
                " (READ_ONLY)")
            t0 = time.perf_counter()
            n = con.execute("SELECT count(*) FROM lake.t").fetchone()[0]
            reads.append((time.time(), n, time.perf_counter() - t0))
        except duckdb.Error as exc:
            errors.append(str(exc).splitlines()[0][:160])
            con.execute("DETACH DATABASE IF EXISTS lake")
        time.sleep(0.05)
    out.put({"reads": reads, "errors": errors})


def plain_duckdb(commits: int, rows: int, tmp: Path) -> dict[str, float]:
    """The same inserts into a DuckDB file, with today's checkpoint-and-copy publish."""
    db = tmp / "plain.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE t AS {ROW_SQL.format(base=0, rows=0)}")
    lat, pub = [], []
    for i in range(commits):
        t0 = time.perf_counter()
        con.execute(f"INSERT INTO t {ROW_SQL.format(base=i * rows, rows=rows)}")
        lat.append(time.perf_counter() - t0)
        if i % 10 == 9:
            t0 = time.perf_counter()
            con.execute("CHECKPOINT")
            subprocess.run(["cp", str(db), str(tmp / "plain.duckdb.read.tmp")], check=True)
            os.replace(tmp / "plain.duckdb.read.tmp", tmp / "plain.duckdb.read")
            pub.append(time.perf_counter() - t0)
    con.close()
    return {"commit_ms_median": 1000 * statistics.median(lat),
            "publish_ms_median": 1000 * statistics.median(pub),
            "file_mb": db.stat().st_size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=120)
    ap.add_argument("--rows", type=int, default=5000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ducklake-eval-"))
    root = tmp / "lake"
    (root / "data").mkdir(parents=True)
    ctx = mp.get_context("spawn")
    wq, rq, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    # Create the catalog first so the reader has something to attach.
    con = duckdb.connect()
    _attach(con, root)
    con.close()
    w = ctx.Process(target=writer, args=(str(root), args.commits, args.rows, wq))
    r = ctx.Process(target=reader, args=(str(root), stop, rq))
    t0 = time.time()
    w.start()
    r.start()
    wres = wq.get()
    w.join()
    wall = time.time() - t0
    time.sleep(0.5)
    stop.set()
    rres = rq.get()
    r.join()
    reads = rres["reads"]
    counts = [n for _, n, _ in reads]
    # Lag: for each commit, the first read that saw it, minus the commit time.
    lags = []
    for when, total in wres["commit_times"]:
        seen = next((t for t, n, _ in reads if n >= total and t >= when - 1e-3), None)
        if seen is not None:
            lags.append(max(0.0, seen - when))
    files = list((root / "data").rglob("*.parquet"))
    con = duckdb.connect()
    _attach(con, root)
    t1 = time.perf_counter()
    con.execute("CALL ducklake_merge_adjacent_files('lake')")
    con.execute("CALL ducklake_cleanup_old_files('lake', cleanup_all => true)")
    merge_s = time.perf_counter() - t1
    t1 = time.perf_counter()
    n_after = con.execute("SELECT count(*) FROM lake.t").fetchone()[0]
    count_after_s = time.perf_counter() - t1
    con.close()
    files_after = list((root / "data").rglob("*.parquet"))
    result = {
        "duckdb": duckdb.__version__,
        "commits": args.commits,
        "rows_per_commit": args.rows,
        "writer_wall_s": round(wall, 2),
        "ducklake_commit_ms_median": round(1000 * statistics.median(wres["latencies"]), 1),
        "ducklake_commit_ms_p95": round(1000 * sorted(wres["latencies"])[
            int(0.95 * len(wres["latencies"])) - 1], 1),
        "reads": len(reads),
        "read_errors": len(rres["errors"]),
        "read_error_examples": sorted(set(rres["errors"]))[:3],
        "counts_only_grow": counts == sorted(counts),
        "final_count_seen": counts[-1] if counts else None,
        "expected_final": args.commits * args.rows,
        "read_ms_median": round(1000 * statistics.median(x for _, _, x in reads), 1),
        "lag_ms_median": round(1000 * statistics.median(lags), 1) if lags else None,
        "lag_ms_max": round(1000 * max(lags), 1) if lags else None,
        "parquet_files_before_compaction": len(files),
        "parquet_files_after_compaction": len(files_after),
        "compaction_s": round(merge_s, 2),
        "count_after_compaction_ms": round(1000 * count_after_s, 1),
        "count_after_compaction_ok": n_after == args.commits * args.rows,
        "plain_duckdb_with_snapshot": {
            k: round(v, 2) for k, v in plain_duckdb(args.commits, args.rows, tmp).items()},
    }
    print(json.dumps(result, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
