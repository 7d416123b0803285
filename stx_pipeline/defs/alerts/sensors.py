"""`check_alert_sensor`: turns asset-check state changes into alerts; failed runs too.

Dagster shows failed checks in the UI, but nobody watches the UI at 3 a.m.: when a check
starts failing (ERROR or WARN) an alert is logged, appended to the status JSON and POSTed
to `$STX_PIPELINE_ALERT_WEBHOOK` through `stx_pipeline.alerts`; when it passes again, one
`resolved` alert follows. A check that keeps failing run after run says nothing more.
`fresh` is left to `freshness_sensor`, which evaluates it also when no run happens and
alerts on its changes itself. The cursor holds the id of the newest check execution
already processed and the firing checks.
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
# Checks whose alerts another sensor owns (freshness_sensor evaluates `fresh` without runs).
ALERTED_ELSEWHERE = ("fresh",)
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


# What to do, in one line, for each watched condition (shown in the chat message).
ACTIONS = {
    "backfill_complete": "nothing while the backfill sensor keeps requesting runs; if it "
    "stopped, read its last tick and `stx-pipeline status`",
    "no_gaps": "data damage: metrics are blocked; read the check's `samples` metadata and "
    "re-run the backfill (it refetches unsealed windows)",
    "unique_tx_id": "data damage: metrics are blocked; read `duplicate_samples` in the check's "
    "metadata before any further writes",
    "valid_rows": "read the check's metadata: a row broke the schema's rules; metrics over it "
    "are wrong",
    "no_rejected_rows": "the API sent rows the mapper could not read; their raw JSON is in "
    "the `rejected_rows` table",
    "fresh": "nothing new for hours: check that the Dagster daemon runs, the daily schedule "
    "is on and the Hiro API answers",
    "source_not_deprecated": "the API marks the route the backfill reads as deprecated: plan "
    "the move to /extended/v3/transactions before it answers 410 Gone",
    "sealed_history_matches_api": "sealed windows drifted from the API's totals: the audit "
    "reopened them and the next backfill run refetches them; read the check's metadata",
}
RUN_FAILURE_ACTION = (
    "open the run in the Dagster UI for the failing step's log; the next backfill run resumes "
    "where this one stopped"
)


def alert_for(record: AssetCheckExecutionRecord, state: alerts.State) -> alerts.Alert:
    """The firing or resolved alert for a check evaluation."""
    event = record.event
    assert event is not None and event.dagster_event is not None
    evaluation = event.dagster_event.asset_check_evaluation_data
    severity = "ERROR" if evaluation.severity == dg.AssetCheckSeverity.ERROR else "WARN"
    default = "passes again" if state == "resolved" else f"check {evaluation.check_name} failed"
    return alerts.Alert(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        severity=severity,
        message=(evaluation.description or default).strip(),
        run_id=record.run_id or None,
        timestamp=datetime.fromtimestamp(event.timestamp, UTC).isoformat(),
        state=state,
        action=ACTIONS.get(evaluation.check_name),
    )


def _parse_cursor(raw: str | None) -> tuple[int, alerts.AlertStates]:
    if not raw:
        return 0, alerts.AlertStates()
    try:
        data = json.loads(raw)
        return int(data.get("last_id", 0)), alerts.AlertStates.from_dict(data.get("firing"))
    except (ValueError, AttributeError, TypeError):
        return 0, alerts.AlertStates()


def deliver(context: dg.SensorEvaluationContext | dg.RunFailureSensorContext,
            alert: alerts.Alert) -> alerts.AlertDelivery:
    """Send one alert; a failed delivery is a warning in the tick's log, never an error."""
    delivery = alerts.send_alert(alert)
    if not delivery.ok:
        context.log.warning(
            f"alert for {alert.key} not fully delivered: {delivery.status_file_error or ''} "
            f"{delivery.webhook_error or ''}".strip()
        )
    return delivery


def process_check_evaluations(
    context: dg.SensorEvaluationContext, keys: Sequence[dg.AssetCheckKey] | None = None
) -> tuple[list[alerts.Alert], str]:
    """Send an alert per state change (passing -> failing, failing -> passing) of a check;
    return them and the new cursor."""
    last_id, states = _parse_cursor(context.cursor)
    records = new_evaluations(context.instance, keys or watched_check_keys(context), last_id)
    sent: list[alerts.Alert] = []
    for record in records:
        evaluation = record.event.dagster_event.asset_check_evaluation_data
        if evaluation.check_name in ALERTED_ELSEWHERE:
            continue
        key = f"{evaluation.asset_key.to_user_string()}/{evaluation.check_name}"
        change = states.observe(key, failing=not evaluation.passed,
                                at=datetime.fromtimestamp(record.event.timestamp, UTC).isoformat())
        if change is None:
            continue
        alert = alert_for(record, change)
        if change == "resolved":
            context.log.info(f"check {alert.key} passes again: {alert.message}")
        else:
            log = context.log.error if alert.severity == "ERROR" else context.log.warning
            log(f"check {alert.key} {alert.severity}: {alert.message}")
        deliver(context, alert)
        sent.append(alert)
    new_last = max([last_id, *(r.id for r in records)])
    return sent, json.dumps({"last_id": new_last, "firing": states.to_dict()})


@dg.sensor(
    name="check_alert_sensor",
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts (log, status JSON, webhook) when a check starts failing and when it "
    "passes again.",
)
def check_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    sent, cursor = process_check_evaluations(context)
    reason = f"{len(sent)} alerts sent" if sent else "no check changed state"
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
        action=RUN_FAILURE_ACTION,
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
    deliver(context, alert)
