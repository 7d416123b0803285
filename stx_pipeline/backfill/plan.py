"""A fill pass's plan, read from the ledger: gaps and partial windows to fetch, newest
first, and (in a settle pass) the provisional windows to re-verify. Final windows are never
read again, whichever source sealed them."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import duckdb

from stx_pipeline.backfill.planner import Window, WindowPlanner, uncovered
from stx_pipeline.backfill.run_state import RunState
from stx_pipeline.backfill.source import WindowSource


@dataclass
class FillPlan:
    planner: WindowPlanner
    verify_groups: deque[tuple[Window, ...]]
    size_estimate: int  # windows to fetch or verify, as planned


def plan_pass(
    con: duckdb.DuckDBPyConnection, state: RunState, source: WindowSource, *,
    genesis_ts: int, rows_per_window: int, boundary: int, settle: bool,
) -> FillPlan:
    head_ts, lower = state.head_ts, state.lower
    ledger = con.execute(
        "SELECT epoch(window_start)::BIGINT, epoch(window_end)::BIGINT, status,"
        " next_offset, final, cursor FROM coverage_ledger ORDER BY window_start"
    ).fetchall()
    blocked: list[tuple[int, int]] = []
    partial: list[Window] = []
    verify: list[Window] = []
    for start, end, status, next_offset, final, cursor in ledger:
        if end < lower or start >= head_ts:
            continue
        blocked.append((start, end))
        if status == "sealed":
            if settle and not final:
                verify.append(Window(start, end, in_ledger=True))
        else:
            partial.append(Window(start, end, next_offset=int(next_offset), in_ledger=True,
                                  cursor=cursor))
    gaps = uncovered(lower, head_ts - 1, blocked)
    oldest = min([head_ts] + [s for s, _ in gaps] + [w.start for w in partial + verify])
    source.prepare(state, oldest)
    density = _ledger_density(con) or source.density_hint(state) or _chain_density(
        head_ts, genesis_ts, state.head.total_txs if state.head else 0)
    groups = deque(contiguous_groups(verify, source.verify_group_windows))
    planner = WindowPlanner(gaps, partial, density=density, rows_per_window=rows_per_window,
                            boundary=boundary)
    carved = sum(max(1, math.ceil((e - s + 1) * density / rows_per_window)) for s, e in gaps)
    return FillPlan(planner, groups, 1 + len(partial) + len(groups) + carved)


def _ledger_density(con: duckdb.DuckDBPyConnection) -> float | None:
    """Rows per second of the newest sealed windows."""
    row = con.execute(
        "SELECT sum(expected), sum(epoch(window_end) - epoch(window_start) + 1)"
        " FROM (SELECT * FROM coverage_ledger WHERE status = 'sealed'"
        " ORDER BY window_start DESC LIMIT 24)"
    ).fetchone()
    if row and row[0] and row[1]:
        return float(row[0]) / float(row[1])
    return None


def _chain_density(head_ts: int, genesis_ts: int, total_txs: int) -> float:
    return max(total_txs, 1) / max(head_ts - genesis_ts, 1)


def contiguous_groups(windows: list[Window], limit: int) -> list[tuple[Window, ...]]:
    """Newest first, back-to-back windows in groups of at most `limit` (one unit each)."""
    groups: list[list[Window]] = []
    for w in sorted(windows, key=lambda w: w.start):
        last = groups[-1][-1] if groups else None
        if last is not None and last.end is not None and w.start == last.end + 1 and len(
                groups[-1]) < limit:
            groups[-1].append(w)
        else:
            groups.append([w])
    return [tuple(g) for g in reversed(groups)]
