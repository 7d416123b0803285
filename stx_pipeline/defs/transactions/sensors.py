"""`transactions_backfill_sensor`: keeps requesting backfill runs until the history is complete.

It reads only Dagster's event log and run storage, never DuckDB: while a run writes,
no other process may open the file. Progress is tracked in the cursor so that a backfill
that stops moving (quota, broken API) raises one alert instead of looping forever.
"""

import json
from dataclasses import asdict, dataclass

import dagster as dg

from stx_pipeline import alerts
from stx_pipeline.defs import settings
from stx_pipeline.defs.transactions.jobs import transactions_backfill_job, transactions_run_config

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
# Named jobs that write the warehouse; runs of any other job (the Materialize button's
# implicit asset job) count when they materialize an asset: every asset here writes it.
WRITER_JOBS = (settings.BACKFILL_JOB_NAME, settings.DAILY_JOB_NAME, settings.METRICS_JOB_NAME)
IN_FLIGHT_LOOKUP_LIMIT = 100


@dataclass
class BackfillCursor:
    """Sensor state persisted between ticks as JSON."""

    last_storage_id: int | None = None  # latest materialization already accounted for
    rows: int | None = None
    oldest: float | None = None  # oldest block_time, unix seconds
    sealed: int | None = None
    pending: bool = False  # a run was requested and its outcome not yet judged
    requested_at_storage_id: int | None = None
    no_progress_runs: int = 0
    attempt: int = 0
    alerted: bool = False

    @classmethod
    def parse(cls, raw: str | None) -> "BackfillCursor":
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
        except ValueError:
            return cls()
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Snapshot:
    """What the latest materialization says, as plain values."""

    storage_id: int
    run_id: str
    complete: bool
    rows: int
    oldest: float | None
    sealed: int
    stop_reason: str
    missing_days: float | None


def latest_snapshot(instance: dg.DagsterInstance) -> Snapshot | None:
    """The newest `transactions` materialization from the event log (None if never)."""
    records = instance.fetch_materializations(TRANSACTIONS, limit=1).records
    if not records:
        return None
    record = records[0]
    mat = record.asset_materialization
    meta = {k: v.value for k, v in (mat.metadata if mat else {}).items()}

    def num(key: str) -> float | None:
        value = meta.get(key)
        return float(value) if isinstance(value, int | float) else None

    return Snapshot(
        storage_id=record.storage_id,
        run_id=record.run_id,
        complete=bool(meta.get("complete", False)),
        rows=int(num("rows_total") or 0),
        oldest=num("oldest_block_time"),
        sealed=int(num("windows_sealed") or 0),
        stop_reason=str(meta.get("stop_reason", "")),
        missing_days=num("missing_days"),
    )


def made_progress(state: BackfillCursor, snap: Snapshot) -> bool:
    """More rows, an older oldest row, more sealed windows, or completion."""
    if snap.complete:
        return True
    if state.rows is None:
        return snap.rows > 0 or snap.sealed > 0
    older = snap.oldest is not None and (state.oldest is None or snap.oldest < state.oldest)
    return snap.rows > state.rows or older or snap.sealed > (state.sealed or 0)


def _remember(state: BackfillCursor, snap: Snapshot) -> None:
    state.last_storage_id = snap.storage_id
    state.rows, state.oldest, state.sealed = snap.rows, snap.oldest, snap.sealed


def writes_warehouse(run: dg.DagsterRun) -> bool:
    """A writer job, a run tagged as a writer, or any run that materializes assets."""
    return (
        run.job_name in WRITER_JOBS
        or settings.WRITER_TAG in run.tags
        or bool(run.asset_selection)
    )


def runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Queued or running runs that write the warehouse, whoever launched them."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=IN_FLIGHT_LOOKUP_LIMIT
    )
    return [run.run_id for run in runs if writes_warehouse(run)]


def _send_stall_alert(context: dg.SensorEvaluationContext, message: str,
                      snap: Snapshot | None, state: alerts.State) -> None:
    """The stall alert and, once a run makes progress again, its `resolved`."""
    delivery = alerts.send_alert(
        alerts.Alert(
            asset=settings.TRANSACTIONS_KEY,
            check="transactions_backfill_sensor",
            severity="ERROR",
            message=message,
            run_id=snap.run_id if snap else None,
            state=state,
            action="fix the cause (API key, quota, Hiro API status), then launch a run by hand; "
            "the sensor resumes once a run makes progress",
        )
    )
    if not delivery.ok:
        context.log.warning(
            f"alert delivery incomplete: {delivery.status_file_error or ''} "
            f"{delivery.webhook_error or ''}".strip()
        )


def evaluate_backfill(
    context: dg.SensorEvaluationContext, stall_limit: int
) -> tuple[dg.RunRequest | dg.SkipReason, BackfillCursor]:
    """One tick's decision and the new cursor (separate from the decorator for tests)."""
    state = BackfillCursor.parse(context.cursor)
    instance = context.instance
    in_flight = runs_in_flight(instance)
    if in_flight:
        return dg.SkipReason(f"run {in_flight[0]} writes the warehouse (queued or running)"), state

    snap = latest_snapshot(instance)
    # Judge the outcome of everything that finished since the last tick.
    if state.pending:
        progressed = (
            snap is not None
            and snap.storage_id != state.requested_at_storage_id
            and made_progress(state, snap)
        )
        state.no_progress_runs = 0 if progressed else state.no_progress_runs + 1
        state.pending = False
    elif (
        snap is not None
        and snap.storage_id != state.last_storage_id
        and made_progress(state, snap)  # a manual or scheduled run moved things forward
    ):
        state.no_progress_runs = 0
    if snap is not None:
        if state.no_progress_runs == 0 and state.alerted:
            _send_stall_alert(context, "backfill makes progress again", snap, "resolved")
            state.alerted = False
        _remember(state, snap)

    if snap is not None and snap.complete:
        state.no_progress_runs = 0
        return (
            dg.SkipReason(
                f"backfill complete ({snap.rows:,} rows, stop reason {snap.stop_reason})"
            ),
            state,
        )

    if state.no_progress_runs >= stall_limit:
        message = (
            f"backfill stalled: {state.no_progress_runs} runs without progress "
            f"(last stop reason: {snap.stop_reason if snap else 'none'}, "
            f"missing days: {snap.missing_days if snap else 'unknown'}); "
            "no further runs requested until a run makes progress"
        )
        if not state.alerted:
            context.log.error(message)
            _send_stall_alert(context, message, snap, "firing")
            state.alerted = True
        return dg.SkipReason(message), state

    state.attempt += 1
    state.pending = True
    state.requested_at_storage_id = snap.storage_id if snap else None
    base = snap.storage_id if snap else 0
    reason = "first backfill run" if snap is None else f"incomplete ({snap.stop_reason})"
    request = dg.RunRequest(
        run_key=f"transactions-backfill-{base}-{state.attempt}",
        run_config=transactions_run_config(),
        tags={"stx_pipeline/trigger": "backfill_sensor", "stx_pipeline/reason": reason},
    )
    return request, state


@dg.sensor(
    name="transactions_backfill_sensor",
    job=transactions_backfill_job,
    minimum_interval_seconds=settings.sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests backfill runs of `transactions` until the latest materialization says "
        "`complete`; alerts once after `STX_PIPELINE_STALL_RUNS` runs without progress."
    ),
)
def transactions_backfill_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    decision, state = evaluate_backfill(context, settings.stall_runs())
    if isinstance(decision, dg.SkipReason):
        return dg.SensorResult(skip_reason=decision, cursor=state.dump())
    return dg.SensorResult(run_requests=[decision], cursor=state.dump())
