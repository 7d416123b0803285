"""Hiro's v3 cursor paging, as `src/datastore/v3/pg-store-v3.ts` implements it.

Kept apart from the chain so that the exact algorithm can be checked against the API's own
test fixtures (microblock transactions at sequence 0, which the generated Nakamoto chain
never has) and served, unchanged, over the generated chain.

A position is `(block_height, microblock_sequence, tx_index)`; rows are ordered by it,
newest first. A cursor is inclusive (`<=`) and `H:0:0` means "the top of block H" unless a
transaction sits at exactly `(H, 0, 0)`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

I32_MAX = 2_147_483_647  # microblock_sequence of anchored (and every Nakamoto) transaction
MAX_TX_INDEX = 0x7FFF  # tx_index is a smallint column
Position = tuple[int, int, int]


class Positions(Protocol):
    """Canonical transaction positions, ascending, as indices `start <= k < stop`."""

    start: int
    stop: int

    def position(self, k: int) -> Position: ...

    def count_le(self, pos: Position) -> int:
        """The index just past the last row with position <= pos (within start..stop)."""
        ...


@dataclass
class ListPositions:
    """Positions given explicitly (fixtures); `rows` must be sorted ascending."""

    rows: Sequence[Position]

    def __post_init__(self) -> None:
        self.start = 0
        self.stop = len(self.rows)

    def position(self, k: int) -> Position:
        return self.rows[k]

    def count_le(self, pos: Position) -> int:
        return bisect.bisect_right(self.rows, pos)


def encode(pos: Position) -> str:
    return f"{pos[0]}:{pos[1]}:{pos[2]}"


def parse(cursor: str) -> Position:
    """A cursor that already matched `^[0-9]+:[0-9]+:[0-9]+$`."""
    h, m, i = (int(x) for x in cursor.split(":"))
    return h, m, i


def resolve(cursor: str, positions: Positions) -> Position:
    """`H:0:0` becomes `H:I32_MAX:MAX_TX_INDEX` unless a row sits at exactly (H, 0, 0)."""
    pos = parse(cursor)
    if pos[1] != 0 or pos[2] != 0:
        return pos
    k = positions.count_le(pos)
    if k > positions.start and positions.position(k - 1) == pos:
        return pos
    return pos[0], I32_MAX, MAX_TX_INDEX


@dataclass(frozen=True)
class CursorPage:
    """Row indices of one page (newest first) and its three cursors."""

    indices: list[int]
    next: str | None
    previous: str | None
    current: str | None


def cursor_page(positions: Positions, limit: int, cursor: str | None) -> CursorPage:
    """`LIMIT limit + 1` below the cursor, newest first; `previous` is the start of the
    newer page (the `limit`-th newer row, or the newest one)."""
    lo, top = positions.start, positions.stop
    hi = positions.count_le(resolve(cursor, positions)) if cursor else top
    hi = max(lo, min(hi, top))
    first = hi - 1
    last = max(hi - limit, lo)
    indices = list(range(first, last - 1, -1)) if hi > lo else []
    nxt = encode(positions.position(last - 1)) if indices and last - 1 >= lo else None
    current = encode(positions.position(first)) if indices else None
    previous = None
    if indices and hi < top:
        previous = encode(positions.position(min(first + limit, top - 1)))
    return CursorPage(indices, nxt, previous, current)
