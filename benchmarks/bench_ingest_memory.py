"""Ingest memory: peak RSS of the backfill process at ~100k vs ~1M transactions.

    .venv/bin/python benchmarks/bench_ingest_memory.py                 # 100k and 1M
    .venv/bin/python benchmarks/bench_ingest_memory.py --sizes 100000,500000

The simulator runs without latency and without a rate limit (so the run is CPU-bound
and quick), 10 days of chain at size/10 transactions per day; the project's
`ensure_transaction_history` runs in its own subprocess with a fresh DuckDB file and an
unlimited `HiroClient`. Peak RSS is the child's `ru_maxrss` (os.wait4). Flat memory means
the 1M run stays within 1.25x of the 100k run: pages stream through the bounded writer
queue into DuckDB, nothing accumulates in Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, markdown_table, run_child, write_results

DAYS = 10


def _child(args: argparse.Namespace) -> None:
    from stx_pipeline.backfill.runner import ensure_transaction_history
    from stx_pipeline.hiro.client import HiroClient

    client = HiroClient(args.url, requests_per_minute=0)
    t0 = time.monotonic()
    res = ensure_transaction_history(
        max_days=DAYS, client=client, db_path=args.db, max_pages=1_000_000,
        now=datetime.fromtimestamp(args.now, UTC),
        status_path=str(Path(args.db).with_suffix(".status.json")),
    )
    wall = time.monotonic() - t0
    client.close()
    print(json.dumps({
        "wall_seconds": wall, "rows_inserted": res.rows_inserted, "pages": res.pages,
        "complete": res.complete, "stop_reason": res.stop_reason.value,
        "file_mib": Path(args.db).stat().st_size / 2**20,
    }), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--now", type=int, default=0)
    ap.add_argument("--sizes", default="100000,1000000")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    from stx_pipeline.sim import SimConfig, Simulator

    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "runs": []}
    now = int(time.time())
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        sim = Simulator(SimConfig(seed=5, history_days=DAYS + 0.5, tx_per_day=n / DAYS,
                                  frozen=True, now=now)).start()
        try:
            with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
                db = str(Path(tmp) / "ingest.duckdb")
                out, rss = run_child([__file__, "--child", "--url", sim.url, "--db", db,
                                      "--now", str(sim.now())])
        finally:
            sim.stop()
        out.update(n_target=n, peak_rss_mib=rss,
                   tx_per_s=out["rows_inserted"] / out["wall_seconds"])
        report["runs"].append(out)
        rows.append([f"{out['rows_inserted']:,}", out["pages"], round(out["wall_seconds"], 1),
                     round(out["tx_per_s"]), round(rss, 1), round(out["file_mib"], 1),
                     out["stop_reason"]])
        print(f"  {n:,}: {out['wall_seconds']:.1f}s, {rss:.0f} MiB", flush=True)
    runs = report["runs"]
    if len(runs) >= 2:
        report["rss_ratio"] = runs[-1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
    print()
    print(markdown_table(["rows", "pages", "wall s", "tx/s", "peak RSS MiB", "file MiB",
                          "stop"], rows))
    if "rss_ratio" in report:
        print(f"\npeak RSS ratio largest/smallest: {report['rss_ratio']:.2f}x (target <= 1.25x)")
    path = write_results("ingest_memory", report)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
