"""The v3 source in the backfill core: exact against the simulator's ground truth, resumable
at its cursors, reorg-safe, the 410 switch, and a v1 file continued without refetching.

The broad both-source suites (every crash, fault and finality schedule on each source) live
in the v3 test suites; these are the core's own cases.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from stx_pipeline.backfill import StopReason, ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent, query


def _run(sim, db: Path, **kw):
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        result = ensure_transaction_history(db_path=str(db), client=client,
                                            status_path=str(db.parent / "status.json"), **kw)
    return result, client


def _target(result) -> int:
    return int(result.target_time.timestamp())


def test_v3_run_is_exact_with_busy_tenures(make_simulator, tmp_path):
    sim = make_simulator(seed=11, history_days=3, tx_per_day=9000, frozen=True)
    db = tmp_path / "w.duckdb"
    result, client = _run(sim, db, max_days=2, source="v3")
    assert result.stop_reason is StopReason.TARGET_REACHED and result.complete
    assert result.source == "v3"
    n = assert_exact(sim, db, _target(result))
    assert_ledger_consistent(db)
    routes = sim.stats["by_route"]
    assert routes.get("v1_tx", 0) == 0 and routes["v3_transactions"] > 0
    # tenures of hundreds of transactions sharing one burn time, all loaded
    biggest = query(db, "SELECT max(n) FROM (SELECT count(*) n FROM transactions"
                         " GROUP BY burn_block_time)")[0][0]
    assert biggest > 150
    # every sealed window was sealed by v3 against the API's per-tenure counts
    assert query(db, "SELECT DISTINCT source FROM coverage_ledger WHERE status = 'sealed'"
                  ) == [("v3",)]
    assert result.requests == client.stats.snapshot()["requests"]
    assert result.requests / n * 1000 < 30  # the walk plus its independent count


def test_windows_without_a_tenure_seal_empty_without_a_walk(make_simulator, tmp_path):
    # small windows: many fall into the gaps between tenures (no burn block timed there)
    sim = make_simulator(seed=21, history_days=2, tx_per_day=3000, frozen=True)
    db = tmp_path / "w.duckdb"
    result, _ = _run(sim, db, max_days=0.5, source="v3", rows_per_window=15)
    assert result.complete
    assert_exact(sim, db, _target(result))
    assert_ledger_consistent(db)
    empty = query(db, "SELECT count(*) FROM coverage_ledger WHERE status = 'sealed'"
                       " AND expected = 0")[0][0]
    assert empty > 0


def test_auto_reads_v3_where_served_and_v1_before_api_v9(make_simulator, tmp_path):
    sim = make_simulator(seed=22, history_days=1.5, tx_per_day=2000, frozen=True)
    result, _ = _run(sim, tmp_path / "a.duckdb", max_days=1)
    assert result.source == "v3" and result.complete
    old = make_simulator(seed=22, history_days=1.5, tx_per_day=2000, frozen=True, pre_v9=True)
    result, _ = _run(old, tmp_path / "b.duckdb", max_days=1, source="auto")
    assert result.source == "v1" and result.complete
    assert_exact(old, tmp_path / "b.duckdb", _target(result))
    with pytest.raises(ValueError, match="HIRO_SOURCE"):
        _run(sim, tmp_path / "c.duckdb", max_days=1, source="v2")


def test_reorg_between_runs_reopens_and_orphans(make_simulator, tmp_path):
    sim = make_simulator(seed=18, history_days=2, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    first, _ = _run(sim, db, max_days=1, source="v3")
    assert first.complete
    loaded_before = {r[0] for r in query(db, "SELECT tx_id FROM transactions")}
    sim.reorg(12)
    truth = sim.ground_truth(start_time=_target(first))
    orphaned = {t["tx_id"] for t in truth if not t["canonical"]} & loaded_before
    assert orphaned, "the reorg orphaned nothing we had loaded"
    result, _ = _run(sim, db, max_days=1, source="v3")
    assert result.complete and result.windows_reopened >= 1
    assert result.rows_orphaned == len(orphaned)
    assert_exact(sim, db, _target(result))
    assert {r[0] for r in query(db, "SELECT tx_id FROM transactions WHERE NOT canonical")
            } == orphaned
    assert_ledger_consistent(db)


def test_410_mid_run_switches_to_v3_with_one_line(make_simulator, tmp_path, caplog):
    sim = make_simulator(seed=24, history_days=2, tx_per_day=6000, frozen=True,
                         gone_after_requests=60)
    db = tmp_path / "w.duckdb"
    with caplog.at_level(logging.INFO):  # small windows: some are sealed before the 410
        result, _ = _run(sim, db, max_days=1.5, source="v1", rows_per_window=400)
    assert result.complete and result.source == "v3", result.to_dict()
    assert result.error is None
    routes = sim.stats["by_route"]
    assert routes["v1_tx"] > 60 and routes["v3_transactions"] > 0  # 60 served, then 410s
    said = [r.getMessage() for r in caplog.records if "answered 410 Gone" in r.getMessage()]
    assert len(said) == 1 and "continues on /extended/v3/transactions" in said[0]
    assert "HIRO_SOURCE=v3" in said[0]  # pinned to v1: what the user should change
    assert_exact(sim, db, _target(result))
    assert_ledger_consistent(db)
    sources = dict(query(db, "SELECT source, count(*) FROM coverage_ledger"
                              " WHERE status = 'sealed' GROUP BY 1"))
    assert sources.get("v1", 0) > 0 and sources.get("v3", 0) > 0  # kept, then continued


def test_v1_file_continues_under_v3_without_refetching_final_spans(make_simulator,
                                                                      tmp_path):
    sim = make_simulator(seed=25, history_days=3, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    first, _ = _run(sim, db, max_days=2, source="v1")
    assert first.complete
    final_before = query(db, "SELECT window_start, fetched_at FROM coverage_ledger"
                              " WHERE final ORDER BY 1")
    assert len(final_before) > 3
    sim.advance(2 * 3600)
    sim.reset_stats()
    second, _ = _run(sim, db, max_days=2, source="v3")
    assert second.complete and second.source == "v3"
    assert_exact(sim, db, _target(second))
    assert_ledger_consistent(db)
    routes = sim.stats["by_route"]
    assert routes.get("v1_tx", 0) == 0
    # the final v1 windows were not read again: untouched in the ledger, and the run cost
    # what the provisional tail and the two new hours hold, not the two days
    assert query(db, "SELECT window_start, fetched_at FROM coverage_ledger WHERE final"
                      " AND source = 'v1' ORDER BY 1") == [
        w for w in final_before]
    fresh, _ = _run(sim, tmp_path / "fresh.duckdb", max_days=2, source="v3")
    assert second.requests * 5 < fresh.requests, (second.requests, fresh.requests)


def test_sigkill_mid_run_resumes_at_the_cursors(make_simulator, tmp_path):
    sim = make_simulator(seed=26, history_days=3, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    cmd = [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "2", "--db",
           str(db), "--api-url", sim.url, "--workers", "3", "--source", "v3"]
    env = cli_env(tmp_path, STX_PIPELINE_FAILPOINT="writer.before_commit:6",
                  STX_PIPELINE_LOCK_TIMEOUT="20")
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=180)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    walked = query(db, "SELECT count(*) FROM coverage_ledger WHERE status = 'partial'"
                        " AND cursor IS NOT NULL AND source = 'v3'")[0][0]
    assert walked > 0  # shards stopped mid-walk with their cursors committed
    rows_before = query(db, "SELECT count(*) FROM transactions")[0][0]
    assert rows_before > 0
    sim.reset_stats()
    result, _ = _run(sim, db, max_days=2, source="v3")
    assert result.complete
    n = assert_exact(sim, db, _target(result))
    assert_ledger_consistent(db)
    # resumed, not restarted: what was committed before the kill was not fetched again
    assert result.rows_inserted == result.rows_total - rows_before
    assert result.rows_updated == 0
    assert sim.stats["by_route"]["v3_transactions"] * 50 < (n - rows_before) + 50 * 40


def test_v3_audit_finds_drift_in_final_history_without_v1(make_simulator, tmp_path):
    from stx_pipeline.backfill.audit import audit_sealed_history

    sim = make_simulator(seed=29, history_days=2, tx_per_day=5000, frozen=True)
    db = tmp_path / "w.duckdb"
    assert _run(sim, db, max_days=1, source="v3")[0].complete
    sim.reset_stats()
    with HiroClient(sim.url) as client:
        clean = audit_sealed_history(1, db_path=str(db), client=client, source="v3")
    assert clean.ok and clean.windows_checked == clean.windows_sealed > 0
    # the burn-block listing of a day and a probe: ~150 tenures at ~30 a request
    assert 0 < clean.requests <= 12 and sim.stats["by_route"].get("v1_tx", 0) == 0
    sim.reorg(burn_blocks=60)  # deeper than the finality rules plan for: final windows
    _run(sim, db, max_days=1, source="v3")  # blind: final windows are not read again
    with HiroClient(sim.url) as client:
        drift = audit_sealed_history(1, db_path=str(db), client=client, source="v3")
    assert not drift.ok and any(d.final for d in drift.drifted), drift.summary()
    repaired, _ = _run(sim, db, max_days=1, source="v3")
    assert repaired.complete
    assert_exact(sim, db, _target(repaired))
    with HiroClient(sim.url) as client:
        assert audit_sealed_history(1, db_path=str(db), client=client, source="v3").ok
