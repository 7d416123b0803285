"""Where a run is: the typed snapshot for progress bars and the status file."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from stx_pipeline.backfill.run_state import RunState
from stx_pipeline.backfill.writer import WriterCounters


@dataclass
class Progress:
    """A live snapshot for progress bars and the status file."""

    phase: str
    windows_done: int
    windows_planned: int
    rows_inserted: int
    pages: int
    rows_per_second: float
    eta_seconds: float | None
    coverage_percent: float  # sealed (final + provisional) share of [target, head)
    coverage_final_percent: float = 0.0  # the share the chain can no longer change
    rows_total: int = 0  # canonical rows in the file (before the run + inserted so far)
    source: str = ""  # the transaction list being read: "v1" or "v3"


@dataclass
class ProgressTracker:
    """The run's own counts behind `Progress` (the writer keeps the rest)."""

    phase: str = "starting"
    source: str = ""
    windows_done: int = 0
    planned_fixed: int = 0  # a fixed estimate of the plan's size, so progress does not jump
    inflight: int = 0
    inflight_seconds: int = 0  # closed windows handed to workers, not committed yet
    rows_before: int = 0
    final_seconds_before: int = 0
    started: float = field(default_factory=time.monotonic)

    def snapshot(self, state: RunState, counters: WriterCounters) -> Progress:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = counters.rows_inserted / elapsed
        planner = state.planner
        eta = None
        coverage = final = 0.0
        if planner is not None:
            # windows in flight are not covered until their rows are committed
            remaining = planner.remaining_seconds() + self.inflight_seconds
            eta = remaining * planner.density / rate if rate > 0 else None
            span = max(state.head_ts - state.lower, 1)
            coverage = 100.0 * (1 - min(remaining, span) / span)
            final_seconds = self.final_seconds_before + counters.final_seconds_added
            final = min(100.0 * final_seconds / span, coverage)
        return Progress(
            phase=self.phase,
            windows_done=self.windows_done,
            windows_planned=max(self.planned_fixed, self.windows_done + self.inflight),
            rows_inserted=counters.rows_inserted,
            pages=state.budget.used,
            rows_per_second=rate,
            eta_seconds=eta,
            coverage_percent=coverage,
            coverage_final_percent=final,
            rows_total=self.rows_before + counters.rows_inserted,
            source=self.source,
        )
