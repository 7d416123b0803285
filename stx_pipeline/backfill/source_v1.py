"""The v1 source: `/extended/v1/tx` filtered by burn time, paged by offset.

A window is paged in ascending burn-time order until the list's `total`; the writer seals it
when the table holds `total` rows for it. One `limit=1` request re-verifies a span of
provisional windows (its total and highest row). Deprecated since API v9; a 410 on it makes
the run continue on v3 (runner.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from stx_pipeline.backfill.planner import Window
from stx_pipeline.backfill.run_state import Head, Outcome, RunState
from stx_pipeline.backfill.writer import PageBatch, VerifyBatch, WindowWriter, to_ts
from stx_pipeline.hiro.page import TxPage
from stx_pipeline.hiro.rows import map_page

log = logging.getLogger("stx_pipeline.backfill")

PAGE_LIMIT = 50
SPLIT_ROWS = 5000  # a window with more rows is fetched as two halves
VERIFY_GROUP_WINDOWS = 64  # contiguous provisional windows verified by one request


class V1Source:
    name = "v1"
    verify_group_windows = VERIFY_GROUP_WINDOWS
    requests_to_start_window = 1  # before a window gets anywhere: its first page

    def probe_head(self, state: RunState) -> Head | None:
        newest = state.client.list_transactions(limit=1)
        state.budget.count()
        if not newest.results:
            return None
        top = newest.results[0]
        height = top.get("burn_block_height")
        return Head(int(top["burn_block_time"]), int(height) if isinstance(height, int) else None,
                    int(newest.total), max(newest.elapsed_seconds, 0.0))

    def find_genesis(self, state: RunState, wanted_lower: int) -> tuple[int, bool]:
        oldest = state.client.list_transactions(limit=1, order="asc")
        state.budget.count()
        if not oldest.results:
            return state.head_ts, True
        return int(oldest.results[0]["burn_block_time"]), True

    def prepare(self, state: RunState, oldest: int) -> None:
        return None

    def density_hint(self, state: RunState) -> float | None:
        return None

    @staticmethod
    def _page(state: RunState, **params: Any) -> TxPage | None:
        if not state.budget.take():
            return None
        return state.client.list_transactions(limit=PAGE_LIMIT, **params)

    def fetch_window(self, window: Window, writer: WindowWriter, state: RunState) -> Outcome:
        """Page one window in ascending order until `total`; each page goes to the writer."""
        offset = window.next_offset
        full = offset == 0
        expected: int | None = None
        ingested_at = datetime.now(UTC)
        while not state.stop.is_set():
            params: dict[str, Any] = {
                "offset": offset,
                "order": "asc",
                "sort_by": "burn_block_time",
                "start_time": window.start,
            }
            if window.end is not None:
                params["end_time"] = window.end
            page = self._page(state, **params)
            if page is None:
                return Outcome.BUDGET
            total = int(page.total)
            if expected is None:
                expected = total
                if (
                    full
                    and not window.in_ledger
                    and window.end is not None
                    and total > SPLIT_ROWS
                    and window.end > window.start
                ):
                    return Outcome.SPLIT
                if state.planner is not None and window.end is not None:
                    state.planner.observe(window, total)
            elif total != expected and window.end is not None:
                log.warning(
                    "window %s..%s changed while paging (total %d -> %d); restarting it",
                    to_ts(window.start).isoformat(), to_ts(window.end).isoformat(),
                    expected, total,
                )
                return Outcome.UNSTABLE
            rows, rejected = map_page(page.results, ingested_at)
            for bad in rejected:
                log.warning("rejected row %s: %s", bad.tx_id or "<no tx_id>", bad.reason)
            if window.end is None:
                expected = total  # the head grows while we page it
            last = offset + PAGE_LIMIT >= total or not page.results
            if not page.results and offset < total and window.end is not None:
                return Outcome.UNSTABLE
            batch = PageBatch(window, offset, total, rows, rejected, last, full,
                              horizon=state.horizon, head=state.head_ts)
            if not writer.put(batch, state.stop):
                return Outcome.STOPPED
            if last:
                return Outcome.DONE
            offset += PAGE_LIMIT
        return Outcome.STOPPED

    def verify(self, members: tuple[Window, ...], writer: WindowWriter,
               state: RunState) -> Outcome:
        """One request: the `total` and highest row of contiguous sealed windows, for the
        writer to compare with the table."""
        if not state.budget.take():
            return Outcome.BUDGET
        window = Window(members[0].start, members[-1].end, in_ledger=True)
        assert window.end is not None
        page = state.client.list_transactions(limit=1, start_time=window.start,
                                              end_time=window.end)
        top = page.results[0] if page.results else None
        check = VerifyBatch(
            window=window,
            total=int(page.total),
            top_tx_id=top.get("tx_id") if isinstance(top, dict) else None,
            top_block_hash=top.get("block_hash") if isinstance(top, dict) else None,
            top_index_block_hash=top.get("index_block_hash") if isinstance(top, dict) else None,
            horizon=state.horizon,
            head=state.head_ts,
            members=members,
        )
        if not writer.put(check, state.stop):
            return Outcome.STOPPED
        return Outcome.VERIFIED
