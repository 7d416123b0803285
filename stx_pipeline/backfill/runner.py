"""`ensure_transaction_history`: both phases as "fill the uncovered windows, newest first".

Phase 1 (new data from the head) and Phase 2 (history back to the target) are the same
operation on the coverage ledger: every closed window in `[target, head)` that is not
sealed gets fetched, wherever it is — so the hole an interrupted Phase 1 leaves is just
another uncovered window. Workers fetch windows concurrently through the client's shared
rate limiter (fill.py); one writer commits rows and ledger rows together (writer.py).

A source fetches the windows: v1 (`/extended/v1/tx`, source_v1.py) or v3
(`/extended/v3/transactions`, source_v3.py), chosen by `HIRO_SOURCE=auto|v3|v1`; `auto`
prefers v3 where the server serves it. Both fill the same ledger with the same meaning, so a
file continues under either, and a 410 on v1 in the middle of a run switches it to v3.

A run ends with a settle pass: it probes the head again, fills what arrived meanwhile and
re-verifies every provisional window, refetching those the chain changed, until a pass finds
nothing changed. Only then does it report complete, so the file matches the chain as of the
end of the run (backfill/finality.py).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from stx_pipeline import settings
from stx_pipeline.backfill import quota
from stx_pipeline.backfill.coverage import ledger_coverage
from stx_pipeline.backfill.fill import run_fill_pass
from stx_pipeline.backfill.finality import FinalityRules
from stx_pipeline.backfill.plan import plan_pass
from stx_pipeline.backfill.progress import Progress, ProgressTracker
from stx_pipeline.backfill.report import RunFacts, finish_run, one_line
from stx_pipeline.backfill.result import BackfillResult
from stx_pipeline.backfill.run_state import Head, RequestBudget, RunState
from stx_pipeline.backfill.source import WindowSource
from stx_pipeline.backfill.source_v1 import V1Source
from stx_pipeline.backfill.source_v3 import V3Source
from stx_pipeline.backfill.status import write_status_file
from stx_pipeline.backfill.writer import WindowWriter, WriterCounters, to_ts
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import EndpointGone, HiroError, HiroRequestError
from stx_pipeline.hiro.source_choice import V3_ABSENT, source_setting
from stx_pipeline.warehouse.db import cursor, open_db, resolve_db_path, writer_lease
from stx_pipeline.warehouse.meta import get_meta, put_meta
from stx_pipeline.warehouse.readers import SnapshotPublisher

__all__ = ["Progress", "ensure_transaction_history"]

log = logging.getLogger("stx_pipeline.backfill")

DEFAULT_MAX_PAGES = 10_000
# Settle passes after the fill: each re-verifies the provisional span; a chain that keeps
# changing it for this many passes ends the run "chain_unsettled" (resumable).
MAX_SETTLE_PASSES = 3
ROWS_PER_WINDOW = 2500  # ~50 pages: the partial last page is ~1 % of requests
# Fetch an hour below the target too, so the seed's own test, MIN(block_time) <= target,
# also holds (block_time >= burn_block_time, and the target falls inside some tenure);
# the seed: docs/architecture.md, "The seed algorithm".
TARGET_MARGIN_SECONDS = 3600


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
    source: str | None = None,
) -> BackfillResult:
    """Make the table hold every transaction with `burn_block_time` in [now - max_days, head].

    Idempotent and resumable: call it again and it continues; once complete it fetches
    what is new, the head, and re-verifies the provisional windows. `source` is `auto`
    (v3 where served, else v1), `v3` or `v1`; None reads `$HIRO_SOURCE` (default auto).
    Early stops (max pages, no progress, exhausted rate limit) and API errors come back as
    the result's `stop_reason`; a storage failure raises `WarehouseError` after the status
    file says so.
    """
    if isinstance(max_days, bool) or not isinstance(max_days, int | float) or not max_days > 0:
        raise ValueError(f"max_days must be a positive number of days, got {max_days!r}")
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or max_pages < 1:
        raise ValueError(f"max_pages must be a positive integer, got {max_pages!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    setting = source_setting(source) if source is not None else settings.current().hiro_source

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
        source_setting=setting,
    )
    try:
        with writer_lease():  # the one-writer rule across machines (a no-op on the file)
            return run.execute(force_refresh)
    finally:
        if own_client:
            client.close()


class _Run:
    """One run: probe, plan, fill, settle, report; a 410 on v1 switches it to v3 once."""

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
        source_setting: str,
    ) -> None:
        self.client = client
        self.db_path = db_path
        self.max_days = max_days
        self.state = RunState(client=client, budget=RequestBudget(max_pages))
        self.workers_requested = workers
        self.on_progress = on_progress
        self.now = now
        self.finality = finality
        self.rows_per_window = rows_per_window
        self.status_path = status_path
        self.source_setting = source_setting
        self.source: WindowSource = V1Source()
        self.run_id = uuid.uuid4().hex[:12]
        self.tracker = ProgressTracker()
        self._last_status_write = 0.0
        self._stats_before = dict(client.stats.snapshot())
        self.target_ts = int(self.now.timestamp() - max_days * 86400)
        self.genesis_ts: int | None = None
        self.settled = False
        self.settle_passes = 0
        self.quota_plan: quota.QuotaPlan | None = None

    # -- the run -----------------------------------------------------------------------
    def execute(self, force_refresh: bool) -> BackfillResult:
        log.info(
            "backfill %s starting: target %s days (%s), max_pages %d, finality horizon %.1f h"
            " behind the head, source %s", self.run_id, f"{self.max_days:g}",
            to_ts(self.target_ts).isoformat(), self.state.budget.limit,
            self.finality.span_seconds / 3600, self.source_setting,
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
                head = self._start(con)
            except HiroError as exc:
                return self._finish(con, None, exc, head_ts=None, lower=None)
            if head is None:
                log.info("the chain has no transactions yet")
                return self._finish(con, None, None, head_ts=None, lower=None)
            writer = WindowWriter(con, on_commit=lambda c: (self._on_commit(c),
                                  snapshots.after_commit()), on_idle=snapshots.when_due)
            writer.start()
            self._fill_and_settle(con, writer)
            if self._gone_on_v1():
                self._switch_to_v3(con, writer)
            writer.close()
            if writer.error is not None:
                raise writer.error
            self._learn_genesis(con)
            return self._finish(con, writer.counters, self.state.fatal.error,
                                self.state.head_ts, self.state.lower, genesis_ts=self.genesis_ts)
        except BaseException as exc:
            self.state.stop.set()
            if writer is not None:
                writer.close()
            self._write_status({"status": "error", "error": one_line(exc),
                                "run_id": self.run_id, "target_days": self.max_days,
                                "source": self.source.name})
            raise
        finally:
            snapshots.publish()
            con.close()

    def _start(self, con: duckdb.DuckDBPyConnection) -> Head | None:
        """Choose the source, probe the head, find the lower bound; a 410 on v1 here
        already switches to v3."""
        if self.source_setting == "v1":
            self.source = V1Source()
            head = self._probe_v1(con)
            if head is not None:
                self._set_lower(con)
            return head
        self.source = V3Source()
        try:
            head = self._probe(con)
        except HiroRequestError as exc:
            if self.source_setting != "auto" or exc.status not in V3_ABSENT:
                raise
            log.info("Hiro API at %s has no /extended/v3/transactions (before API v9):"
                     " using /extended/v1/tx", self.client.base_url)
            self.source = V1Source()
            head = self._probe_v1(con)
        if head is not None:
            self._set_lower(con)
        return head

    def _probe_v1(self, con: duckdb.DuckDBPyConnection) -> Head | None:
        try:
            return self._probe(con)
        except EndpointGone as exc:
            if self.source.name != "v1":
                raise
            return self._probe_v3_instead(con, exc)

    def _fill_and_settle(self, con: duckdb.DuckDBPyConnection, writer: WindowWriter) -> None:
        self._fill(con, writer, settle=False)
        self._settle(con, writer)

    def _gone_on_v1(self) -> bool:
        return self.source.name == "v1" and isinstance(self.state.fatal.error, EndpointGone)

    def _switch_to_v3(self, con: duckdb.DuckDBPyConnection, writer: WindowWriter) -> None:
        """v1 answered 410 mid-run: what is committed stays (the ledger means the same under
        v3); the run probes the head through v3 and fills and settles from there."""
        error = self.state.fatal.error
        assert isinstance(error, EndpointGone)
        self._drain(writer)
        con = cursor(con)  # the writer thread owns the connection itself from here on
        try:
            head = self._probe_v3_instead(con, error)
        except HiroError:
            return  # the 410 (or what v3 answered) stays the run's error
        self.state.fatal.clear()
        self.state.stop.clear()
        if head is None:
            return
        self._set_lower(con)
        self._fill_and_settle(con, writer)

    def _probe_v3_instead(self, con: duckdb.DuckDBPyConnection, gone: EndpointGone
                          ) -> Head | None:
        """The head through v3 after v1's 410, said in one line; a server without v3
        leaves the 410 as the error."""
        v1 = self.source
        self.source = V3Source()
        try:
            head = self._probe(con)
        except HiroRequestError as exc:
            if exc.status in V3_ABSENT:
                self.source = v1
                raise gone from None
            raise
        self._say_switch(gone)
        return head

    def _say_switch(self, error: EndpointGone) -> None:
        todo = ("nothing to do: HIRO_SOURCE=auto reads v3 from the start next time"
                if self.source_setting == "auto" else
                "set HIRO_SOURCE=v3 (or unset it: auto) so that runs start there")
        log.warning(
            "Hiro API answered 410 Gone for %s (%s): this run continues on"
            " /extended/v3/transactions, keeping every window already sealed; %s",
            error.url_path, error.server_message or "retired", todo,
        )

    def _probe(self, con: duckdb.DuckDBPyConnection) -> Head | None:
        head = self.source.probe_head(self.state)
        self.tracker.source = self.source.name
        if head is None:
            return None
        self.state.head = head
        seen = get_meta(con, "max_head_burn_time")
        put_meta(con, "max_head_burn_time", str(max(head.burn_time, int(seen or 0))))
        return head

    def _set_lower(self, con: duckdb.DuckDBPyConnection) -> None:
        """The chain's start (cached once known for sure) and the run's lower bound."""
        wanted = self.target_ts - TARGET_MARGIN_SECONDS
        cached = get_meta(con, "genesis_burn_time")
        if cached:
            genesis = int(cached)
        else:
            genesis, certain = self.source.find_genesis(self.state, wanted)
            if certain:
                put_meta(con, "genesis_burn_time", str(genesis))
            else:
                genesis = min(genesis, wanted)
        self.genesis_ts = genesis
        self.state.lower = max(wanted, genesis)

    def _learn_genesis(self, con: duckdb.DuckDBPyConnection) -> None:
        """A v3 listing that reached the chain's first tenure tells where the chain starts."""
        known = getattr(self.source, "known_genesis", lambda: None)()
        if known is None or self.genesis_ts == known:
            return
        self.genesis_ts = known
        put_meta(con, "genesis_burn_time", str(known))

    def _settle(self, con: duckdb.DuckDBPyConnection, writer: WindowWriter) -> None:
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
                head = self.source.probe_head(self.state)
            except HiroError as exc:
                self.state.fatal.set(exc)
                return
            if head is None:
                return
            self.state.head = head
            self._fill(con, writer, settle=True)
            self._drain(writer)
            if self._stopped(writer):
                return
            if writer.counters.windows_reopened == reopened_before:
                self.settled = True
                return
            log.info("settle pass %d: the chain changed %d window(s); checking again",
                     self.settle_passes, writer.counters.windows_reopened - reopened_before)

    def _fill(self, con: duckdb.DuckDBPyConnection, writer: WindowWriter, *,
              settle: bool) -> None:
        state = self.state
        state.horizon = self.finality.horizon(state.head_ts)
        # The writer thread owns `con`; planning reads through a cursor of its own, after
        # the writer went idle, so it sees every commit.
        cur = cursor(con)
        if not settle:
            self.tracker.final_seconds_before = ledger_coverage(
                cur, state.lower, state.head_ts - 1).final_seconds
            self.tracker.rows_before = int(cur.execute(
                "SELECT count(*) FROM transactions WHERE canonical").fetchone()[0])
        try:
            plan = plan_pass(cur, state, self.source, genesis_ts=self.genesis_ts or 0,
                             rows_per_window=self.rows_per_window,
                             boundary=state.horizon, settle=settle)
        except HiroError as exc:  # the v3 source lists tenures while planning
            state.fatal.set(exc)
            return
        finally:
            # An open cursor keeps its transaction, and DuckDB refuses to CHECKPOINT (the
            # read snapshot) while another transaction is active: close it before filling.
            cur.close()
        state.planner = plan.planner
        self.tracker.planned_fixed += plan.size_estimate
        if self.quota_plan is None:  # the run's first plan: said once, settle passes are small
            self.quota_plan = quota.plan_quota(
                self.client, plan.planner.remaining_seconds(), plan.planner.density,
                self.rows_per_window,
            )
        workers = self._worker_count()
        plan.planner.workers = workers
        log.info(
            "%s (%s): head burn time %s, lower bound %s, %d worker(s), %d window(s)/gap(s) to"
            " fill, %d provisional span(s) to verify, ~%.0f rows per hour",
            "settle pass" if settle else "plan", self.source.name,
            to_ts(state.head_ts).isoformat(), to_ts(state.lower).isoformat(), workers,
            len(plan.planner), len(plan.verify_groups), plan.planner.density * 3600,
        )
        run_fill_pass(
            plan, state, self.source, writer, self.tracker, workers=workers, settle=settle,
            head_window=settle or MAX_SETTLE_PASSES == 0,
            on_progress=lambda: self._report_progress(writer.counters),
        )

    def _stopped(self, writer: WindowWriter) -> bool:
        return (self.state.fatal.error is not None or writer.error is not None
                or self.state.budget.exhausted)

    @staticmethod
    def _drain(writer: WindowWriter) -> None:
        while not writer.idle() and writer.error is None:
            time.sleep(0.02)

    def _worker_count(self) -> int:
        if self.workers_requested:
            return self.workers_requested
        rpm = self.client.limiter.current_rpm
        if not rpm:
            return 8
        latency = max(self.state.head.latency_seconds if self.state.head else 0.2, 0.02)
        needed = math.ceil(rpm / 60.0 * latency * 1.5) + 1
        return max(2, min(32, needed))

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

    # -- progress and status -----------------------------------------------------------
    def _on_commit(self, counters: WriterCounters) -> None:
        if time.monotonic() - self._last_status_write >= 2.0:
            self._last_status_write = time.monotonic()
            snap = self.tracker.snapshot(self.state, counters)
            self._write_status(
                {
                    "status": "running",
                    "run_id": self.run_id,
                    "target_days": self.max_days,
                    "source": snap.source,
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

    def _report_progress(self, counters: WriterCounters) -> None:
        if self.on_progress is not None:
            self.on_progress(self.tracker.snapshot(self.state, counters))

    def _write_status(self, payload: dict[str, Any]) -> None:
        try:
            write_status_file(payload, self.status_path)
        except OSError as exc:  # monitoring must never break the backfill
            log.warning("could not write the status file: %s", exc)

    def _finish(
        self, con: duckdb.DuckDBPyConnection, counters: WriterCounters | None,
        error: BaseException | None, head_ts: int | None, lower: int | None,
        genesis_ts: int | None = None,
    ) -> BackfillResult:
        facts = RunFacts(
            run_id=self.run_id, source=self.source.name, max_days=self.max_days,
            target_ts=self.target_ts, now=self.now,
            elapsed_seconds=time.monotonic() - self.tracker.started,
            pages=self.state.budget.used, budget_exhausted=self.state.budget.exhausted,
            settled=self.settled, settle_passes=self.settle_passes,
            horizon=self.state.horizon, client=self.client, stats_before=self._stats_before,
            planner=self.state.planner, quota_plan=self.quota_plan,
        )
        result = finish_run(con, facts, counters, error, head_ts, lower, genesis_ts)
        status = {
            "status": "complete" if result.complete else (
                "error" if result.stop_reason.value == "api_error" else "in_progress"),
            **result.to_dict(),
            "last_run": result.to_dict(),
        }
        self._write_status(status)
        return result
