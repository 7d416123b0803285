"""`freshness_sensor`: the `fresh` check evaluated on its own interval, with or without runs.

The `fresh` check inside a run only says something when a run happens; data goes stale
exactly when none does (the daemon's schedule switched off, the API down, a cron job
dead). This sensor reads the newest `block_time` every `STX_PIPELINE_FRESH_INTERVAL`
seconds, alerts once when the data goes stale and once when it is fresh again (it owns
the freshness alerts: `check_alert_sensor` leaves `fresh` to it), and records the verdict
as an evaluation of `transactions/fresh` (shown in the UI like any other check) on every
change and at least hourly.

The newest `block_time` comes from DuckDB (a read-only connection of milliseconds). While
a writer holds the file it comes from the latest `transactions` materialization instead,
and when neither knows any data (a new deployment) nothing is recorded.
"""

import json
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from stx_pipeline import alerts, health
from stx_pipeline.defs import settings
from stx_pipeline.defs.alerts.sensors import ACTIONS, deliver

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
FRESH_CHECK = "fresh"
# Record an unchanged verdict at least this often, so the UI shows a recent lag.
REFRESH_SECONDS = 3600


def newest_from_event_log(instance: dg.DagsterInstance) -> datetime | None:
    """`newest_block_time` of the latest `transactions` materialization (None if never)."""
    event = instance.get_latest_materialization_event(TRANSACTIONS)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("newest_block_time")
    return health.as_utc(value.value) if value is not None else None


def newest_block_time(instance: dg.DagsterInstance) -> tuple[datetime | None, str]:
    """The newest `block_time` and where it came from."""
    from stx_pipeline.warehouse.db import WarehouseError, WarehouseLocked

    try:
        return health.newest_block_time(settings.db_path()), "duckdb"
    except WarehouseLocked:
        return newest_from_event_log(instance), "materialization (a writer holds DuckDB)"
    except WarehouseError:  # no file yet, or unreadable: Dagster's record is all we have
        return newest_from_event_log(instance), "materialization"


def evaluation_for(fresh: health.Freshness, source: str) -> dg.AssetCheckEvaluation:
    metadata: dict[str, Any] = {"fresh_hours": fresh.sla_hours, "source": source}
    if fresh.newest is not None:
        metadata["newest_block_time"] = dg.MetadataValue.timestamp(fresh.newest)
        metadata["lag_hours"] = dg.MetadataValue.float(round(fresh.lag_hours or 0.0, 3))
    return dg.AssetCheckEvaluation(
        asset_key=TRANSACTIONS,
        check_name=FRESH_CHECK,
        passed=fresh.fresh,
        severity=dg.AssetCheckSeverity.WARN,
        description=fresh.describe(),
        metadata=metadata,
    )


def alert_for(fresh: health.Freshness, state: alerts.State) -> alerts.Alert:
    return alerts.Alert(
        asset=settings.TRANSACTIONS_KEY,
        check=FRESH_CHECK,
        severity="WARN",
        message=fresh.describe(),
        state=state,
        action=ACTIONS[FRESH_CHECK],
    )


def evaluate_freshness(
    context: dg.SensorEvaluationContext, now: float | None = None
) -> tuple[dg.AssetCheckEvaluation | None, alerts.Alert | None, str, str]:
    """One tick: (evaluation to record, alert to send, reason, new cursor); None = nothing."""
    now = time.time() if now is None else now
    try:
        state = json.loads(context.cursor) if context.cursor else {}
    except ValueError:
        state = {}
    if not isinstance(state, dict):
        state = {}
    newest, source = newest_block_time(context.instance)
    if newest is None:
        return None, None, "no transactions loaded yet: nothing to judge", context.cursor or ""
    fresh = health.freshness(newest, settings.fresh_hours(),
                             now=datetime.fromtimestamp(now, UTC))
    states = alerts.AlertStates.from_dict(state.get("firing"))
    key = f"{settings.TRANSACTIONS_KEY}/{FRESH_CHECK}"
    change = states.observe(key, failing=not fresh.fresh)
    alert = alert_for(fresh, change) if change else None
    changed = state.get("passed") is not fresh.fresh
    due = now - float(state.get("recorded_at", 0) or 0) >= REFRESH_SECONDS
    evaluation = evaluation_for(fresh, source) if (changed or due) else None
    cursor = json.dumps({
        "passed": fresh.fresh,
        "recorded_at": now if evaluation is not None else state.get("recorded_at", 0),
        "firing": states.to_dict(),
    })
    reason = f"{'fresh' if fresh.fresh else 'STALE'}: {fresh.describe()} (from {source})"
    return evaluation, alert, reason, cursor


@dg.sensor(
    name="freshness_sensor",
    minimum_interval_seconds=settings.fresh_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Evaluates `transactions/fresh` (newest block_time vs `STX_PIPELINE_FRESH_HOURS`) on "
        "its own interval, also when no run happens; alerts when it turns stale and fresh."
    ),
)
def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    evaluation, alert, reason, cursor = evaluate_freshness(context)
    context.log.info(reason)
    if alert is not None:
        deliver(context, alert)
    return dg.SensorResult(
        asset_events=[evaluation] if evaluation is not None else [],
        skip_reason=None if evaluation is not None else dg.SkipReason(reason),
        cursor=cursor,
    )
