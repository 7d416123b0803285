"""v1 vs v3 side by side in one run: the same simulated chain, the same gateway rate limit.

    .venv/bin/python benchmarks/bench_sources.py [--days 10] [--tx-per-day 6000] [--rpm 1200]

Each source runs in its own subprocess against a fresh simulator (same seed and `now`, so
the same chain; a clean gateway window each) with the default configuration: the client
is `client_from_env` with only `HIRO_API_KEY` (and the URL) set, so its limiter learns the
server's limits from the headers. The gateway announces `--rpm` (and `--rps` if given);
latency 150 +- 50 ms.

- `v1`: `ensure_transaction_history` with `HIRO_SOURCE=v1` into a fresh DuckDB file;
- `v3`: the same with `HIRO_SOURCE=v3`, when the runner takes a `source` (issue 12);
  otherwise (`--v3-path fetch`, or a runner without it) the phase-A path: `height_walk`
  shards following `/extended/v3/transactions` cursors plus the per-tenure count of
  `/extended/v2/burn-blocks`, fetch only (no DuckDB), labelled as such.

Reported per source: fraction of the request ceiling achieved (requests/s over the
tightest announced window), fraction of the row ceiling (that rate x 50 rows a request),
requests per 1000 transactions, rows/s (complete rows of the target span), peak RSS of the
backfill process (kernel `ru_maxrss` of the child, and the largest RSS psutil sampled every
50 ms), and completeness against the simulator's ground truth. Writes JSON to
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, markdown_table, write_results

SEED = 11
PAGE = 50


# ----------------------------------------------------------------------------- children
def runner_takes_source() -> bool:
    from stx_pipeline.backfill.runner import ensure_transaction_history

    return "source" in inspect.signature(ensure_transaction_history).parameters


def _child(args: argparse.Namespace) -> None:
    from stx_pipeline.hiro.factory import client_from_env

    env = {"HIRO_API_URL": args.url, "HIRO_API_KEY": "bench-key", "HIRO_SOURCE": args.child}
    os.environ["HIRO_SOURCE"] = args.child  # the runner reads it when `source` is None
    client = client_from_env(env)
    now = datetime.fromtimestamp(args.now, UTC)
    out: dict[str, Any] = {"contender": args.child}
    if args.path == "fetch":
        t0 = time.monotonic()
        out.update(_fetch_only_v3(client, args))
        out["wall_seconds"] = time.monotonic() - t0
        out["path"] = "v3 phase A: height_walk + burn-block counts, fetch only (no DuckDB)"
    else:
        from stx_pipeline.backfill.runner import ensure_transaction_history

        t0 = time.monotonic()
        res = ensure_transaction_history(
            max_days=args.days, client=client, db_path=args.db, now=now,
            status_path=str(Path(args.db).with_suffix(".status.json")), max_pages=100_000,
        )
        out["wall_seconds"] = time.monotonic() - t0
        d = res.to_dict()
        out.update(stop_reason=d["stop_reason"], complete=res.complete, pages=res.pages,
                   rows_inserted=res.rows_inserted, source=d.get("source"),
                   path=f"ensure_transaction_history, HIRO_SOURCE={args.child}")
    out["client"] = client.stats.snapshot()
    out["limiter"] = client.limiter.snapshot()
    client.close()
    print(json.dumps(out, default=str), flush=True)


def _fetch_only_v3(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Phase A: shards of heights walked in parallel, then sealed per tenure."""
    from stx_pipeline.backfill.height_walk import (
        check_tenures,
        seen_by_tenure,
        split,
        tenure_counts,
        walk_shard,
    )
    from stx_pipeline.hiro.v3 import block_at_time, latest_block

    target = int(args.now - args.days * 86400)
    tip = latest_block(client)
    start = block_at_time(client, target - 3600)
    lo = start.height if start else 0
    shards = split(lo, tip.height, args.shards)
    with ThreadPoolExecutor(args.threads) as pool:
        # the independent count runs beside the walk (from the start block's tenure on)
        counts = pool.submit(tenure_counts, client, start.burn_block_height if start else 0,
                             tip.burn_block_height)
        parts = list(pool.map(lambda s: walk_shard(client, s), shards))
        tenures = counts.result()
    summaries = [s for p in parts for s in p]
    seen = seen_by_tenure(summaries)
    burn_lo = min(t for t, _ in seen) + 1  # the lowest tenure is cut by `lo`
    check = check_tenures(burn_lo, tip.burn_block_height, tenures, seen)
    Path(args.ids).write_text("\n".join(
        s["tx_id"] for s in summaries if s["bitcoin_block"]["time"] >= target))
    return {"stop_reason": "target_reached" if check.sealed else "unsealed",
            "complete": check.sealed, "pages": None, "rows_walked": len(summaries),
            "shards": len(shards), "threads": args.threads, "source": "v3"}


# ----------------------------------------------------------------------------- parent
def _run_child(argv: list[str]) -> tuple[dict[str, Any], float, float]:
    """(the child's last JSON line, its peak RSS in MiB from the kernel, the largest RSS
    psutil saw, MiB)."""
    import psutil

    with tempfile.TemporaryFile(mode="w+") as errf:
        proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=errf,
                                cwd=str(ROOT), text=True)
        watched = psutil.Process(proc.pid)
        sampled = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    sampled[0] = max(sampled[0], watched.memory_info().rss)
                except psutil.Error:
                    return
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        assert proc.stdout is not None
        out = proc.stdout.read()
        done.set()
        sampler.join()
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so its rusage is ours to read
        code = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    if code != 0:
        raise RuntimeError(f"child {' '.join(argv)} exited {code}:\n{err[-4000:]}")
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("{")]
    result = json.loads(lines[-1])
    result["child_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result, usage.ru_maxrss / 1024.0, sampled[0] / 2**20


def _loaded_ids(db: str, target: int) -> list[str]:
    import duckdb

    con = duckdb.connect(db, read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT tx_id FROM transactions WHERE canonical"
            " AND burn_block_time >= to_timestamp(?)", [target]).fetchall()]
    finally:
        con.close()


def run_source(source: str, path: str, args: argparse.Namespace, now: int) -> dict[str, Any]:
    from stx_pipeline.sim import SimConfig, Simulator

    sim = Simulator(SimConfig(
        seed=SEED, history_days=args.days + 0.5, tx_per_day=args.tx_per_day, frozen=True,
        now=now, latency_ms=args.latency_ms, latency_jitter_ms=args.jitter_ms,
        rate_limit_rpm=args.rpm, rate_limit_rps=args.rps,
    )).start()
    try:
        target = int(sim.now() - args.days * 86400)
        truth = {t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]}
        with tempfile.TemporaryDirectory(prefix=f"bench-{source}-") as tmp:
            db, ids = str(Path(tmp) / "bench.duckdb"), str(Path(tmp) / "ids.txt")
            argv = [str(Path(__file__).resolve()), "--child", source, "--path", path,
                    "--url", sim.url, "--db", db, "--ids", ids, "--now", str(sim.now()),
                    "--days", str(args.days), "--shards", str(args.shards),
                    "--threads", str(args.threads)]
            out, rss, sampled = _run_child(argv)
            loaded = (Path(ids).read_text().split() if path == "fetch"
                      else _loaded_ids(db, target))
        out["sim"] = sim.stats
    finally:
        sim.stop()
    got = set(loaded)
    wall = out["wall_seconds"]
    rates = [r for r in ((args.rpm / 60.0) if args.rpm else None,
                         float(args.rps) if args.rps else None) if r]
    req_ceiling = min(rates)
    requests = out["sim"]["requests"]
    matched = len(got & truth)
    out.update(
        peak_rss_mib=rss, psutil_peak_rss_mib=sampled, truth=len(truth), matched=matched,
        missing=len(truth - got), extra=len(got - truth), duplicates=len(loaded) - len(got),
        req_per_s=requests / wall, request_ceiling_per_s=req_ceiling,
        share_of_request_ceiling=requests / wall / req_ceiling,
        rows_per_s=matched / wall, share_of_row_ceiling=matched / wall / (req_ceiling * PAGE),
        requests_per_1000_tx=1000.0 * requests / matched if matched else None,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["v1", "v3"])
    ap.add_argument("--path", choices=["runner", "fetch"], default="runner")
    ap.add_argument("--v3-path", choices=["auto", "runner", "fetch"], default="auto",
                    help="auto: the runner when it takes a source, else phase A (fetch)")
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--ids")
    ap.add_argument("--now", type=int, default=0)
    ap.add_argument("--days", type=float, default=10)
    ap.add_argument("--tx-per-day", type=float, default=6000)
    ap.add_argument("--rpm", type=int, default=1200)
    ap.add_argument("--rps", type=int, default=None)
    ap.add_argument("--latency-ms", type=float, default=150)
    ap.add_argument("--jitter-ms", type=float, default=50)
    ap.add_argument("--shards", type=int, default=24, help="phase-A v3 path only")
    ap.add_argument("--threads", type=int, default=8, help="phase-A v3 path only")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    v3_path = args.v3_path
    if v3_path == "auto":
        v3_path = "runner" if runner_takes_source() else "fetch"
    now = int(time.time())
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "now": now,
                              "v3_path": v3_path}
    server = f"{args.rpm}/min" + (f" and {args.rps}/s" if args.rps else "")
    print(f"{args.days:g} days x {args.tx_per_day:g} tx/day, gateway {server}, latency "
          f"{args.latency_ms:g}±{args.jitter_ms:g} ms; v3 path: {v3_path}", flush=True)
    results = {}
    rows = []
    for source, path in (("v1", "runner"), ("v3", v3_path)):
        r = run_source(source, path, args, now)
        results[source] = r
        print(f"  {source}: {r['wall_seconds']:.1f}s, {r['share_of_request_ceiling']:.3f} of"
              f" the request ceiling, complete={r['complete']}", flush=True)
        rows.append([
            source + (" (fetch only)" if path == "fetch" else ""), round(r["wall_seconds"], 1),
            r["sim"]["requests"], f'**{r["share_of_request_ceiling"]:.3f}**',
            round(r["share_of_row_ceiling"], 3), round(r["requests_per_1000_tx"], 2),
            round(r["rows_per_s"]), round(r["peak_rss_mib"]), round(r["psutil_peak_rss_mib"]),
            f'{r["matched"]:,}/{r["truth"]:,} (missing {r["missing"]}, extra {r["extra"]},'
            f' dup {r["duplicates"]})',
            f'{r["sim"]["responses_429"]}', r["stop_reason"],
        ])
    report["results"] = results
    print()
    print(markdown_table(
        ["source", "wall s", "requests", "of request ceiling", "of row ceiling",
         "requests / 1000 tx", "rows/s", "peak RSS MiB", "psutil max RSS MiB",
         "exact vs ground truth", "429s", "stop"], rows))
    path = write_results("sources", report)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
