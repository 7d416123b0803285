"""Plan the month: will this month's API quota cover the requests this run needs?

Why: Hiro's free tier allows 150K requests a month, and a 180-day mainnet backfill can
need more. Saying so before the run (and stopping cleanly at the reserve, which the
client does) beats finding out from a wall of 429s. The estimate comes from the plan's
uncovered seconds and the ledger's density; the quota from the gateway's
`x-ratelimit-{limit,remaining}-stacks-month` headers, which the client has seen by the
time the plan exists (the head probe is a request).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from stx_pipeline.warehouse.meta import put_meta

log = logging.getLogger("stx_pipeline.backfill")

META_KEY = "hiro_quota"  # pipeline_meta: the last quota seen, for status and the dashboard


@dataclass(frozen=True)
class QuotaPlan:
    """Requests the plan needs against what is left of this month's quota."""

    needed: int
    limit: int | None
    remaining: int | None
    reserve: int
    reset_at: datetime | None
    reset_known: bool

    @property
    def usable(self) -> int | None:
        return None if self.remaining is None else max(self.remaining - self.reserve, 0)

    @property
    def covers(self) -> bool:
        return self.usable is None or self.usable >= self.needed

    @property
    def stop_share(self) -> float | None:
        """Share of the plan the quota covers, when it does not cover all of it."""
        if self.covers or self.usable is None or self.needed <= 0:
            return None
        return self.usable / self.needed

    def message(self) -> str:
        """One line: what the plan needs, what is left, and what will happen."""
        needed = f"needs ~{_short(self.needed)} requests"
        if self.remaining is None:
            return f"quota: {needed}; the server announces no monthly quota"
        left = f"{_short(self.remaining)} left this month"
        if self.covers:
            return f"quota: {needed}, {left}: enough"
        reset = self.reset_at.strftime("%Y-%m-%d %H:%M UTC") if self.reset_at else "the reset"
        assumed = "" if self.reset_known else " (assumed)"
        return (f"quota: {needed}, {left}: will stop near {100 * (self.stop_share or 0):.0f}%"
                f" and resume after the reset ({reset}{assumed})")


def estimate_requests(seconds: float, density: float, rows_per_window: int,
                      page_limit: int = 50) -> int:
    """Requests to page `seconds` of chain at `density` rows/s in windows of ~rows_per_window.

    Every window costs its full pages plus one partial page; the head window adds one.
    """
    rows = max(seconds, 0.0) * max(density, 0.0)
    windows = max(1, math.ceil(rows / max(rows_per_window, 1)))
    return math.ceil(rows / page_limit) + windows + 1


def plan_quota(client: Any, remaining_seconds: float, density: float, rows_per_window: int,
               ) -> QuotaPlan:
    """The plan against the client's last-seen quota; logs the one line (warning if short)."""
    limiter = getattr(client, "limiter", None)
    quota = getattr(limiter, "quota", None)
    needed = estimate_requests(remaining_seconds, density, rows_per_window)
    reserve = limiter.quota_reserve() if limiter is not None and quota is not None else 0
    plan = QuotaPlan(
        needed=needed,
        limit=quota.limit if quota else None,
        remaining=quota.remaining if quota else None,
        reserve=reserve,
        reset_at=quota.reset_at if quota else None,
        reset_known=bool(quota and quota.reset_known),
    )
    if quota is not None:
        (log.info if plan.covers else log.warning)("%s", plan.message())
    return plan


def result_fields(client: Any, plan: QuotaPlan | None) -> dict[str, Any]:
    """BackfillResult's quota fields: the quota as last seen (after the run) and the need."""
    limiter = getattr(client, "limiter", None)
    quota = getattr(limiter, "quota", None)
    return {
        "quota_limit": quota.limit if quota else None,
        "quota_left": quota.remaining if quota else None,
        "quota_used": quota.used if quota else None,
        "quota_reset_at": quota.reset_at if quota else None,
        "quota_needed": plan.needed if plan else None,
    }


def record(con: duckdb.DuckDBPyConnection, fields: dict[str, Any], at: datetime) -> None:
    """Keep the last quota seen in pipeline_meta (status and the dashboard read it)."""
    if fields.get("quota_left") is None:
        return
    value = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()}
    value["observed_at"] = at.isoformat()
    put_meta(con, META_KEY, json.dumps(value))


def read(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The last quota recorded, or None (never announced, or an older file)."""
    try:
        row = con.execute("SELECT value FROM pipeline_meta WHERE key = ?", [META_KEY]).fetchone()
    except duckdb.Error:
        return None
    if not row:
        return None
    try:
        value = json.loads(row[0])
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _short(n: int) -> str:
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1_000:
        return f"{n / 1000:.1f}k"
    return str(n)
