"""A running backfill, told to Dagster: an `AssetObservation` and a readable log line.

The core reports a `Progress` after every batch of windows; this forwards one every few
seconds (`STX_PIPELINE_PROGRESS_SECONDS`, default 10). The observations carry the same
labels as the materialization (`coverage_percent`, `rows_total`), so the asset's Plots
tab draws one line per figure through the runs and the final results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import dagster as dg

from stx_pipeline.backfill import Progress
from stx_pipeline.hiro.client import HiroClient


@dataclass(frozen=True)
class Figure:
    """One numeric field of the core's `Progress`, as it appears in Dagster."""

    attr: str  # attribute of `Progress`
    label: str  # metadata label (shared with the materialization where both have it)
    digits: int | None  # rounding of a float; None for counts


# A new field of `Progress` is one line here.
PROGRESS_FIGURES: tuple[Figure, ...] = (
    Figure("coverage_percent", "coverage_percent", 2),
    Figure("coverage_final_percent", "coverage_final_percent", 2),
    Figure("rows_inserted", "rows_new", None),
    Figure("rows_per_second", "rows_per_second", 1),
    Figure("windows_done", "windows_done", None),
    Figure("windows_planned", "windows_planned", None),
    Figure("pages", "pages", None),
)


def _value(progress: Progress, figure: Figure) -> int | float:
    raw = getattr(progress, figure.attr)
    return int(raw) if figure.digits is None else round(float(raw), figure.digits)


def format_duration(seconds: float | None) -> str:
    """`ETA` text: '45 s', '12 min', '3.5 h'; 'unknown' before a rate is known."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class RateLimitState:
    """What the client's rate limiter is doing, for people: pacing, or backing off a 429."""

    rpm: float | None
    responses_429: int
    new_429: int
    waited_seconds: float

    @classmethod
    def of(cls, client: HiroClient, seen_429: int) -> RateLimitState:
        stats = client.stats.snapshot()
        total = int(stats.get("responses_429", 0))
        return cls(
            rpm=client.limiter.current_rpm,
            responses_429=total,
            new_429=max(0, total - seen_429),
            waited_seconds=float(stats.get("rate_limit_wait_seconds", 0.0)),
        )

    def describe(self) -> str:
        if self.new_429:
            return f"backing off: {self.new_429} × HTTP 429 since the last report"
        if self.rpm:
            return f"paced at {self.rpm:.0f} requests/min"
        return "no client-side limit"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def progress_line(
    progress: Progress, rows_total: int, target_days: int, rate_limit: RateLimitState
) -> str:
    """The run log's progress line, readable without knowing the core's fields."""
    return (
        f"backfill {progress.coverage_percent:.1f} % of the {target_days}-day target"
        f" ({progress.coverage_final_percent:.1f} % final) · "
        f"{rows_total:,} rows (+{progress.rows_inserted:,} this run, "
        f"{progress.rows_per_second:,.0f} rows/s) · ETA {format_duration(progress.eta_seconds)}"
        f" · {progress.phase} · {_plural(progress.windows_done, 'window')} fetched · "
        f"{progress.pages:,} pages · {rate_limit.describe()}"
    )


def progress_metadata(
    progress: Progress, rows_total: int, target_days: int, rate_limit: RateLimitState
) -> dict[str, Any]:
    """Metadata of one progress observation: the line first, then plottable numbers."""
    meta: dict[str, Any] = {
        "progress": dg.MetadataValue.text(
            progress_line(progress, rows_total, target_days, rate_limit)
        ),
        "phase": dg.MetadataValue.text(progress.phase),
        "rows_total": dg.MetadataValue.int(rows_total),
    }
    for figure in PROGRESS_FIGURES:
        value = _value(progress, figure)
        meta[figure.label] = (
            dg.MetadataValue.int(value) if figure.digits is None else dg.MetadataValue.float(value)
        )
    if progress.eta_seconds is not None:
        meta["eta_minutes"] = dg.MetadataValue.float(round(progress.eta_seconds / 60, 1))
    meta["rate_limit"] = dg.MetadataValue.text(rate_limit.describe())
    meta["responses_429"] = dg.MetadataValue.int(rate_limit.responses_429)
    if rate_limit.rpm:
        meta["rate_limit_rpm"] = dg.MetadataValue.float(round(rate_limit.rpm, 1))
    meta["target_days"] = dg.MetadataValue.int(target_days)
    return meta


class ProgressReporter:
    """`on_progress` for the core: logs and observes at most every `every_seconds`."""

    def __init__(
        self,
        context: dg.AssetExecutionContext,
        *,
        client: HiroClient,
        target_days: int,
        every_seconds: float,
    ) -> None:
        self._context = context
        self._client = client
        self._target_days = target_days
        self._every = every_seconds
        self._last = float("-inf")
        self._seen_429 = int(client.stats.snapshot().get("responses_429", 0))
        self.reported = 0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        rate_limit = RateLimitState.of(self._client, self._seen_429)
        self._seen_429 = rate_limit.responses_429
        meta = progress_metadata(progress, progress.rows_total, self._target_days, rate_limit)
        self._context.log.info(meta["progress"].value)
        self._context.log_event(
            dg.AssetObservation(asset_key=self._context.asset_key, metadata=meta)
        )
        self.reported += 1
