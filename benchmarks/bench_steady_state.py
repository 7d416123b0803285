"""What a run costs once history is complete: before/after finality, side by side.

    .venv/bin/python benchmarks/bench_steady_state.py [--before REF]

For each contender a fresh simulator (same seed, same `now`: the same chain) and a fresh
DuckDB file: one complete backfill of --days, then a production schedule of runs, each in
its own process like a scheduled run: the chain advances, optionally a reorg hits the head
the last run saw, the contender runs, and the file is compared with the ground truth.

- after:  this tree (finality: provisional windows re-verified, settle pass).
- before: the code at --before (default 37741e2, the last commit before finality),
  extracted with `git archive` into a temp dir and imported from there.

Requests are counted by the simulator (every request the contender sent); "new-data
pages" is ceil(new canonical rows / 50), the least any contender could send.
Prints markdown tables; writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, machine, markdown_table, run_child, write_results

SEED = 5
BEFORE_REF = "37741e2"


def _child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.code_root)
    from stx_pipeline.backfill import ensure_transaction_history
    from stx_pipeline.hiro.client import HiroClient

    assert Path(sys.modules["stx_pipeline"].__file__ or "").is_relative_to(args.code_root)
    client = HiroClient(args.url, requests_per_minute=None)
    result = ensure_transaction_history(
        max_days=args.days, db_path=args.db, client=client,
        now=datetime.fromtimestamp(args.now, UTC), status_path=args.db + ".status.json",
    )
    client.close()
    print(json.dumps({"complete": result.complete, "stop": result.stop_reason.value,
                      "pages": result.pages, "rows_inserted": result.rows_inserted,
                      "rows_orphaned": result.rows_orphaned}))


def _extract(ref: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", ref, "stx_pipeline"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _exactness(sim: Any, db: Path, target: int) -> dict[str, int]:
    import duckdb

    truth = {t["tx_id"] for t in sim.ground_truth(start_time=target) if t["canonical"]}
    con = duckdb.connect(str(db), read_only=True)
    try:
        loaded = [r[0] for r in con.execute(
            "SELECT tx_id FROM transactions WHERE canonical AND burn_block_time >="
            " to_timestamp(?)", [target]).fetchall()]
    finally:
        con.close()
    return {"missing": len(truth - set(loaded)), "extra": len(set(loaded) - truth),
            "duplicates": len(loaded) - len(set(loaded))}


def _scenario(name: str, code_root: str, args: argparse.Namespace, steps: list[dict]) -> list:
    from stx_pipeline.sim import Simulator

    now0 = 1_790_000_000
    rows = []
    sim_kw: dict[str, Any] = dict(seed=SEED, history_days=args.days + 2,
                                  tx_per_day=args.tx_per_day, frozen=True, now=now0)
    if steps and steps[0].get("oddities"):
        sim_kw.update(burn_time_disorder=0.06, burn_time_ahead=0.03)
    with tempfile.TemporaryDirectory(prefix="stx-steady-") as tmp, Simulator(**sim_kw) as sim:
        db = Path(tmp) / "w.duckdb"

        def run() -> tuple[dict, int]:
            before_req = sim.stats["requests"]
            out, _rss = run_child([__file__, "--child", "--code-root", code_root, "--url",
                                   sim.url, "--db", str(db), "--days", str(args.days),
                                   "--now", str(sim.now())])
            return out, sim.stats["requests"] - before_req

        first, first_requests = run()
        first_exact = _exactness(sim, db, int(sim.now() - args.days * 86400))
        for step in steps:
            if step.get("reorg_burn_blocks"):
                sim.reorg(burn_blocks=step["reorg_burn_blocks"])
            if step.get("reorg_depth"):
                sim.reorg(depth=step["reorg_depth"])
            sim.advance(step["advance"])
            out, requests = run()
            target = int(sim.now() - args.days * 86400)
            exact = _exactness(sim, db, target)
            new_rows = max(out["rows_inserted"], 0)
            rows.append({
                "scenario": name, "step": step["label"], "requests": requests,
                "new_rows": new_rows, "new_data_pages": math.ceil(new_rows / 50),
                "overhead": requests - math.ceil(new_rows / 50), "complete": out["complete"],
                **exact,
            })
        rows.insert(0, {"scenario": name, "step": "initial backfill",
                        "requests": first_requests, "new_rows": first["rows_inserted"],
                        "new_data_pages": math.ceil(first["rows_inserted"] / 50),
                        "overhead": first_requests - math.ceil(first["rows_inserted"] / 50),
                        "complete": first["complete"], **first_exact})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--code-root")
    parser.add_argument("--url")
    parser.add_argument("--db")
    parser.add_argument("--now", type=int)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--tx-per-day", type=float, default=6000.0)
    parser.add_argument("--before", default=BEFORE_REF)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    daily = [{"label": f"day {i + 1}", "advance": 86400} for i in range(3)]
    hourly = [{"label": f"hour {i + 1}", "advance": 3600} for i in range(6)]
    changing = [
        {"label": "1 h + Stacks reorg (6 blocks)", "advance": 3600, "reorg_depth": 6,
         "oddities": True},
        {"label": "1 h + Bitcoin fork (2 burn blocks)", "advance": 3600,
         "reorg_burn_blocks": 2},
        {"label": "24 h + Bitcoin fork (3 burn blocks)", "advance": 86400,
         "reorg_burn_blocks": 3},
    ]
    results: dict[str, Any] = {"machine": machine(), "days": args.days,
                               "tx_per_day": args.tx_per_day, "before": args.before}
    table: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="stx-before-") as before_dir:
        roots = {"before": str(_extract(args.before, Path(before_dir))), "after": str(ROOT)}
        for contender, root in roots.items():
            for name, steps in (("daily runs", daily), ("hourly runs", hourly),
                                ("chain changes", changing)):
                for row in _scenario(name, root, args, steps):
                    row["contender"] = contender
                    results.setdefault("rows", []).append(row)
                    table.append([contender, row["scenario"], row["step"], row["requests"],
                                  row["new_data_pages"], row["overhead"], row["complete"],
                                  row["missing"], row["extra"], row["duplicates"]])
    print(markdown_table(["contender", "scenario", "run", "requests", "new-data pages",
                          "overhead", "complete", "missing", "extra", "dup"], table))
    print(f"results: {write_results('steady_state', results)}")


if __name__ == "__main__":
    main()
