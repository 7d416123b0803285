"""Daily refresh: picks up the new head of the chain and rebuilds metrics and dashboard."""

import dagster as dg

from stx_pipeline.defs import settings
from stx_pipeline.defs.transactions.jobs import daily_refresh_job, transactions_run_config


@dg.schedule(
    name="daily_refresh_schedule",
    job=daily_refresh_job,
    cron_schedule=settings.refresh_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refresh transactions and downstream (`STX_PIPELINE_REFRESH_CRON`, UTC).",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=None,
        run_config=transactions_run_config(),
        tags={"stx_pipeline/trigger": "schedule"},
    )
