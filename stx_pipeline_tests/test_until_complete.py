"""Repeat runs until complete (the seed's monitor loop); stop on a stall or a spent quota.

See docs/architecture.md, "The seed algorithm".
"""

from __future__ import annotations

import json

from stx_pipeline.backfill.until_complete import run_backfill_until_complete
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline_tests.exactness import assert_exact


def test_repeats_runs_until_complete(make_simulator, tmp_path, monkeypatch):
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    sim = make_simulator(seed=51, history_days=2, tx_per_day=3000, frozen=True)
    db = tmp_path / "w.duckdb"
    sleeps: list[float] = []
    with HiroClient(sim.url) as client:
        outcome = run_backfill_until_complete(
            target_days=1, max_runs=100, wait_seconds=7, timeout_minutes=5,
            stall_timeout_seconds=60, max_pages=10, sleep=sleeps.append,
            db_path=str(db), client=client, status_path=str(tmp_path / "run.json"),
        )
    assert outcome.success and outcome.reason == "complete"
    assert outcome.runs >= 4 and len(outcome.results) == outcome.runs
    assert sleeps == [7] * (outcome.runs - 1)
    assert [r.stop_reason.value for r in outcome.results][-1] == "target_reached"
    assert_exact(sim, db, int(outcome.results[-1].target_time.timestamp()))
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "complete" and status["runs"] == outcome.runs


def test_stalls_when_no_run_makes_progress(make_simulator, tmp_path, monkeypatch):
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    # a server that answers no JSON: every run fails the same way (a 410 on v1 no longer
    # does: the run switches to v3)
    sim = make_simulator(seed=52, history_days=1, tx_per_day=1000, frozen=True,
                         wrong_content_type=True)
    with HiroClient(sim.url) as client:
        outcome = run_backfill_until_complete(
            target_days=1, max_runs=10, wait_seconds=0, timeout_minutes=5,
            stall_timeout_seconds=0, sleep=lambda s: None,
            db_path=str(tmp_path / "w.duckdb"), client=client,
            status_path=str(tmp_path / "run.json"),
        )
    assert not outcome.success and outcome.reason == "stalled"
    assert outcome.runs == 1  # nothing gained by the first run: stalled at once
    assert all(r.stop_reason.value == "api_error" for r in outcome.results)
    assert "not JSON" in (outcome.results[-1].error or "")
    assert json.loads((tmp_path / "status.json").read_text())["monitor_reason"] == "stalled"


def test_stops_at_once_on_a_spent_quota(make_simulator, tmp_path, monkeypatch):
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    sim = make_simulator(seed=53, history_days=1, tx_per_day=1000, frozen=True,
                         quota_exhausted_seconds=7200)
    with HiroClient(sim.url, max_rate_limit_wait=60) as client:
        outcome = run_backfill_until_complete(
            target_days=1, max_runs=10, wait_seconds=0, timeout_minutes=5,
            sleep=lambda s: None, db_path=str(tmp_path / "w.duckdb"), client=client,
            status_path=str(tmp_path / "run.json"),
        )
    assert outcome.reason == "rate_limit_exhausted" and outcome.runs == 1
    assert outcome.results[0].retry_after is not None
