"""Metrics and dashboard at scale: synthetic warehouses of 1M, 3M and 10M transactions.

    .venv/bin/python benchmarks/bench_metrics.py                      # 1M, 3M, 10M
    .venv/bin/python benchmarks/bench_metrics.py --sizes 1000000 --threads 2

The files are generated directly in DuckDB (vectorised `INSERT ... SELECT FROM range(n)`,
not through HTTP) with the warehouse's own schema: 180 days, a skewed sender
population (~n/20 wallets; a few very active, most occasional), per-sender contiguous
nonces (a share of wallets starts at nonce 0 inside the window, the rest were active
before it), every tx type and status, 3 % sponsored, skewed fees, ~300 contracts, and a
sealed coverage ledger of one-hour windows. Generated files are cached in --data-dir.

Each measurement runs in its own subprocess on a connection with `threads=N` (and
`memory_limit` if given), and reports wall time and peak RSS (os.wait4 rusage):
1. `build_wallet_metrics(con)` on a file without metrics tables;
2. `build_dashboard(con, out)` on the same file (tables present: it only reads them).
Prints a markdown table; writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, markdown_table, run_child, write_results

GENERATOR_VERSION = 1
DAYS = 180
END_EPOCH = 1_790_000_000  # a fixed "now" (2026-09-21) so files are reproducible


def _connect(db: str, threads: int, memory_limit: str | None):
    import duckdb

    config: dict[str, Any] = {"threads": threads}
    if memory_limit:
        config["memory_limit"] = memory_limit
    return duckdb.connect(db, config=config)


def generate(db: str, n: int, threads: int) -> dict[str, Any]:
    """Write a synthetic warehouse of `n` transactions into a new file `db`."""
    from stx_pipeline.warehouse.db import open_db

    t0 = time.monotonic()
    open_db(db).close()  # the project's schema, version row included
    con = _connect(db, threads, None)
    start = END_EPOCH - DAYS * 86400
    wallets = max(n // 20, 1000)
    span = DAYS * 86400
    con.execute("SELECT setseed(0.42)")
    # Stage without the primary key first (fast), then insert into the real table.
    con.execute(
        f"""
        CREATE TEMP TABLE g AS
        WITH base AS (
            SELECT i,
                   {start} + (i * {span}) // {n} AS bt,            -- block_time, increasing
                   random() AS r_type, random() AS r_status, random() AS r_sender,
                   random() AS r_fee, random() AS r_sponsor, random() AS r_contract
            FROM range({n}) t(i)
        )
        SELECT i, bt,
               CASE WHEN r_type < 0.03 THEN 'coinbase'
                    WHEN r_type < 0.06 THEN 'tenure_change'
                    WHEN r_type < 0.58 THEN 'contract_call'
                    WHEN r_type < 0.96 THEN 'token_transfer'
                    ELSE 'smart_contract' END AS tx_type,
               CASE WHEN r_status < 0.92 THEN 'success'
                    WHEN r_status < 0.97 THEN 'abort_by_response'
                    ELSE 'abort_by_post_condition' END AS tx_status,
               -- skewed: sender id ~ wallets * u^3 (a few wallets send most transactions)
               least({wallets} - 1, floor({wallets} * pow(r_sender, 3)))::BIGINT AS sender_id,
               (180 + floor(pow(r_fee, 4) * 2000000))::BIGINT AS fee_ustx,
               r_sponsor < 0.03 AS sponsored,
               floor(r_sponsor * 1000)::BIGINT % 20 AS sponsor_id,
               floor(pow(r_contract, 2) * 300)::BIGINT AS contract_no
        FROM base
        """
    )
    con.execute(
        f"""
        INSERT INTO transactions
        WITH s AS (
            SELECT *, row_number() OVER (PARTITION BY sender_id ORDER BY i) - 1 AS seq,
                   -- 35 % of wallets activate inside the window (nonce 0 here)
                   CASE WHEN hash(sender_id) % 100 < 35 THEN 0
                        ELSE 1 + hash(sender_id * 7) % 500 END AS nonce_base
            FROM g
        )
        SELECT '0x' || md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS tx_id,
               tx_type, tx_status,
               'SP' || upper(substr(md5('w' || sender_id::VARCHAR), 1, 30)) AS sender_address,
               sponsored,
               CASE WHEN sponsored THEN 'SPSPONSOR' || lpad(sponsor_id::VARCHAR, 4, '0') END,
               CASE WHEN sponsored THEN 'SPSPONSOR' || lpad(sponsor_id::VARCHAR, 4, '0')
                    ELSE 'SP' || upper(substr(md5('w' || sender_id::VARCHAR), 1, 30)) END,
               fee_ustx,
               nonce_base + seq AS nonce,
               i // 25 AS block_height,
               '0x' || md5('b' || (i // 25)::VARCHAR) AS block_hash,
               NULL AS index_block_hash,
               (i % 25)::INTEGER AS tx_index,
               to_timestamp(bt) AS block_time,
               to_timestamp(bt - bt % 600) AS burn_block_time,
               (bt // 600)::BIGINT AS burn_block_height,
               true AS canonical,
               CASE WHEN tx_type = 'contract_call'
                    THEN 'SP000000000000000000002Q6VF78.contract-' || contract_no::VARCHAR END,
               CASE WHEN tx_type = 'contract_call' THEN 'fn-' || (contract_no % 7)::VARCHAR END,
               CASE WHEN tx_type = 'token_transfer'
                    THEN 'SP' || upper(substr(md5('r' || (i % 50000)::VARCHAR), 1, 30)) END,
               CASE WHEN tx_type = 'token_transfer' THEN fee_ustx * 1000 END,
               to_timestamp({END_EPOCH}) AS ingested_at
        FROM s
        ORDER BY i
        """
    )
    con.execute(
        f"""
        INSERT INTO coverage_ledger
        SELECT to_timestamp(h) AS window_start, to_timestamp(h + 3599) AS window_end,
               count(g.i) AS expected, count(g.i) AS loaded, 0, count(g.i), 'sealed',
               to_timestamp({END_EPOCH}), 1, ceil(count(g.i) / 50)::INTEGER,
               true AS final, to_timestamp({END_EPOCH}) AS verified_head,
               NULL AS cursor, 'v1' AS source
        FROM range({start}, {END_EPOCH}, 3600) r(h)
        LEFT JOIN g ON g.bt - g.bt % 600 BETWEEN h AND h + 3599
        GROUP BY h
        """
    )
    con.execute("DROP TABLE g")
    con.execute("CHECKPOINT")
    rows = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
    con.close()
    return {"rows": int(rows), "generate_seconds": time.monotonic() - t0,
            "file_mib": Path(db).stat().st_size / 2**20}


def _child(args: argparse.Namespace) -> None:
    if args.child == "generate":
        out = generate(args.db, args.n, args.threads)
    else:
        con = _connect(args.db, args.threads, args.memory_limit)
        t0 = time.monotonic()
        if args.child == "metrics":
            from stx_pipeline.metrics import build_wallet_metrics

            summary = build_wallet_metrics(con)
            out = {"wall_seconds": time.monotonic() - t0, "wallets": summary.wallets,
                   "canonical_rows": summary.canonical_rows,
                   "row_counts": summary.row_counts}
        else:
            from stx_pipeline.dashboard import build_dashboard

            res = build_dashboard(con, args.out)
            out = {"wall_seconds": time.monotonic() - t0, "charts": res.charts,
                   "bytes": res.bytes, "metrics_built": res.metrics_built}
        con.close()
    print(json.dumps(out, default=str), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["generate", "metrics", "dashboard"])
    ap.add_argument("--db")
    ap.add_argument("--out")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default="3GB",
                    help="DuckDB memory_limit (default 3GB; '' = DuckDB's default, 80%% of RAM)")
    ap.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "stx-bench-metrics"))
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "threads": args.threads,
                              "memory_limit": args.memory_limit, "sizes": []}
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        src = data / f"synthetic-v{GENERATOR_VERSION}-{n}.duckdb"
        gen: dict[str, Any] = {}
        if not src.exists():
            print(f"generating {n:,} transactions -> {src}", flush=True)
            tmp = src.with_suffix(".tmp")
            tmp.unlink(missing_ok=True)
            gen, gen_rss = run_child([__file__, "--child", "generate", "--db", str(tmp),
                                      "--n", str(n), "--threads", str(args.threads)])
            gen["peak_rss_mib"] = gen_rss
            tmp.rename(src)
        work = data / f"work-{n}.duckdb"
        shutil.copyfile(src, work)  # metrics tables are written: keep the source pristine
        lim = ["--memory-limit", args.memory_limit] if args.memory_limit else []
        common = ["--db", str(work), "--threads", str(args.threads), *lim]
        met, met_rss = run_child([__file__, "--child", "metrics", *common])
        html = data / f"dashboard-{n}.html"
        dash, dash_rss = run_child([__file__, "--child", "dashboard", *common,
                                    "--out", str(html)])
        work.unlink(missing_ok=True)
        entry = {"n": n, "file_mib": src.stat().st_size / 2**20, "generate": gen,
                 "metrics": {**met, "peak_rss_mib": met_rss},
                 "dashboard": {**dash, "peak_rss_mib": dash_rss}}
        report["sizes"].append(entry)
        total = met["wall_seconds"] + dash["wall_seconds"]
        rows.append([f"{n:,}", round(entry["file_mib"]), round(met["wall_seconds"], 2),
                     round(met_rss), round(dash["wall_seconds"], 2), round(dash_rss),
                     round(total, 2), met.get("wallets", 0)])
        print(f"  {n:,}: metrics {met['wall_seconds']:.1f}s/{met_rss:.0f} MiB, dashboard "
              f"{dash['wall_seconds']:.1f}s/{dash_rss:.0f} MiB", flush=True)
    sizes = report["sizes"]
    if len(sizes) >= 2:
        a, b = sizes[0], sizes[-1]
        t = lambda e: e["metrics"]["wall_seconds"] + e["dashboard"]["wall_seconds"]  # noqa: E731
        report["scaling"] = {
            "rows_ratio": b["n"] / a["n"],
            "time_ratio": t(b) / t(a),
            "time_per_row_ratio": (t(b) / b["n"]) / (t(a) / a["n"]),
        }
    print()
    print(f"threads={args.threads} memory_limit={args.memory_limit or 'default'}")
    print(markdown_table(["transactions", "file MiB", "metrics s", "metrics RSS MiB",
                          "dashboard s", "dashboard RSS MiB", "total s", "wallets"], rows))
    if "scaling" in report:
        s = report["scaling"]
        print(f"\n{s['rows_ratio']:.0f}x rows -> {s['time_ratio']:.2f}x time "
              f"(time per row x{s['time_per_row_ratio']:.2f})")
    path = write_results("metrics", report)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
