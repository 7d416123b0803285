"""The `metrics_*` tables (one asset each, built together) and the `dashboard`.

One SQL build writes all ten tables in one transaction, so they are one `multi_asset`
step; each table is its own asset so that the catalog lists what people query, with its
own row count and columns.

Automation choice: a job (`metrics_refresh_job`) requested by `metrics_refresh_sensor`
(defs/metrics/sensors.py) for each new `transactions` materialization whose run has
finished with its blocking checks passed. Declarative `eager()` was tried first and
dropped: when a downstream run and the next backfill run finish between two automation
ticks, `since_last_handled` counts the downstream update as handling the new upstream
one and the metrics silently stay stale (reproduced with Dagster 1.13.27).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import WarehouseResource
from stx_pipeline.metrics.build import MetricsSummary
from stx_pipeline.metrics.sql import METRICS_TABLES

GROUP = "wallet_metrics"
# The asset whose materialization carries the headline KPIs, and the one every build writes
# last (the sensor compares its time with the latest `transactions`).
KPI_TABLE = "metrics_daily_activity"
BUILD_TABLE = "metrics_run"

TABLE_DESCRIPTIONS: dict[str, str] = {
    "metrics_run": "One row about the build: data span, last complete day, coverage source, "
    "wallet and row counts.",
    "metrics_daily_activity": "Per UTC day: DAU, WAU, MAU, stickiness, new wallets "
    "(nonce 0), transactions, success rate and fees.",
    "metrics_activity_mix": "Per day × tx_type × tx_status: counts and fees.",
    "metrics_fee_payer_daily": "Per day × fee payer: transactions, sponsored ones, fees "
    "(the one large table).",
    "metrics_cohort_retention": "Daily and weekly cohorts of new wallets: D1 … D90 retention.",
    "metrics_monthly_growth": "Per month: active, new, retained, resurrected, churned "
    "wallets and the quick ratio.",
    "metrics_wallet_value": "Per cohort: fees paid per wallet after 15 … 180 days (STX).",
    "metrics_funnel": "Per activation month: activated → matured → active → value.",
    "metrics_top_contracts": "Contracts by calls and distinct callers.",
    "metrics_backfill_health": "Per day: ledger windows, expected vs loaded rows, seconds "
    "covered and whether the day is partial.",
}

def metrics_specs() -> list[dg.AssetSpec]:
    """One spec per table (a function: the defs loader would collect module-level specs)."""
    return [
        dg.AssetSpec(
            key=table,
            deps=[settings.TRANSACTIONS_KEY],
            group_name=GROUP,
            kinds={"duckdb", "sql"},
            description=TABLE_DESCRIPTIONS[table],
            metadata={"dagster/table_name": f"main.{table}"},
        )
        for table in METRICS_TABLES
    ]


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(100.0 * float(fraction), 2)


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? AND table_catalog = current_database()"
        " ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name, str(kind)) for name, kind in rows])


def kpi_values(summary: MetricsSummary) -> dict[str, Any]:
    """The headline KPIs of the latest complete day, rounded for reading."""
    return {
        "latest_day": summary.latest_day.isoformat() if summary.latest_day else None,
        "dau": summary.dau,
        "wau": summary.wau,
        "mau": summary.mau,
        "new_wallets": summary.new_wallets,
        "stickiness_percent": _percent(summary.stickiness),
        "success_rate_percent": _percent(summary.success_rate),
        "fees_stx": None if summary.fees_stx is None else round(summary.fees_stx, 2),
    }


KPI_ROWS: tuple[tuple[str, str, str], ...] = (
    ("latest complete day", "latest_day", "{}"),
    ("DAU", "dau", "{:,}"),
    ("WAU (trailing 7 days)", "wau", "{:,}"),
    ("MAU (trailing 30 days)", "mau", "{:,}"),
    ("new wallets (nonce 0)", "new_wallets", "{:,}"),
    ("stickiness DAU/MAU", "stickiness_percent", "{:.1f} %"),
    ("success rate", "success_rate_percent", "{:.1f} %"),
    ("fees (STX)", "fees_stx", "{:,.2f}"),
)


def kpi_markdown(values: dict[str, Any]) -> str:
    """The headline KPIs as a small table."""
    lines = ["| KPI | value |", "|---|---|"]
    for label, key, fmt in KPI_ROWS:
        value = values.get(key)
        lines.append(f"| {label} | {'n/a' if value is None else fmt.format(value)} |")
    return "\n".join(lines)


def kpi_metadata(summary: MetricsSummary) -> dict[str, Any]:
    values = kpi_values(summary)
    meta: dict[str, Any] = {"summary": dg.MetadataValue.md(kpi_markdown(values))}
    for key, value in values.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            meta[key] = dg.MetadataValue.int(value)
        elif isinstance(value, float):
            meta[key] = dg.MetadataValue.float(value)
        else:
            meta[key] = dg.MetadataValue.text(str(value))
    return meta


def build_markdown(summary: MetricsSummary) -> str:
    """The build's record, with what its coverage figure means (not the backfill's)."""
    covered = summary.coverage_pct
    lines = [
        f"**Metrics built** from {summary.canonical_rows:,} canonical transactions "
        f"({summary.orphaned_rows_ignored:,} orphaned ignored) in "
        f"{summary.elapsed_seconds:.1f} s.",
        "",
        "| figure | value | meaning |",
        "|---|---|---|",
        f"| days | {summary.first_day} → {summary.last_day} | UTC calendar days with data |",
        f"| latest complete day | {summary.latest_day} | the day the KPIs describe |",
        f"| calendar days covered | {'n/a' if covered is None else f'{covered:.2f} %'} | share "
        "of those whole days held in sealed ledger windows; below the backfill's coverage "
        "because the first day starts at the target and today is not over |",
        f"| partial days | {summary.partial_days:,} | days not fully covered, flagged "
        "`partial` in every table |",
        f"| wallets | {summary.wallets:,} ({summary.activated_wallets:,} activated) | senders "
        "seen; activated = first transaction (nonce 0) in the data |",
        "",
        "| table | rows |",
        "|---|---|",
        *(f"| `{name}` | {count:,} |" for name, count in summary.row_counts.items()),
    ]
    return "\n".join(lines)


def build_metadata(summary: MetricsSummary) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "summary": dg.MetadataValue.md(build_markdown(summary)),
        "latest_complete_day": dg.MetadataValue.text(str(summary.latest_day)),
        "partial_days": dg.MetadataValue.int(summary.partial_days),
        "canonical_rows": dg.MetadataValue.int(summary.canonical_rows),
        "wallets": dg.MetadataValue.int(summary.wallets),
        "coverage_source": dg.MetadataValue.text(summary.coverage_mode),
        "build_seconds": dg.MetadataValue.float(round(summary.elapsed_seconds, 2)),
    }
    if summary.coverage_pct is not None:
        meta["calendar_days_covered_percent"] = dg.MetadataValue.float(
            round(summary.coverage_pct, 2)
        )
    return meta


@dg.multi_asset(
    name="wallet_metrics",
    specs=metrics_specs(),
    pool=settings.DUCKDB_POOL,
    description="Recompute every `metrics_*` table from `transactions` in one transaction.",
)
def wallet_metrics(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    from stx_pipeline.metrics import build_wallet_metrics

    with duckdb.get_connection() as con:
        summary = build_wallet_metrics(con)
        schemas = {table: column_schema(con, table) for table in METRICS_TABLES}
    if summary.empty:
        context.log.warning("no canonical transactions yet: metrics tables are empty")
    for table in METRICS_TABLES:
        meta: dict[str, Any] = {}
        if table == KPI_TABLE:
            meta.update(kpi_metadata(summary))
        elif table == BUILD_TABLE:
            meta.update(build_metadata(summary))
        meta["dagster/row_count"] = dg.MetadataValue.int(summary.row_counts[table])
        meta["dagster/column_schema"] = dg.MetadataValue.table_schema(schemas[table])
        yield dg.MaterializeResult(asset_key=table, metadata=meta)


def latest_kpis(instance: dg.DagsterInstance) -> dict[str, Any]:
    """KPIs recorded by the latest metrics build (no extra SQL)."""
    event = instance.get_latest_materialization_event(dg.AssetKey(KPI_TABLE))
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@dg.asset(
    deps=list(METRICS_TABLES),
    group_name=GROUP,
    kinds={"html", "plotly"},
    pool=settings.DUCKDB_POOL,
    description="Self-contained HTML dashboard of the wallet metrics (plotly embedded); "
    "`open` in its metadata links to it.",
)
def dashboard(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    from stx_pipeline.dashboard import build_dashboard

    out_path = settings.dashboard_path()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.get_connection() as con:
        result = build_dashboard(con, out_path)
    path = Path(result.path)
    url = settings.dashboard_url()
    context.log.info(f"dashboard written to {path}; open {url}")
    meta: dict[str, Any] = {"open": dg.MetadataValue.url(url)}
    kpis = latest_kpis(context.instance)
    if kpis:
        meta["kpis"] = dg.MetadataValue.md(kpi_markdown(kpis))
    meta["path"] = dg.MetadataValue.path(str(path))
    meta["size_kb"] = dg.MetadataValue.int(round(path.stat().st_size / 1024))
    return dg.MaterializeResult(metadata=meta)
