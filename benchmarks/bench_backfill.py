"""Backfill throughput under the gateway's limits, and unthrottled, side by side in one run.

    .venv/bin/python benchmarks/bench_backfill.py                  # everything, ~8 min
    .venv/bin/python benchmarks/bench_backfill.py --only limits    # the rate-limit table
    .venv/bin/python benchmarks/bench_backfill.py --only unthrottled --profile

The simulator (stx_pipeline.sim) runs in this process; each contender runs in its own
subprocess against it over loopback HTTP, with a fresh DuckDB file, so its wall time, CPU
seconds and peak RSS are its own (the simulator's CPU is not charged to it, but on 2
cores it competes for it).

Rate limits (10 days x 6000 tx/day, 150 +- 50 ms latency, frozen head):
- `default`: the client a user gets with only HIRO_API_KEY set (`client_from_env`), against
  a gateway announcing 1200/min, then one announcing 20/s and 900/min;
- `before`: HIRO_RPM=500, which is what the old 500 RPM default did against that gateway;
- `naive` (--naive): the seed's algorithm (benchmarks/naive_baseline.py), capped.
Ceiling = the tightest window's rate x 50 tx per request.

Unthrottled (a self-hosted node: no limits, no latency): the project's default client vs a
plain dlt `rest_api` pipeline (benchmarks/dlt_rest_api.py, run with .venv-dlt's Python),
tx/s and CPU seconds per 1,000 transactions. --profile samples the project's run with
py-spy and splits its CPU into HTTP, JSON, row mapping, DuckDB and the rest.

Completeness is measured against the simulator's ground truth: canonical tx_ids with
`burn_block_time >= target` vs canonical tx_ids in the contender's file.
Prints markdown tables; writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, markdown_table, run_child, write_results

SEED = 11
PAGE = 50
DLT_PYTHON = ROOT / ".venv-dlt" / "bin" / "python"
PY_SPY = ROOT / ".venv-dlt" / "bin" / "py-spy"


# ----------------------------------------------------------------------------- children
def _stages(args: argparse.Namespace) -> None:
    """CPU seconds of each stage of ingest, one stage at a time over the same pages.

    HTTP (requests + urllib3 + http.client, body read as bytes), JSON decode, row mapping
    (`map_page`) and DuckDB (the project's WindowWriter: staging, upsert, ledger) run in
    sequence on one thread, so each stage's CPU is measured alone; DuckDB's is the whole
    process's CPU while only the writer works (its native threads included).
    """
    import requests

    from stx_pipeline.backfill.planner import Window
    from stx_pipeline.backfill.writer import PageBatch, WindowWriter
    from stx_pipeline.hiro.rows import map_page
    from stx_pipeline.warehouse.db import open_db

    target = int(args.now - args.days * 86400)
    session = requests.Session()
    bodies: list[tuple[Window, int, bytes]] = []
    t0 = time.thread_time()
    for start in range(target, args.now, 3600):
        window = Window(start, min(start + 3599, args.now - 1))
        offset, total = 0, None
        while total is None or offset < total:
            resp = session.get(args.url + "/extended/v1/tx", params={
                "limit": PAGE, "offset": offset, "order": "asc", "sort_by": "burn_block_time",
                "start_time": window.start, "end_time": window.end}, timeout=30)
            body = resp.content
            bodies.append((window, offset, body))
            total = int(json.loads(body)["total"]) if total is None else total
            offset += PAGE
    http = time.thread_time() - t0
    t0 = time.thread_time()
    decoded = [(w, off, json.loads(b)) for w, off, b in bodies]
    json_s = time.thread_time() - t0
    ingested = datetime.now(UTC)
    t0 = time.thread_time()
    mapped = [(w, off, d["total"], *map_page(d["results"], ingested)) for w, off, d in decoded]
    map_s = time.thread_time() - t0
    con = open_db(args.db, memory_limit="64MB")
    writer = WindowWriter(con)
    import threading

    stop = threading.Event()
    t0 = time.process_time()
    writer.start()
    for w, off, total, rows, rejected in mapped:
        writer.put(PageBatch(w, off, total, rows, rejected, off + PAGE >= total, True), stop)
    writer.close()
    duck = time.process_time() - t0
    con.close()
    rows_total = sum(len(m[3]) for m in mapped)
    print(json.dumps({"contender": "stages", "pages": len(bodies), "rows": rows_total,
                      "cpu_seconds": {"HTTP": http, "JSON decode": json_s,
                                      "row mapping": map_s, "DuckDB writer": duck},
                      "wall_seconds": 0.0}), flush=True)


def _child(args: argparse.Namespace) -> None:
    from stx_pipeline.hiro.factory import client_from_env

    if args.child == "stages":
        _stages(args)
        return

    if args.what_if_reserve is not None:
        # A labelled what-if experiment, never the headline number: the share of each
        # server window the limiter keeps unused (hiro/limiter.py ships 0.01).
        import stx_pipeline.hiro.limiter as limiter_mod

        limiter_mod.SERVER_LIMIT_RESERVE = args.what_if_reserve
    env = {"HIRO_API_URL": args.url, "HIRO_API_KEY": "bench-key"}
    env.update(kv.split("=", 1) for kv in args.env)
    client = client_from_env(env)
    now = datetime.fromtimestamp(args.now, UTC)
    target = int(args.now - args.days * 86400)
    out: dict[str, Any] = {"contender": args.child, "env": sorted(k for k in env
                                                                   if k != "HIRO_API_KEY")}
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
        )
        wall = time.monotonic() - t0
        out.update(
            wall_seconds=wall, stop_reason=res.stop_reason.value, complete=res.complete,
            pages=res.pages, rows_inserted=res.rows_inserted, windows=res.windows_sealed,
            plan=plans[0] if plans else "",
        )
    else:
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
    out["limiter"] = client.limiter.snapshot()
    client.close()
    print(json.dumps(out, default=str), flush=True)


# ----------------------------------------------------------------------------- parent
def _completeness(db: str, truth_ids: list[str], target: int, table: str) -> dict[str, Any]:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(db, read_only=True)
    try:
        con.register("_truth", pa.table({"tx_id": pa.array(truth_ids, pa.string())}))
        where = ("canonical AND burn_block_time >= to_timestamp(?)" if table == "transactions"
                 else "burn_block_time >= ?")
        loaded, matched, extra = con.execute(
            f"""
            WITH got AS (SELECT DISTINCT tx_id FROM {table} WHERE {where})
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
    now: int, rpm: int | None = None, rps: int | None = None, env: list[str] | None = None,
    cap: float = 0.0, workers: int = 0, extra: list[str] | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    from stx_pipeline.sim import SimConfig, Simulator

    # A fresh simulator per contender: same seed and `now` (so the same chain), and a
    # clean gateway window so one contender's requests never count against the next.
    sim = Simulator(SimConfig(
        seed=SEED, history_days=days + 0.5, tx_per_day=tx_per_day, frozen=True, now=now,
        latency_ms=latency_ms, latency_jitter_ms=jitter_ms, rate_limit_rpm=rpm,
        rate_limit_rps=rps,
    )).start()
    try:
        target = int(sim.now() - days * 86400)
        truth = [t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]]
        sim_cpu = resource.getrusage(resource.RUSAGE_SELF)
        with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
            db = str(Path(tmp) / "bench.duckdb")
            if kind == "dlt":
                argv = [str(Path(__file__).resolve().parent / "dlt_rest_api.py"),
                        "--url", sim.url, "--db", db, "--start-time", str(target),
                        "--end-time", str(sim.now())]
                out, rss = run_child(argv, python=str(DLT_PYTHON))
                table = "hiro.transactions"
            else:
                argv = [
                    str(Path(__file__).resolve()), "--child", kind, "--url", sim.url,
                    "--db", db, "--now", str(sim.now()), "--days", str(days),
                    "--cap", str(cap), "--workers", str(workers),
                    *[a for kv in (env or []) for a in ("--env", kv)], *(extra or []),
                ]
                prefix = None
                if profile is not None:
                    prefix = [str(PY_SPY), "record", "--format", "raw", "--rate", "200",
                              "--output", str(profile), "--"]
                out, rss = run_child(argv, prefix=prefix)
                table = "transactions"
            after = resource.getrusage(resource.RUSAGE_SELF)
            # this process is the simulator while the child runs: its CPU is the server's
            out["sim_cpu_seconds"] = (after.ru_utime - sim_cpu.ru_utime
                                      + after.ru_stime - sim_cpu.ru_stime)
            out["peak_rss_mib"] = rss
            out["sim"] = sim.stats
            out.update(_completeness(db, truth, target, table))
    finally:
        sim.stop()
    wall = out["wall_seconds"]
    rates = [r for r in ((rpm / 60.0) if rpm else None, float(rps) if rps else None) if r]
    ceiling = min(rates) * PAGE if rates else None
    out["tx_per_s"] = out["matched"] / wall if wall else 0.0
    out["ceiling_tx_per_s"] = ceiling
    out["share_of_ceiling"] = out["tx_per_s"] / ceiling if ceiling else None
    out["req_per_s"] = out["sim"]["requests"] / wall if wall else 0.0
    out["cpu_s_per_1000_tx"] = (1000.0 * out["child_cpu_seconds"] / out["matched"]
                                if out["matched"] else None)
    out.update(days=days, tx_per_day=tx_per_day, latency_ms=latency_ms, jitter_ms=jitter_ms,
               rpm=rpm, rps=rps)
    return out


def _limit_row(name: str, server: str, r: dict[str, Any]) -> list[Any]:
    lim = r.get("limiter", {})
    return [
        name, server, round(r["wall_seconds"], 1), round(r["tx_per_s"], 1),
        r["sim"]["requests"], f'{r["sim"]["responses_429"]} / {r["client"]["responses_429"]}',
        f'{r["completeness_pct"]:.2f} % ({r["matched"]:,}/{r["truth"]:,})',
        f'{lim.get("rpm")} ({lim.get("source")})',
        f'**{r["share_of_ceiling"]:.3f}**' if r["share_of_ceiling"] else "-", r["stop_reason"],
    ]


LIMIT_HEAD = ["client", "server announces", "wall s", "tx/s (complete rows)", "requests",
              "429s sim / client", "completeness", "rate at end, rpm (source)", "of ceiling",
              "stop"]


# ----------------------------------------------------------------------------- profile
BUCKETS = (  # first match wins, checked against each sampled stack from the leaf up
    ("DuckDB (writer)", ("duckdb", "writer.py")),
    ("row mapping", ("rows.py",)),
    ("JSON decode", ("json/decoder.py", "json/__init__.py", "complexjson")),
    ("HTTP (requests, urllib3, http.client, socket)",
     ("requests/", "urllib3/", "http/client.py", "socket.py", "ssl.py", "email/")),
    ("rate limiter, retries", ("limiter.py", "tenacity")),
    ("backfill runner, planner", ("runner.py", "planner.py", "concurrent/futures")),
)


def classify_profile(path: Path) -> dict[str, Any]:
    """Share of sampled (non-idle) stacks per bucket, from py-spy's raw collapsed format."""
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        total += int(n)
        bucket = "other (interpreter start-up, imports, threading)"
        for frame in reversed(frames):
            hit = next((b for b, keys in BUCKETS if any(k in frame for k in keys)), None)
            if hit:
                bucket = hit
                break
        counts[bucket] += int(n)
    return {"samples": total,
            "shares": {k: v / total for k, v in counts.most_common()} if total else {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child", choices=["project", "baseline", "stages"])
    ap.add_argument("--url")
    ap.add_argument("--db")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the client")
    ap.add_argument("--now", type=int, default=0)
    ap.add_argument("--days", type=float, default=10)
    ap.add_argument("--tx-per-day", type=float, default=6000)
    ap.add_argument("--latency-ms", type=float, default=150)
    ap.add_argument("--jitter-ms", type=float, default=50)
    ap.add_argument("--cap", type=float, default=0.0)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--what-if-reserve", type=float, default=None,
                    help="experiment: share of each server window kept unused (ships 0.01)")
    ap.add_argument("--only", choices=["limits", "unthrottled"], default=None)
    ap.add_argument("--naive", action="store_true", help="also the seed's algorithm")
    ap.add_argument("--baseline-cap", type=float, default=120.0)
    ap.add_argument("--unthrottled-days", type=float, default=5)
    ap.add_argument("--profile", action="store_true", help="py-spy profile of the project")
    args = ap.parse_args()
    if args.child:
        _child(args)
        return

    now = int(time.time())
    report: dict[str, Any] = {"machine": machine(), "argv": sys.argv, "now": now}
    started = time.monotonic()
    if args.only in (None, "limits"):
        common = dict(days=args.days, tx_per_day=args.tx_per_day, latency_ms=args.latency_ms,
                      jitter_ms=args.jitter_ms, now=now)
        print(f"rate limits: {args.days:g} days x {args.tx_per_day:g} tx/day, latency "
              f"{args.latency_ms:g}±{args.jitter_ms:g} ms", flush=True)
        runs = [
            ("default (only HIRO_API_KEY)", "1200/min", dict(rpm=1200)),
            ("default (only HIRO_API_KEY)", "20/s and 900/min", dict(rpm=900, rps=20)),
            ("before: the 500 RPM default (HIRO_RPM=500)", "1200/min",
             dict(rpm=1200, env=["HIRO_RPM=500"])),
        ]
        if args.what_if_reserve is not None:
            runs.append((f"what-if: reserve {args.what_if_reserve:g} (not shipped)", "1200/min",
                         dict(rpm=1200, extra=["--what-if-reserve", str(args.what_if_reserve)])))
        results = []
        rows = []
        for name, server, kw in runs:
            r = run_contender("project", **common, **kw)
            r["label"], r["server"] = name, server
            results.append(r)
            rows.append(_limit_row(name, server, r))
            print(f"  {name} vs {server}: {r['wall_seconds']:.1f}s,"
                  f" {r['share_of_ceiling']:.3f} of ceiling", flush=True)
        if args.naive:
            r = run_contender("baseline", cap=args.baseline_cap, rpm=1200, **common)
            r["label"], r["server"] = "naive baseline (the seed's algorithm)", "1200/min"
            results.append(r)
            rows.append(_limit_row(f"naive baseline, capped {args.baseline_cap:g}s",
                                   "1200/min", r))
        report["limits"] = results
        print()
        print(markdown_table(LIMIT_HEAD, rows))
        print(f"\nplans: {[r.get('plan', '') for r in results]}")
    if args.only in (None, "unthrottled"):
        days = args.unthrottled_days
        print(f"\nunthrottled: {days:g} days x {args.tx_per_day:g} tx/day, no latency, no"
              " limits", flush=True)
        common = dict(days=days, tx_per_day=args.tx_per_day, latency_ms=0, jitter_ms=0, now=now)
        results = {}
        results["project"] = run_contender("project", **common)
        print(f"  project: {results['project']['wall_seconds']:.1f}s", flush=True)
        if DLT_PYTHON.exists():
            results["dlt"] = run_contender("dlt", **common)
            print(f"  dlt: {results['dlt']['wall_seconds']:.1f}s", flush=True)
        else:
            print(f"  dlt: not run ({DLT_PYTHON} missing; see benchmarks/dlt_rest_api.py)")
        rows = [[name, round(r["wall_seconds"], 1), round(r["tx_per_s"]),
                 round(r["child_cpu_seconds"], 1), round(r["cpu_s_per_1000_tx"], 3),
                 round(r["sim_cpu_seconds"], 1), f'{r["completeness_pct"]:.2f} %',
                 round(r["peak_rss_mib"]), r["sim"]["requests"]]
                for name, r in results.items()]
        print()
        print(markdown_table(["contender", "wall s", "tx/s", "CPU s", "CPU s / 1000 tx",
                              "simulator CPU s", "completeness", "peak RSS MiB", "requests"],
                             rows))
        if args.profile:
            st = run_contender("stages", **common)
            cpu = st["cpu_seconds"]
            total = sum(cpu.values())
            results["stages"] = st
            print(f"\nwhere the CPU goes (stages run one at a time over the same {st['pages']:,}"
                  f" pages, {st['rows']:,} rows):")
            print(markdown_table(
                ["stage", "CPU s", "CPU s / 1000 tx", "share"],
                [[k, round(v, 2), round(1000 * v / st["rows"], 3), f"{100 * v / total:.0f} %"]
                 for k, v in cpu.items()]))
            if shutil.which(str(PY_SPY)):
                prof = Path(tempfile.mkdtemp(prefix="bench-prof-")) / "project.txt"
                run_contender("project", **common, profile=prof)
                results["py_spy"] = classify_profile(prof)
                results["py_spy"]["file"] = str(prof)
        report["unthrottled"] = results
    report["bench_wall_seconds"] = time.monotonic() - started
    path = write_results("backfill", report)
    print(f"\nresults: {path} (total {report['bench_wall_seconds']:.0f}s)")


if __name__ == "__main__":
    main()
