"""The v1 sunset as a user meets it: a 410 in the middle of a CLI backfill, and a file filled
through v1 continued under v3, each checked request by request against the simulator.

(`test_v3_source.py` has the core's in-process cases; these go through the command line and
the simulator's request log, so they show what a run did and did not ask for.)
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from stx_pipeline.backfill import ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent, query

SWITCH_LINE = "answered 410 Gone"


def test_410_mid_cli_run_continues_on_v3_with_exactly_one_line(make_simulator, tmp_path):
    sim = make_simulator(seed=51, history_days=2, tx_per_day=6000, gone_after_requests=40)
    db = tmp_path / "w.duckdb"
    proc = subprocess.run(
        [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "1", "--db",
         str(db), "--api-url", sim.url, "--source", "v1", "--workers", "2"],
        env=cli_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    routes = sim.stats["by_route"]
    assert routes["v1_tx"] > 40 and sim.stats["faults"]["gone"] >= 1  # 410s were served
    assert routes["v3_transactions"] > 0
    log = (tmp_path / "backfill.log").read_text()
    said = [ln for ln in log.splitlines() if SWITCH_LINE in ln]
    assert len(said) == 1, said  # one line, in the log the operator reads
    assert "continues on /extended/v3/transactions" in said[0] and "HIRO_SOURCE" in said[0]
    assert sum(SWITCH_LINE in ln for ln in proc.stderr.splitlines()) <= 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["source"] == "v3" and status["status"] == "complete", status
    assert "(source v3)" in proc.stdout + proc.stderr
    # a second run (HIRO_SOURCE unset: auto) adds nothing and tells the target back
    with HiroClient(sim.url) as client:
        again = ensure_transaction_history(max_days=1, db_path=str(db), client=client,
                                           status_path=str(tmp_path / "again.json"))
    assert again.complete and again.source == "v3" and again.rows_inserted == 0
    assert_exact(sim, db, int(again.target_time.timestamp()))
    assert_ledger_consistent(db)
    sealed = dict(query(db, "SELECT source, count(*) FROM coverage_ledger"
                             " WHERE status = 'sealed' GROUP BY 1"))
    assert sealed.get("v1", 0) > 0 and sealed.get("v3", 0) > 0


def test_v1_file_under_v3_asks_nothing_about_final_spans(make_simulator, tmp_path):
    sim = make_simulator(seed=52, history_days=3, tx_per_day=5000, record_requests=True)
    db = tmp_path / "w.duckdb"
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        first = ensure_transaction_history(max_days=2, db_path=str(db), client=client,
                                           status_path=str(tmp_path / "s.json"), source="v1")
    assert first.complete and first.source == "v1"
    final_end = query(db, "SELECT max(epoch(window_end))::BIGINT FROM coverage_ledger"
                           " WHERE final AND source = 'v1'")[0][0]
    provisional = query(db, "SELECT count(*) FROM coverage_ledger WHERE NOT final")[0][0]
    assert final_end is not None and provisional > 0
    # the newest Stacks height whose burn time lies in final v1 history
    final_heights = [t["block_height"] for t in sim.ground_truth(include_orphaned=False)
                     if t["burn_block_time"] <= final_end]
    top_final = max(final_heights)
    sim.advance(3 * 3600)
    sim.request_log.clear()
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        second = ensure_transaction_history(max_days=2, db_path=str(db), client=client,
                                            status_path=str(tmp_path / "s.json"), source="v3")
    assert second.complete and second.source == "v3"
    assert_exact(sim, db, int(second.target_time.timestamp()))
    assert_ledger_consistent(db)
    routes = [route for route, _ in sim.request_log]
    assert "v1_tx" not in routes
    walks = [params for route, params in sim.request_log if route == "v3_transactions"
             and "cursor" in params]
    assert walks, "the v3 run walked nothing"
    heights = [int(params["cursor"][0].split(":")[0]) for params in walks]
    # every walk started and continued above final history: none re-read a final span
    assert min(heights) > top_final, (min(heights), top_final)
    assert query(db, "SELECT count(*) FROM coverage_ledger WHERE final AND source = 'v1'"
                  )[0][0] > 0


def test_410_at_the_first_request_switches_before_any_window(make_simulator, tmp_path,
                                                             caplog):
    sim = make_simulator(seed=53, history_days=1.5, tx_per_day=3000, gone=True)
    db = tmp_path / "w.duckdb"
    with caplog.at_level(logging.INFO), HiroClient(sim.url) as client:
        result = ensure_transaction_history(max_days=1, db_path=str(db), client=client,
                                            status_path=str(tmp_path / "s.json"), source="v1")
    assert result.complete and result.source == "v3", result.to_dict()
    assert sim.stats["by_route"]["v1_tx"] == 1  # the one 410, then v3 only
    said = [r.getMessage() for r in caplog.records if SWITCH_LINE in r.getMessage()]
    assert len(said) == 1
    assert_exact(sim, db, int(result.target_time.timestamp()))
    assert query(db, "SELECT DISTINCT source FROM coverage_ledger WHERE status = 'sealed'"
                  ) == [("v3",)]
