"""The backfill against the simulator over real HTTP, compared with its ground truth, on both
sources (the `source` fixture pins `HIRO_SOURCE`; each run must say it ran on it)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import duckdb
import pytest

from stx_pipeline.backfill import StopReason, check_backfill_progress, ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent


def _client(sim) -> HiroClient:
    return HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05)


def _run(sim, db, source: str | None = None, **kw):
    with _client(sim) as client:
        result = ensure_transaction_history(db_path=str(db), client=client,
                                            status_path=str(db.parent / "status.json"), **kw)
    if source is not None:
        assert result.source == source, (result.source, source)
    return result


def _target(result) -> int:
    return int(result.target_time.timestamp())


def test_complete_run_is_exact_with_busy_tenures(make_simulator, tmp_path, source):
    sim = make_simulator(seed=11, history_days=3, tx_per_day=9000, frozen=True)
    db = tmp_path / "w.duckdb"
    result = _run(sim, db, source, max_days=2)
    assert result.stop_reason is StopReason.TARGET_REACHED
    assert result.complete and result.coverage_percent == 100.0
    n = assert_exact(sim, db, _target(result))
    assert result.rows_total >= n  # plus rows older than the target in the first window
    assert_ledger_consistent(db)
    # the point of it all: many tenures far above one page, all loaded
    con = duckdb.connect(str(db), read_only=True)
    biggest = con.execute(
        "SELECT max(n) FROM (SELECT count(*) n FROM transactions GROUP BY burn_block_time)"
    ).fetchone()[0]
    con.close()
    assert biggest > 150
    # all types and statuses are kept
    truth = sim.ground_truth(start_time=_target(result))
    assert {t["tx_type"] for t in truth} >= {"coinbase", "tenure_change", "contract_call"}


def test_max_pages_cuts_resume_to_exact(make_simulator, tmp_path, source):
    sim = make_simulator(seed=12, history_days=2, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    runs = 0
    reasons = []
    while True:
        runs += 1
        result = _run(sim, db, source, max_days=1.5, max_pages=9)
        reasons.append(result.stop_reason)
        if result.complete:
            break
        assert result.stop_reason is StopReason.MAX_PAGES
        assert runs < 200
    assert runs > 5 and StopReason.MAX_PAGES in reasons
    assert_exact(sim, db, _target(result))
    assert_ledger_consistent(db)


def test_second_run_is_cheap_and_changes_nothing(make_simulator, tmp_path, source):
    sim = make_simulator(seed=13, history_days=2, tx_per_day=3000, frozen=True)
    db = tmp_path / "w.duckdb"
    first = _run(sim, db, source, max_days=1)
    assert first.complete
    before = sim.stats["requests"] if isinstance(sim.stats, dict) else sim.stats()["requests"]
    second = _run(sim, db, source, max_days=1)
    after = sim.stats["requests"] if isinstance(sim.stats, dict) else sim.stats()["requests"]
    assert second.complete
    assert second.rows_inserted == 0 and second.rows_updated == 0
    assert second.rows_orphaned == 0
    assert second.rows_total == first.rows_total
    # head + chain start cached + a re-verified trailing 2 h: a handful of requests
    assert after - before <= 20, f"{after - before} requests for a complete history"
    assert second.pages < first.pages / 5


def test_force_refresh_refetches_once(make_simulator, tmp_path, source):
    sim = make_simulator(seed=14, history_days=2, tx_per_day=2000, frozen=True)
    db = tmp_path / "w.duckdb"
    first = _run(sim, db, source, max_days=1)
    again = _run(sim, db, source, max_days=1, force_refresh=True)
    assert again.complete
    assert again.rows_inserted == first.rows_total
    assert_exact(sim, db, _target(again))


def test_target_before_genesis_is_start_of_chain(make_simulator, tmp_path, source):
    sim = make_simulator(seed=15, history_days=1, tx_per_day=2000, frozen=True)
    db = tmp_path / "w.duckdb"
    result = _run(sim, db, source, max_days=30)
    assert result.stop_reason is StopReason.START_OF_CHAIN and result.complete
    everything = sim.ground_truth()
    assert result.rows_total == len([t for t in everything if t["canonical"]])
    assert_exact(sim, db, 0)


def test_hole_left_by_interrupted_phase1_is_filled(make_simulator, tmp_path, source):
    sim = make_simulator(seed=16, history_days=2, tx_per_day=4000, frozen=True)
    db = tmp_path / "w.duckdb"
    assert _run(sim, db, source, max_days=1).complete
    sim.advance(8 * 3600)  # eight hours of new chain
    cut = _run(sim, db, source, max_days=1, max_pages=6)  # fetches the newest pages, then stops
    assert cut.stop_reason is StopReason.MAX_PAGES
    progress = check_backfill_progress(1, db)
    assert not progress["ledger_complete"]
    done = _run(sim, db, source, max_days=1)
    assert done.complete
    assert_exact(sim, db, _target(done))
    assert_ledger_consistent(db)


def test_head_growing_during_the_run(make_simulator, tmp_path, source):
    sim = make_simulator(seed=17, history_days=2, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    stop = threading.Event()

    def grow() -> None:
        while not stop.is_set():
            sim.advance(120)
            time.sleep(0.02)

    grower = threading.Thread(target=grow, daemon=True)
    grower.start()
    try:
        first = _run(sim, db, source, max_days=1.5)
    finally:
        stop.set()
        grower.join()
    assert first.complete
    final = _run(sim, db, source, max_days=1.5)
    assert final.complete
    assert_exact(sim, db, _target(final))
    assert_ledger_consistent(db)


def _ids(db, where: str = "true") -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute(f"SELECT tx_id FROM transactions WHERE {where}")
                .fetchall()}
    finally:
        con.close()


def test_reorg_marks_orphans_and_loads_replacements(make_simulator, tmp_path, source):
    sim = make_simulator(seed=18, history_days=2, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    first = _run(sim, db, source, max_days=1)
    assert first.complete
    loaded_before = _ids(db)
    sim.reorg(12)
    truth = sim.ground_truth(start_time=_target(first))
    orphaned_truth = {t["tx_id"] for t in truth if not t["canonical"]}
    replacements = {t["tx_id"] for t in truth if t["canonical"]} - loaded_before
    assert orphaned_truth & loaded_before, "the reorg orphaned nothing we had loaded"
    assert replacements, "the reorg brought no new transactions"
    result = _run(sim, db, source, max_days=1)
    assert result.complete
    assert result.rows_orphaned == len(orphaned_truth & loaded_before)
    assert_exact(sim, db, _target(result))  # replacements loaded, orphans not canonical
    assert _ids(db, "NOT canonical") == orphaned_truth & loaded_before
    assert replacements <= _ids(db, "canonical")
    assert_ledger_consistent(db)


def test_progress_dict_keeps_the_seeds_keys(make_simulator, tmp_path, source):
    db = tmp_path / "w.duckdb"
    assert check_backfill_progress(1, db)["status"] == "no_cache"
    sim = make_simulator(seed=19, history_days=2, tx_per_day=2000, frozen=True)
    # 8 requests: v3 spends its first ones on the head, the tenure listing and a block
    # lookup before the first page of rows (v1 needed 3)
    _run(sim, db, source, max_days=1, max_pages=8)
    mid = check_backfill_progress(1, db)
    assert mid["status"] == "in_progress" and not mid["complete"]
    assert 0 <= mid["percent_complete"] < 100
    _run(sim, db, source, max_days=1)
    done = check_backfill_progress(1, db)
    assert done["status"] == "complete" and done["complete"]
    assert done["percent_complete"] == 100.0
    assert done["windows_sealed"] == done["windows_total"] >= 1
    assert done["expected_rows"] == done["loaded_rows"] + 0
    assert isinstance(done["oldest"], datetime) and done["oldest"].tzinfo is not None
    assert done["newest"] <= datetime.now(UTC)
    for key in ("rows", "oldest", "newest", "complete", "days_coverage", "target_days"):
        assert key in done


@pytest.mark.parametrize("bad", [0, -3, "7", True])
def test_bad_days_are_refused(bad, tmp_path):
    with pytest.raises(ValueError, match="max_days"):
        ensure_transaction_history(max_days=bad, db_path=str(tmp_path / "x.duckdb"),
                                   client=HiroClient("http://127.0.0.1:9"))
