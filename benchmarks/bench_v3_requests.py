"""Requests per transaction: the v1 backfill vs a v3 height walk with its independent count.

    .venv/bin/python benchmarks/bench_v3_requests.py [--days 5] [--tx-per-day 6000] [--shards 8]

Counts requests, not time (no rate limit, no latency), on one frozen simulated chain:

- v1: `ensure_transaction_history` (burn-time windows, their counts, re-verification) into a
  fresh DuckDB file;
- v3: the same span of heights read with `height_walk` (parallel shards following
  `/extended/v3/transactions` cursors), plus the independent count a range is sealed
  against, either per tenure (`/extended/v2/burn-blocks`, ~30 tenures a request) or per block
  (`/extended/v2/blocks`, 30 blocks a request). Fetch only: no DuckDB, so this is the v3
  source's request floor, not yet a pipeline run.

Both must return exactly the simulator's canonical transactions of the span.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, write_results

NOW = 1_790_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=5.0)
    parser.add_argument("--tx-per-day", type=float, default=6000.0)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()

    from stx_pipeline.backfill.height_walk import (
        block_counts,
        check_range,
        check_tenures,
        seen_by_tenure,
        seen_counts,
        split,
        tenure_counts,
        walk_shard,
    )
    from stx_pipeline.backfill.runner import ensure_transaction_history
    from stx_pipeline.hiro.client import HiroClient
    from stx_pipeline.hiro.v3 import block_at_time, latest_block
    from stx_pipeline.sim import run_simulator
    from stx_pipeline_tests.exactness import compare_with_truth

    with run_simulator(seed=11, history_days=args.days + 1, tx_per_day=args.tx_per_day,
                       frozen=True, now=NOW) as sim:
        target = int(NOW - args.days * 86400)
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "v1.duckdb")
            sim.reset_stats()
            t0 = time.monotonic()
            with HiroClient(sim.url, requests_per_minute=None) as c:
                result = ensure_transaction_history(
                    max_days=args.days, db_path=db, client=c, now=datetime.fromtimestamp(NOW, UTC),
                    status_path=str(Path(tmp) / "status.json"),
                )
            v1_seconds = time.monotonic() - t0
            v1_requests = sim.stats["requests"]
            cmp = compare_with_truth(sim, db, target)
            assert not cmp.missing and not cmp.extra and not cmp.duplicates, cmp.describe()
            assert result.complete
            n_v1 = len(cmp.loaded)

        sim.reset_stats()
        t0 = time.monotonic()
        with HiroClient(sim.url, requests_per_minute=None) as c:
            tip = latest_block(c)
            start = block_at_time(c, target - 3600)
            lo = start.height if start else 0
            shards = split(lo, tip.height, args.shards)
            with ThreadPoolExecutor(args.shards) as pool:
                parts = list(pool.map(lambda s: walk_shard(c, s), shards))
            summaries = [s for p in parts for s in p]
            walk_requests = sim.stats["requests"]
            seen_t = seen_by_tenure(summaries)
            burn_lo = min(t for t, _ in seen_t) + 1  # the lowest tenure is cut by `lo`
            tenures = tenure_counts(c, burn_lo, tip.burn_block_height)
            tenure_requests = sim.stats["requests"] - walk_requests
            with ThreadPoolExecutor(args.shards) as pool:
                counted = list(pool.map(lambda s: block_counts(c, s.lo, s.hi), shards))
            block_requests = sim.stats["requests"] - walk_requests - tenure_requests
        v3_seconds = time.monotonic() - t0
        by_route = sim.stats["by_route"]
        blocks = {h: b for part in counted for h, b in part.items()}
        check = check_range(lo, tip.height, blocks, seen_counts(summaries))
        assert check.sealed, check
        tcheck = check_tenures(burn_lo, tip.burn_block_height, tenures, seen_t)
        assert tcheck.sealed, tcheck
        truth = {t["tx_id"] for t in sim.ground_truth(include_orphaned=False)
                 if t["block_height"] >= lo}
        walked = [s["tx_id"] for s in summaries]
        assert set(walked) == truth and len(walked) == len(truth)
        in_target = sum(1 for s in summaries if s["bitcoin_block"]["time"] >= target)

    def per_k(n: int) -> float:
        return round(n / in_target * 1000, 2)

    rows = [
        ["v1 backfill (windows, counts, re-verify)", n_v1, v1_requests,
         round(v1_requests / n_v1 * 1000, 2)],
        ["v3 walk + tenure counts (burn-blocks)", in_target, walk_requests + tenure_requests,
         per_k(walk_requests + tenure_requests)],
        ["v3 walk + block counts (v2 blocks)", in_target, walk_requests + block_requests,
         per_k(walk_requests + block_requests)],
    ]
    print(markdown_table(["source", "txs in target", "requests", "requests per 1000 txs"], rows))
    print(f"walk {walk_requests}, tenure counts {tenure_requests} ({len(tenures)} tenures),"
          f" block counts {block_requests}; v1 {v1_seconds:.1f}s, v3 {v3_seconds:.1f}s")
    print(f"v3 requests by route: {by_route}; blocks {len(blocks):,}, heights {lo}..{tip.height}")
    write_results("v3_requests", {
        "args": vars(args), "v1": {"txs": n_v1, "requests": v1_requests},
        "v3": {"txs_in_target": in_target, "txs_walked": len(walked),
               "walk_requests": walk_requests, "tenure_count_requests": tenure_requests,
               "block_count_requests": block_requests, "by_route": by_route,
               "blocks": len(blocks), "tenures": len(tenures)},
    })


if __name__ == "__main__":
    main()
