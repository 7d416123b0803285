"""Backfill throughput: this project vs the seed's naive baseline, side by side.

    .venv/bin/python benchmarks/bench_backfill.py            # main comparison + sweeps
    .venv/bin/python benchmarks/bench_backfill.py --no-sweeps

The simulator (stx_pipeline.sim) runs in this process; each contender runs in its own
subprocess against it over loopback HTTP, with a fresh DuckDB file, so its wall time and
peak RSS are its own. Both contenders use `HiroClient(sim.url, requests_per_minute=RPM)`.

- project: `ensure_transaction_history(max_days=DAYS, client=..., now=sim now)`
- baseline: benchmarks/naive_baseline.py (the seed's `end_time = min - 1` cursor, one
  page at a time), capped at --baseline-cap seconds of wall time.

Completeness is measured against the simulator's ground truth: canonical tx_ids with
`burn_block_time >= target` vs canonical tx_ids in the contender's file. The ceiling is
`rpm / 60 * 50` transactions per second (every allowed request a full page).
Prints markdown tables; writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, markdown_table, run_child, write_results

SEED = 11
PAGE = 50


# ----------------------------------------------------------------------------- children
def _child(args: argparse.Namespace) -> None:
    from stx_pipeline.hiro.client import HiroClient

    if args.what_if_reserve is not None:
        # A labelled what-if experiment, never the headline number: the share of a
        # server-announced limit the client keeps in reserve (hiro/limiter.py uses 0.9).
        import stx_pipeline.hiro.limiter as limiter_mod

        limiter_mod.SERVER_LIMIT_SAFETY = 1.0 - args.what_if_reserve
    now = datetime.fromtimestamp(args.now, UTC)
    target = int(args.now - args.days * 86400)
    client = HiroClient(args.url, requests_per_minute=args.rpm)
    out: dict[str, Any] = {"contender": args.child}
    if args.child == "project":
        from stx_pipeline.backfill.runner import ensure_transaction_history

        plans: list[str] = []

        class _Grab(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                msg = record.getMessage()
                if msg.startswith("plan:"):
                    plans.append(msg)

        logging.getLogger("stx_pipeline.backfill").addHandler(_Grab())
        logging.getLogger("stx_pipeline.backfill").setLevel(logging.INFO)
        t0 = time.monotonic()
        res = ensure_transaction_history(
            max_days=args.days, client=client, db_path=args.db, now=now,
            status_path=str(Path(args.db).with_suffix(".status.json")),
            workers=args.workers or None, max_pages=100_000,
            **({"rows_per_window": args.rows_per_window} if args.rows_per_window else {}),
        )
        wall = time.monotonic() - t0
        out.update(
            wall_seconds=wall, stop_reason=res.stop_reason.value, complete=res.complete,
            pages=res.pages, rows_inserted=res.rows_inserted, windows=res.windows_sealed,
            plan=plans[0] if plans else "",
        )
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from naive_baseline import naive_backfill

        t0 = time.monotonic()
        res = naive_backfill(client, args.db, target, max_seconds=args.cap or None)
        wall = time.monotonic() - t0
        out.update(
            wall_seconds=wall, stop_reason=res.stop_reason, complete=False, capped=res.capped,
            pages=res.pages, rows_inserted=res.rows_inserted,
            oldest_block_time=res.oldest_block_time,
        )
    out["client"] = client.stats.snapshot()
    client.close()
    print(json.dumps(out, default=str), flush=True)


# ----------------------------------------------------------------------------- parent
def _completeness(db: str, truth_ids: list[str], target: int) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(db, read_only=True)
    try:
        con.register("_truth", pa.table({"tx_id": pa.array(truth_ids, pa.string())}))
        loaded, matched, extra = con.execute(
            """
            WITH got AS (SELECT tx_id FROM transactions WHERE canonical
                         AND burn_block_time >= to_timestamp(?))
            SELECT (SELECT count(*) FROM got),
                   (SELECT count(*) FROM got JOIN _truth USING (tx_id)),
                   (SELECT count(*) FROM got ANTI JOIN _truth USING (tx_id))
            """,
            [target],
        ).fetchone()
    finally:
        con.close()
    return {
        "truth": len(truth_ids), "loaded_in_range": int(loaded), "matched": int(matched),
        "unexpected": int(extra),
        "completeness_pct": 100.0 * matched / len(truth_ids) if truth_ids else 100.0,
    }


def run_contender(
    kind: str, *, days: float, tx_per_day: float, latency_ms: float, jitter_ms: float,
    rpm: int, now: int, cap: float = 0.0, workers: int = 0, extra: list[str] | None = None,
) -> dict[str, Any]:
    from stx_pipeline.sim import SimConfig, Simulator

    # A fresh simulator per contender: same seed and `now` (so the same chain), and a
    # clean gateway window so one contender's requests never count against the next.
    sim = Simulator(SimConfig(
        seed=SEED, history_days=days + 0.5, tx_per_day=tx_per_day, frozen=True, now=now,
        latency_ms=latency_ms, latency_jitter_ms=jitter_ms, rate_limit_rpm=rpm,
    )).start()
    try:
        target = int(sim.now() - days * 86400)
        truth = [t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]]
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            db = str(Path(tmp) / "bench.duckdb")
            argv = [
                str(Path(__file__).resolve()), "--child", kind, "--url", sim.url, "--db", db,
                "--now", str(sim.now()), "--days", str(days), "--rpm", str(rpm),
                "--cap", str(cap), "--workers", str(workers), *(extra or []),
            ]
            out, rss = run_child(argv)
            out["peak_rss_mib"] = rss
            out["sim"] = sim.stats
            out.update(_completeness(db, truth, target))
    finally:
        sim.stop()
    wall = out["wall_seconds"]
    ceiling = rpm / 60.0 * PAGE
    out["tx_per_s"] = out["matched"] / wall if wall else 0.0
    out["ceiling_tx_per_s"] = ceiling
    out["pct_of_ceiling"] = 100.0 * out["tx_per_s"] / ceiling
    out["req_per_s"] = out["sim"]["requests"] / wall if wall else 0.0
    out.update(days=days, tx_per_day=tx_per_day, latency_ms=latency_ms, jitter_ms=jitter_ms,
               rpm=rpm)
    return out


def _row(name: str, r: dict[str, Any]) -> list[Any]:
    return [
        name, round(r["wall_seconds"], 1), round(r["tx_per_s"], 1), r["sim"]["requests"],
        f'{r["sim"]["responses_429"]} / {r["client"]["responses_429"]}',
        f'{r["completeness_pct"]:.2f} % ({r["matched"]:,}/{r["truth"]:,})',
        round(r["peak_rss_mib"], 1), f'{r["pct_of_ceiling"]:.1f} %', r["stop_reason"],
    ]


HEAD = ["contender", "wall s", "tx/s (complete rows)", "requests (sim)", "429s sim / client",
        "completeness", "peak RSS MiB", "of ceiling", "stop"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["project", "baseline"])
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--now", type=int, default=0)
    ap.add_argument("--days", type=float, default=10)
    ap.add_argument("--tx-per-day", type=float, default=6000)
    ap.add_argument("--latency-ms", type=float, default=150)
    ap.add_argument("--jitter-ms", type=float, default=50)
    ap.add_argument("--rpm", type=int, default=1200)
    ap.add_argument("--cap", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--rows-per-window", type=int, default=0,
                    help="override the runner's rows_per_window (experiments)")
    ap.add_argument("--what-if-reserve", type=float, default=None,
                    help="experiment: limiter reserve of the server limit (project default 0.1)")
    ap.add_argument("--baseline-cap", type=float, default=240.0,
                    help="wall-time cap of the baseline, seconds")
    ap.add_argument("--sweep-days", type=float, default=2)
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--no-main", action="store_true")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    now = int(time.time())
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "now": now}
    started = time.monotonic()
    if not args.no_main:
        common = dict(days=args.days, tx_per_day=args.tx_per_day, latency_ms=args.latency_ms,
                      jitter_ms=args.jitter_ms, rpm=args.rpm, now=now)
        print(f"main: {args.days:g} days x {args.tx_per_day:g} tx/day, latency "
              f"{args.latency_ms:g}±{args.jitter_ms:g} ms, {args.rpm} rpm", flush=True)
        proj = run_contender("project", **common)
        print(f"  project done in {proj['wall_seconds']:.1f}s", flush=True)
        base = run_contender("baseline", cap=args.baseline_cap, **common)
        print(f"  baseline done in {base['wall_seconds']:.1f}s", flush=True)
        whatif = None
        if args.what_if_reserve is not None:
            whatif = run_contender("project", **common,
                                   extra=["--what-if-reserve", str(args.what_if_reserve)])
            print(f"  what-if done in {whatif['wall_seconds']:.1f}s", flush=True)
        ratios = {
            "project_over_ceiling": proj["tx_per_s"] / proj["ceiling_tx_per_s"],
            "project_over_baseline_tx_per_s": proj["tx_per_s"] / base["tx_per_s"]
            if base["tx_per_s"] else None,
            "baseline_over_ceiling": base["tx_per_s"] / base["ceiling_tx_per_s"],
        }
        report["main"] = {"project": proj, "baseline": base, "ratios": ratios,
                          "what_if": whatif}
        table = [_row("project", proj), _row("naive baseline (capped "
                                             f"{args.baseline_cap:g}s)", base)]
        if whatif is not None:
            table.append(_row(f"what-if: project, limiter reserve {args.what_if_reserve:g}"
                              " (not shipped)", whatif))
        print()
        print(markdown_table(HEAD, table))
        print()
        print(f"ceiling {proj['ceiling_tx_per_s']:.0f} tx/s; project/ceiling "
              f"{ratios['project_over_ceiling']:.3f}; project/baseline (complete tx/s) "
              f"{ratios['project_over_baseline_tx_per_s']:.2f}x; baseline capped: "
              f"{base.get('capped')} at {args.baseline_cap:g}s")
        print(f"project plan: {proj.get('plan')}")
    if not args.no_sweeps:
        sweeps: list[dict[str, Any]] = []
        rows = []
        for lat, rpm in [(20, 1200), (150, 1200), (500, 1200), (150, 300), (150, 6000)]:
            r = run_contender("project", days=args.sweep_days, tx_per_day=args.tx_per_day,
                              latency_ms=lat, jitter_ms=lat / 3, rpm=rpm, now=now)
            sweeps.append(r)
            workers = r.get("plan", "").split(",")[2].strip() if r.get("plan") else ""
            rows.append([lat, rpm, workers, *_row("project", r)[1:]])
            print(f"  sweep latency {lat} ms, {rpm} rpm: {r['wall_seconds']:.1f}s", flush=True)
        report["sweeps"] = sweeps
        print()
        print(f"sweeps ({args.sweep_days:g} days of chain, project only):")
        print(markdown_table(["latency ms", "rpm", "workers", *HEAD[1:]], rows))
    report["bench_wall_seconds"] = time.monotonic() - started
    path = write_results("backfill", report)
    print(f"\nresults: {path} (total {report['bench_wall_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
