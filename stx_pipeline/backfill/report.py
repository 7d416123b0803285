"""The end of a run: why it stopped, the `BackfillResult`, its row in `backfill_runs` and
its log line."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from stx_pipeline.backfill import quota
from stx_pipeline.backfill.coverage import LedgerCoverage, ledger_coverage
from stx_pipeline.backfill.planner import WindowPlanner
from stx_pipeline.backfill.result import BackfillResult, StopReason
from stx_pipeline.backfill.status import progress_from_db
from stx_pipeline.backfill.writer import WriterCounters, to_ts
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import HiroError, RateLimitExhausted

log = logging.getLogger("stx_pipeline.backfill")


@dataclass
class RunFacts:
    """What the run knows at its end, besides the ledger and the writer's counts."""

    run_id: str
    source: str
    max_days: float
    target_ts: int
    now: datetime
    elapsed_seconds: float
    pages: int
    budget_exhausted: bool
    settled: bool
    settle_passes: int
    horizon: int
    client: HiroClient
    stats_before: dict[str, Any]
    planner: WindowPlanner | None
    quota_plan: quota.QuotaPlan | None


def stop_reason(facts: RunFacts, error: BaseException | None, head_ts: int | None,
                genesis_ts: int | None, cov: LedgerCoverage | None) -> StopReason:
    if error is not None:
        return (StopReason.RATE_LIMIT_EXHAUSTED if isinstance(error, RateLimitExhausted)
                else StopReason.API_ERROR)
    if head_ts is None:
        return StopReason.START_OF_CHAIN
    if cov is not None and cov.missing_seconds == 0:
        if not facts.settled:
            # every window sealed, but the settle pass did not confirm the provisional
            # span (budget spent in it, or the chain kept changing it)
            return (StopReason.MAX_PAGES if facts.budget_exhausted
                    else StopReason.CHAIN_UNSETTLED)
        return (StopReason.START_OF_CHAIN
                if genesis_ts is not None and facts.target_ts < genesis_ts
                else StopReason.TARGET_REACHED)
    if facts.budget_exhausted:
        return StopReason.MAX_PAGES
    return StopReason.NO_PROGRESS


def finish_run(
    con: duckdb.DuckDBPyConnection, facts: RunFacts, counters: WriterCounters | None,
    error: BaseException | None, head_ts: int | None, lower: int | None,
    genesis_ts: int | None = None,
) -> BackfillResult:
    counters = counters or WriterCounters()
    elapsed = facts.elapsed_seconds
    cov = None
    if head_ts is not None and lower is not None:
        # Judged on [target, head): the hour of margin below the target is fetched for
        # the seed's MIN(block_time) test, not counted (coverage.py, status.py agree).
        judged = max(facts.target_ts, genesis_ts if genesis_ts is not None else lower)
        cov = ledger_coverage(con, judged, head_ts - 1)
    reason = stop_reason(facts, error, head_ts, genesis_ts, cov)
    complete = reason.complete and (head_ts is None or error is None)
    if error is not None and not isinstance(error, HiroError):
        log.error("backfill stopped by an unexpected error: %s", one_line(error))
    db = progress_from_db(con, facts.max_days, now=facts.now)
    rate = counters.rows_inserted / elapsed if elapsed > 0 else 0.0
    eta = None
    planner = facts.planner
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
    stats = dict(facts.client.stats.snapshot())

    def delta(key: str) -> int:
        return int(stats.get(key, 0) or 0) - int(facts.stats_before.get(key, 0) or 0)

    quota_fields = quota.result_fields(facts.client, facts.quota_plan)
    result = BackfillResult(
        stop_reason=reason,
        complete=complete,
        run_id=facts.run_id,
        source=facts.source,
        target_days=facts.max_days,
        target_time=to_ts(facts.target_ts),
        head_burn_time=to_ts(head_ts) if head_ts is not None else None,
        pages=facts.pages,
        requests=delta("requests"),
        retries=delta("retries"),
        responses_429=delta("responses_429"),
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
        finality_horizon=to_ts(facts.horizon) if head_ts is not None else None,
        settle_passes=facts.settle_passes,
        missing_days=round(missing / 86400, 4),
        elapsed_seconds=round(elapsed, 3),
        rows_per_second=round(rate, 1),
        eta_seconds=round(eta, 1) if eta is not None else None,
        error=one_line(error) if error is not None else None,
        retry_after=error.retry_at if isinstance(error, RateLimitExhausted) else None,
        faults_by_kind=dict(stats.get("faults_by_kind", {}) or {}),
        **quota_fields,
    )
    quota.record(con, quota_fields, datetime.now(UTC))
    con.execute(
        """UPDATE backfill_runs SET finished_at = ?, stop_reason = ?, pages = ?,
           requests = ?, rows_inserted = ?, rows_updated = ?, rows_orphaned = ?,
           windows_sealed = ?, elapsed_seconds = ?, source = ? WHERE run_id = ?""",
        [datetime.now(UTC), reason.value, result.pages, result.requests,
         result.rows_inserted, result.rows_updated, result.rows_orphaned,
         result.windows_sealed, result.elapsed_seconds, facts.source, facts.run_id],
    )
    log.info(
        "backfill %s stopped: %s | source %s | pages %d | rows +%d (updated %d, orphaned %d,"
        " rejected %d) | total %d | coverage %.2f%% (final %.2f%%) | verified %d, reopened %d"
        " | %.1fs", facts.run_id, reason.value, facts.source, result.pages,
        result.rows_inserted, result.rows_updated, result.rows_orphaned, result.rows_rejected,
        result.rows_total, result.coverage_percent, result.coverage_final_percent,
        result.windows_verified, result.windows_reopened, result.elapsed_seconds,
    )
    if result.error:
        log.error("backfill %s: %s", facts.run_id, result.error)
    return result


def one_line(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
