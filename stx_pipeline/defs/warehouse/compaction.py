"""Compaction of the DuckLake warehouse on a schedule (warehouse/compaction.py).

Every six hours by default (`STX_PIPELINE_COMPACTION_CRON`, UTC). It carries the writer
tags, so one Dagster instance never runs it beside a backfill, and it takes the writer
lease, so neither does another machine; a writer that holds the lease makes this tick a
logged skip. On the embedded DuckDB file it is a logged no-op.
"""

import dagster as dg

from stx_pipeline.defs import settings
from stx_pipeline.warehouse import WarehouseLocked
from stx_pipeline.warehouse.compaction import compact_warehouse


@dg.op(pool=settings.DUCKDB_POOL)
def compact_lake(context: dg.OpExecutionContext) -> dg.Output[dict]:
    """Merge the lake's small files; report files before/after."""
    try:
        done = compact_warehouse()
    except WarehouseLocked as exc:
        context.log.info(f"compaction skipped this tick: {exc}")
        return dg.Output({"skipped": True}, metadata={"skipped": "a writer holds the lease"})
    if done is None:
        context.log.info("the warehouse is the embedded DuckDB file: nothing to compact")
        return dg.Output({"skipped": True}, metadata={"skipped": "embedded DuckDB file"})
    context.log.info(f"compacted {done['files_before']} -> {done['files_after']} data files"
                     f" in {done['seconds']:.1f}s")
    return dg.Output(done, metadata={k: dg.MetadataValue.int(v) if isinstance(v, int)
                                     else dg.MetadataValue.float(v) for k, v in done.items()})


@dg.job(name="warehouse_compaction_job", tags=settings.writer_run_tags(),
        executor_def=dg.in_process_executor,
        description="Merge the DuckLake warehouse's small Parquet files (no-op on the file).")
def warehouse_compaction_job() -> None:
    compact_lake()


@dg.schedule(
    name="warehouse_compaction_schedule",
    job=warehouse_compaction_job,
    cron_schedule=settings.compaction_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Compact the DuckLake warehouse (`STX_PIPELINE_COMPACTION_CRON`, UTC).",
)
def warehouse_compaction_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=None, tags={"stx_pipeline/trigger": "schedule"})
