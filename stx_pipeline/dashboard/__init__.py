"""Self-contained HTML dashboard of the wallet metrics (plotly.js inlined, no network)."""

from stx_pipeline.dashboard.build import (
    DEFAULT_TITLE,
    DashboardResult,
    build_dashboard,
    default_dashboard_path,
)

__all__ = ["DEFAULT_TITLE", "DashboardResult", "build_dashboard", "default_dashboard_path"]
