"""One fill pass: windows handed to fetch workers, newest first, until the plan is empty.

Workers fetch through the source (v1 pages, v3 walks) and hand every page to the one writer;
this loop only schedules. A window the writer could not seal, or the API contradicted on
re-verification, goes back to the front of the plan (at most twice per pass for a failed
seal); a span whose members disagree as a whole is verified again one window at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from stx_pipeline.backfill.plan import FillPlan
from stx_pipeline.backfill.planner import Window, WindowPlanner
from stx_pipeline.backfill.progress import ProgressTracker
from stx_pipeline.backfill.run_state import Outcome, RunState
from stx_pipeline.backfill.source import WindowSource
from stx_pipeline.backfill.writer import WindowWriter

log = logging.getLogger("stx_pipeline.backfill")

MAX_RETRIES = 2  # per window and pass, for a window the chain moved under or that failed


def run_fill_pass(
    plan: FillPlan, state: RunState, source: WindowSource, writer: WindowWriter,
    tracker: ProgressTracker, *, workers: int, settle: bool, head_window: bool,
    on_progress: Callable[[], None],
) -> None:
    planner = plan.planner
    verify_groups = plan.verify_groups
    retries: dict[int, int] = {}
    inflight: dict[Future[Outcome], Window] = {}
    verifying: set[Future[Outcome]] = set()  # sealed already: not missing from coverage
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        tracker.phase = "settling (re-verify)" if settle else "phase 1 (new data)"
        if head_window:
            # the open head window: once per run, in the settle pass (what arrived while the
            # run filled is a closed gap by then)
            head = Window(state.head_ts, None)
            inflight[pool.submit(source.fetch_window, head, writer, state)] = head
        while True:
            if state.fatal.error is not None or writer.error is not None:
                state.stop.set()
            while (not state.stop.is_set() and len(inflight) < _worth_starting(
                    workers, state, source) and not state.budget.exhausted):
                if verify_groups:
                    members = verify_groups.popleft()
                    span = Window(members[0].start, members[-1].end, in_ledger=True)
                    fut = pool.submit(source.verify, members, writer, state)
                    inflight[fut] = span
                    verifying.add(fut)
                    continue
                window = planner.next()
                if window is None:
                    break
                if not settle:
                    tracker.phase = _phase_of(window, state.head_ts)
                inflight[pool.submit(source.fetch_window, window, writer, state)] = window
            if not inflight:
                if not writer.idle():
                    time.sleep(0.05)
                    continue
                requeued = requeue_failed(writer, planner, plan, tracker, retries)
                if requeued and not state.stop.is_set() and not state.budget.exhausted:
                    continue
                break
            tracker.inflight = len(inflight)
            tracker.inflight_seconds = sum(
                w.seconds for f, w in inflight.items() if f not in verifying)
            done, _ = wait(list(inflight), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                window = inflight.pop(fut)
                verifying.discard(fut)
                try:
                    outcome = fut.result()
                except BaseException as exc:  # API errors, a spent quota, or a bug: stop
                    state.fatal.set(exc)  # the run and keep what is committed
                    continue
                if outcome is Outcome.SPLIT:
                    planner.push_front(*window.split())
                    tracker.planned_fixed += 1
                elif outcome is Outcome.UNSTABLE:
                    count = retries.get(window.start, 0) + 1
                    retries[window.start] = count
                    if count <= MAX_RETRIES:
                        planner.push_front(Window(window.start, window.end, 0, True))
                elif outcome in (Outcome.DONE, Outcome.VERIFIED):
                    tracker.windows_done += 1
            requeue_failed(writer, planner, plan, tracker, retries)
            on_progress()
    tracker.inflight = 0
    tracker.inflight_seconds = 0


def _worth_starting(workers: int, state: RunState, source: WindowSource) -> int:
    """Windows in flight at most: a budget nearly spent goes to few windows that get
    somewhere, not to many that each spend it on their start (v3: listing tenures)."""
    left = state.budget.limit - state.budget.used
    return max(1, min(workers, left // source.requests_to_start_window))


def requeue_failed(
    writer: WindowWriter, planner: WindowPlanner, plan: FillPlan, tracker: ProgressTracker,
    retries: dict[int, int],
) -> bool:
    """Windows the writer gave back (split checks, reopened, failed seals) into the plan."""
    requeued = False
    counters = writer.counters
    while counters.split_checks:  # a span disagreed: check its windows one by one
        members = counters.split_checks.popleft()
        plan.verify_groups.extend((m,) for m in members)
        tracker.planned_fixed += len(members)
        requeued = True
    while counters.reopened:  # the chain changed a sealed window: fetch it again
        window = counters.reopened.popleft()
        planner.push_front(Window(window.start, window.end, 0, True))
        tracker.planned_fixed += 1
        requeued = True
    while counters.verify_failures:
        window = counters.verify_failures.popleft()
        count = retries.get(window.start, 0) + 1
        retries[window.start] = count
        if count <= MAX_RETRIES:
            planner.push_front(Window(window.start, window.end, 0, True))
            requeued = True
    return requeued


def _phase_of(window: Window, head_ts: int) -> str:
    return "phase 1 (new data)" if (window.end or 0) >= head_ts - 3600 else (
        "phase 2 (history)"
    )
