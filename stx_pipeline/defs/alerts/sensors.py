"""`check_alert_sensor`: turns failed asset-check evaluations into alerts, once each.

Dagster shows failed checks in the UI, but nobody watches the UI at 3 a.m.: every new
failed evaluation (ERROR or WARN) of a `transactions` check is logged, appended to the
status JSON and POSTed to `$STX_PIPELINE_ALERT_WEBHOOK` through `stx_pipeline.alerts`.
The cursor is the id of the newest check execution already processed, so a failure is
reported once, not on every tick.
"""

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

from stx_pipeline import alerts
from stx_pipeline.defs import settings

TRANSACTIONS_CHECKS = (
    "backfill_complete",
    "no_gaps",
    "unique_tx_id",
    "valid_rows",
    "no_rejected_rows",
    "fresh",
    "source_not_deprecated",
)
HISTORY_LIMIT = 50
COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def watched_check_keys(context: dg.SensorEvaluationContext) -> list[dg.AssetCheckKey]:
    """Every check of the code location when known, else the `transactions` checks."""
    repo = context.repository_def
    if repo is not None:
        keys = sorted(repo.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())
        if keys:
            return keys
    asset = dg.AssetKey(settings.TRANSACTIONS_KEY)
    return [dg.AssetCheckKey(asset, name) for name in TRANSACTIONS_CHECKS]


def new_evaluations(
    instance: dg.DagsterInstance, keys: Iterable[dg.AssetCheckKey], after_id: int
) -> list[AssetCheckExecutionRecord]:
    """Completed check executions with id > after_id, oldest first."""
    found: list[AssetCheckExecutionRecord] = []
    for key in keys:
        history = instance.event_log_storage.get_asset_check_execution_history(
            key, limit=HISTORY_LIMIT, status=COMPLETED
        )
        found.extend(r for r in history if r.id > after_id and r.event is not None)
    return sorted(found, key=lambda r: r.id)


def alert_for(record: AssetCheckExecutionRecord) -> alerts.Alert | None:
    """The alert for a failed evaluation, None for a passed one."""
    event = record.event
    if event is None or event.dagster_event is None:
        return None
    evaluation = event.dagster_event.asset_check_evaluation_data
    if evaluation.passed:
        return None
    severity = "ERROR" if evaluation.severity == dg.AssetCheckSeverity.ERROR else "WARN"
    return alerts.Alert(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        severity=severity,
        message=(evaluation.description or f"check {evaluation.check_name} failed").strip(),
        run_id=record.run_id or None,
        timestamp=datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
    )


def _parse_cursor(raw: str | None) -> int:
    if not raw:
        return 0
    try:
        return int(json.loads(raw).get("last_id", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


def process_check_evaluations(
    context: dg.SensorEvaluationContext, keys: Sequence[dg.AssetCheckKey] | None = None
) -> tuple[list[alerts.Alert], str]:
    """Send an alert per new failed evaluation; return them and the new cursor."""
    last_id = _parse_cursor(context.cursor)
    records = new_evaluations(context.instance, keys or watched_check_keys(context), last_id)
    sent: list[alerts.Alert] = []
    for record in records:
        alert = alert_for(record)
        if alert is None:
            continue
        log = context.log.error if alert.severity == "ERROR" else context.log.warning
        log(f"check {alert.asset}/{alert.check} {alert.severity}: {alert.message}")
        delivery = alerts.send_alert(alert)
        if not delivery.ok:
            context.log.warning(
                f"alert delivery incomplete: {delivery.status_file_error or ''} "
                f"{delivery.webhook_error or ''}".strip()
            )
        sent.append(alert)
    new_last = max([last_id, *(r.id for r in records)])
    return sent, json.dumps({"last_id": new_last})


@dg.sensor(
    name="check_alert_sensor",
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (log, status JSON, webhook) once per failed or warned check evaluation.",
)
def check_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    sent, cursor = process_check_evaluations(context)
    reason = f"{len(sent)} alerts sent" if sent else "no new failed check evaluations"
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)


def alert_for_failed_run(run: dg.DagsterRun, message: str) -> alerts.Alert:
    """A failed run is an alert too: a check that raised never produces an evaluation."""
    first_line = (message or "run failed").strip().splitlines()[0]
    return alerts.Alert(
        asset="transactions" if run.job_name != "metrics_refresh_job" else "wallet_metrics",
        check=f"run:{run.job_name}",
        severity="ERROR",
        message=first_line,
        run_id=run.run_id,
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (log, status JSON, webhook) once per failed run of this code location.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    message = context.failure_event.message or ""
    for event in context.get_step_failure_events():  # the step's own reason says more
        data = event.step_failure_data
        reason = data.user_failure_data.description if data.user_failure_data else None
        message = f"{event.step_key}: {reason or data.error.message if data.error else reason}"
        break
    alert = alert_for_failed_run(context.dagster_run, message)
    context.log.error(f"run {alert.run_id} of {context.dagster_run.job_name} failed: "
                      f"{alert.message}")
    alerts.send_alert(alert)
