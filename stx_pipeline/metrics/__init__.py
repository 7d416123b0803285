"""Wallet metrics computed in DuckDB SQL over `transactions` (definitions: docs/metrics.md)."""

from stx_pipeline.metrics.build import (
    MetricsSummary,
    build_wallet_metrics,
    metrics_tables_exist,
    read_summary,
)
from stx_pipeline.metrics.sql import METRICS_TABLES, METRICS_VERSION, SYSTEM_TX_TYPES

__all__ = [
    "METRICS_TABLES",
    "METRICS_VERSION",
    "SYSTEM_TX_TYPES",
    "MetricsSummary",
    "build_wallet_metrics",
    "metrics_tables_exist",
    "read_summary",
]
