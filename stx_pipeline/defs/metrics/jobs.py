"""The job that rebuilds the metrics and the dashboard from the current `transactions`."""

from __future__ import annotations

import dagster as dg

metrics_refresh_job = dg.define_asset_job(
    name="metrics_refresh_job",
    selection=dg.AssetSelection.assets("wallet_metrics", "dashboard"),
    description="Recompute wallet_metrics, then the dashboard (see metrics_refresh_sensor).",
    executor_def=dg.in_process_executor,
)
