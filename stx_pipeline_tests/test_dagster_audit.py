"""The weekly audit job of the real Definitions, against the simulator and a DuckDB file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from stx_pipeline.backfill import ensure_transaction_history
from stx_pipeline.definitions import defs
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.exactness import assert_exact


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def _audit(instance: dg.DagsterInstance) -> dg.AssetCheckEvaluation:
    job = defs().resolve_job_def("audit_sealed_history_job")
    result = job.execute_in_process(instance=instance)
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "sealed_history_matches_api"
    return evaluation


def test_audit_job_fails_on_drift_and_passes_once_repaired(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = make_simulator(seed=30, history_days=2, tx_per_day=4000, frozen=True)
    db = tmp_path / "w.duckdb"
    monkeypatch.setenv("HIRO_API_URL", sim.url)
    monkeypatch.setenv("STX_PIPELINE_DB", str(db))
    monkeypatch.setenv("STX_PIPELINE_TARGET_DAYS", "1")
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    monkeypatch.delenv("HIRO_API_KEY", raising=False)
    monkeypatch.delenv("STX_PIPELINE_AUDIT_SAMPLE", raising=False)

    def backfill():
        with HiroClient(sim.url) as client:
            return ensure_transaction_history(1, db_path=str(db), client=client,
                                              status_path=str(tmp_path / "status.json"))

    assert backfill().complete
    clean = _audit(instance)
    assert clean.passed
    # every sealed window checked; what that costs depends on the source (v1: a request per
    # window, test_finality.py; v3: the tenure listing, test_v3_source.py)
    assert clean.metadata["windows_checked"].value == clean.metadata["windows_sealed"].value
    assert clean.metadata["windows_checked"].value > 0 and clean.metadata["requests"].value > 0
    sim.reorg(burn_blocks=60)  # deeper than the finality rules plan for
    backfill()
    drift = _audit(instance)
    assert not drift.passed and drift.severity is dg.AssetCheckSeverity.ERROR
    assert drift.metadata["windows_drifted"].value >= 1
    assert "drifted" in (drift.description or "") and "reopened" in (drift.description or "")
    repaired = backfill()
    assert repaired.complete
    assert_exact(sim, db, int(repaired.target_time.timestamp()))
    assert _audit(instance).passed
