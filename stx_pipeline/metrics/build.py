"""Build the `metrics_*` tables in the warehouse file and summarise them.

The tables are rebuilt from scratch on every call, all inside ONE transaction, so a
reader sees either the previous complete set or the new complete set, and a retried
step (Dagster retry, a second CLI run) is harmless.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from stx_pipeline.metrics.sql import (
    METRICS_TABLES,
    METRICS_VERSION,
    STAGING_TABLES,
    STAGING_VIEWS,
    metric_statements,
    staging_statements,
)


@dataclass(frozen=True)
class MetricsSummary:
    """Headline values and table sizes of one metrics build (for CLI, Dagster metadata).

    "Latest" values come from `latest_day`: the last day fully covered by the ledger,
    so a half-loaded day never shows up as a fake drop; if no day is complete it is
    the last day of data.
    """

    built_at: datetime
    as_of: datetime | None
    first_day: date | None
    last_day: date | None
    last_complete_day: date | None
    latest_day: date | None
    coverage_mode: str
    dau: int | None
    wau: int | None
    mau: int | None
    new_wallets: int | None
    stickiness: float | None
    fees_stx: float | None
    success_rate: float | None
    coverage_pct: float | None
    final_pct: float | None  # the share of the calendar that reorgs can no longer change
    partial_days: int
    wallets: int
    activated_wallets: int
    canonical_rows: int
    orphaned_rows_ignored: int
    row_counts: dict[str, int] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    @property
    def empty(self) -> bool:
        """True when there is no canonical transaction to measure yet."""
        return self.canonical_rows == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (dates as ISO strings)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            out[key] = value.isoformat() if isinstance(value, date | datetime) else value
        return out

    def to_markdown(self) -> str:
        """A short report for a terminal or Dagster's metadata panel."""

        def fmt(value: Any, pattern: str = "{}") -> str:
            return "n/a" if value is None else pattern.format(value)

        lines = [
            f"**Wallet metrics** — latest complete day {fmt(self.latest_day)} "
            f"(data {fmt(self.first_day)} → {fmt(self.last_day)}, "
            f"coverage from {self.coverage_mode})",
            "",
            "| metric | value |",
            "|---|---|",
            f"| DAU | {fmt(self.dau, '{:,}')} |",
            f"| WAU (trailing 7 days) | {fmt(self.wau, '{:,}')} |",
            f"| MAU (trailing 30 days) | {fmt(self.mau, '{:,}')} |",
            f"| New wallets (nonce 0) | {fmt(self.new_wallets, '{:,}')} |",
            f"| Stickiness DAU/MAU | {fmt(self.stickiness, '{:.1%}')} |",
            f"| Fees (STX) | {fmt(self.fees_stx, '{:,.6f}')} |",
            f"| Success rate | {fmt(self.success_rate, '{:.1%}')} |",
            f"| Coverage | {fmt(self.coverage_pct, '{:.2f} %')} |",
            f"| of which final | {fmt(self.final_pct, '{:.2f} %')} |",
            f"| Partial days | {self.partial_days:,} |",
            f"| Wallets / activated in data | {self.wallets:,} / {self.activated_wallets:,} |",
            f"| Canonical rows (orphaned ignored) | {self.canonical_rows:,} "
            f"({self.orphaned_rows_ignored:,}) |",
            "",
            "| table | rows |",
            "|---|---|",
        ]
        lines += [f"| `{name}` | {count:,} |" for name, count in self.row_counts.items()]
        lines.append("")
        lines.append(f"Built in {self.elapsed_seconds:.2f} s.")
        return "\n".join(lines)


def _as_of_sql(as_of: datetime | None) -> tuple[str, datetime | None]:
    """SQL expression for as_of; a naive datetime is taken as UTC."""
    if as_of is None:
        return "CAST(NULL AS TIMESTAMPTZ)", None
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    as_of = as_of.astimezone(UTC)
    # isoformat() of a datetime is digits and separators only: safe to inline.
    return f"CAST('{as_of.isoformat()}' AS TIMESTAMPTZ)", as_of


def build_wallet_metrics(
    con: duckdb.DuckDBPyConnection, *, as_of: datetime | None = None
) -> MetricsSummary:
    """Recompute every `metrics_*` table from `transactions` and `coverage_ledger`.

    `as_of` ignores transactions with a later `block_time` and ledger windows ending
    later (reproducible historical builds); None uses everything loaded.
    """
    started = time.perf_counter()
    as_of_sql, as_of_utc = _as_of_sql(as_of)
    con.execute("BEGIN TRANSACTION")
    try:
        for stmt in staging_statements(as_of_sql):
            con.execute(stmt)
        for table, stmt in metric_statements():
            if table == "metrics_run":
                con.execute(stmt, [as_of_utc])
            else:
                con.execute(stmt)
        for view in STAGING_VIEWS:
            con.execute(f"DROP VIEW IF EXISTS {view}")
        for tmp in STAGING_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {tmp}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    summary = read_summary(con)
    return replace(summary, elapsed_seconds=round(time.perf_counter() - started, 4))


def metrics_tables_exist(con: duckdb.DuckDBPyConnection) -> bool:
    """True when every metrics table is present and was written by this METRICS_VERSION.

    Tables from an older version count as missing, so readers rebuild them rather
    than trip over a renamed or missing column.
    """
    names = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            " AND table_catalog = current_database()"
        ).fetchall()
    }
    if not all(t in names for t in METRICS_TABLES):
        return False
    try:
        row = con.execute("SELECT max(metrics_version) FROM metrics_run").fetchone()
    except duckdb.BinderException:  # metrics_run from before the version column
        return False
    return row is not None and row[0] == METRICS_VERSION


def read_summary(con: duckdb.DuckDBPyConnection) -> MetricsSummary:
    """Summarise the metrics tables as they are now (no recomputation)."""
    run = con.execute(
        """
        SELECT built_at, as_of, first_day, last_day, last_complete_day, coverage_mode,
               canonical_rows, orphaned_rows_ignored, wallets, activated_wallets, partial_days
        FROM metrics_run
        """
    ).fetchone()
    if run is None:  # pragma: no cover - metrics_run always holds one row
        raise RuntimeError("metrics_run is empty: rebuild the metrics")
    (built_at, as_of, first_day, last_day, last_complete_day, coverage_mode,
     canonical_rows, orphaned, wallets, activated, partial_days) = run
    latest_day = last_complete_day or last_day
    latest = con.execute(
        """
        SELECT dau, wau, mau, new_wallets, stickiness, fees_stx, success_rate
        FROM metrics_daily_activity WHERE day = ?
        """,
        [latest_day],
    ).fetchone()
    dau = wau = mau = new_wallets = None
    stickiness = fees_stx = success_rate = None
    if latest is not None and canonical_rows:
        dau, wau, mau, new_wallets, stickiness, fees_stx, success_rate = latest
    coverage_pct = final_pct = None
    if coverage_mode == "ledger":
        coverage_pct, final_pct = con.execute(
            "SELECT 100.0 * sum(covered_seconds) / (count(*) * 86400),"
            " 100.0 * sum(final_seconds) / (count(*) * 86400) FROM metrics_backfill_health"
        ).fetchone()
    row_counts = {
        t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in METRICS_TABLES
    }
    return MetricsSummary(
        built_at=built_at,
        as_of=as_of,
        first_day=first_day,
        last_day=last_day,
        last_complete_day=last_complete_day,
        latest_day=latest_day,
        coverage_mode=coverage_mode,
        dau=dau,
        wau=wau,
        mau=mau,
        new_wallets=new_wallets,
        stickiness=stickiness,
        fees_stx=float(fees_stx) if fees_stx is not None else None,
        success_rate=success_rate,
        coverage_pct=float(coverage_pct) if coverage_pct is not None else None,
        final_pct=float(final_pct) if final_pct is not None else None,
        partial_days=int(partial_days or 0),
        wallets=int(wallets or 0),
        activated_wallets=int(activated or 0),
        canonical_rows=int(canonical_rows or 0),
        orphaned_rows_ignored=int(orphaned or 0),
        row_counts=row_counts,
    )
