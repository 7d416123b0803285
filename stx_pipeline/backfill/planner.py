"""Which time windows still need fetching, newest first, sized to the chain's density.

Coverage is a set of sealed, closed windows on `burn_block_time` (inclusive unix
seconds). Everything in `[lower, upper]` not covered is a gap; a gap is carved into
windows lazily, so that the size of each follows the density seen so far and the
partial last page of a window stays a small share of the requests.

Near the end of a run the windows shrink: a window is paged sequentially (one request
per page latency), so if the last windows were full-size, one or two workers would page
them alone while the rate limit sits idle. Carving what remains into `workers` equal
parts keeps every worker busy until the last page (benchmarks/, docs/performance.md).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """`[start, end]` inclusive unix seconds; `end=None` is the open head window."""

    start: int
    end: int | None
    next_offset: int = 0
    # Known to the ledger already (resumed, re-verified or retried): keep its bounds.
    in_ledger: bool = False
    # Where a v3 walk of this window resumes (backfill/source_v3.py); None: from its top.
    cursor: str | None = None

    @property
    def is_head(self) -> bool:
        return self.end is None

    @property
    def seconds(self) -> int:
        return 0 if self.end is None else self.end - self.start + 1

    def split(self) -> tuple[Window, Window]:
        """Two halves, newer first; only for closed windows longer than one second."""
        assert self.end is not None and self.end > self.start
        mid = (self.start + self.end) // 2
        return Window(mid + 1, self.end), Window(self.start, mid)


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive intervals; touching intervals ([a,b],[b+1,c]) merge too."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def uncovered(lower: int, upper: int, covered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive gaps of `[lower, upper]` not in `covered`, newest first."""
    if upper < lower:
        return []
    gaps: list[tuple[int, int]] = []
    cursor = lower
    for start, end in merge_intervals(covered):
        if end < cursor:
            continue
        if start > upper:
            break
        if start > cursor:
            gaps.append((cursor, min(start - 1, upper)))
        cursor = max(cursor, end + 1)
        if cursor > upper:
            break
    if cursor <= upper:
        gaps.append((cursor, upper))
    return list(reversed(gaps))


def covered_seconds(lower: int, upper: int, covered: Iterable[tuple[int, int]]) -> int:
    total = upper - lower + 1
    if total <= 0:
        return 0
    return total - sum(e - s + 1 for s, e in uncovered(lower, upper, covered))


class WindowPlanner:
    """Hands out windows newest first: resumable partial windows and carved gaps.

    Thread-safe, but meant to be driven by the run's coordinating thread.
    """

    def __init__(
        self,
        gaps: list[tuple[int, int]],
        partial: list[Window],
        *,
        density: float,
        rows_per_window: int = 1000,
        min_seconds: int = 60,
        max_seconds: int = 86_400,
        boundary: int | None = None,
        workers: int = 1,
        min_tail_rows: int = 250,
    ) -> None:
        self._lock = threading.Lock()
        items: list[tuple[int, int, Window | None]] = [(e, s, None) for s, e in gaps]
        items += [(w.end or 0, w.start, w) for w in partial]
        items.sort(key=lambda it: it[0], reverse=True)
        self._items = items
        self._density = max(density, 1e-6)
        self.rows_per_window = rows_per_window
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        # No window straddles this instant (the start of the re-verify span), so that
        # re-verifying the newest windows next run costs a few pages, not a big window.
        self.boundary = boundary
        # Concurrent fetchers: near the end, windows shrink to a share of what remains.
        self.workers = max(1, workers)
        self.min_tail_rows = min_tail_rows

    @property
    def density(self) -> float:
        return self._density

    def window_seconds(self, remaining_seconds: int | None = None) -> int:
        """Seconds of the next carved window: ~`rows_per_window` rows at the current density,
        or, once less than `workers` windows' worth remains, an equal share per worker (but
        not under `min_tail_rows` rows), so that all workers finish together."""
        rows = float(self.rows_per_window)
        if remaining_seconds is not None and self.workers > 1:
            share = remaining_seconds * self._density / self.workers
            rows = min(rows, max(share, float(self.min_tail_rows)))
        seconds = int(rows / self._density)
        return max(self.min_seconds, min(self.max_seconds, seconds))

    def next(self) -> Window | None:
        with self._lock:
            if not self._items:
                return None
            end, start, window = self._items.pop(0)
            if window is not None:
                return window
            size = self.window_seconds(self._remaining_locked() + end - start + 1)
            carved_start = max(start, end - size + 1)
            if self.boundary is not None and carved_start < self.boundary <= end:
                carved_start = max(start, self.boundary)
            if carved_start > start:
                self._items.insert(0, (carved_start - 1, start, None))
            return Window(carved_start, end)

    def push_front(self, *windows: Window) -> None:
        """Put windows back at the head of the queue (a split, or a retry)."""
        with self._lock:
            for window in reversed(windows):
                self._items.insert(0, (window.end or 0, window.start, window))

    def observe(self, window: Window, total: int) -> None:
        """Follow the density of what was just fetched (EWMA of rows per second)."""
        if window.end is None or window.seconds <= 0:
            return
        seen = max(total, 0.5) / window.seconds
        with self._lock:
            self._density = 0.7 * self._density + 0.3 * seen

    def remaining_seconds(self) -> int:
        with self._lock:
            return self._remaining_locked()

    def _remaining_locked(self) -> int:
        return sum(
            (w.seconds if w is not None else end - start + 1) for end, start, w in self._items
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
