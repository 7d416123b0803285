"""The backfill sensor, driven by real materializations recorded in a test instance."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from stx_pipeline.defs import settings
from stx_pipeline.defs.transactions.sensors import (
    BackfillCursor,
    evaluate_backfill,
    transactions_backfill_sensor,
)

NOW = datetime.now(UTC)


pytestmark = pytest.mark.usefixtures("status_file")  # conftest.py


def materialize(
    instance: dg.DagsterInstance,
    *,
    rows: int,
    oldest_days_ago: float,
    complete: bool = False,
    sealed: int = 0,
    stop_reason: str = "max_pages",
) -> None:
    """Record a `transactions` materialization with the metadata the asset writes."""
    oldest = NOW - timedelta(days=oldest_days_ago)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=settings.TRANSACTIONS_KEY,
            metadata={
                "rows_total": dg.MetadataValue.int(rows),
                "oldest_block_time": dg.MetadataValue.timestamp(oldest),
                "windows_sealed": dg.MetadataValue.int(sealed),
                "complete": dg.MetadataValue.bool(complete),
                "stop_reason": dg.MetadataValue.text(stop_reason),
                "missing_days": dg.MetadataValue.float(0.0 if complete else 3.0),
            },
        )
    )


def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = transactions_backfill_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def add_run(instance: dg.DagsterInstance, job_name: str, status: dg.DagsterRunStatus) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name=job_name, run_id=run_id, status=status))
    return run_id


def test_first_tick_requests_the_first_run(instance: dg.DagsterInstance) -> None:
    result = tick(instance, None)
    assert len(result.run_requests or []) == 1
    request = result.run_requests[0]
    assert request.run_key
    assert request.tags["stx_pipeline/trigger"] == "backfill_sensor"
    ops_config = request.run_config["ops"][settings.TRANSACTIONS_KEY]["config"]
    assert ops_config["target_days"] == settings.default_target_days()
    assert BackfillCursor.parse(result.cursor).pending


def test_requests_while_incomplete_with_unique_run_keys(instance: dg.DagsterInstance) -> None:
    materialize(instance, rows=100, oldest_days_ago=2)
    first = tick(instance, None)
    materialize(instance, rows=200, oldest_days_ago=4)
    second = tick(instance, first.cursor)
    keys = {first.run_requests[0].run_key, second.run_requests[0].run_key}
    assert len(keys) == 2, "every attempt needs its own run key or Dagster drops it"
    assert BackfillCursor.parse(second.cursor).no_progress_runs == 0


def test_skips_while_a_backfill_run_is_in_flight(instance: dg.DagsterInstance) -> None:
    materialize(instance, rows=100, oldest_days_ago=2)
    for status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTED):
        run_id = add_run(instance, settings.BACKFILL_JOB_NAME, status)
        result = tick(instance, None)
        assert not result.run_requests
        assert result.skip_reason is not None and run_id in result.skip_reason.skip_message
        instance.delete_run(run_id)
    # A finished run does not block.
    add_run(instance, settings.BACKFILL_JOB_NAME, dg.DagsterRunStatus.SUCCESS)
    assert len(tick(instance, None).run_requests) == 1


def test_daily_run_in_flight_also_blocks(instance: dg.DagsterInstance) -> None:
    add_run(instance, settings.DAILY_JOB_NAME, dg.DagsterRunStatus.STARTING)
    assert not tick(instance, None).run_requests


def test_every_run_that_writes_blocks_a_new_request(instance: dg.DagsterInstance) -> None:
    """A Materialize-button run (implicit asset job, no tags) and a metrics run count too;
    a run that materializes nothing (checks only) does not."""
    materialize(instance, rows=100, oldest_days_ago=2)
    button = str(uuid.uuid4())
    instance.add_run(
        dg.DagsterRun(
            job_name="__ASSET_JOB",
            run_id=button,
            status=dg.DagsterRunStatus.NOT_STARTED,
            asset_selection=frozenset({dg.AssetKey(settings.TRANSACTIONS_KEY)}),
        )
    )
    result = tick(instance, None)
    assert not result.run_requests and button in result.skip_reason.skip_message
    instance.delete_run(button)

    metrics = add_run(instance, settings.METRICS_JOB_NAME, dg.DagsterRunStatus.STARTED)
    result = tick(instance, None)
    assert not result.run_requests and metrics in result.skip_reason.skip_message
    instance.delete_run(metrics)

    add_run(instance, "__ASSET_JOB", dg.DagsterRunStatus.STARTED)  # checks only
    assert len(tick(instance, None).run_requests) == 1


def test_skips_when_complete(instance: dg.DagsterInstance) -> None:
    materialize(
        instance, rows=500, oldest_days_ago=181, complete=True, stop_reason="target_reached"
    )
    result = tick(instance, None)
    assert not result.run_requests
    assert "complete" in result.skip_reason.skip_message


def test_stall_stops_requesting_and_alerts_once(
    instance: dg.DagsterInstance, status_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STX_PIPELINE_STALL_RUNS", "2")
    materialize(instance, rows=100, oldest_days_ago=2)
    cursor = tick(instance, None).cursor  # requests run 1
    for expected_no_progress in (1, 2):
        # The requested run finished without progress: same rows, same oldest row.
        materialize(instance, rows=100, oldest_days_ago=2, stop_reason="no_progress")
        result = tick(instance, cursor)
        cursor = result.cursor
        state = BackfillCursor.parse(cursor)
        assert state.no_progress_runs == expected_no_progress
        if expected_no_progress < 2:
            assert len(result.run_requests) == 1
    assert not result.run_requests
    assert "stalled" in result.skip_reason.skip_message
    alerts = json.loads(status_file.read_text())["alerts"]
    assert len(alerts) == 1
    assert alerts[0]["check"] == "transactions_backfill_sensor"
    assert alerts[0]["severity"] == "ERROR"

    # Later ticks stay quiet: no run, no second alert.
    for _ in range(2):
        result = tick(instance, cursor)
        cursor = result.cursor
        assert not result.run_requests
    assert len(json.loads(status_file.read_text())["alerts"]) == 1

    # A run that makes progress (e.g. launched by hand) resumes the automation.
    materialize(instance, rows=150, oldest_days_ago=3)
    result = tick(instance, cursor)
    assert len(result.run_requests) == 1
    state = BackfillCursor.parse(result.cursor)
    assert state.no_progress_runs == 0 and not state.alerted
    # ... and says so once: the stall is resolved.
    stored = json.loads(status_file.read_text())["alerts"]
    assert [(a["check"], a["state"]) for a in stored] == [
        ("transactions_backfill_sensor", "firing"), ("transactions_backfill_sensor", "resolved")
    ]
    tick(instance, result.cursor)
    assert len(json.loads(status_file.read_text())["alerts"]) == 2


def test_failed_run_counts_as_no_progress(instance: dg.DagsterInstance) -> None:
    """An API-error run records no materialization: the next attempt still gets a new key."""
    materialize(instance, rows=100, oldest_days_ago=2)
    first = tick(instance, None)
    add_run(instance, settings.BACKFILL_JOB_NAME, dg.DagsterRunStatus.FAILURE)
    second = tick(instance, first.cursor)
    assert len(second.run_requests) == 1
    assert second.run_requests[0].run_key != first.run_requests[0].run_key
    assert BackfillCursor.parse(second.cursor).no_progress_runs == 1


def test_corrupt_cursor_starts_over(instance: dg.DagsterInstance) -> None:
    context = dg.build_sensor_context(instance=instance, cursor="not json")
    decision, state = evaluate_backfill(context, stall_limit=3)
    assert isinstance(decision, dg.RunRequest)
    assert state.attempt == 1


# --- metrics_refresh_sensor -----------------------------------------------------------


def metrics_tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    from stx_pipeline.defs.metrics.sensors import metrics_refresh_sensor

    return metrics_refresh_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_metrics_follow_each_new_transactions_once(instance: dg.DagsterInstance) -> None:
    assert "never" in metrics_tick(instance, None).skip_reason.skip_message
    materialize(instance, rows=100, oldest_days_ago=2)
    first = metrics_tick(instance, None)
    assert len(first.run_requests) == 1
    assert first.run_requests[0].tags["stx_pipeline/trigger"] == "metrics_refresh_sensor"
    again = metrics_tick(instance, first.cursor)
    assert not again.run_requests and "already" in again.skip_reason.skip_message
    materialize(instance, rows=200, oldest_days_ago=3)
    second = metrics_tick(instance, first.cursor)
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_metrics_wait_for_a_run_in_flight_and_skip_when_already_newer(
    instance: dg.DagsterInstance,
) -> None:
    materialize(instance, rows=100, oldest_days_ago=2)
    run_id = add_run(instance, "metrics_refresh_job", dg.DagsterRunStatus.STARTED)
    busy = metrics_tick(instance, None)
    assert not busy.run_requests and run_id in busy.skip_reason.skip_message
    assert busy.cursor is None, "not handled yet: retried when the run is done"
    instance.delete_run(run_id)
    # The daily job built the metrics after this transactions: nothing to do.
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="metrics_run"))
    newer = metrics_tick(instance, None)
    assert not newer.run_requests and newer.cursor


def test_metrics_not_built_when_a_blocking_check_failed(instance: dg.DagsterInstance) -> None:
    materialize(instance, rows=100, oldest_days_ago=2)
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(settings.TRANSACTIONS_KEY),
            check_name="unique_tx_id",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={},
        )
    )
    result = metrics_tick(instance, None)
    assert not result.run_requests
    assert "unique_tx_id" in result.skip_reason.skip_message
