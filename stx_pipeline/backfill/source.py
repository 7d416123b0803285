"""What a transaction source must do for the backfill, whichever API route it reads.

The run works on burn-time windows and the one coverage ledger whatever the source: a sealed
window means "every transaction whose burn time lies in it is stored exactly once", checked
against an answer of the API that the fetch itself did not produce. The sources differ only
in how they fetch a window and what they seal it against:

- v1 (`source_v1.py`): `/extended/v1/tx` filtered by burn time, paged by offset, sealed
  against the list's `total`;
- v3 (`source_v3.py`): `/extended/v3/transactions` walked with a cursor over the window's
  Stacks heights, sealed against `/extended/v2/burn-blocks` (count and block hashes per
  tenure; every transaction of a tenure carries that tenure's burn time).

So finality, settle passes, coverage figures, checks, audit and status never ask which
source filled a window, and a file filled by one continues under the other.
"""

from __future__ import annotations

from typing import Protocol

from stx_pipeline.backfill.planner import Window
from stx_pipeline.backfill.run_state import Head, Outcome, RunState
from stx_pipeline.backfill.writer import WindowWriter

SOURCES = ("v1", "v3")


class WindowSource(Protocol):
    name: str  # "v1" or "v3"
    verify_group_windows: int  # contiguous provisional windows verified by one unit of work
    requests_to_start_window: int  # about what a window costs before its first rows

    def probe_head(self, state: RunState) -> Head | None:
        """The newest transaction (None: an empty chain)."""
        ...

    def find_genesis(self, state: RunState, wanted_lower: int) -> tuple[int, bool]:
        """The chain's first burn time, or, when finding it would cost more than the run
        needs, a time at or below `wanted_lower`; and whether it is the real start."""
        ...

    def prepare(self, state: RunState, oldest: int) -> None:
        """Before a fill pass that touches windows back to `oldest` (v3: list tenures)."""
        ...

    def density_hint(self, state: RunState) -> float | None:
        """Transactions per second of burn time, for a file without sealed windows yet."""
        ...

    def fetch_window(self, window: Window, writer: WindowWriter, state: RunState) -> Outcome:
        """Fetch one window (from its resume point) and hand every page to the writer."""
        ...

    def verify(self, members: tuple[Window, ...], writer: WindowWriter,
               state: RunState) -> Outcome:
        """Re-check sealed provisional windows against the API, through the writer."""
        ...
