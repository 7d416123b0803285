"""Audit of sealed history: does the API still agree with what the ledger sealed?

A final window is never read again by a backfill run, because the chain can no longer
change it under the finality rules. Rules are assumptions: a fork deeper than planned, an
indexer that re-imported its database, or a damaged file would leave sealed history wrong
without anyone noticing. The audit asks the API for the `total` (and highest row) of
sealed windows, one `limit=1` request each, and compares them with the table. A window
that disagrees is reopened, so the next run refetches it in full; the result says which
windows and by how many rows, for the alert.

The DuckDB file is held only for the two short moments of reading the ledger and of
reopening windows, never while the requests are in flight.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from stx_pipeline.backfill.writer import to_ts
from stx_pipeline.hiro.client import HiroClient
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


def audit_sealed_history(
    max_days: float = 180,
    sample: int | None = None,
    *,
    db_path: str | None = None,
    client: HiroClient | None = None,
    now: datetime | None = None,
    seed: int | None = None,
) -> AuditResult:
    """Compare sealed windows of the last `max_days` (all, or a random `sample` of them)
    with the API; reopen those that disagree."""
    if sample is not None and sample < 1:
        raise ValueError(f"sample must be a positive number of windows, got {sample!r}")
    started = time.monotonic()
    path = resolve_db_path(db_path)
    target = int((now or datetime.now(UTC)).timestamp() - max_days * 86400)
    stored = _read_sealed(str(path), target)
    chosen = stored if sample is None or sample >= len(stored) else random.Random(seed).sample(
        stored, sample)
    own = client is None
    client = client or HiroClient.from_env()
    drifted: list[WindowDrift] = []
    try:
        for window in sorted(chosen, key=lambda w: w.start):
            page = client.list_transactions(limit=1, start_time=window.start,
                                            end_time=window.end)
            reason = _disagreement(window, int(page.total), page.results[:1])
            if reason:
                drifted.append(WindowDrift(
                    to_ts(window.start), to_ts(window.end), window.final, int(page.total),
                    window.rows, reason))
    finally:
        if own:
            client.close()
    if drifted:
        _reopen(str(path), drifted)
    return AuditResult(
        windows_sealed=len(stored),
        windows_checked=len(chosen),
        requests=len(chosen),
        drifted=drifted,
        elapsed_seconds=round(time.monotonic() - started, 3),
    )


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
    finally:
        con.close()
    return [_Stored(int(s), int(e), bool(f), int(n), tx, bh, rejected)
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
