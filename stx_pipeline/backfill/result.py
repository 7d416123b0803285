"""What one backfill run reports: why it stopped and what it did."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class StopReason(StrEnum):
    TARGET_REACHED = "target_reached"
    START_OF_CHAIN = "start_of_chain"
    MAX_PAGES = "max_pages"
    NO_PROGRESS = "no_progress"
    API_ERROR = "api_error"
    RATE_LIMIT_EXHAUSTED = "rate_limit_exhausted"
    # every window sealed, but reorgs kept changing the provisional span in every settle pass
    CHAIN_UNSETTLED = "chain_unsettled"

    @property
    def complete(self) -> bool:
        return self in (StopReason.TARGET_REACHED, StopReason.START_OF_CHAIN)

    @property
    def resumable(self) -> bool:
        """An early stop that the next run simply continues (CLI exit 75)."""
        return self in (
            StopReason.MAX_PAGES,
            StopReason.NO_PROGRESS,
            StopReason.RATE_LIMIT_EXHAUSTED,
            StopReason.CHAIN_UNSETTLED,
        )


@dataclass
class BackfillResult:
    stop_reason: StopReason
    complete: bool
    run_id: str = ""
    source: str = ""  # the transaction list the run ended on: "v1" or "v3"
    target_days: float = 0.0
    target_time: datetime | None = None
    head_burn_time: datetime | None = None
    pages: int = 0
    requests: int = 0
    retries: int = 0
    responses_429: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_orphaned: int = 0
    rows_rejected: int = 0
    rows_total: int = 0
    oldest_block_time: datetime | None = None
    newest_block_time: datetime | None = None
    windows_sealed: int = 0
    windows_sealed_total: int = 0
    windows_total: int = 0
    windows_final: int = 0  # sealed windows the chain can no longer change
    windows_provisional: int = 0  # sealed, but still within reach of reorgs
    windows_verified: int = 0  # provisional windows this run re-checked and confirmed
    windows_reopened: int = 0  # ... and those the chain had changed: fetched again
    coverage_percent: float = 0.0  # sealed share of [target, head): final + provisional
    coverage_final_percent: float = 0.0  # final share of [target, head)
    finality_horizon: datetime | None = None
    settle_passes: int = 0
    missing_days: float = 0.0
    elapsed_seconds: float = 0.0
    rows_per_second: float = 0.0
    eta_seconds: float | None = None
    error: str | None = None
    retry_after: datetime | None = None
    faults_by_kind: dict[str, int] = field(default_factory=dict)
    # This month's API quota as the gateway last announced it (None: not announced), and
    # the requests the run's plan was estimated to need (backfill/quota.py).
    quota_limit: int | None = None
    quota_left: int | None = None
    quota_used: int | None = None
    quota_reset_at: datetime | None = None
    quota_needed: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: datetimes as ISO strings, the enum as its value."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
            elif isinstance(value, StopReason):
                out[key] = value.value
            else:
                out[key] = value
        return out
