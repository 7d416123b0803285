"""Audit of sealed history: does the API still agree with what the ledger sealed?

A final window is never read again by a backfill run, because the chain can no longer
change it under the finality rules. Rules are assumptions: a fork deeper than planned, an
indexer that re-imported its database, or a damaged file would leave sealed history wrong
without anyone noticing. The audit asks the API for the `total` (and highest row) of
sealed windows, one `limit=1` request each, and compares them with the table. A window
that disagrees is reopened, so the next run refetches it in full; the result says which
windows and by how many rows, for the alert.

Under the v3 source (the default where the server serves it) the API's view of a window is
its tenures' `total_tx_count` and Stacks block hashes from `/extended/v2/burn-blocks`
(~30 tenures a request, backfill/tenures.py), compared per tenure with the table as the
v3 seal is (backfill/tenure_seal.py); whichever source sealed the window.

The DuckDB file is held only for the two short moments of reading the ledger and of
reopening windows, never while the requests are in flight.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from stx_pipeline import settings
from stx_pipeline.backfill.run_state import RequestBudget, RunState
from stx_pipeline.backfill.source_v3 import V3Source
from stx_pipeline.backfill.tenure_seal import StoredTenure, tenure_problem
from stx_pipeline.backfill.tenures import TenureIndex
from stx_pipeline.backfill.writer import to_ts
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import EndpointGone
from stx_pipeline.hiro.source_choice import resolve_source, source_setting
from stx_pipeline.warehouse.db import connect, open_db, resolve_db_path, writer_lease


@dataclass(frozen=True)
class WindowDrift:
    window_start: datetime
    window_end: datetime
    final: bool
    api_total: int
    stored_rows: int  # canonical rows in the table + rows kept aside as rejected
    reason: str

    @property
    def rows(self) -> int:
        return self.api_total - self.stored_rows


@dataclass
class AuditResult:
    windows_sealed: int
    windows_checked: int
    requests: int
    drifted: list[WindowDrift] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.drifted

    @property
    def rows_drift(self) -> int:
        """Rows the API has beyond the table (negative: the table holds more)."""
        return sum(d.rows for d in self.drifted)

    def summary(self) -> str:
        head = (f"audited {self.windows_checked} of {self.windows_sealed} sealed window(s)"
                f" with {self.requests} request(s)")
        if self.ok:
            return f"{head}: all agree with the API"
        first = self.drifted[0]
        return (
            f"{head}: {len(self.drifted)} drifted ({self.rows_drift:+d} rows), e.g."
            f" {first.window_start.isoformat()}..{first.window_end.isoformat()} ({first.reason});"
            " reopened: the next backfill run refetches them"
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drifted"] = [
            {**asdict(d), "window_start": d.window_start.isoformat(),
             "window_end": d.window_end.isoformat(), "rows": d.rows}
            for d in self.drifted
        ]
        out["rows_drift"] = self.rows_drift
        return out


@dataclass(frozen=True)
class _Stored:
    start: int
    end: int
    final: bool
    rows: int
    top_tx_id: str | None
    top_block_hash: str | None
    rejected_ids: frozenset[str] = frozenset()
    rejected: int = 0  # rows of the window kept aside as malformed
    by_tenure: dict[int | None, StoredTenure] = field(default_factory=dict)


def audit_sealed_history(
    max_days: float = 180,
    sample: int | None = None,
    *,
    db_path: str | None = None,
    client: HiroClient | None = None,
    now: datetime | None = None,
    seed: int | None = None,
    source: str | None = None,
) -> AuditResult:
    """Compare sealed windows of the last `max_days` (all, or a random `sample` of them)
    with the API; reopen those that disagree. `source` as for the backfill (None:
    `$HIRO_SOURCE`, default auto)."""
    if sample is not None and sample < 1:
        raise ValueError(f"sample must be a positive number of windows, got {sample!r}")
    started = time.monotonic()
    path = resolve_db_path(db_path)
    target = int((now or datetime.now(UTC)).timestamp() - max_days * 86400)
    stored = _read_sealed(str(path), target)
    chosen = stored if sample is None or sample >= len(stored) else random.Random(seed).sample(
        stored, sample)
    setting = source_setting(source) if source is not None else settings.current().hiro_source
    own = client is None
    client = client or HiroClient.from_env()
    before = int(client.stats.snapshot().get("requests", 0) or 0)
    try:
        use_v3 = bool(chosen) and resolve_source(client, setting) == "v3"
        try:
            drifted = _audit_v3(client, chosen) if use_v3 else _audit_v1(client, chosen)
        except EndpointGone:  # v1 retired: its replacement gives the same answer
            drifted = _audit_v3(client, chosen)
        requests = int(client.stats.snapshot().get("requests", 0) or 0) - before
    finally:
        if own:
            client.close()
    if drifted:
        _reopen(str(path), drifted)
    return AuditResult(
        windows_sealed=len(stored),
        windows_checked=len(chosen),
        requests=requests,
        drifted=drifted,
        elapsed_seconds=round(time.monotonic() - started, 3),
    )


def _audit_v1(client: HiroClient, chosen: list[_Stored]) -> list[WindowDrift]:
    """One `limit=1` request per window: its total and highest row."""
    drifted: list[WindowDrift] = []
    for window in sorted(chosen, key=lambda w: w.start):
        page = client.list_transactions(limit=1, start_time=window.start,
                                        end_time=window.end)
        reason = _disagreement(window, int(page.total), page.results[:1])
        if reason:
            drifted.append(WindowDrift(
                to_ts(window.start), to_ts(window.end), window.final, int(page.total),
                window.rows, reason))
    return drifted


def _audit_v3(client: HiroClient, chosen: list[_Stored]) -> list[WindowDrift]:
    """The tenures of the windows from `/extended/v2/burn-blocks`, newest first (one run
    of pages where windows are near each other, a jump by offset where they are not)."""
    state = RunState(client=client, budget=RequestBudget(10**9))
    state.head = V3Source().probe_head(state)
    if state.head is None:
        return [WindowDrift(to_ts(w.start), to_ts(w.end), w.final, 0, w.rows,
                            "the API lists no transaction at all") for w in chosen]
    index = TenureIndex()
    drifted: list[WindowDrift] = []
    for window in sorted(chosen, key=lambda w: w.start, reverse=True):
        index.ensure_covered(state, window.start, window.end)
        expected = index.expectation(window.start, window.end)
        reason = tenure_problem(expected, window.by_tenure, window.rejected)
        if reason:
            drifted.append(WindowDrift(
                to_ts(window.start), to_ts(window.end), window.final,
                sum(t.tx_count for t in expected.values()), window.rows, reason))
    return sorted(drifted, key=lambda d: d.window_start)


def _read_sealed(path: str, target: int) -> list[_Stored]:
    con = connect(path, read_only=True)
    try:
        rows = con.execute(
            """
            SELECT epoch(l.window_start)::BIGINT, epoch(l.window_end)::BIGINT, l.final,
                   l.rejected + (SELECT count(*) FROM transactions t WHERE t.canonical
                       AND t.burn_block_time BETWEEN l.window_start AND l.window_end),
                   (SELECT t.tx_id FROM transactions t WHERE t.canonical
                       AND t.burn_block_time BETWEEN l.window_start AND l.window_end
                       ORDER BY t.block_height DESC, t.tx_index DESC LIMIT 1),
                   (SELECT t.block_hash FROM transactions t WHERE t.canonical
                       AND t.burn_block_time BETWEEN l.window_start AND l.window_end
                       ORDER BY t.block_height DESC, t.tx_index DESC LIMIT 1)
            FROM coverage_ledger l
            WHERE l.status = 'sealed' AND l.window_end >= to_timestamp(?)
            ORDER BY l.window_start
            """,
            [target],
        ).fetchall()
        rejected = frozenset(r[0] for r in con.execute(
            "SELECT tx_id FROM rejected_rows WHERE tx_id IS NOT NULL").fetchall())
        aside = dict(con.execute(
            "SELECT epoch(window_start)::BIGINT, rejected FROM coverage_ledger"
            " WHERE status = 'sealed' AND window_end >= to_timestamp(?)", [target]).fetchall())
        tenures: dict[int, dict[int | None, StoredTenure]] = {}
        for start, height, n, hashes in con.execute(
            """
            SELECT epoch(l.window_start)::BIGINT, t.burn_block_height, count(*),
                   list(DISTINCT t.block_hash)
            FROM coverage_ledger l JOIN transactions t ON t.canonical
                AND t.burn_block_time BETWEEN l.window_start AND l.window_end
            WHERE l.status = 'sealed' AND l.window_end >= to_timestamp(?)
            GROUP BY ALL
            """, [target],
        ).fetchall():
            tenures.setdefault(int(start), {})[int(height) if height is not None else None] = (
                StoredTenure(int(n), frozenset(hashes or ())))
    finally:
        con.close()
    return [_Stored(int(s), int(e), bool(f), int(n), tx, bh, rejected,
                    int(aside.get(int(s), 0) or 0), tenures.get(int(s), {}))
            for s, e, f, n, tx, bh in rows]


def _disagreement(window: _Stored, total: int, top: list[dict[str, Any]]) -> str | None:
    if total != window.rows:
        return f"API total {total}, table {window.rows}"
    if top and isinstance(top[0], dict) and window.top_tx_id is not None:
        row = top[0]
        if row.get("tx_id") in window.rejected_ids:
            return None  # the highest row is one we keep aside as malformed: counted above
        if row.get("tx_id") != window.top_tx_id:
            return "another highest transaction"
        if row.get("block_hash") not in (None, window.top_block_hash):
            return "highest transaction in another block (a fork)"
    return None


def _reopen(path: str, drifted: list[WindowDrift]) -> None:
    with writer_lease():  # it writes the ledger: the one-writer rule (a no-op on the file)
        _reopen_windows(path, drifted)


def _reopen_windows(path: str, drifted: list[WindowDrift]) -> None:
    con = open_db(path)
    try:
        con.execute("BEGIN TRANSACTION")
        for d in drifted:
            con.execute(
                "UPDATE coverage_ledger SET status = 'partial', next_offset = 0, final = false,"
                " fetched_at = ? WHERE window_start = ?", [datetime.now(UTC), d.window_start],
            )
        con.execute("COMMIT")
    finally:
        con.close()
