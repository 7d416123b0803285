"""Comparing the warehouse (the DuckDB file or the lake) with the simulator's ground truth:
the proof of "exactly once"."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb


def _open(db_path: str | Path | None) -> duckdb.DuckDBPyConnection:
    """The DuckDB file, or (None) the warehouse STX_PIPELINE_WAREHOUSE names, read-only."""
    if db_path is None:
        from stx_pipeline.warehouse.db import connect

        return connect(read_only=True)
    return duckdb.connect(str(db_path), read_only=True)


@dataclass
class Comparison:
    expected: set[str]
    loaded: list[str]
    orphaned_in_db: set[str]

    @property
    def missing(self) -> set[str]:
        return self.expected - set(self.loaded)

    @property
    def extra(self) -> set[str]:
        return set(self.loaded) - self.expected

    @property
    def duplicates(self) -> list[str]:
        return [tx for tx, n in Counter(self.loaded).items() if n > 1]

    def describe(self) -> str:
        return (
            f"expected {len(self.expected)}, loaded {len(self.loaded)}, missing"
            f" {len(self.missing)}, extra {len(self.extra)}, duplicates {len(self.duplicates)}"
        )



def query(db_path: str | Path, sql: str) -> list[tuple]:
    """The rows of one read-only query on a DuckDB file."""
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()

def compare_with_truth(sim, db_path: str | Path | None, start_time: int,
                       end_time: int | None = None) -> Comparison:
    """Canonical rows in the DB with burn time in [start, end] vs the simulator's truth."""
    truth = sim.ground_truth(start_time=start_time, end_time=end_time)
    expected = {t["tx_id"] for t in truth if t["canonical"]}
    con = _open(db_path)
    try:
        params: list[object] = [start_time]
        where = "burn_block_time >= to_timestamp(?)"
        if end_time is not None:
            where += " AND burn_block_time <= to_timestamp(?)"
            params.append(end_time)
        loaded = [r[0] for r in con.execute(
            f"SELECT tx_id FROM transactions WHERE canonical AND {where}", params).fetchall()]
        orphaned = {r[0] for r in con.execute(
            f"SELECT tx_id FROM transactions WHERE NOT canonical AND {where}", params
        ).fetchall()}
    finally:
        con.close()
    return Comparison(expected, loaded, orphaned)


def assert_exact(sim, db_path: str | Path | None, start_time: int,
                 end_time: int | None = None) -> int:
    cmp = compare_with_truth(sim, db_path, start_time, end_time)
    assert not cmp.missing and not cmp.extra and not cmp.duplicates, cmp.describe()
    assert len(cmp.loaded) > 0
    return len(cmp.loaded)


def assert_ledger_consistent(db_path: str | Path | None) -> None:
    """Every sealed window: rows in the table + rejected == expected; no overlaps."""
    con = _open(db_path)
    try:
        bad = con.execute(
            """
            SELECT l.window_start, l.expected, l.rejected,
                   (SELECT count(*) FROM transactions t WHERE t.canonical
                      AND t.burn_block_time BETWEEN l.window_start AND l.window_end) AS n
            FROM coverage_ledger l WHERE l.status = 'sealed'
            """
        ).fetchall()
        mismatched = [r for r in bad if r[3] + r[2] != r[1]]
        assert not mismatched, f"sealed windows disagree with the table: {mismatched[:5]}"
        overlaps = con.execute(
            """
            SELECT count(*) FROM (
              SELECT window_start, window_end,
                     lag(window_end) OVER (ORDER BY window_start) AS prev_end
              FROM coverage_ledger) WHERE prev_end >= window_start
            """
        ).fetchone()[0]
        assert overlaps == 0, f"{overlaps} overlapping ledger windows"
        dups = con.execute(
            "SELECT count(*) - count(DISTINCT tx_id) FROM transactions"
        ).fetchone()[0]
        assert dups == 0
    finally:
        con.close()
