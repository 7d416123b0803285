"""The ledger turned into coverage figures: the one place that does it, in Python for a
run's span (the runner, status, checks, CLI) and in SQL per UTC day (the metrics build).

Coverage is judged on `[lower, upper]` in inclusive unix seconds, normally
`[max(target, chain start), head - 1]`: the open head window is never sealed, and the
hour fetched below the target (so that the seed's own test, MIN(block_time) <= target,
holds) is not counted. Windows never overlap, so final and provisional seconds add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from stx_pipeline.backfill.planner import covered_seconds


@dataclass(frozen=True)
class LedgerCoverage:
    lower: int
    upper: int
    final_seconds: int
    provisional_seconds: int
    windows_final: int
    windows_provisional: int
    windows_partial: int
    expected_rows: int  # the API totals of the sealed windows
    loaded_rows: int

    @property
    def span_seconds(self) -> int:
        return max(self.upper - self.lower + 1, 0)

    @property
    def sealed_seconds(self) -> int:
        return self.final_seconds + self.provisional_seconds

    @property
    def missing_seconds(self) -> int:
        return max(self.span_seconds - self.sealed_seconds, 0)

    @property
    def complete(self) -> bool:
        """Every second of the span is in a sealed window (final or provisional)."""
        return self.span_seconds > 0 and self.missing_seconds == 0

    @property
    def windows_sealed(self) -> int:
        return self.windows_final + self.windows_provisional

    @property
    def windows_total(self) -> int:
        return self.windows_sealed + self.windows_partial

    def _percent(self, seconds: int) -> float:
        return 100.0 * seconds / self.span_seconds if self.span_seconds else 0.0

    @property
    def sealed_percent(self) -> float:
        """Share of the span fetched and verified against the API's totals."""
        return self._percent(self.sealed_seconds) if self.span_seconds else 100.0

    @property
    def final_percent(self) -> float:
        """Share of the span that the chain can no longer change."""
        return self._percent(self.final_seconds)

    @property
    def provisional_percent(self) -> float:
        """Share sealed but still within reach of reorgs and late timestamps."""
        return self._percent(self.provisional_seconds)


def ledger_coverage(con: duckdb.DuckDBPyConnection, lower: int, upper: int) -> LedgerCoverage:
    """Coverage of `[lower, upper]` by the ledger as committed on `con`."""
    rows = con.execute(
        "SELECT epoch(window_start)::BIGINT, epoch(window_end)::BIGINT, status, final,"
        " coalesce(expected, 0), loaded FROM coverage_ledger"
        " WHERE window_end >= to_timestamp(?) AND window_start <= to_timestamp(?)",
        [lower, upper],
    ).fetchall()
    final = [(int(s), int(e)) for s, e, st, fin, *_ in rows if st == "sealed" and fin]
    provisional = [(int(s), int(e)) for s, e, st, fin, *_ in rows if st == "sealed" and not fin]
    sealed_rows = [r for r in rows if r[2] == "sealed"]
    return LedgerCoverage(
        lower=lower,
        upper=upper,
        final_seconds=covered_seconds(lower, upper, final) if upper >= lower else 0,
        provisional_seconds=covered_seconds(lower, upper, provisional) if upper >= lower else 0,
        windows_final=len(final),
        windows_provisional=len(provisional),
        windows_partial=len(rows) - len(sealed_rows),
        expected_rows=sum(int(r[4]) for r in sealed_rows),
        loaded_rows=sum(int(r[5]) for r in sealed_rows),
    )


def judged_lower(con: duckdb.DuckDBPyConnection, target_ts: int) -> int:
    """`max(target, chain start)`: a target before the first transaction is the chain start."""
    genesis = con.execute(
        "SELECT value FROM pipeline_meta WHERE key = 'genesis_burn_time'"
    ).fetchone()
    return max(target_ts, int(genesis[0])) if genesis else target_ts


# --- per UTC day, in SQL (metrics_backfill_health, the metrics' partial days) ----------


def sealed_islands_sql(ledger: str, as_of_literal: str) -> str:
    """A query: the sealed windows of `ledger` merged into disjoint islands `(s, e)` of
    half-open epoch-second ranges [s, e) (inclusive window_end + 1 s, so back-to-back
    windows touch and merge). Windows ending after `as_of_literal` (a SQL TIMESTAMPTZ
    expression, possibly NULL = no cut-off) are left out."""
    return f"""
        WITH w AS (
            SELECT floor(epoch(window_start))::BIGINT AS s,
                   floor(epoch(window_end))::BIGINT + 1 AS e
            FROM {ledger}
            WHERE status = 'sealed'
              AND ({as_of_literal} IS NULL OR window_end <= {as_of_literal})
        ), o AS (
            SELECT s, e, max(e) OVER (ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING
                                                      AND 1 PRECEDING) AS prev_e
            FROM w
        ), g AS (
            SELECT s, e, sum(CASE WHEN prev_e IS NULL OR s > prev_e THEN 1 ELSE 0 END)
                         OVER (ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS grp
            FROM o
        )
        SELECT min(s) AS s, max(e) AS e FROM g GROUP BY grp
    """


def seconds_per_day_sql(days: str, islands: str, ledger: str) -> str:
    """A query: for each `day` (a DATE, UTC) of `days`, `covered_seconds` (sealed, from
    `islands` of `sealed_islands_sql`) and `final_seconds` (sealed and final windows of
    `ledger`; windows never overlap, so a plain sum of overlaps is exact)."""
    return f"""
        WITH d AS (
            SELECT day, epoch(day)::BIGINT AS ds, epoch(day)::BIGINT + 86400 AS de FROM {days}
        ), c AS (
            -- FILTER, not coalesce: least()/greatest() skip NULLs, so an unmatched day
            -- would otherwise count as fully covered.
            SELECT d.day, coalesce(sum(least(i.e, d.de) - greatest(i.s, d.ds))
                                       FILTER (WHERE i.s IS NOT NULL), 0)::BIGINT
                          AS covered_seconds
            FROM d LEFT JOIN {islands} i ON i.s < d.de AND i.e > d.ds
            GROUP BY d.day
        ), f AS (
            SELECT d.day, coalesce(sum(least(epoch(w.window_end)::BIGINT + 1, d.de)
                                       - greatest(epoch(w.window_start)::BIGINT, d.ds))
                                   FILTER (WHERE w.window_start IS NOT NULL), 0)::BIGINT
                       AS final_seconds
            FROM d LEFT JOIN {ledger} w
              ON w.status = 'sealed' AND w.final
             AND epoch(w.window_start) < d.de AND epoch(w.window_end) + 1 > d.ds
            GROUP BY d.day
        )
        SELECT c.day, c.covered_seconds, f.final_seconds FROM c JOIN f USING (day)
    """


# --- problems of the sealed span (the `no_gaps` check) -------------------------------


def ledger_windows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Ledger rows as unix-second windows, oldest first."""
    rows = con.execute(
        """
        SELECT epoch(window_start)::BIGINT, epoch(window_end)::BIGINT, expected, loaded,
               rejected, status
        FROM coverage_ledger ORDER BY window_start, window_end
        """
    ).fetchall()
    keys = ("start", "end", "expected", "loaded", "rejected", "status")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def find_ledger_gaps(windows: list[dict[str, Any]], target_epoch: int) -> dict[str, Any]:
    """Problems of the covered span: from the oldest sealed window at/after the target to
    the newest sealed one. The open head (newer) and the not-yet-reached past (older) are
    the backfill's job, reported by `backfill_complete`, not holes."""
    in_range = [w for w in windows if w["end"] >= target_epoch]
    sealed = [w for w in in_range if w["status"] == "sealed"]
    result: dict[str, Any] = {
        "windows_checked": len(sealed),
        "gaps": [],
        "miscounted": [],
        "unsealed_inside": [],
        "overlaps": 0,
        "gap_seconds": 0,
    }
    if not sealed:
        return result
    lo, hi = sealed[0]["start"], max(w["end"] for w in sealed)
    for w in sealed:
        expected = w["expected"]
        if expected is None or int(w["loaded"]) + int(w["rejected"]) != int(expected):
            result["miscounted"].append(
                f"{_iso(w['start'])}..{_iso(w['end'])}: expected={expected} "
                f"loaded={w['loaded']} rejected={w['rejected']}"
            )
    for w in in_range:
        if w["status"] != "sealed" and w["start"] >= lo and w["end"] <= hi:
            result["unsealed_inside"].append(
                f"{_iso(w['start'])}..{_iso(w['end'])} ({w['status']})"
            )
    covered_to = sealed[0]["end"]
    for w in sealed[1:]:
        if w["start"] > covered_to + 1:
            result["gaps"].append(f"{_iso(covered_to + 1)}..{_iso(w['start'] - 1)}")
            result["gap_seconds"] += w["start"] - covered_to - 1
        elif w["start"] <= covered_to:
            result["overlaps"] += 1
        covered_to = max(covered_to, w["end"])
    return result


def count_gap_problems(found: dict[str, Any], claims_complete: bool) -> int:
    """Miscounted sealed windows always count; holes only once the backfill claims complete.

    While a backfill is in progress its concurrent workers leave partial windows and
    not-yet-carved gaps between sealed ones: that is pending work (reported by
    `backfill_complete`), not damage. Once a run reports `complete`, any hole is a defect.
    """
    problems = len(found["miscounted"])
    if claims_complete:
        problems += len(found["gaps"]) + len(found["unsealed_inside"])
    return problems
