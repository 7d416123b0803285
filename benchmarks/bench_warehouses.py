"""The two warehouses side by side in one run: the embedded DuckDB file vs DuckLake with a
PostgreSQL catalog and Parquet on an S3-compatible server (moto), on this one machine.

    .venv/bin/python benchmarks/bench_warehouses.py              # 100k ingest, 1M metrics
    .venv/bin/python benchmarks/bench_warehouses.py --ingest 1000000 --metrics 1000000,10000000

Needs the local PostgreSQL server (`make postgres`, or STX_PIPELINE_PG_ENV pointing at its
env file) and `moto[server]` (the dev extra). For each configuration, each in its own
subprocess (its peak RSS its own; the simulator and the S3 server stay in this process):

1. ingest: `ensure_transaction_history` against the simulator, no latency and no rate
   limit (so the warehouse is the bottleneck), 10 days at N/10 tx/day: wall, tx/s, peak
   RSS; for the lake also its data files and S3 objects;
2. compaction (lake): files before/after and a per-day count query before/after;
3. metrics: `build_wallet_metrics` on a synthetic warehouse of N rows (bench_metrics's
   generator; the lake gets it by `stx-pipeline warehouse migrate`, timed too).

Prints markdown tables; writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, markdown_table, run_child, write_results

DAYS = 10
QUERY = ("SELECT date_trunc('day', block_time) AS day, count(*), sum(fee_ustx)"
         " FROM transactions WHERE canonical GROUP BY 1 ORDER BY 1")
BUCKET = "bench-lake"
S3_KEY_ID = S3_SECRET = "bench"  # moto accepts any


# -- children --------------------------------------------------------------------------
def _child_ingest(args: argparse.Namespace) -> dict[str, Any]:
    from stx_pipeline.backfill.runner import ensure_transaction_history
    from stx_pipeline.hiro.client import HiroClient

    client = HiroClient(args.url, requests_per_minute=0)
    t0 = time.monotonic()
    res = ensure_transaction_history(
        max_days=DAYS, client=client, db_path=args.db, max_pages=1_000_000,
        now=datetime.fromtimestamp(args.now, UTC),
        status_path=str(Path(args.db).with_suffix(".status.json")))
    wall = time.monotonic() - t0
    client.close()
    return {"wall_seconds": wall, "rows_inserted": res.rows_inserted, "pages": res.pages,
            "complete": res.complete, "stop_reason": res.stop_reason.value}


def _timed_query(con: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        con.execute(QUERY).fetchall()
        best = min(best, time.perf_counter() - t0)
    return best


def _child_compact(args: argparse.Namespace) -> dict[str, Any]:
    from stx_pipeline.warehouse import lake
    from stx_pipeline.warehouse.db import connect

    con = connect(read_only=True)
    before = _timed_query(con)
    con.close()
    from stx_pipeline.warehouse.compaction import compact_warehouse

    done = compact_warehouse(keep_snapshots_hours=0)
    assert done is not None
    con = connect(read_only=True)
    after = _timed_query(con)
    files = lake.data_files(con)
    con.close()
    return {**done, "files_now": files, "query_before_s": before, "query_after_s": after}


def _child_metrics(args: argparse.Namespace) -> dict[str, Any]:
    from stx_pipeline.metrics import build_wallet_metrics
    from stx_pipeline.warehouse.db import open_db

    con = open_db(args.db, memory_limit="3GB")
    con.execute("SET threads = 2")
    t0 = time.monotonic()
    summary = build_wallet_metrics(con)
    wall = time.monotonic() - t0
    query = _timed_query(con)
    con.close()
    return {"wall_seconds": wall, "canonical_rows": summary.canonical_rows,
            "query_seconds": query}


def _child_query(args: argparse.Namespace) -> dict[str, Any]:
    from stx_pipeline.warehouse.db import connect

    con = connect(args.db, read_only=True)
    out = {"query_seconds": _timed_query(con)}
    con.close()
    return out


# -- the parent's services -------------------------------------------------------------
def _pg_server() -> dict[str, str]:
    env_file = os.environ.get("STX_PIPELINE_PG_ENV", "").strip()
    if not env_file:
        env_file = subprocess.run(["bash", str(ROOT / "deploy" / "local-postgres.sh"),
                                   "start"], capture_output=True, text=True, check=True
                                  ).stdout.strip().splitlines()[-1]
    return dict(line.split("=", 1) for line in Path(env_file).read_text().split())


def _s3() -> contextlib.AbstractContextManager[str]:
    """The tests' moto server (stx_pipeline_tests/lake_services.py: quiet, and answering
    multipart uploads with S3's element name, as DuckDB expects)."""
    from stx_pipeline_tests.lake_services import s3_server

    return s3_server(BUCKET)


@contextlib.contextmanager
def _lake(pg: dict[str, str], s3: str) -> Iterator[dict[str, str]]:
    """A new catalog database and S3 prefix; the variables that select them."""
    import psycopg2

    name = f"bench_lake_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(host=pg["DAGSTER_PG_HOST"], port=pg["DAGSTER_PG_PORT"],
                             user=pg["DAGSTER_PG_USER"], password=pg["DAGSTER_PG_PASSWORD"],
                             dbname=pg["DAGSTER_PG_DB"])
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            "STX_PIPELINE_WAREHOUSE": (
                f"ducklake:postgres:host={pg['DAGSTER_PG_HOST']} port={pg['DAGSTER_PG_PORT']}"
                f" user={pg['DAGSTER_PG_USER']} dbname={name} data_path=s3://{BUCKET}/{name}"),
            "PGPASSWORD": pg["DAGSTER_PG_PASSWORD"], "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_ENDPOINT_URL_S3": s3,
        }
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _s3_objects(endpoint: str, prefix: str) -> tuple[int, float]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY_ID,
                      aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    n, size = 0, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents", []):
            n += 1
            size += obj["Size"]
    return n, size / 2**20


# -- the run ---------------------------------------------------------------------------
def _ingest(n: int, pg: dict[str, str], s3: str, report: dict[str, Any]) -> list[list[Any]]:
    from stx_pipeline.sim import SimConfig, Simulator

    rows: list[list[Any]] = []
    now = int(time.time())
    sim = Simulator(SimConfig(seed=5, history_days=DAYS + 0.5, tx_per_day=n / DAYS,
                              frozen=True, now=now)).start()
    try:
        for config in ("duckdb file", "ducklake pg+s3"):
            with tempfile.TemporaryDirectory(prefix="bench-wh-") as tmp, \
                    contextlib.ExitStack() as stack:
                db = str(Path(tmp) / "ingest.duckdb")
                lake_env = stack.enter_context(_lake(pg, s3)) if "lake" in config else {}
                stack.enter_context(_env(lake_env))
                out, rss = run_child([__file__, "--child", "ingest", "--url", sim.url,
                                      "--db", db, "--now", str(sim.now())])
                out.update(config=config, n_target=n, peak_rss_mib=rss,
                           tx_per_s=out["rows_inserted"] / out["wall_seconds"])
                if lake_env:
                    prefix = lake_env["STX_PIPELINE_WAREHOUSE"].rsplit("/", 1)[-1]
                    out["s3_objects"], out["s3_mib"] = _s3_objects(s3, prefix)
                    comp, comp_rss = run_child([__file__, "--child", "compact"])
                    out["compaction"] = {**comp, "peak_rss_mib": comp_rss}
                    out["s3_objects_after"], out["s3_mib_after"] = _s3_objects(s3, prefix)
                    size = f"{out['s3_objects']} objects, {out['s3_mib']:.1f} MiB on S3"
                else:
                    q, _ = run_child([__file__, "--child", "query", "--db", db])
                    out["query_seconds"] = q["query_seconds"]
                    size = f"file {Path(db).stat().st_size / 2**20:.1f} MiB"
                report["ingest"].append(out)
                rows.append([config, f"{out['rows_inserted']:,}", round(out["wall_seconds"], 1),
                             round(out["tx_per_s"]), round(rss), size])
                print(f"  ingest {config}: {out['wall_seconds']:.1f}s, {rss:.0f} MiB",
                      flush=True)
    finally:
        sim.stop()
    return rows


def _metrics(n: int, pg: dict[str, str], s3: str, data: Path, report: dict[str, Any]
             ) -> list[list[Any]]:
    src = data / f"synthetic-v1-{n}.duckdb"  # bench_metrics.py's cache
    if not src.exists():
        print(f"  generating {n:,} rows -> {src}", flush=True)
        tmp = src.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        run_child([str(Path(__file__).parent / "bench_metrics.py"), "--child", "generate",
                   "--db", str(tmp), "--n", str(n), "--threads", "2"])
        tmp.rename(src)
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-wh-") as tmp:
        copy = Path(tmp) / "metrics.duckdb"
        subprocess.run(["cp", str(src), str(copy)], check=True)
        out, rss = run_child([__file__, "--child", "metrics", "--db", str(copy)])
        out.update(config="duckdb file", n=n, peak_rss_mib=rss)
        report["metrics"].append(out)
        rows.append(["duckdb file", f"{n:,}", "-", round(out["wall_seconds"], 2), round(rss),
                     round(out["query_seconds"], 3)])
    with _lake(pg, s3) as lake_env, _env(lake_env):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "stx_pipeline.cli", "warehouse", "migrate",
                        "--from", str(src)], check=True, cwd=ROOT, capture_output=True)
        migrate_s = time.monotonic() - t0
        out, rss = run_child([__file__, "--child", "metrics", "--db", "unused"])
        out.update(config="ducklake pg+s3", n=n, peak_rss_mib=rss, migrate_seconds=migrate_s)
        report["metrics"].append(out)
        rows.append(["ducklake pg+s3", f"{n:,}", round(migrate_s, 1),
                     round(out["wall_seconds"], 2), round(rss), round(out["query_seconds"], 3)])
    print(f"  metrics {n:,}: done", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["ingest", "compact", "metrics", "query"])
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--now", type=int, default=0)
    ap.add_argument("--ingest", default="100000", help="ingest sizes, comma-separated")
    ap.add_argument("--metrics", default="1000000", help="metrics sizes, comma-separated")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "stx-bench-metrics"))
    args = ap.parse_args()
    if args.child:
        out = {"ingest": _child_ingest, "compact": _child_compact,
               "metrics": _child_metrics, "query": _child_query}[args.child](args)
        print(json.dumps(out, default=str), flush=True)
        return

    pg = _pg_server()
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "ingest": [],
                              "metrics": []}
    ingest_rows: list[list[Any]] = []
    metric_rows: list[list[Any]] = []
    try:  # a failing stage keeps (and prints) what the earlier ones measured
        with _s3() as s3:
            for n in [int(s) for s in args.ingest.split(",") if s]:
                ingest_rows += _ingest(n, pg, s3, report)
            for n in [int(s) for s in args.metrics.split(",") if s]:
                metric_rows += _metrics(n, pg, s3, data, report)
    finally:
        _print(report, ingest_rows, metric_rows)


def _print(report: dict[str, Any], ingest_rows: list[list[Any]],
           metric_rows: list[list[Any]]) -> None:
    print()
    print(markdown_table(["warehouse", "rows", "wall s", "tx/s", "peak RSS MiB", "size"],
                         ingest_rows))
    comp = [r for r in report["ingest"] if "compaction" in r]
    if comp:
        print()
        print(markdown_table(
            ["rows", "data files before", "after", "compaction s", "S3 objects before",
             "after", "query before s", "after s"],
            [[f"{r['rows_inserted']:,}", r["compaction"]["files_before"],
              r["compaction"]["files_after"], r["compaction"]["seconds"], r["s3_objects"],
              r["s3_objects_after"], round(r["compaction"]["query_before_s"], 3),
              round(r["compaction"]["query_after_s"], 3)] for r in comp]))
        files = [r for r in report["ingest"] if "query_seconds" in r]
        if files:
            print(f"\nsame query on the DuckDB file: {files[-1]['query_seconds']:.3f} s")
    if metric_rows:
        print()
        print(markdown_table(["warehouse", "rows", "migrate s", "metrics s", "peak RSS MiB",
                              "per-day query s"], metric_rows))
    path = write_results("warehouses", report)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
