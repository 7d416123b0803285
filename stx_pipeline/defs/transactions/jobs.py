"""Jobs that write the DuckDB file; the sensor and the schedule target them by name.

Executor: the project default (in-process, defs/resources.py). Tags: `writer_run_tags()`.
"""

from __future__ import annotations

import dagster as dg

from stx_pipeline.defs import settings

# The asset with its checks, but not the audit (a request per sealed window: it has a
# weekly job of its own, see audit.py).
AUDIT_SELECTION = dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey(settings.TRANSACTIONS_KEY), "sealed_history_matches_api"))
TRANSACTIONS_SELECTION = dg.AssetSelection.assets(settings.TRANSACTIONS_KEY) - AUDIT_SELECTION

# One backfill step: `transactions` and its checks (checks of a selected asset are included).
transactions_backfill_job = dg.define_asset_job(
    name=settings.BACKFILL_JOB_NAME,
    selection=TRANSACTIONS_SELECTION,
    description="One resumable backfill run of `transactions`; requested by the backfill sensor.",
    tags=settings.writer_run_tags(),
)

# The daily refresh: new transactions, then the metrics and the dashboard in the same run.
daily_refresh_job = dg.define_asset_job(
    name=settings.DAILY_JOB_NAME,
    selection=dg.AssetSelection.assets(settings.TRANSACTIONS_KEY).downstream() - AUDIT_SELECTION,
    description="Refresh `transactions` and everything downstream of it.",
    tags=settings.writer_run_tags(),
)


def transactions_run_config() -> dg.RunConfig:
    """Run config of sensor and schedule runs: the same target and page budget as the
    Materialize button's default config (both read `settings` at call time)."""
    from stx_pipeline.defs.transactions.assets import TransactionsConfig

    return dg.RunConfig(
        ops={
            settings.TRANSACTIONS_KEY: TransactionsConfig(
                target_days=settings.default_target_days(),
                max_pages=settings.max_pages_per_run(),
            )
        }
    )
