"""Runs the backfill again and again until the target is covered, with stall detection.

The seed called this its "monitor loop" (docs/architecture.md, "The seed algorithm");
it drives runs rather than watching them, hence the name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stx_pipeline.backfill.result import BackfillResult, StopReason
from stx_pipeline.backfill.runner import ensure_transaction_history
from stx_pipeline.backfill.status import check_backfill_progress, write_status_file
from stx_pipeline.hiro.errors import HiroError

log = logging.getLogger("stx_pipeline.backfill")


@dataclass
class UntilCompleteOutcome:
    success: bool
    reason: str  # complete | timeout | stalled | max_runs | rate_limit_exhausted
    runs: int
    results: list[BackfillResult] = field(default_factory=list)


def run_backfill_until_complete(
    target_days: float = 180,
    max_runs: int = 100,
    wait_seconds: float = 30,
    timeout_minutes: float = 60,
    stall_timeout_seconds: float = 300,
    *,
    max_pages: int = 10_000,
    run_once: Callable[..., BackfillResult] = ensure_transaction_history,
    sleep: Callable[[float], None] = time.sleep,
    **backfill_kwargs: object,
) -> UntilCompleteOutcome:
    """Repeat `ensure_transaction_history` until complete, out of runs, out of time or stalled.

    A stall is no new coverage and no new rows for `stall_timeout_seconds`; an exhausted
    rate limit stops at once (sleeping through a spent quota helps nobody).
    """
    started = time.monotonic()
    last_progress_at = started
    last_mark: tuple[int, float] | None = None
    results: list[BackfillResult] = []
    db_path = backfill_kwargs.get("db_path")
    for run_number in range(1, max_runs + 1):
        if time.monotonic() - started > timeout_minutes * 60:
            log.error("timeout after %s minutes", timeout_minutes)
            return _done(False, "timeout", run_number - 1, results, target_days)
        before = check_backfill_progress(target_days, db_path)  # type: ignore[arg-type]
        log.info(
            "[run %d] before: %s rows, %.1f%% of windows covered",
            run_number, f"{before['rows']:,}", before.get("percent_complete", 0.0),
        )
        if last_mark is None:
            last_mark = (int(before["rows"]), float(before.get("percent_complete", 0.0)))
        if before["complete"] and not results:
            # already complete before any run of this loop; once a run has started, only a
            # run that settled (re-verified the provisional span) says complete
            log.info("backfill complete")
            return _done(True, "complete", 0, results, target_days)
        try:
            result = run_once(max_days=target_days, max_pages=max_pages, **backfill_kwargs)
        except HiroError as exc:  # transient by nature: the next run resumes
            log.warning("[run %d] error: %s", run_number, exc)
            result = None
        if result is not None:
            results.append(result)
            if result.complete:
                log.info("backfill complete")
                return _done(True, "complete", run_number, results, target_days)
            if result.stop_reason is StopReason.RATE_LIMIT_EXHAUSTED:
                log.error("rate limit exhausted; retry after %s", result.retry_after)
                return _done(False, "rate_limit_exhausted", run_number, results, target_days)
        after = check_backfill_progress(target_days, db_path)  # type: ignore[arg-type]
        mark = (int(after["rows"]), float(after.get("percent_complete", 0.0)))
        if mark != last_mark:
            last_progress_at = time.monotonic()
        else:
            log.warning("[run %d] no progress made (same rows and coverage)", run_number)
        last_mark = mark
        if time.monotonic() - last_progress_at > stall_timeout_seconds:
            log.error("stalled: no progress for %ss", stall_timeout_seconds)
            return _done(False, "stalled", run_number, results, target_days)
        if run_number < max_runs:
            log.info("waiting %ss before the next run", wait_seconds)
            sleep(wait_seconds)
    log.error("exceeded max_runs (%d); the backfill may not be complete", max_runs)
    return _done(False, "max_runs", max_runs, results, target_days)


def _done(
    success: bool, reason: str, runs: int, results: list[BackfillResult], target_days: float
) -> UntilCompleteOutcome:
    try:
        write_status_file(
            {"status": "complete" if success else "failed", "monitor_reason": reason,
             "runs": runs, "target_days": target_days}
            | ({"last_run": results[-1].to_dict()} if results else {})
        )
    except OSError as exc:
        log.warning("could not write the status file: %s", exc)
    return UntilCompleteOutcome(success, reason, runs, results)
