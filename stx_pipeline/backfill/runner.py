"""`ensure_transaction_history`: both phases as "fill the uncovered windows, newest first".

Phase 1 (new data from the head) and Phase 2 (history back to the target) are the same
operation on the coverage ledger: every closed window in `[target, head)` that is not
sealed gets fetched, wherever it is — so the hole an interrupted Phase 1 leaves is just
another uncovered window. Workers fetch windows concurrently through the client's shared
rate limiter; one writer commits rows and ledger rows together.

A run ends with a settle pass: it probes the head again, fills what arrived meanwhile and
re-verifies every provisional window (one request each), refetching those the chain
changed, until a pass finds nothing changed. Only then does it report complete, so the
file matches the chain as of the end of the run (backfill/finality.py).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import duckdb

from stx_pipeline import settings
from stx_pipeline.backfill import quota
from stx_pipeline.backfill.coverage import ledger_coverage
from stx_pipeline.backfill.finality import FinalityRules
from stx_pipeline.backfill.planner import Window, WindowPlanner, uncovered
from stx_pipeline.backfill.result import BackfillResult, StopReason
from stx_pipeline.backfill.status import progress_from_db, write_status_file
from stx_pipeline.backfill.writer import (
    PageBatch,
    VerifyBatch,
    WindowWriter,
    WriterCounters,
    to_ts,
)
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import HiroError, RateLimitExhausted
from stx_pipeline.hiro.rows import map_page
from stx_pipeline.warehouse.db import cursor, open_db, resolve_db_path, writer_lease
from stx_pipeline.warehouse.meta import get_meta, put_meta
from stx_pipeline.warehouse.readers import SnapshotPublisher

log = logging.getLogger("stx_pipeline.backfill")

PAGE_LIMIT = 50
DEFAULT_MAX_PAGES = 10_000
# Settle passes after the fill: each re-verifies the provisional span; a chain that keeps
# changing it for this many passes ends the run "chain_unsettled" (resumable).
MAX_SETTLE_PASSES = 3
# Contiguous provisional windows verified by one request (the span's total and top row).
VERIFY_GROUP_WINDOWS = 64
ROWS_PER_WINDOW = 2500  # ~50 pages: the partial last page is ~1 % of requests
# Fetch an hour below the target too, so the seed's own test, MIN(block_time) <= target,
# also holds (block_time >= burn_block_time, and the target falls inside some tenure);
# the seed: docs/architecture.md, "The seed algorithm".
TARGET_MARGIN_SECONDS = 3600
SPLIT_ROWS = 5000


@dataclass
class Progress:
    """A live snapshot for progress bars and the status file."""

    phase: str
    windows_done: int
    windows_planned: int
    rows_inserted: int
    pages: int
    rows_per_second: float
    eta_seconds: float | None
    coverage_percent: float  # sealed (final + provisional) share of [target, head)
    coverage_final_percent: float = 0.0  # the share the chain can no longer change
    rows_total: int = 0  # canonical rows in the file (before the run + inserted so far)


class _Outcome(Enum):
    DONE = "done"
    VERIFIED = "verified"
    SPLIT = "split"
    UNSTABLE = "unstable"
    BUDGET = "budget"
    STOPPED = "stopped"


class _PageBudget:
    """The run's `max_pages`, shared by the workers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.used >= self.limit


class _Fatal:
    """The first error that must stop the run (rate-limit exhaustion or an API error)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def set(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc


def ensure_transaction_history(
    max_days: float = 180,
    force_refresh: bool = False,
    max_pages: int = DEFAULT_MAX_PAGES,
    *,
    db_path: str | None = None,
    client: HiroClient | None = None,
    workers: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    now: datetime | None = None,
    finality: FinalityRules | None = None,
    rows_per_window: int = ROWS_PER_WINDOW,
    status_path: str | None = None,
) -> BackfillResult:
    """Make the table hold every transaction with `burn_block_time` in [now - max_days, head].

    Idempotent and resumable: call it again and it continues; once complete it fetches
    what is new, the head, and one request per provisional window. Early stops (max
    pages, no progress, exhausted rate limit) and API errors come back as the result's
    `stop_reason`;
    a storage failure raises `WarehouseError` after the status file says so.
    """
    if isinstance(max_days, bool) or not isinstance(max_days, int | float) or not max_days > 0:
        raise ValueError(f"max_days must be a positive number of days, got {max_days!r}")
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise ValueError(f"max_pages must be a positive integer, got {max_pages!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")

    path = resolve_db_path(db_path)
    own_client = client is None
    client = client or HiroClient.from_env()
    run = _Run(
        client=client,
        db_path=str(path),
        max_days=float(max_days),
        max_pages=max_pages,
        workers=workers,
        on_progress=on_progress,
        now=now or datetime.now(UTC),
        finality=finality or FinalityRules.from_env(),
        rows_per_window=rows_per_window,
        status_path=status_path,
    )
    try:
        with writer_lease():  # the one-writer rule across machines (a no-op on the file)
            return run.execute(force_refresh)
    finally:
        if own_client:
            client.close()


class _Run:
    def __init__(
        self,
        *,
        client: HiroClient,
        db_path: str,
        max_days: float,
        max_pages: int,
        workers: int | None,
        on_progress: Callable[[Progress], None] | None,
        now: datetime,
        finality: FinalityRules,
        rows_per_window: int,
        status_path: str | None,
    ) -> None:
        self.client = client
        self.db_path = db_path
        self.max_days = max_days
        self.budget = _PageBudget(max_pages)
        self.workers_requested = workers
        self.on_progress = on_progress
        self.now = now
        self.finality = finality
        self.rows_per_window = rows_per_window
        self.status_path = status_path
        self.run_id = uuid.uuid4().hex[:12]
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.fatal = _Fatal()
        self.windows_planned = 0
        self.windows_done = 0
        self.phase = "starting"
        self._last_status_write = 0.0
        self._stats_before = self._client_stats()
        self.target_ts = int(self.now.timestamp() - max_days * 86400)
        self.planner: WindowPlanner | None = None
        self.head_ts = 0
        self.horizon = 0
        self.lower = 0
        self._probe_latency = 0.2
        self.inflight = 0
        self._inflight_seconds = 0  # closed windows handed to workers, not committed yet
        self._rows_before = 0
        self.settled = False
        self.settle_passes = 0
        self._verify_queue: deque[tuple[Window, ...]] = deque()
        self._planned_fixed = 0
        self._final_seconds_before = 0
        self.quota_plan: quota.QuotaPlan | None = None

    # -- helpers -----------------------------------------------------------------------
    def _client_stats(self) -> dict[str, Any]:
        return dict(self.client.stats.snapshot())

    def _stat_delta(self, key: str) -> int:
        now = self._client_stats()
        return int(now.get(key, 0) or 0) - int(self._stats_before.get(key, 0) or 0)

    def _page(self, **params: Any):  # -> TxPage
        if not self.budget.take():
            return None
        return self.client.list_transactions(limit=PAGE_LIMIT, **params)

    # -- the run -----------------------------------------------------------------------
    def execute(self, force_refresh: bool) -> BackfillResult:
        log.info(
            "backfill %s starting: target %s days (%s), max_pages %d, finality horizon %.1f h"
            " behind the head", self.run_id, f"{self.max_days:g}",
            to_ts(self.target_ts).isoformat(), self.budget.limit,
            self.finality.span_seconds / 3600,
        )
        # The writer only needs the blocks it touches: a small cache keeps memory flat.
        con = open_db(self.db_path, memory_limit=settings.current().backfill_memory_limit)
        writer: WindowWriter | None = None
        snapshots = SnapshotPublisher(con, self.db_path)  # readers never wait for this run
        try:
            snapshots.publish()
            self._record_run_start(con)
            if force_refresh:
                self._clear(con)
            try:
                head = self._probe_head(con)
            except HiroError as exc:
                return self._finish(con, None, exc, head_ts=None, lower=None)
            if head is None:
                log.info("the chain has no transactions yet")
                return self._finish(con, None, None, head_ts=None, lower=None)
            head_ts, genesis_ts, total_txs = head
            lower = max(self.target_ts - TARGET_MARGIN_SECONDS, genesis_ts)
            writer = WindowWriter(con, on_commit=lambda c: (self._on_commit(c),
                                  snapshots.after_commit()), on_idle=snapshots.when_due)
            writer.start()
            self._fetch_all(con, writer, head_ts, genesis_ts, lower, total_txs, settle=False)
            self._settle(con, writer, genesis_ts, lower)
            writer.close()
            if writer.error is not None:
                raise writer.error
            return self._finish(con, writer.counters, self.fatal.error, self.head_ts, lower,
                                genesis_ts=genesis_ts)
        except BaseException as exc:
            self.stop.set()
            if writer is not None:
                writer.close()
            self._write_status({"status": "error", "error": _one_line(exc),
                                "run_id": self.run_id, "target_days": self.max_days})
            raise
        finally:
            snapshots.publish()
            con.close()

    def _settle(
        self, con: duckdb.DuckDBPyConnection, writer: WindowWriter, genesis_ts: int, lower: int
    ) -> None:
        """Re-probe, fill what arrived, re-verify every provisional window; repeat until a
        pass reopens nothing (settled) or MAX_SETTLE_PASSES passes did."""
        for _ in range(MAX_SETTLE_PASSES):
            if self._stopped(writer):
                return
            self._drain(writer)
            if writer.error is not None:
                return
            self.settle_passes += 1
            reopened_before = writer.counters.windows_reopened
            try:
                probe = self.client.list_transactions(limit=1)
            except HiroError as exc:
                self.fatal.set(exc)
                return
            self.budget.used += 1
            if not probe.results:
                return
            head_ts = int(probe.results[0]["burn_block_time"])
            self._fetch_all(con, writer, head_ts, genesis_ts, lower, int(probe.total),
                            settle=True)
            self._drain(writer)
            if self._stopped(writer):
                return
            if writer.counters.windows_reopened == reopened_before:
                self.settled = True
                return
            log.info("settle pass %d: the chain changed %d window(s); checking again",
                     self.settle_passes, writer.counters.windows_reopened - reopened_before)

    def _stopped(self, writer: WindowWriter) -> bool:
        return (self.fatal.error is not None or writer.error is not None
                or self.budget.exhausted)

    @staticmethod
    def _drain(writer: WindowWriter) -> None:
        while not writer.idle() and writer.error is None:
            time.sleep(0.02)

    def _record_run_start(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "INSERT INTO backfill_runs (run_id, started_at, target_days) VALUES (?, ?, ?)",
            [self.run_id, datetime.now(UTC), self.max_days],
        )

    def _clear(self, con: duckdb.DuckDBPyConnection) -> None:
        log.warning("force refresh: clearing transactions, ledger and rejected rows")
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM transactions")
        con.execute("DELETE FROM coverage_ledger")
        con.execute("DELETE FROM rejected_rows")
        con.execute("DELETE FROM pipeline_meta")
        con.execute("COMMIT")

    def _probe_head(self, con: duckdb.DuckDBPyConnection) -> tuple[int, int, int] | None:
        """Head burn time and chain start: two one-row requests (the start is cached)."""
        newest = self.client.list_transactions(limit=1)
        self.budget.used += 1
        self._probe_latency = max(newest.elapsed_seconds, 0.0)
        if not newest.results:
            return None
        head_ts = int(newest.results[0]["burn_block_time"])
        total_txs = int(newest.total)
        seen = get_meta(con, "max_head_burn_time")
        put_meta(con, "max_head_burn_time", str(max(head_ts, int(seen or head_ts))))
        cached = con.execute(
            "SELECT value FROM pipeline_meta WHERE key = 'genesis_burn_time'"
        ).fetchone()
        if cached:
            genesis_ts = int(cached[0])
        else:
            oldest = self.client.list_transactions(limit=1, order="asc")
            self.budget.used += 1
            genesis_ts = int(oldest.results[0]["burn_block_time"]) if oldest.results else head_ts
            put_meta(con, "genesis_burn_time", str(genesis_ts))
        return head_ts, genesis_ts, total_txs

    def _plan(
        self, con: duckdb.DuckDBPyConnection, head_ts: int, genesis_ts: int, lower: int,
        total_txs: int, *, settle: bool,
    ) -> WindowPlanner:
        """Gaps and partial windows to fetch; in a settle pass also every provisional window
        to verify (`self._verify_queue`). Final windows are never read again."""
        ledger = con.execute(
            "SELECT epoch(window_start)::BIGINT, epoch(window_end)::BIGINT, status,"
            " next_offset, final FROM coverage_ledger ORDER BY window_start"
        ).fetchall()
        blocked: list[tuple[int, int]] = []
        partial: list[Window] = []
        verify: list[Window] = []
        for start, end, status, next_offset, final in ledger:
            if end < lower or start >= head_ts:
                continue
            if status == "sealed":
                blocked.append((start, end))
                if settle and not final:
                    verify.append(Window(start, end, in_ledger=True))
            else:
                partial.append(Window(start, end, next_offset=int(next_offset), in_ledger=True))
                blocked.append((start, end))
        gaps = uncovered(lower, head_ts - 1, blocked)
        if not settle:
            self._final_seconds_before = ledger_coverage(con, lower, head_ts - 1).final_seconds
            self._rows_before = int(con.execute(
                "SELECT count(*) FROM transactions WHERE canonical").fetchone()[0])
        density = self._initial_density(con, head_ts, genesis_ts, total_txs)
        self._verify_queue = deque(_contiguous_groups(verify, VERIFY_GROUP_WINDOWS))
        planner = WindowPlanner(
            gaps, partial, density=density, rows_per_window=self.rows_per_window,
            boundary=self.finality.horizon(head_ts),
        )
        # A fixed estimate of the plan's size, so progress does not jump with the density.
        carved = sum(
            max(1, math.ceil((e - s + 1) * density / self.rows_per_window)) for s, e in gaps
        )
        self._planned_fixed += 1 + len(partial) + len(self._verify_queue) + carved
        return planner

    @staticmethod
    def _initial_density(
        con: duckdb.DuckDBPyConnection, head_ts: int, genesis_ts: int, total_txs: int
    ) -> float:
        row = con.execute(
            "SELECT sum(expected), sum(epoch(window_end) - epoch(window_start) + 1)"
            " FROM (SELECT * FROM coverage_ledger WHERE status = 'sealed'"
            " ORDER BY window_start DESC LIMIT 24)"
        ).fetchone()
        if row and row[0] and row[1]:
            return float(row[0]) / float(row[1])
        span = max(head_ts - genesis_ts, 1)
        return max(total_txs, 1) / span

    def _worker_count(self) -> int:
        if self.workers_requested:
            return self.workers_requested
        rpm = self.client.limiter.current_rpm
        if not rpm:
            return 8
        latency = max(self._probe_latency, 0.02)
        needed = math.ceil(rpm / 60.0 * latency * 1.5) + 1
        return max(2, min(32, needed))

    def _fetch_all(
        self, con: duckdb.DuckDBPyConnection, writer: WindowWriter, head_ts: int,
        genesis_ts: int, lower: int, total_txs: int, *, settle: bool,
    ) -> None:
        # The writer thread owns `con`; planning reads through a cursor of its own, after
        # the writer went idle, so it sees every commit.
        planner = self._plan(cursor(con), head_ts, genesis_ts, lower, total_txs,
                             settle=settle)
        self.planner = planner
        if self.quota_plan is None:  # the run's first plan: said once, settle passes are small
            self.quota_plan = quota.plan_quota(
                self.client, planner.remaining_seconds(), planner.density, self.rows_per_window
            )
        self.head_ts = head_ts
        self.horizon = self.finality.horizon(head_ts)
        self.lower = lower
        self.windows_planned = self._planned_fixed
        n_workers = self._worker_count()
        planner.workers = n_workers
        log.info(
            "%s: head burn time %s, lower bound %s, %d worker(s), %d window(s)/gap(s) to"
            " fill, %d provisional window(s) to verify, ~%.0f rows per hour",
            "settle pass" if settle else "plan", to_ts(head_ts).isoformat(),
            to_ts(lower).isoformat(), n_workers, len(planner), len(self._verify_queue),
            planner.density * 3600,
        )
        retries: dict[int, int] = {}
        inflight: dict[Future[_Outcome], Window] = {}
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="fetch") as pool:
            self.phase = "settling (re-verify)" if settle else "phase 1 (new data)"
            if settle or MAX_SETTLE_PASSES == 0:
                # the open head window: once per run, in the settle pass (what arrived
                # while the run filled is a closed gap by then)
                head_window = Window(head_ts, None)
                inflight[pool.submit(self._fetch_window, head_window, writer)] = head_window
            while True:
                if self.fatal.error is not None or writer.error is not None:
                    self.stop.set()
                while (
                    not self.stop.is_set()
                    and len(inflight) < n_workers
                    and not self.budget.exhausted
                ):
                    if self._verify_queue:
                        members = self._verify_queue.popleft()
                        span = Window(members[0].start, members[-1].end, in_ledger=True)
                        inflight[pool.submit(self._verify_span, members, writer)] = span
                        continue
                    window = planner.next()
                    if window is None:
                        break
                    if not settle:
                        self.phase = self._phase_of(con, window)
                    inflight[pool.submit(self._fetch_window, window, writer)] = window
                if not inflight:
                    if not writer.idle():
                        time.sleep(0.05)
                        continue
                    requeued = self._requeue_failed(writer, planner, retries)
                    if requeued and not self.stop.is_set() and not self.budget.exhausted:
                        continue
                    break
                self.inflight = len(inflight)
                self._inflight_seconds = sum(w.seconds for w in inflight.values())
                done, _ = wait(list(inflight), timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in done:
                    window = inflight.pop(fut)
                    try:
                        outcome = fut.result()
                    except BaseException as exc:  # API errors, a spent quota, or a bug: stop
                        self.fatal.set(exc)  # the run and keep what is committed
                        continue
                    if outcome is _Outcome.SPLIT:
                        planner.push_front(*window.split())
                        self.windows_planned += 1
                        self._planned_fixed += 1
                    elif outcome is _Outcome.UNSTABLE:
                        count = retries.get(window.start, 0) + 1
                        retries[window.start] = count
                        if count <= 2:
                            planner.push_front(Window(window.start, window.end, 0, True))
                    elif outcome in (_Outcome.DONE, _Outcome.VERIFIED):
                        self.windows_done += 1
                self._requeue_failed(writer, planner, retries)
                self._report_progress(writer.counters)
        self.inflight = 0
        self._inflight_seconds = 0

    def _requeue_failed(
        self, writer: WindowWriter, planner: WindowPlanner, retries: dict[int, int]
    ) -> bool:
        requeued = False
        while writer.counters.split_checks:  # a span disagreed: check its windows one by one
            members = writer.counters.split_checks.popleft()
            self._verify_queue.extend((m,) for m in members)
            self._planned_fixed += len(members)
            requeued = True
        while writer.counters.reopened:  # the chain changed a sealed window: fetch it again
            window = writer.counters.reopened.popleft()
            planner.push_front(Window(window.start, window.end, 0, True))
            self._planned_fixed += 1
            requeued = True
        while writer.counters.verify_failures:
            window = writer.counters.verify_failures.popleft()
            count = retries.get(window.start, 0) + 1
            retries[window.start] = count
            if count <= 2:
                planner.push_front(Window(window.start, window.end, 0, True))
                requeued = True
        return requeued

    def _phase_of(self, con: duckdb.DuckDBPyConnection, window: Window) -> str:
        return "phase 1 (new data)" if (window.end or 0) >= self.head_ts - 3600 else (
            "phase 2 (history)"
        )

    def _fetch_window(self, window: Window, writer: WindowWriter) -> _Outcome:
        """Page one window in ascending order until `total`; each page goes to the writer."""
        offset = window.next_offset
        full = offset == 0
        expected: int | None = None
        ingested_at = datetime.now(UTC)
        while not self.stop.is_set():
            params: dict[str, Any] = {
                "offset": offset,
                "order": "asc",
                "sort_by": "burn_block_time",
                "start_time": window.start,
            }
            if window.end is not None:
                params["end_time"] = window.end
            page = self._page(**params)
            if page is None:
                return _Outcome.BUDGET
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
                    return _Outcome.SPLIT
                if self.planner is not None and window.end is not None:
                    self.planner.observe(window, total)
            elif total != expected and window.end is not None:
                log.warning(
                    "window %s..%s changed while paging (total %d -> %d); restarting it",
                    to_ts(window.start).isoformat(), to_ts(window.end).isoformat(),
                    expected, total,
                )
                return _Outcome.UNSTABLE
            rows, rejected = map_page(page.results, ingested_at)
            for bad in rejected:
                log.warning("rejected row %s: %s", bad.tx_id or "<no tx_id>", bad.reason)
            if window.end is None:
                expected = total  # the head grows while we page it
            last = offset + PAGE_LIMIT >= total or not page.results
            if not page.results and offset < total and window.end is not None:
                return _Outcome.UNSTABLE
            batch = PageBatch(window, offset, total, rows, rejected, last, full,
                              horizon=self.horizon, head=self.head_ts)
            if not writer.put(batch, self.stop):
                return _Outcome.STOPPED
            if last:
                return _Outcome.DONE
            offset += PAGE_LIMIT
        return _Outcome.STOPPED

    def _verify_span(self, members: tuple[Window, ...], writer: WindowWriter) -> _Outcome:
        """One request: the `total` and highest row of contiguous sealed windows, for the
        writer to compare with the table."""
        if not self.budget.take():
            return _Outcome.BUDGET
        window = Window(members[0].start, members[-1].end, in_ledger=True)
        assert window.end is not None
        page = self.client.list_transactions(limit=1, start_time=window.start,
                                             end_time=window.end)
        top = page.results[0] if page.results else None
        check = VerifyBatch(
            window=window,
            total=int(page.total),
            top_tx_id=top.get("tx_id") if isinstance(top, dict) else None,
            top_block_hash=top.get("block_hash") if isinstance(top, dict) else None,
            top_index_block_hash=top.get("index_block_hash") if isinstance(top, dict) else None,
            horizon=self.horizon,
            head=self.head_ts,
            members=members,
        )
        if not writer.put(check, self.stop):
            return _Outcome.STOPPED
        return _Outcome.VERIFIED

    # -- progress and status -----------------------------------------------------------
    def _on_commit(self, counters: WriterCounters) -> None:
        if time.monotonic() - self._last_status_write >= 2.0:
            self._last_status_write = time.monotonic()
            snap = self._progress(counters)
            self._write_status(
                {
                    "status": "running",
                    "run_id": self.run_id,
                    "target_days": self.max_days,
                    "phase": snap.phase,
                    "windows_done": snap.windows_done,
                    "windows_planned": snap.windows_planned,
                    "rows_inserted": snap.rows_inserted,
                    "pages": snap.pages,
                    "rows_per_second": round(snap.rows_per_second, 1),
                    "eta_seconds": snap.eta_seconds,
                    "coverage_percent": round(snap.coverage_percent, 2),
                    **quota.result_fields(self.client, self.quota_plan),
                }
            )

    def _progress(self, counters: WriterCounters) -> Progress:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = counters.rows_inserted / elapsed
        planner = self.planner
        eta = None
        coverage = final = 0.0
        if planner is not None:
            # windows in flight are not covered until their rows are committed
            remaining = planner.remaining_seconds() + self._inflight_seconds
            remaining_rows = remaining * planner.density
            eta = remaining_rows / rate if rate > 0 else None
            span = max(self.head_ts - self.lower, 1)
            coverage = 100.0 * (1 - min(remaining, span) / span)
            final_seconds = self._final_seconds_before + counters.final_seconds_added
            final = min(100.0 * final_seconds / span, coverage)
        planned = max(self._planned_fixed, self.windows_done + self.inflight)
        return Progress(
            phase=self.phase,
            windows_done=self.windows_done,
            windows_planned=planned,
            rows_inserted=counters.rows_inserted,
            pages=self.budget.used,
            rows_per_second=rate,
            eta_seconds=eta,
            coverage_percent=coverage,
            coverage_final_percent=final,
            rows_total=self._rows_before + counters.rows_inserted,
        )

    def _report_progress(self, counters: WriterCounters) -> None:
        if self.on_progress is not None:
            self.on_progress(self._progress(counters))

    def _write_status(self, payload: dict[str, Any]) -> None:
        try:
            write_status_file(payload, self.status_path)
        except OSError as exc:  # monitoring must never break the backfill
            log.warning("could not write the status file: %s", exc)

    def _finish(
        self,
        con: duckdb.DuckDBPyConnection,
        counters: WriterCounters | None,
        error: BaseException | None,
        head_ts: int | None,
        lower: int | None,
        genesis_ts: int | None = None,
    ) -> BackfillResult:
        counters = counters or WriterCounters()
        elapsed = time.monotonic() - self.started
        cov = None
        if head_ts is not None and lower is not None:
            # Judged on [target, head): the hour of margin below the target is fetched for
            # the seed's MIN(block_time) test, not counted (coverage.py, status.py agree).
            judged = max(self.target_ts, genesis_ts if genesis_ts is not None else lower)
            cov = ledger_coverage(con, judged, head_ts - 1)
        reason = self._stop_reason(error, head_ts, genesis_ts, cov)
        complete = reason.complete and (head_ts is None or error is None)
        if error is not None and not isinstance(error, HiroError):
            log.error("backfill stopped by an unexpected error: %s", _one_line(error))
        db = progress_from_db(con, self.max_days, now=self.now)
        rate = counters.rows_inserted / elapsed if elapsed > 0 else 0.0
        eta = None
        planner = self.planner
        missing = cov.missing_seconds if cov is not None else 0
        if missing and rate > 0 and planner is not None:
            eta = missing * planner.density / rate
        in_span = (
            sum(1 for s, e in counters.sealed_windows if e >= cov.lower and s <= cov.upper)
            if cov is not None else counters.windows_sealed
        )
        windows_total = 0
        if cov is not None:
            windows_total = cov.windows_total + (
                len(planner) if (missing and planner is not None) else 0)
        result = BackfillResult(
            stop_reason=reason,
            complete=complete,
            run_id=self.run_id,
            target_days=self.max_days,
            target_time=to_ts(self.target_ts),
            head_burn_time=to_ts(head_ts) if head_ts is not None else None,
            pages=self.budget.used,
            requests=self._stat_delta("requests"),
            retries=self._stat_delta("retries"),
            responses_429=self._stat_delta("responses_429"),
            rows_inserted=counters.rows_inserted,
            rows_updated=counters.rows_updated,
            rows_orphaned=counters.rows_orphaned,
            rows_rejected=counters.rows_rejected,
            rows_total=db["rows"],
            oldest_block_time=db["oldest"],
            newest_block_time=db["newest"],
            windows_sealed=in_span,
            windows_sealed_total=cov.windows_sealed if cov is not None else 0,
            windows_total=max(windows_total, cov.windows_sealed if cov is not None else 0),
            windows_final=cov.windows_final if cov is not None else 0,
            windows_provisional=cov.windows_provisional if cov is not None else 0,
            windows_verified=counters.windows_verified,
            windows_reopened=counters.windows_reopened,
            coverage_percent=round(cov.sealed_percent if cov is not None else
                                   (100.0 if error is None else 0.0), 4),
            coverage_final_percent=round(cov.final_percent if cov is not None else
                                         (100.0 if error is None else 0.0), 4),
            finality_horizon=to_ts(self.horizon) if head_ts is not None else None,
            settle_passes=self.settle_passes,
            missing_days=round(missing / 86400, 4),
            elapsed_seconds=round(elapsed, 3),
            rows_per_second=round(rate, 1),
            eta_seconds=round(eta, 1) if eta is not None else None,
            error=_one_line(error) if error is not None else None,
            retry_after=error.retry_at if isinstance(error, RateLimitExhausted) else None,
            faults_by_kind=dict(self._client_stats().get("faults_by_kind", {}) or {}),
            **quota.result_fields(self.client, self.quota_plan),
        )
        quota.record(con, quota.result_fields(self.client, self.quota_plan), datetime.now(UTC))
        con.execute(
            """UPDATE backfill_runs SET finished_at = ?, stop_reason = ?, pages = ?,
               requests = ?, rows_inserted = ?, rows_updated = ?, rows_orphaned = ?,
               windows_sealed = ?, elapsed_seconds = ? WHERE run_id = ?""",
            [datetime.now(UTC), reason.value, result.pages, result.requests,
             result.rows_inserted, result.rows_updated, result.rows_orphaned,
             result.windows_sealed, result.elapsed_seconds, self.run_id],
        )
        log.info(
            "backfill %s stopped: %s | pages %d | rows +%d (updated %d, orphaned %d, rejected"
            " %d) | total %d | coverage %.2f%% (final %.2f%%) | verified %d, reopened %d |"
            " %.1fs", self.run_id, reason.value, result.pages, result.rows_inserted,
            result.rows_updated, result.rows_orphaned, result.rows_rejected, result.rows_total,
            result.coverage_percent, result.coverage_final_percent, result.windows_verified,
            result.windows_reopened, result.elapsed_seconds,
        )
        if result.error:
            log.error("backfill %s: %s", self.run_id, result.error)
        status = {
            "status": "complete" if complete else ("error" if reason is StopReason.API_ERROR
                                                  else "in_progress"),
            **{k: v for k, v in result.to_dict().items()},
            "last_run": result.to_dict(),
        }
        self._write_status(status)
        return result

    def _stop_reason(
        self, error: BaseException | None, head_ts: int | None, genesis_ts: int | None,
        cov: Any,
    ) -> StopReason:
        if error is not None:
            return (StopReason.RATE_LIMIT_EXHAUSTED if isinstance(error, RateLimitExhausted)
                    else StopReason.API_ERROR)
        if head_ts is None:
            return StopReason.START_OF_CHAIN
        if cov is not None and cov.missing_seconds == 0:
            if not self.settled:
                # every window sealed, but the settle pass did not confirm the provisional
                # span (budget spent in it, or the chain kept changing it)
                return (StopReason.MAX_PAGES if self.budget.exhausted
                        else StopReason.CHAIN_UNSETTLED)
            return (StopReason.START_OF_CHAIN
                    if genesis_ts is not None and self.target_ts < genesis_ts
                    else StopReason.TARGET_REACHED)
        if self.budget.exhausted:
            return StopReason.MAX_PAGES
        return StopReason.NO_PROGRESS


def _contiguous_groups(windows: list[Window], limit: int) -> list[tuple[Window, ...]]:
    """Newest first, back-to-back windows in groups of at most `limit` (one request each)."""
    groups: list[list[Window]] = []
    for w in sorted(windows, key=lambda w: w.start):
        last = groups[-1][-1] if groups else None
        if last is not None and last.end is not None and w.start == last.end + 1 and len(
                groups[-1]) < limit:
            groups[-1].append(w)
        else:
            groups.append([w])
    return [tuple(g) for g in reversed(groups)]


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
