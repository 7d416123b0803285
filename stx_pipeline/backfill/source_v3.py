"""The v3 source: `/extended/v3/transactions` walked with cursors, window by window.

A window `[start, end]` of burn time holds whole tenures: those whose burn time lies in it
(`TenureIndex`, from `/extended/v2/burn-blocks`). Its walk starts at the top of the newest
Stacks block of its newest tenure (`H:2147483647:32767`, one `/extended/v2/blocks/{hash}`
request to learn H) and follows `cursor.next` down until the rows drop below its oldest
tenure; rows of other windows met on the way (burn times are not monotonic) are left to
them. Windows are independent, so the run's workers walk several at once: each is a shard,
and its cursor after every page is committed with that page's rows (writer.py), so a crash
resumes at the cursor and nothing is fetched twice.

The walk proves nothing about itself, so a window is sealed only against the API's count
and block hashes per tenure (tenure_seal.py), and re-verified the same way from one fresh
listing per settle pass, with no request per window. A reorg changes a tenure's block hashes
(and usually its count): the window is reopened and walked again in full, and rows the API
no longer returns for it become `canonical = false`, as under v1.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from stx_pipeline.backfill.planner import Window
from stx_pipeline.backfill.run_state import Head, Outcome, RunState
from stx_pipeline.backfill.tenure_seal import TenureCount
from stx_pipeline.backfill.tenures import TenureIndex
from stx_pipeline.backfill.writer import PageBatch, TenureVerifyBatch, WindowWriter
from stx_pipeline.hiro.summary_rows import map_summary_page
from stx_pipeline.hiro.v3 import (
    MAX_TX_LIMIT,
    BlockNotFound,
    get_block,
    list_transaction_summaries,
    top_of_block,
)

log = logging.getLogger("stx_pipeline.backfill")

SPLIT_ROWS = 5000  # as for v1: a window with more rows is walked as two halves
VERIFY_GROUP_WINDOWS = 512  # verification costs no request per window: large groups


class V3Source:
    name = "v3"
    verify_group_windows = VERIFY_GROUP_WINDOWS
    requests_to_start_window = 6  # before a window's first rows: listing its tenures

    def __init__(self) -> None:
        self.index = TenureIndex()
        self._genesis: int | None = None  # the chain's start, once a listing reached it

    def probe_head(self, state: RunState) -> Head | None:
        page = list_transaction_summaries(state.client, limit=1)
        state.budget.count()
        if not page.results:
            return None
        burn = page.results[0]["bitcoin_block"]
        return Head(int(burn["time"]), int(burn["height"]), int(page.total),
                    max(page.elapsed_seconds, 0.0))

    def find_genesis(self, state: RunState, wanted_lower: int) -> tuple[int, bool]:
        """Not looked up: the listing finds the chain's start if the windows reach it
        (`known_genesis`), and windows before it are sealed empty without a walk."""
        return wanted_lower, False

    def known_genesis(self) -> int | None:
        return self.index.genesis() or self._genesis

    def prepare(self, state: RunState, oldest: int) -> None:
        """A fresh listing for the pass, read as the windows need it."""
        self._genesis = self.index.genesis() or self._genesis
        self.index.begin_pass()

    def density_hint(self, state: RunState) -> float | None:
        """From the newest tenures (the first page of the listing, needed anyway)."""
        self.index.ensure_covered(state, state.head_ts, None)
        return self.index.density()

    def fetch_window(self, window: Window, writer: WindowWriter, state: RunState) -> Outcome:
        if not self.index.ensure_covered(state, window.start, window.end):
            return Outcome.BUDGET
        if (window.in_ledger and window.cursor is None and window.next_offset == 0
                and not self.index.refresh_span(state, window.start, window.end)):
            # a retry or a reopened window: the chain may have changed since it was listed
            return Outcome.BUDGET
        tenures = self.index.in_window(window.start, window.end)
        expectation = {bb.burn_block_height: TenureCount.of(bb) for bb in tenures}
        expected = sum(t.tx_count for t in expectation.values())
        full = window.cursor is None
        if window.end is not None:
            if (full and not window.in_ledger and expected > SPLIT_ROWS
                    and window.end > window.start):
                return Outcome.SPLIT
            if state.planner is not None:
                state.planner.observe(window, expected)
        closed = {"tenures": expectation} if window.end is not None else {}
        if not tenures and window.end is not None:
            # no tenure has its burn time here: sealed empty with no request
            batch = PageBatch(window, 0, 0, [], [], True, True, horizon=state.horizon,
                              head=state.head_ts, source=self.name, **closed)
            return Outcome.DONE if writer.put(batch, state.stop) else Outcome.STOPPED
        floor = min((bb.burn_block_height for bb in tenures), default=None)
        if window.end is None and state.head is not None and state.head.burn_height is not None:
            floor = min(floor, state.head.burn_height) if floor is not None else (
                state.head.burn_height)
        cursor = window.cursor
        if cursor is None and window.end is not None:
            height = None if window.in_ledger else self.index.top_height(
                state, tenures[0].burn_block_height)
            if height is None:  # a retry looks the block up: the hint may be what failed
                if not state.budget.take():
                    return Outcome.BUDGET
                try:
                    height = get_block(state.client, tenures[0].stacks_blocks[0]).height
                except BlockNotFound:
                    return Outcome.UNSTABLE  # the tenure changed since it was listed
            cursor = top_of_block(height)
        ingested_at = datetime.now(UTC)
        while not state.stop.is_set():
            if not state.budget.take():
                return Outcome.BUDGET
            page = list_transaction_summaries(state.client, limit=MAX_TX_LIMIT, cursor=cursor)
            inside, below = _inside(page.results, window, floor)
            done = below or page.next is None
            rows, rejected = map_summary_page(inside, ingested_at)
            for bad in rejected:
                log.warning("rejected row %s: %s", bad.tx_id or "<no tx_id>", bad.reason)
            batch = PageBatch(window, 0, expected, rows, rejected, done, full,
                              horizon=state.horizon, head=state.head_ts,
                              cursor=None if done else page.next, source=self.name, **closed)
            if not writer.put(batch, state.stop):
                return Outcome.STOPPED
            if done:
                return Outcome.DONE
            cursor = page.next
        return Outcome.STOPPED

    def verify(self, members: tuple[Window, ...], writer: WindowWriter,
               state: RunState) -> Outcome:
        if not self.index.ensure_covered(state, members[0].start, members[-1].end):
            return Outcome.BUDGET
        expected = {}
        for m in members:
            assert m.end is not None
            expected[m.start] = self.index.expectation(m.start, m.end)
        check = TenureVerifyBatch(members, expected, horizon=state.horizon, head=state.head_ts)
        return Outcome.VERIFIED if writer.put(check, state.stop) else Outcome.STOPPED


def _burn(summary: Any) -> tuple[int | None, int | None]:
    """`(bitcoin_block.height, bitcoin_block.time)` of a summary, None where malformed."""
    burn = summary.get("bitcoin_block") if isinstance(summary, dict) else None
    if not isinstance(burn, dict):
        return None, None
    out: list[int | None] = []
    for key in ("height", "time"):
        try:
            out.append(int(str(burn[key])))
        except (KeyError, TypeError, ValueError):
            out.append(None)
    return out[0], out[1]


def _inside(results: list[Any], window: Window, floor: int | None
            ) -> tuple[list[Any], bool]:
    """The page's summaries with burn time in the window, and whether the walk went below
    the window's oldest tenure (`floor`). A malformed summary takes its neighbours' place:
    rows come in chain order."""
    parsed = [_burn(s) for s in results]
    inside: list[Any] = []
    height = when = None
    for i, (s, (h, t)) in enumerate(zip(results, parsed, strict=True)):
        if h is None or t is None:
            later = next(((hh, tt) for hh, tt in parsed[i + 1:] if hh is not None
                          and tt is not None), (None, None))
            h = h if h is not None else (height if height is not None else later[0])
            t = t if t is not None else (when if when is not None else later[1])
        if h is not None and floor is not None and h < floor:
            return inside, True
        height, when = h, t
        if t is not None and t >= window.start and (window.end is None or t <= window.end):
            inside.append(s)
    return inside, False
