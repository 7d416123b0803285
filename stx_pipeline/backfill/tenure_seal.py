"""The v3 seal rule: the rows stored for a window against the API's own count per tenure.

A v3 walk proves nothing about itself (a reorg makes its cursor continue silently down the
new fork), so a window walked through `/extended/v3/transactions` is sealed only against an
independent answer: `/extended/v2/burn-blocks`, which gives every tenure's `total_tx_count`
and the hashes of its Stacks blocks. A window holds whole tenures (all transactions of a
tenure share its burn time), so the comparison is exact per tenure: same count, no row in a
tenure the API does not list for the window, no row in a block the tenure does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb

from stx_pipeline.hiro.v3 import BurnBlock


@dataclass(frozen=True)
class TenureCount:
    """What the API says of one tenure: its transaction count and its Stacks blocks."""

    tx_count: int
    block_hashes: frozenset[str]

    @classmethod
    def of(cls, bb: BurnBlock) -> TenureCount:
        return cls(bb.total_tx_count, frozenset(bb.stacks_blocks))


# burn block height -> the API's count for it
TenureExpectation = Mapping[int, TenureCount]


@dataclass(frozen=True)
class StoredTenure:
    rows: int
    block_hashes: frozenset[str]


def stored_by_tenure(
    con: duckdb.DuckDBPyConnection, start: object, end: object
) -> dict[int | None, StoredTenure]:
    """Canonical rows with burn time in `[start, end]` per burn height (None: unknown,
    possible in files migrated from before the column was filled)."""
    rows = con.execute(
        "SELECT burn_block_height, count(*), list(DISTINCT block_hash) FROM transactions"
        " WHERE canonical AND burn_block_time BETWEEN ? AND ? GROUP BY burn_block_height",
        [start, end],
    ).fetchall()
    return {(int(h) if h is not None else None): StoredTenure(int(n), frozenset(hashes or ()))
            for h, n, hashes in rows}


def tenure_problem(expected: TenureExpectation, stored: Mapping[int | None, StoredTenure],
                   rejected: int) -> str | None:
    """None when the stored rows are exactly the API's tenures, else why not (one line)."""
    want = sum(t.tx_count for t in expected.values())
    have = sum(s.rows for s in stored.values())
    if have + rejected != want:
        return f"{have} rows + {rejected} rejected != the API's {want} in its tenures"
    for height, s in stored.items():
        if height is None:
            continue
        api = expected.get(height)
        if api is None:
            return f"{s.rows} row(s) in tenure {height}, which the API does not list here"
        if not s.block_hashes <= api.block_hashes:
            return f"rows of tenure {height} in blocks the API does not list for it (a fork)"
        if not rejected and None not in stored and s.rows != api.tx_count:
            return f"tenure {height}: {s.rows} rows, the API counts {api.tx_count}"
    return None
