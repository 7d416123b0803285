"""Is the history healthy: complete, and its newest `block_time` within the freshness SLA.

Pure Python (no Dagster): `stx-pipeline status --check` (cron, systemd, an uptime monitor)
and the Dagster `freshness_sensor` judge with the same functions, so the two never
disagree about what "stale" means.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stx_pipeline import settings


def sla_hours(value: str | None = None) -> float:
    """`value`, else `$STX_PIPELINE_FRESH_HOURS` (default 6); SettingError if malformed."""
    if value is not None and value.strip():
        return float(settings.parse_value("STX_PIPELINE_FRESH_HOURS", value))
    return settings.current().fresh_hours


def as_utc(value: Any) -> datetime | None:
    """A datetime, an ISO string (the status file) or unix seconds, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Freshness:
    """The newest `block_time` against the SLA at one moment."""

    newest: datetime | None
    sla_hours: float
    now: datetime

    @property
    def lag_hours(self) -> float | None:
        if self.newest is None:
            return None
        return (self.now - self.newest).total_seconds() / 3600

    @property
    def fresh(self) -> bool:
        lag = self.lag_hours
        return lag is not None and lag <= self.sla_hours

    def describe(self) -> str:
        if self.newest is None:
            return "no transactions loaded"
        return (
            f"newest block_time is {self.lag_hours:.2f} h old "
            f"({self.newest.isoformat(timespec='seconds')}; SLA {self.sla_hours:g} h)"
        )


def freshness(newest: Any, sla: float | None = None, now: datetime | None = None) -> Freshness:
    return Freshness(
        newest=as_utc(newest),
        sla_hours=sla if sla is not None else sla_hours(),
        now=now or datetime.now(UTC),
    )


def newest_block_time(db_path: str | os.PathLike[str] | None = None,
                      lock_timeout: float = 0.5) -> datetime | None:
    """max(block_time) of canonical rows; raises `WarehouseLocked` while a writer holds the file.

    The connection lasts milliseconds, and a writer that starts meanwhile waits for it
    (`STX_PIPELINE_LOCK_TIMEOUT`), so the sensor never makes a run fail.
    """
    from stx_pipeline.warehouse.db import connect

    con = connect(db_path, read_only=True, lock_timeout=lock_timeout)
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_catalog = current_database()").fetchall()}
        if "transactions" not in tables:
            return None
        row = con.execute("SELECT max(block_time) FROM transactions WHERE canonical").fetchone()
    finally:
        con.close()
    return as_utc(row[0]) if row else None


def health_problems(progress: dict[str, Any], fresh: Freshness) -> list[str]:
    """One line per problem (what is wrong, what to do); empty when healthy."""
    problems: list[str] = []
    status = progress.get("status")
    if status == "no_cache":
        return ["no database yet: run `stx-pipeline backfill` (or start the Dagster daemon)"]
    if status == "empty" or not progress.get("rows"):
        return ["no transactions loaded: run `stx-pipeline backfill`"]
    if not progress.get("complete"):
        missing = progress.get("missing_days")
        detail = f"{float(missing):.2f} days missing" if missing is not None else "not complete"
        problems.append(
            f"incomplete: {detail} of the {progress.get('target_days')}-day target; "
            "let the backfill sensor (or `stx-pipeline backfill`) continue"
        )
    if not fresh.fresh:
        problems.append(
            f"stale: {fresh.describe()}; check that the daemon or cron job runs and the "
            "Hiro API answers"
        )
    return problems
