"""`metrics_refresh_sensor`: the metrics tables and dashboard follow every new `transactions`.

Reads only the event log and run storage. A materialization is acted on once its run
has finished (so its checks have been evaluated) and only if the blocking checks of
that run passed: metrics are never built on a hole or a duplicate. The cursor is the
storage id of the last `transactions` materialization handled.
"""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from stx_pipeline.defs import settings
from stx_pipeline.defs.metrics.assets import BUILD_TABLE
from stx_pipeline.defs.metrics.jobs import metrics_refresh_job

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
METRICS_BUILD = dg.AssetKey(BUILD_TABLE)  # written by every metrics build
BLOCKING_CHECKS = ("no_gaps", "unique_tx_id")
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[int, str] | None:
    records = instance.fetch_materializations(key, limit=1).records
    return (records[0].storage_id, records[0].run_id) if records else None


def failed_blocking_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """Blocking checks of `transactions` planned in `run_id` that did not pass (failed or
    errored); checks the run did not include do not count."""
    keys = [dg.AssetCheckKey(TRANSACTIONS, name) for name in BLOCKING_CHECKS]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return [
        key.name
        for key, record in latest.items()
        if record.run_id == run_id and record.status != AssetCheckExecutionRecordStatus.SUCCEEDED
    ]


def evaluate_metrics_refresh(
    context: dg.SensorEvaluationContext,
) -> tuple[dg.RunRequest | dg.SkipReason, str | None]:
    """One tick's decision and the new cursor."""
    instance = context.instance
    handled = int(context.cursor) if (context.cursor or "").isdigit() else 0
    latest = _latest_storage_id(instance, TRANSACTIONS)
    if latest is None:
        return dg.SkipReason("transactions never materialized"), context.cursor
    storage_id, run_id = latest
    if storage_id <= handled:
        return dg.SkipReason("metrics already follow the latest transactions"), context.cursor
    metrics = _latest_storage_id(instance, METRICS_BUILD)
    if metrics is not None and metrics[0] > storage_id:
        # Built after it, e.g. by the daily job that refreshes everything in one run.
        return dg.SkipReason("the metrics are newer than transactions"), str(storage_id)
    run = instance.get_run_by_id(run_id) if run_id else None
    if run is not None and not run.is_finished:
        return dg.SkipReason(f"waiting for run {run_id} (checks) to finish"), context.cursor
    failed = failed_blocking_checks(instance, run_id)
    if failed:
        return (
            dg.SkipReason(f"blocking checks failed in run {run_id}: {', '.join(failed)}"),
            str(storage_id),
        )
    busy = instance.get_runs(
        filters=dg.RunsFilter(job_name=metrics_refresh_job.name, statuses=IN_FLIGHT), limit=1
    )
    if busy:
        return dg.SkipReason(f"metrics run {busy[0].run_id} in flight"), context.cursor
    request = dg.RunRequest(
        run_key=f"metrics-after-{storage_id}",
        tags={"stx_pipeline/trigger": "metrics_refresh_sensor"},
    )
    return request, str(storage_id)


@dg.sensor(
    name="metrics_refresh_sensor",
    job=metrics_refresh_job,
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds the metrics tables and the dashboard after each new `transactions`.",
)
def metrics_refresh_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    decision, cursor = evaluate_metrics_refresh(context)
    if isinstance(decision, dg.SkipReason):
        return dg.SensorResult(skip_reason=decision, cursor=cursor)
    return dg.SensorResult(run_requests=[decision], cursor=cursor)
