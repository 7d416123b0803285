"""Jobs that write the DuckDB file; the sensor and the schedule target them by name."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.defs import settings

TRANSACTIONS_SELECTION = dg.AssetSelection.assets(settings.TRANSACTIONS_KEY)

# One backfill step: `transactions` and its checks (checks of a selected asset are included).
transactions_backfill_job = dg.define_asset_job(
    name=settings.BACKFILL_JOB_NAME,
    selection=TRANSACTIONS_SELECTION,
    description="One resumable backfill run of `transactions`; requested by the backfill sensor.",
    tags={"stx_pipeline/writer": "duckdb"},
    # Steps share one DuckDB file and run one at a time anyway (pool "duckdb"): a process
    # per step would only add start-up time to every check.
    executor_def=dg.in_process_executor,
)

# The daily refresh: new transactions, then the metrics and the dashboard in the same run.
daily_refresh_job = dg.define_asset_job(
    name=settings.DAILY_JOB_NAME,
    selection=TRANSACTIONS_SELECTION.downstream(),
    description="Refresh `transactions` and everything downstream of it.",
    tags={"stx_pipeline/writer": "duckdb"},
    executor_def=dg.in_process_executor,
)


def transactions_run_config(
    target_days: int | None = None, max_pages: int | None = None
) -> dg.RunConfig:
    """Run config for sensor/schedule runs: target and page budget from the environment."""
    from stx_pipeline.defs.transactions.assets import TransactionsConfig

    return dg.RunConfig(
        ops={
            settings.TRANSACTIONS_KEY: TransactionsConfig(
                target_days=target_days or settings.default_target_days(),
                max_pages=max_pages or settings.max_pages_per_run(),
            )
        }
    )
