"""The sensor that evaluates the `eager` conditions of the downstream assets."""

from __future__ import annotations

import dagster as dg

from stx_pipeline.defs import settings

# Running by default: without it `wallet_metrics` and `dashboard` would never follow.
automation_condition_sensor = dg.AutomationConditionSensorDefinition(
    name="automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=max(5, min(30, settings.sensor_interval_seconds())),
    description="Materializes wallet_metrics and dashboard after each new `transactions`.",
)
