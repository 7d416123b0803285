"""`wallet_metrics` and `dashboard`: recomputed whenever `transactions` changes.

Automation choice: a job (`metrics_refresh_job`) requested by `metrics_refresh_sensor`
(defs/metrics/sensors.py) for each new `transactions` materialization whose run has
finished with its blocking checks passed. Declarative `eager()` was tried first and
dropped: when a downstream run and the next backfill run finish between two automation
ticks, `since_last_handled` counts the downstream update as handling the new upstream
one and the metrics silently stay stale (reproduced with Dagster 1.13.27).
"""

import os
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource

from stx_pipeline.defs import settings


def dashboard_path() -> Path:
    """`$STX_PIPELINE_DASHBOARD` or `<repo>/data/dashboards/wallet_metrics.html`."""
    env = os.environ.get("STX_PIPELINE_DASHBOARD", "").strip()
    if env:
        return Path(env).resolve()
    return settings.PROJECT_ROOT / "data" / "dashboards" / "wallet_metrics.html"


def summary_metadata(summary: Any) -> dict[str, Any]:
    """Headline figures of a `MetricsSummary` as typed metadata."""
    meta: dict[str, Any] = {"summary": dg.MetadataValue.md(summary.to_markdown())}
    for key in ("dau", "wau", "mau", "new_wallets", "wallets", "canonical_rows", "partial_days"):
        value = getattr(summary, key, None)
        if value is not None:
            meta[key] = dg.MetadataValue.int(int(value))
    for key in ("fees_stx", "success_rate", "stickiness", "coverage_pct"):
        value = getattr(summary, key, None)
        if value is not None:
            meta[key] = dg.MetadataValue.float(float(value))
    latest = getattr(summary, "latest_day", None)
    if latest is not None:
        meta["latest_day"] = dg.MetadataValue.text(latest.isoformat())
    row_counts = dict(getattr(summary, "row_counts", {}) or {})
    if row_counts:
        meta["row_counts"] = dg.MetadataValue.json(row_counts)
        meta["dagster/row_count"] = dg.MetadataValue.int(sum(row_counts.values()))
    return meta


@dg.asset(
    deps=[settings.TRANSACTIONS_KEY],
    group_name="stacks",
    kinds={"duckdb", "sql"},
    pool=settings.DUCKDB_POOL,
    description="DAU/WAU/MAU, new wallets, retention, fees and activity mix (`metrics_*`).",
)
def wallet_metrics(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    from stx_pipeline.metrics import build_wallet_metrics

    with duckdb.get_connection() as con:
        summary = build_wallet_metrics(con)
    if getattr(summary, "empty", False):
        context.log.warning("no canonical transactions yet: metrics tables are empty")
    return dg.MaterializeResult(metadata=summary_metadata(summary))


KPI_ROWS: tuple[tuple[str, str, str], ...] = (
    ("latest complete day", "latest_day", "{}"),
    ("DAU", "dau", "{:,}"),
    ("WAU", "wau", "{:,}"),
    ("MAU", "mau", "{:,}"),
    ("new wallets", "new_wallets", "{:,}"),
    ("fees (STX)", "fees_stx", "{:,.6f}"),
    ("success rate", "success_rate", "{:.1%}"),
    ("coverage", "coverage_pct", "{:.2f} %"),
)


def kpi_markdown(values: dict[str, Any]) -> str:
    """The dashboard's headline KPIs as a small table."""
    lines = ["| KPI | value |", "|---|---|"]
    for label, key, fmt in KPI_ROWS:
        value = values.get(key)
        lines.append(f"| {label} | {'n/a' if value is None else fmt.format(value)} |")
    return "\n".join(lines)


def latest_metrics_values(instance: dg.DagsterInstance) -> dict[str, Any]:
    """KPIs recorded by the latest `wallet_metrics` materialization (no extra SQL)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("wallet_metrics"))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset(
    deps=[wallet_metrics],
    group_name="stacks",
    kinds={"html", "plotly"},
    pool=settings.DUCKDB_POOL,
    description="Self-contained HTML dashboard of the wallet metrics (plotly embedded).",
)
def dashboard(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    from stx_pipeline.dashboard import build_dashboard

    out_path = dashboard_path()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.get_connection() as con:
        result = build_dashboard(con, out_path)
    path = Path(getattr(result, "path", out_path))
    context.log.info(f"dashboard written to {path}")
    meta: dict[str, Any] = {
        "path": dg.MetadataValue.path(str(path)),
        "size_bytes": dg.MetadataValue.int(path.stat().st_size if path.exists() else 0),
    }
    kpis = latest_metrics_values(context.instance)
    if kpis:
        meta["kpis"] = dg.MetadataValue.md(kpi_markdown(kpis))
    return dg.MaterializeResult(metadata=meta)
