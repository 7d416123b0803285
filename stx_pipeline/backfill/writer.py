"""The single DuckDB writer of a run.

Fetch workers hand it page batches; it commits each group of pages together with the
ledger rows that describe them in ONE transaction, so a crash can lose work in flight
but can never leave the ledger claiming rows the table does not hold. A window is
sealed only when the rows in the table for it match the API's `total`; it is sealed
final when it ends before the run's finality horizon, else provisional. A verification
of a provisional window (one cheap request) either confirms it, or reopens it so that it
is fetched again in full (backfill/finality.py).

Both sources feed it the same batches: a v1 page carries its `offset`, a v3 page its
`cursor` and the API's count per tenure (`tenures`, backfill/tenure_seal.py), which is
what the window is then sealed against.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from stx_pipeline import failpoints
from stx_pipeline.backfill.planner import Window
from stx_pipeline.backfill.tenure_seal import (
    TenureExpectation,
    stored_by_tenure,
    tenure_problem,
)
from stx_pipeline.hiro.rows import RejectedRow
from stx_pipeline.warehouse.db import WarehouseError
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

log = logging.getLogger("stx_pipeline.backfill")

_TS = pa.timestamp("us", tz="UTC")
ARROW_SCHEMA = pa.schema(
    [
        ("tx_id", pa.string()),
        ("tx_type", pa.string()),
        ("tx_status", pa.string()),
        ("sender_address", pa.string()),
        ("sponsored", pa.bool_()),
        ("sponsor_address", pa.string()),
        ("fee_payer", pa.string()),
        ("fee_ustx", pa.int64()),
        ("nonce", pa.int64()),
        ("block_height", pa.int64()),
        ("block_hash", pa.string()),
        ("index_block_hash", pa.string()),
        ("tx_index", pa.int32()),
        ("block_time", _TS),
        ("burn_block_time", _TS),
        ("burn_block_height", pa.int64()),
        ("canonical", pa.bool_()),
        ("contract_id", pa.string()),
        ("function_name", pa.string()),
        ("token_recipient", pa.string()),
        ("token_amount_ustx", pa.int64()),
        ("ingested_at", _TS),
    ]
)
assert tuple(ARROW_SCHEMA.names) == TRANSACTION_COLUMNS

_COLS = ", ".join(TRANSACTION_COLUMNS)
_UPDATABLE = [c for c in TRANSACTION_COLUMNS if c != "tx_id"]
_CHANGED = " OR ".join(
    f"t.{c} IS DISTINCT FROM b.{c}"
    for c in ("tx_status", "block_hash", "block_height", "tx_index", "block_time",
              "burn_block_time", "canonical", "fee_ustx", "sender_address")
)
# A transaction already stored can only sit at (about) the burn time the API gives it
# now: the same tenure, or a neighbouring one after a reorg re-mined it. So the upsert
# looks for its tx_id among rows within REORG_SLACK of the batch's burn times, which
# DuckDB's zone maps turn into a scan of a few row groups instead of an index.
REORG_SLACK = timedelta(days=1)
UPDATE_CHANGED_SQL = (
    "UPDATE transactions AS t SET "
    + ", ".join(f"{c} = b.{c}" for c in _UPDATABLE)
    + " FROM _batch AS b WHERE t.tx_id = b.tx_id AND t.burn_block_time BETWEEN ? AND ?"
    + f" AND ({_CHANGED})"
)
# Columns named explicitly: a migrated file has its newer columns at the end.
INSERT_NEW_SQL = (
    f"INSERT INTO transactions ({_COLS}) SELECT {_COLS} FROM _batch AS b WHERE NOT EXISTS"
    " (SELECT 1 FROM transactions AS t WHERE t.tx_id = b.tx_id"
    " AND t.burn_block_time BETWEEN ? AND ?)"
)


def to_ts(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class PageBatch:
    """One page of one window, as fetched."""

    window: Window
    offset: int
    total: int
    rows: list[dict]
    rejected: list[RejectedRow]
    last: bool
    full_fetch: bool  # this attempt started at offset 0 in this run: orphans detectable
    horizon: int | None = None  # windows ending before it are sealed final
    head: int | None = None  # the head burn time the run saw when it fetched this
    # v3: where the walk goes on after this page (committed with its rows), and the API's
    # count per tenure of the window, which it is sealed against (None for v1)
    cursor: str | None = None
    tenures: TenureExpectation | None = None
    source: str = "v1"


@dataclass
class TenureVerifyBatch:
    """v3 re-verification: the API's tenures for each of some sealed windows, from one fresh
    `/extended/v2/burn-blocks` listing (no request per window)."""

    members: tuple[Window, ...]
    expected: dict[int, TenureExpectation]  # window start -> its tenures
    horizon: int
    head: int


@dataclass
class VerifyBatch:
    """The API's view of a span of sealed windows: its `total` and its highest row.

    `members` are the contiguous ledger windows the span is made of (one request verifies
    them all); a fork replaces a suffix of the chain, so it changes the highest row of any
    span it touches, and a late block changes the total.
    """

    window: Window
    total: int
    top_tx_id: str | None
    top_block_hash: str | None  # compared with the row's block_hash (v1 objects)
    top_index_block_hash: str | None  # compared with index_block_hash (v3 summaries)
    horizon: int
    head: int
    members: tuple[Window, ...] = ()


@dataclass
class WriterCounters:
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_orphaned: int = 0
    rows_rejected: int = 0
    pages_committed: int = 0
    windows_sealed: int = 0
    windows_failed_verification: int = 0
    commits: int = 0
    sealed_expected_rows: int = 0
    sealed_seconds: int = 0
    windows_verified: int = 0  # provisional windows the API confirmed
    windows_reopened: int = 0  # ... or contradicted: refetched in full
    windows_made_final: int = 0  # sealed final, or confirmed past the horizon
    final_seconds_added: int = 0
    sealed_windows: list[tuple[int, int]] = field(default_factory=list)
    verify_failures: deque[Window] = field(default_factory=deque)
    reopened: deque[Window] = field(default_factory=deque)
    # spans whose members disagree as a whole: verified again one window at a time
    split_checks: deque[tuple[Window, ...]] = field(default_factory=deque)


_STOP = object()


class WindowWriter:
    """Owns the run's DuckDB connection and commits page batches from a bounded queue."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        queue_size: int = 64,
        group_pages: int = 40,
        on_commit: Callable[[WriterCounters], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        self.con = con
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.group_pages = group_pages
        self.counters = WriterCounters()
        self.error: BaseException | None = None
        self._seen: dict[int, set[str]] = {}
        self._orphaned_ids: set[str] = set()
        self._rejected_in_attempt: dict[int, int] = {}
        self._on_commit = on_commit
        self._on_idle = on_idle  # called in this thread about every second without work
        self._thread = threading.Thread(target=self._run, name="duckdb-writer", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def put(self, batch: PageBatch | VerifyBatch | TenureVerifyBatch,
            stop: threading.Event) -> bool:
        """Blocks while the queue is full (back-pressure keeps memory flat)."""
        while not stop.is_set() and self.error is None:
            try:
                self.queue.put(batch, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def idle(self) -> bool:
        return self.queue.unfinished_tasks == 0

    def close(self) -> None:
        """Commit everything queued, then stop the thread."""
        if self._thread.is_alive():
            self.queue.put(_STOP)
            self._thread.join()

    # -- the thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                if self._on_idle is not None and self.error is None:
                    self._on_idle()
                continue
            if item is _STOP:
                self.queue.task_done()
                return
            group = [item]
            stop_seen = False
            while len(group) < self.group_pages:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_seen = True
                    break
                group.append(nxt)
            try:
                if self.error is None:
                    self._commit_group([b for b in group if isinstance(
                        b, PageBatch | VerifyBatch | TenureVerifyBatch)])
            except BaseException as exc:
                self.error = exc
                log.error("writer failed, window rolled back: %s", str(exc).splitlines()[0])
            finally:
                for _ in group:
                    self.queue.task_done()
            if stop_seen:
                self.queue.task_done()
                return

    def _commit_group(self, items: list[PageBatch | VerifyBatch | TenureVerifyBatch]) -> None:
        con = self.con
        now = datetime.now(UTC)
        group = [b for b in items if isinstance(b, PageBatch)]
        checks = [b for b in items if isinstance(b, VerifyBatch)]
        tenure_checks = [b for b in items if isinstance(b, TenureVerifyBatch)]
        con.execute("BEGIN TRANSACTION")
        try:
            rows: dict[str, dict] = {}
            rejected: list[RejectedRow] = []
            for batch in group:
                for row in batch.rows:
                    rows[row["tx_id"]] = row
                rejected.extend(batch.rejected)
            inserted = updated = 0
            if rows:
                _batch = pa.Table.from_pylist(list(rows.values()), schema=ARROW_SCHEMA)
                con.register("_batch", _batch)
                times = [r["burn_block_time"] for r in rows.values()]
                bounds = [min(times) - REORG_SLACK, max(times) + REORG_SLACK]
                try:
                    updated = _affected(con.execute(UPDATE_CHANGED_SQL, bounds))
                    inserted = _affected(con.execute(INSERT_NEW_SQL, bounds))
                finally:
                    _unregister(con, "_batch")
            if rejected:
                self._store_rejected(rejected, now)
            sealed: list[tuple[Window, int, bool]] = []
            failed: list[Window] = []
            orphaned: list[str] = []
            # One progress row per window per commit group (the window's latest page): an
            # upsert per page was 2/3 of the writer's time (py-spy, docs/performance.md).
            progress: dict[int, tuple[PageBatch, int]] = {}
            for batch in group:
                ws = batch.window.start
                if batch.full_fetch:
                    self._seen.setdefault(ws, set()).update(r["tx_id"] for r in batch.rows)
                    self._seen[ws].update(r.tx_id for r in batch.rejected if r.tx_id)
                if batch.window.is_head:
                    if batch.last and batch.full_fetch:
                        orphaned += self._mark_orphans(batch.window)
                    continue
                self._rejected_in_attempt[ws] = self._rejected_in_attempt.get(ws, 0) + len(
                    batch.rejected
                )
                if batch.last:
                    if batch.full_fetch:
                        orphaned += self._mark_orphans(batch.window)
                    _, pending = progress.pop(ws, (batch, 0))
                    ok = self._seal_or_reset(batch, now, pages=1 + pending)
                    if ok:
                        sealed.append((batch.window, batch.total, _is_final(batch)))
                    else:
                        failed.append(batch.window)
                else:
                    progress[ws] = (batch, progress.get(ws, (batch, 0))[1] + 1)
            for batch, pages in progress.values():
                self._record_partial(batch, now, pages)
            verified: list[tuple[Window, bool]] = []
            reopened: list[Window] = []
            split: list[tuple[Window, ...]] = []
            for check in checks:
                outcome = self._verify(check, now)
                if outcome is None and len(check.members) > 1:
                    split.append(check.members)
                elif outcome is None:
                    reopened.append(check.window)
                else:
                    verified.extend(outcome)
            for tcheck in tenure_checks:
                ok, bad = self._verify_tenures(tcheck, now)
                verified.extend(ok)
                reopened.extend(bad)
            failpoints.hit("writer.before_commit")
            con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT already ended it
                con.execute("ROLLBACK")
            if _is_storage_failure(exc):
                detail = str(exc).strip().splitlines()[0]
                raise WarehouseError(
                    f"cannot write to the database ({detail}); free disk space or fix the"
                    " path, then run again: committed windows are kept and the run resumes"
                ) from None
            raise
        c = self.counters
        c.rows_inserted += inserted
        c.rows_updated += max(updated, 0)
        # A row re-mined into another window is orphaned by one window and loaded again by
        # another within the same run: count the rows orphaned at the end, not the flips.
        self._orphaned_ids -= rows.keys()
        self._orphaned_ids.update(orphaned)
        c.rows_orphaned = len(self._orphaned_ids)
        c.rows_rejected += len(rejected)
        c.pages_committed += len(group)
        c.commits += 1
        for window, total, final in sealed:
            c.windows_sealed += 1
            c.sealed_expected_rows += total
            c.sealed_seconds += window.seconds
            c.sealed_windows.append((window.start, window.end or window.start))
            if final:
                c.windows_made_final += 1
                c.final_seconds_added += window.seconds
        for window, became_final in verified:
            c.windows_verified += 1
            if became_final:
                c.windows_made_final += 1
                c.final_seconds_added += window.seconds
        for window in reopened:
            c.windows_reopened += 1
            c.reopened.append(window)
        c.split_checks.extend(split)
        for window in failed:
            c.windows_failed_verification += 1
            c.verify_failures.append(window)
        for batch in group:
            if batch.last:
                self._seen.pop(batch.window.start, None)
                self._rejected_in_attempt.pop(batch.window.start, None)
        if self._on_commit is not None:
            self._on_commit(c)

    def _store_rejected(self, rejected: list[RejectedRow], now: datetime) -> None:
        table = pa.table(
            {
                "raw_hash": [hashlib.md5(r.raw_json.encode()).hexdigest() for r in rejected],
                "tx_id": [r.tx_id for r in rejected],
                "burn_block_time": pa.array([r.burn_block_time for r in rejected], type=_TS),
                "reason": [r.reason for r in rejected],
                "raw_json": [r.raw_json for r in rejected],
                "rejected_at": pa.array([now] * len(rejected), type=_TS),
            }
        )
        self.con.register("_rejected", table)
        try:
            # "where absent", not ON CONFLICT: DuckLake has no keys (warehouse/meta.py)
            self.con.execute(
                "INSERT INTO rejected_rows SELECT DISTINCT ON (raw_hash) * FROM _rejected AS r"
                " WHERE NOT EXISTS (SELECT 1 FROM rejected_rows AS x"
                " WHERE x.raw_hash = r.raw_hash)"
            )
        finally:
            _unregister(self.con, "_rejected")

    def _mark_orphans(self, window: Window) -> list[str]:
        """Rows the API no longer returns for a fully re-fetched window: canonical = false."""
        seen = self._seen.get(window.start, set())
        ids = pa.table({"tx_id": pa.array(sorted(seen), type=pa.string())})
        self.con.register("_seen", ids)
        try:
            params: list[object] = [to_ts(window.start)]
            bound = "burn_block_time >= ?"
            if window.end is not None:
                bound += " AND burn_block_time <= ?"
                params.append(to_ts(window.end))
            # Select, then update (same transaction): DuckLake has no UPDATE ... RETURNING.
            where = f"canonical AND {bound} AND tx_id NOT IN (SELECT tx_id FROM _seen)"
            orphaned = [r[0] for r in self.con.execute(
                f"SELECT tx_id FROM transactions WHERE {where}", params).fetchall()]
            if orphaned:
                self.con.execute(f"UPDATE transactions SET canonical = false WHERE {where}",
                                 params)
        finally:
            _unregister(self.con, "_seen")
        n = len(orphaned)
        if n:
            log.warning(
                "reorg: %d row(s) in window starting %s are no longer canonical",
                n,
                to_ts(window.start).isoformat(),
            )
        return orphaned

    def _record_partial(self, batch: PageBatch, now: datetime, pages: int = 1) -> None:
        w = batch.window
        rejected = self._rejected_in_attempt.get(w.start, 0)
        next_offset = batch.offset + 50 if batch.tenures is None else 0  # v3: the cursor
        # Update, else insert (one transaction; the same on the file and on DuckLake,
        # which has no ON CONFLICT): a retried page changes the same one row.
        updated = _affected(self.con.execute(
            """
            UPDATE coverage_ledger SET window_end = ?, expected = ?, rejected = ?,
                next_offset = ?, status = 'partial', fetched_at = ?, final = false,
                pages = pages + ?, cursor = ?, source = ?
            WHERE window_start = ?
            """,
            [to_ts(w.end or w.start), batch.total, rejected, next_offset, now, pages,
             batch.cursor, batch.source, to_ts(w.start)],
        ))
        if not updated:
            self.con.execute(
                """
                INSERT INTO coverage_ledger (window_start, window_end, expected, loaded,
                    rejected, next_offset, status, fetched_at, attempts, pages, cursor, source)
                VALUES (?, ?, ?, 0, ?, ?, 'partial', ?, 1, ?, ?, ?)
                """,
                [to_ts(w.start), to_ts(w.end or w.start), batch.total, rejected,
                 next_offset, now, pages, batch.cursor, batch.source],
            )

    def _seal_or_reset(self, batch: PageBatch, now: datetime, pages: int = 1) -> bool:
        """Seal when table rows + rejected rows == the API's total; else restart the window."""
        w = batch.window
        assert w.end is not None
        rejected = self._rejected_in_attempt.get(w.start, 0)
        problem: str | None = None
        if batch.tenures is not None:  # v3: against the API's count per tenure
            stored = stored_by_tenure(self.con, to_ts(w.start), to_ts(w.end))
            loaded = sum(t.rows for t in stored.values())
            problem = tenure_problem(batch.tenures, stored, rejected)
        else:
            loaded = self.con.execute(
                "SELECT count(*) FROM transactions WHERE canonical"
                " AND burn_block_time BETWEEN ? AND ?",
                [to_ts(w.start), to_ts(w.end)],
            ).fetchone()[0]
            if loaded + rejected != batch.total:
                problem = f"{loaded} rows + {rejected} rejected != total {batch.total}"
        ok = problem is None
        values = [to_ts(w.end), batch.total, loaded, rejected,
                  0 if not ok or batch.tenures is not None else batch.offset + 50,
                  "sealed" if ok else "partial", now, ok and _is_final(batch),
                  to_ts(batch.head) if batch.head is not None else None, batch.source]
        updated = _affected(self.con.execute(
            """
            UPDATE coverage_ledger SET window_end = ?, expected = ?, loaded = ?,
                rejected = ?, next_offset = ?, status = ?, fetched_at = ?, final = ?,
                verified_head = ?, source = ?, cursor = NULL, attempts = attempts + ?,
                pages = pages + ?
            WHERE window_start = ?
            """,
            [*values, 0 if ok else 1, pages, to_ts(w.start)],
        ))
        if not updated:
            self.con.execute(
                """
                INSERT INTO coverage_ledger (window_end, expected, loaded, rejected,
                    next_offset, status, fetched_at, final, verified_head, source, attempts,
                    pages, window_start)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                """,
                [*values, pages, to_ts(w.start)],
            )
        if not ok:
            log.warning(
                "window %s..%s: %s; it will be re-fetched",
                to_ts(w.start).isoformat(), to_ts(w.end).isoformat(), problem,
            )
        return ok

    def _verify_tenures(
        self, check: TenureVerifyBatch, now: datetime
    ) -> tuple[list[tuple[Window, bool]], list[Window]]:
        """Each sealed window against the API's tenures for it: confirmed (and whether it is
        now final), or reopened at its top, so that the run walks it again in full."""
        confirmed: list[tuple[Window, bool]] = []
        reopened: list[Window] = []
        for m in check.members:
            assert m.end is not None
            start, end = to_ts(m.start), to_ts(m.end)
            ledger = self.con.execute(
                "SELECT rejected FROM coverage_ledger WHERE window_start = ?"
                " AND status = 'sealed'", [start]).fetchone()
            stored = stored_by_tenure(self.con, start, end)
            loaded = sum(t.rows for t in stored.values())
            problem = "not sealed any more" if ledger is None else tenure_problem(
                check.expected.get(m.start, {}), stored, int(ledger[0]))
            if problem is None:
                final = m.end < check.horizon
                self.con.execute(
                    "UPDATE coverage_ledger SET expected = ? + rejected, loaded = ?,"
                    " fetched_at = ?, verified_head = ?, final = ? WHERE window_start = ?",
                    [loaded, loaded, now, to_ts(check.head), final, start],
                )
                confirmed.append((m, final))
                continue
            self.con.execute(
                "UPDATE coverage_ledger SET status = 'partial', next_offset = 0, cursor = NULL,"
                " final = false, fetched_at = ? WHERE window_start = ?", [now, start],
            )
            log.warning("window %s..%s changed on the chain (%s); fetching it again",
                        start.isoformat(), end.isoformat(), problem)
            reopened.append(m)
        return confirmed, reopened

    def _verify(self, check: VerifyBatch, now: datetime) -> list[tuple[Window, bool]] | None:
        """Compare sealed windows with the API's view of their span. Confirmed: each member
        and whether it is now final. Contradicted (another total, another highest row):
        None; a single window is then reopened at offset 0, so the run fetches it again in
        full, and a span of several is checked again window by window."""
        w = check.window
        assert w.end is not None
        members = check.members or (w,)
        bounds = [to_ts(w.start), to_ts(w.end)]
        starts = [to_ts(m.start) for m in members]
        counts = dict(self.con.execute(
            "SELECT l.window_start, (SELECT count(*) FROM transactions t WHERE t.canonical"
            " AND t.burn_block_time BETWEEN l.window_start AND l.window_end)"
            " FROM coverage_ledger l WHERE l.status = 'sealed' AND l.window_start IN"
            f" ({', '.join('?' for _ in starts)})", starts,
        ).fetchall())
        rejected = self.con.execute(
            "SELECT coalesce(sum(rejected), 0) FROM coverage_ledger WHERE window_start IN"
            f" ({', '.join('?' for _ in starts)})", starts,
        ).fetchone()[0]
        count = sum(counts.values())
        ok = len(counts) == len(members) and count + int(rejected) == check.total
        if ok and check.top_tx_id is not None:
            top = self.con.execute(
                "SELECT tx_id, block_hash, index_block_hash FROM transactions WHERE canonical"
                " AND burn_block_time BETWEEN ? AND ?"
                " ORDER BY block_height DESC, tx_index DESC LIMIT 1", bounds,
            ).fetchone()
            if top is None or top[0] != check.top_tx_id:
                # the API's highest row may be one we keep aside as malformed
                ok = self.con.execute(
                    "SELECT count(*) FROM rejected_rows WHERE tx_id = ?", [check.top_tx_id]
                ).fetchone()[0] > 0
            else:
                ok = (check.top_block_hash is None or check.top_block_hash == top[1]) and (
                    check.top_index_block_hash is None or top[2] is None
                    or check.top_index_block_hash == top[2]
                )
        if not ok:
            if len(members) == 1:
                self.con.execute(
                    "UPDATE coverage_ledger SET status = 'partial', next_offset = 0,"
                    " cursor = NULL, final = false, fetched_at = ? WHERE window_start = ?",
                    [now, bounds[0]],
                )
                log.warning(
                    "window %s..%s changed on the chain (API total %d, table %d + %d"
                    " rejected); fetching it again", bounds[0].isoformat(),
                    bounds[1].isoformat(), check.total, count, rejected,
                )
            return None
        out: list[tuple[Window, bool]] = []
        for m in members:
            assert m.end is not None
            final = m.end < check.horizon
            self.con.execute(
                "UPDATE coverage_ledger SET expected = ? + rejected, loaded = ?,"
                " fetched_at = ?, verified_head = ?, final = ? WHERE window_start = ?",
                [counts[to_ts(m.start)], counts[to_ts(m.start)], now, to_ts(check.head),
                 final, to_ts(m.start)],
            )
            out.append((m, final))
        return out


def _is_final(batch: PageBatch) -> bool:
    w = batch.window
    return batch.horizon is not None and w.end is not None and w.end < batch.horizon


def _is_storage_failure(exc: BaseException) -> bool:
    if isinstance(exc, duckdb.IOException | OSError):
        return True
    text = str(exc)
    return isinstance(exc, duckdb.Error) and any(
        marker in text for marker in ("Could not write", "No space left", "Failed to commit")
    )


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Never mask the real error: an aborted transaction refuses even an unregister."""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def _affected(cursor: duckdb.DuckDBPyConnection) -> int:
    row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0
