"""The API's tenures (burn blocks with Stacks blocks) by burn time: what a v3 window holds.

`/extended/v2/burn-blocks` pages by offset from the newest, ~30 tenures a request, each with
its burn time, the hashes of its Stacks blocks and its `total_tx_count`. Every transaction
of a tenure carries that tenure's burn time, so the tenures whose burn time lies in a window
are exactly the window's transactions, counted by the API independently of our walk.

The list is read in runs of pages, each page overlapping the one above by one row, so a
run has no gap; a page that starts below the previous one's last row (the list moved: new
burn blocks push rows to larger offsets) is read again from further up. A pass lists from
the head down as the newest-first windows need it, and jumps by offset to a window far
below (a hole in an old file), instead of listing everything above it. Reading down, the
pages a window still needs (estimated from the tenures' spacing, a few at most) are fetched
at once, since offsets are independent requests, and then taken in order: each must overlap
the run above it, and the first that does not (the list moved between the requests) ends
the batch and is read again from further up, as a single page would be.

A window is known completely once a run of pages spans it with margin on both sides: its
top 11 tenures timed after the window's end + slack (or the run starts at the head) and its
lowest 11 before the window's start - slack (or the run reached the chain's first tenure).
Bitcoin's rules (a header above the median of the previous 11, at most 2 h ahead) keep every
tenure timed inside the window between those two.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from stx_pipeline.backfill.finality import FinalityRules
from stx_pipeline.backfill.run_state import RunState
from stx_pipeline.backfill.tenure_seal import TenureCount, TenureExpectation
from stx_pipeline.hiro.v3 import (
    MAX_BLOCK_LIMIT,
    BlockNotFound,
    BurnBlock,
    get_block,
    list_burn_blocks,
)

# Burn times are not monotonic (a header may run 2 h ahead, or sit just above the median of
# the previous 11): list this far beyond a span so that no tenure timed inside it is missed.
LISTING_SLACK_SECONDS = FinalityRules().span_seconds
EDGE_TENURES = 11  # Bitcoin's median-time-past window
JUMP_BEYOND_SECONDS = 6 * 3600  # an estimate this far off is tried again
JUMP_BEYOND_PAGES = 2  # read on to a window this many pages away, jump to one further
MAX_LISTING_STEPS = 50
PARALLEL_PAGES = 4  # listing pages fetched at once when reading down to a window


class TenureIndex:
    """The tenures listed so far in this fill pass; safe to share between workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._list_lock = threading.Lock()  # one worker lists at a time
        self._tenures: dict[int, BurnBlock] = {}
        self._runs: list[_PageRun] = []
        # Stacks height of each tenure's newest block in the run from the head: one block
        # looked up per pass, the rest counted down the listing (every Stacks block is in
        # exactly one tenure)
        self._top_height: dict[int, int] = {}
        self._spacing = 600.0  # seconds between listed tenures (Bitcoin's target), refined

    def begin_pass(self) -> None:
        """Forget the listing: each fill pass reads the chain afresh."""
        with self._list_lock, self._lock:
            self._tenures = {}
            self._runs = []
            self._top_height = {}

    # -- reading -----------------------------------------------------------------------
    def in_window(self, start: int, end: int | None) -> list[BurnBlock]:
        """Tenures with burn time in `[start, end]` (`end` None: from `start` on), newest
        first."""
        with self._lock:
            found = [bb for bb in self._tenures.values() if bb.burn_block_time >= start
                     and (end is None or bb.burn_block_time <= end)]
        return sorted(found, key=lambda bb: bb.burn_block_height, reverse=True)

    def expectation(self, start: int, end: int) -> TenureExpectation:
        return {bb.burn_block_height: TenureCount.of(bb) for bb in self.in_window(start, end)}

    def top_height(self, state: RunState, burn_height: int) -> int | None:
        """The Stacks height of a listed tenure's newest block, counted down the run of
        pages from the head after one block lookup per pass; None outside that run. A
        hint: a wrong one only makes the walk longer (too high) or the seal fail (too
        low), and a retry looks the block up itself."""
        with self._list_lock:
            top = next((r for r in self._runs if r.open_top), None)
            if top is None or not top.lo <= burn_height <= top.hi:
                return None
            if not self._top_height:
                newest = self._tenures[top.hi]
                if not newest.stacks_blocks or not state.budget.take():
                    return None
                try:
                    block = get_block(state.client, newest.stacks_blocks[0])
                except BlockNotFound:
                    return None
                with self._lock:
                    self._top_height[top.hi] = block.height
                    self._count_heights(top)
            with self._lock:
                return self._top_height.get(burn_height)

    def genesis(self) -> int | None:
        """The chain's first burn time, once a run of pages reached it."""
        with self._lock:
            ends = [r.lo for r in self._runs if r.bottom_reached]
            if not ends:
                return None
            return self._tenures[min(ends)].burn_block_time

    def density(self) -> float | None:
        """Transactions per second of burn time over what is listed."""
        with self._lock:
            if len(self._tenures) < 2:
                return None
            times = [bb.burn_block_time for bb in self._tenures.values()]
            txs = sum(bb.total_tx_count for bb in self._tenures.values())
        span = max(times) - min(times)
        return txs / span if span > 0 else None

    # -- listing -----------------------------------------------------------------------
    def ensure_covered(self, state: RunState, start: int, end: int | None) -> bool:
        """List until every tenure timed in `[start, end]` is known; False when the request
        budget ran out."""
        with self._list_lock:
            for _ in range(MAX_LISTING_STEPS):
                if self._covered(start, end):
                    return True
                step, run = self._next_step(state, start, end)
                if step == "down":
                    ok = self._extend_down(state, run, self._pages_to(run, start))
                elif step == "up":
                    ok = self._extend_up(state, run)
                else:
                    ok = self._jump(state, end)
                if not ok:
                    return False
            # a chain that keeps moving the list: fall back to reading down from the head
            while not self._covered(start, end):
                top = next((r for r in self._runs if r.open_top), None)
                if top is None:
                    if not self._jump(state, None):
                        return False
                elif not self._extend_down(state, top):
                    return False
            return True

    def _times(self, run: _PageRun) -> list[int]:
        """Burn times of the run's tenures, newest first."""
        return [self._tenures[h].burn_block_time for h in sorted(
            (h for h in self._tenures if run.lo <= h <= run.hi), reverse=True)]

    def _top_ok(self, run: _PageRun, end: int | None, times: list[int]) -> bool:
        if run.open_top:
            return True
        return end is not None and len(times) >= EDGE_TENURES and min(
            times[:EDGE_TENURES]) > end + LISTING_SLACK_SECONDS

    def _bottom_ok(self, run: _PageRun, start: int, times: list[int]) -> bool:
        if run.bottom_reached:
            return True
        return len(times) >= EDGE_TENURES and max(
            times[-EDGE_TENURES:]) < start - LISTING_SLACK_SECONDS

    def _covered(self, start: int, end: int | None) -> bool:
        for run in self._runs:
            times = self._times(run)
            if self._top_ok(run, end, times) and self._bottom_ok(run, start, times):
                return True
        return False

    def _next_step(self, state: RunState, start: int, end: int | None
                   ) -> tuple[str, _PageRun | None]:
        """Read on from a run that already reaches into or near the window, else jump."""
        aim = self._jump_offset(state, end)
        near = JUMP_BEYOND_PAGES * MAX_BLOCK_LIMIT
        for run in self._runs:
            times = self._times(run)
            top_ok, bottom_ok = self._top_ok(run, end, times), self._bottom_ok(run, start, times)
            if top_ok and not bottom_ok and aim <= run.next_offset + near:
                return "down", run
            if bottom_ok and not top_ok and aim >= run.top_offset - near:
                return "up", run
            if not top_ok and not bottom_ok and run.top_offset - near <= aim <= (
                    run.next_offset + near):
                return "down", run
        return "jump", None

    def _jump_offset(self, state: RunState, end: int | None) -> int:
        """Where the list holds tenures timed a little after `end` (0: the head)."""
        if end is None or state.head is None:
            return 0
        aim = end + LISTING_SLACK_SECONDS + EDGE_TENURES * self._spacing
        return max(0, int((state.head.burn_time - aim) / self._spacing))

    def _jump(self, state: RunState, end: int | None) -> bool:
        """Start a run of pages at the offset estimated for a little above `end` (offset 0
        for the head), from the head's burn time and the tenures' spacing seen so far."""
        offset = self._jump_offset(state, end)
        aim: float | None = None
        if end is not None and state.head is not None:
            aim = end + LISTING_SLACK_SECONDS + EDGE_TENURES * self._spacing
        page: list[BurnBlock] = []
        for _ in range(8):
            if not state.budget.take():
                return False
            page = list_burn_blocks(state.client, limit=MAX_BLOCK_LIMIT, offset=offset)
            if not page and offset > 0:  # beyond the chain's first tenure
                offset //= 2
                continue
            if page and offset >= MAX_BLOCK_LIMIT and state.head is not None:
                seen = (state.head.burn_time - page[0].burn_block_time) / offset
                self._spacing = max(seen, 60.0)
            if (aim is not None and page and page[-1].burn_block_time - aim
                    > JUMP_BEYOND_SECONDS):  # far too high: estimate again
                offset = max(offset + 1, int((state.head.burn_time - aim) / self._spacing)
                             if state.head is not None else offset + 1)
                continue
            break
        if not page:
            return True
        run = _PageRun(hi=page[0].burn_block_height, lo=page[-1].burn_block_height,
                       top_offset=offset, next_offset=offset + len(page) - 1,
                       open_top=offset == 0, bottom_reached=len(page) < MAX_BLOCK_LIMIT)
        self._add(run, page)
        return True

    def _pages_to(self, run: _PageRun | None, start: int) -> int:
        """Pages below `run` likely needed until its bottom edge lies before `start`."""
        if run is None:
            return 1
        times = self._times(run)
        if not times:
            return 1
        aim = start - LISTING_SLACK_SECONDS - EDGE_TENURES * self._spacing
        tenures = max(0.0, (min(times[-EDGE_TENURES:]) - aim) / self._spacing)
        return max(1, min(PARALLEL_PAGES, math.ceil(tenures / (MAX_BLOCK_LIMIT - 1))))

    def _extend_down(self, state: RunState, run: _PageRun, pages: int = 1) -> bool:
        """The next `pages` pages below a run, fetched at once and taken in order while
        each overlaps the run's lowest row; a page that does not is read again further up."""
        for _ in range(8):
            offsets = []
            for i in range(pages):
                if not state.budget.take():
                    break
                offsets.append(run.next_offset + i * (MAX_BLOCK_LIMIT - 1))
            if not offsets:
                return False
            for offset, page in zip(offsets, self._fetch_pages(state, offsets), strict=True):
                if run.next_offset != offset or not any(r is run for r in self._runs):
                    return True  # the run merged with one below: the caller looks again
                if not page:
                    run.bottom_reached = True
                    return True
                first = page[0].burn_block_height
                if first < run.lo and run.next_offset > 0:
                    # rows moved up (the chain grew at the head): re-read from further up
                    run.next_offset = max(0, run.next_offset - (run.lo - first))
                    break
                run.next_offset += len(page) - 1  # overlap by one row
                run.bottom_reached = len(page) < MAX_BLOCK_LIMIT
                self._add(run, page)
                if run.bottom_reached:
                    return True
            else:
                return True
            pages = 1
        return True

    @staticmethod
    def _fetch_pages(state: RunState, offsets: list[int]) -> list[list[BurnBlock]]:
        """Listing pages at `offsets`, concurrently (the client's limiter paces them)."""
        if len(offsets) == 1:
            return [list_burn_blocks(state.client, limit=MAX_BLOCK_LIMIT, offset=offsets[0])]
        with ThreadPoolExecutor(max_workers=len(offsets),
                                thread_name_prefix="listing") as pool:
            futures = [pool.submit(list_burn_blocks, state.client, limit=MAX_BLOCK_LIMIT,
                                   offset=o) for o in offsets]
            return [f.result() for f in futures]

    def _extend_up(self, state: RunState, run: _PageRun) -> bool:
        """The page above a run (overlapping its highest row)."""
        offset = max(0, run.top_offset - (MAX_BLOCK_LIMIT - 1))
        for _ in range(8):
            if not state.budget.take():
                return False
            page = list_burn_blocks(state.client, limit=MAX_BLOCK_LIMIT, offset=offset)
            if page and page[-1].burn_block_height > run.hi:
                offset += 1  # no overlap (rows moved down the list): read further down
                continue
            if not page:
                return True
            run.top_offset = offset
            run.open_top = run.open_top or offset == 0
            self._add(run, page)
            return True
        return True

    def _add(self, run: _PageRun, page: list[BurnBlock]) -> None:
        with self._lock:
            for bb in page:
                self._tenures[bb.burn_block_height] = bb
            run.hi = max(run.hi, page[0].burn_block_height)
            run.lo = min(run.lo, page[-1].burn_block_height)
            if not any(r is run for r in self._runs):
                self._runs.append(run)
            self._merge()
            top = next((r for r in self._runs if r.open_top), None)
            if top is not None:
                self._count_heights(top)

    def _merge(self) -> None:
        """Runs that share a tenure are one run (both are gap-free)."""
        self._runs.sort(key=lambda r: r.hi, reverse=True)
        merged: list[_PageRun] = []
        for run in self._runs:
            above = merged[-1] if merged else None
            if above is not None and run.hi >= above.lo:
                if run.lo < above.lo:
                    above.lo, above.next_offset = run.lo, run.next_offset
                    above.bottom_reached = run.bottom_reached
                above.open_top = above.open_top or run.open_top
                continue
            merged.append(run)
        self._runs = merged

    def _count_heights(self, run: _PageRun) -> None:
        """Stacks heights down the run from the head, from the one block looked up."""
        if not self._top_height:
            return
        lowest = min(self._top_height)
        for h in sorted((h for h in self._tenures if run.lo <= h < lowest), reverse=True):
            self._top_height[h] = self._top_height[lowest] - len(
                self._tenures[lowest].stacks_blocks)
            lowest = h

    def refresh_span(self, state: RunState, start: int, end: int | None) -> bool:
        """List again the tenures around one window (a retry: the chain may have changed);
        False when the request budget ran out."""
        with self._lock:
            near = [bb.burn_block_height for bb in self._tenures.values()
                    if bb.burn_block_time >= start - LISTING_SLACK_SECONDS
                    and (end is None or bb.burn_block_time <= end + LISTING_SLACK_SECONDS)]
            newest = max(self._tenures, default=None)
        if not near or newest is None:
            return True
        lo, hi = min(near), max(near)
        found = _list_span(state, lo, hi, newest)
        if found is None:
            return False
        if found:
            a, z = min(found), max(found)
            with self._lock:
                for h in [h for h in self._tenures if a <= h <= z]:
                    del self._tenures[h]
                self._tenures.update(found)
        return True


@dataclass(eq=False)
class _PageRun:
    """Burn heights `lo..hi` read as overlapping pages, so without a gap."""

    hi: int
    lo: int
    top_offset: int  # where its highest page starts
    next_offset: int  # where the page below starts
    open_top: bool  # read from offset 0: nothing newer is missing
    bottom_reached: bool  # the chain's first tenure is in it


def _list_span(state: RunState, lo: int, hi: int, newest_known: int
               ) -> dict[int, BurnBlock] | None:
    """Burn blocks `hi` down to `lo`, jumping there by offset; None: out of budget."""
    offset = max(0, newest_known - hi)
    found: dict[int, BurnBlock] = {}
    prev_last: int | None = None
    while True:
        if not state.budget.take():
            return None
        page = list_burn_blocks(state.client, limit=MAX_BLOCK_LIMIT, offset=offset)
        if not page:
            return found
        first = page[0].burn_block_height
        if prev_last is None and first < hi and offset > 0:
            offset = max(0, offset - (hi - first))  # overshot: heights without Stacks blocks
            continue
        if prev_last is not None and first < prev_last and offset > 0:
            offset = max(0, offset - (prev_last - first))  # rows moved up: re-read, no gap
            continue
        for bb in page:
            found[bb.burn_block_height] = bb
        if len(page) < MAX_BLOCK_LIMIT or page[-1].burn_block_height <= lo:
            return found
        prev_last = page[-1].burn_block_height
        offset += len(page) - 1
