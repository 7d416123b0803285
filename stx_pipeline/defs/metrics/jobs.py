"""The job that rebuilds the metrics tables and the dashboard from the current `transactions`."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.defs import settings

metrics_refresh_job = dg.define_asset_job(
    name=settings.METRICS_JOB_NAME,
    selection=dg.AssetSelection.assets(settings.TRANSACTIONS_KEY).downstream(include_self=False),
    description="Recompute the metrics tables, then the dashboard (see metrics_refresh_sensor).",
    tags=settings.writer_run_tags(),
)
