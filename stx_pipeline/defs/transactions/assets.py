"""`transactions`: one resumable backfill run of the core, reported as asset metadata.

The sensor and the checks read this metadata from Dagster's event log, so every figure
they need (completeness, oldest row, rows) is recorded here.
"""

# No `from __future__ import annotations` in decorated modules: Dagster inspects the
# `context` type hints at definition time.

import time
from datetime import datetime
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pydantic import Field, field_validator

from stx_pipeline.backfill.result import BackfillResult
from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import HiroResource
from stx_pipeline.defs.transactions.source_checks import api_metadata, deprecation_message


class TransactionsConfig(dg.Config):
    """Run config of one backfill run (the CLI's `backfill` options)."""

    target_days: int = Field(default=180, description="History to cover, in days before now.")
    max_pages: int = Field(default=10_000, description="Page budget of this run.")
    force_refresh: bool = Field(
        default=False, description="Clear table and ledger once, then refetch everything."
    )

    @field_validator("target_days", "max_pages")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be > 0")
        return value


def _ts(value: datetime | None) -> dg.MetadataValue | None:
    return dg.MetadataValue.timestamp(value) if value is not None else None


def summary_markdown(result: BackfillResult, target_days: int) -> str:
    """A short human summary for the asset page."""
    reason = result.stop_reason.value
    oldest = result.oldest_block_time
    newest = result.newest_block_time
    lines = [
        f"**Backfill {'complete' if result.complete else 'in progress'}** "
        f"— stopped: `{reason}`",
        "",
        "| figure | value |",
        "|---|---|",
        f"| target | {target_days} days |",
        f"| coverage | {result.coverage_percent:.2f} % |",
        f"| missing days | {result.missing_days:.2f} |",
        f"| rows total / new | {result.rows_total:,} / "
        f"{result.rows_inserted:,} |",
        f"| windows sealed / total | {result.windows_sealed_total:,} / "
        f"{result.windows_total:,} |",
        f"| pages / requests | {result.pages:,} / "
        f"{result.requests:,} |",
        f"| retries / 429s | {result.retries} / "
        f"{result.responses_429} |",
        f"| oldest block_time | {oldest.isoformat() if oldest else '—'} |",
        f"| newest block_time | {newest.isoformat() if newest else '—'} |",
        f"| elapsed | {result.elapsed_seconds:.1f} s |",
    ]
    return "\n".join(lines)


def backfill_metadata(result: BackfillResult, target_days: int) -> dict[str, Any]:
    """Materialization metadata of one run; keys are read back by the backfill sensor."""
    rows_total = result.rows_total
    meta: dict[str, Any] = {
        "rows_total": dg.MetadataValue.int(rows_total),
        "rows_new": dg.MetadataValue.int(result.rows_inserted),
        "rows_updated": dg.MetadataValue.int(result.rows_updated),
        "rows_orphaned": dg.MetadataValue.int(result.rows_orphaned),
        "rows_rejected": dg.MetadataValue.int(result.rows_rejected),
        "pages": dg.MetadataValue.int(result.pages),
        "requests": dg.MetadataValue.int(result.requests),
        "coverage_percent": dg.MetadataValue.float(result.coverage_percent),
        "windows_sealed": dg.MetadataValue.int(result.windows_sealed_total),
        "windows_sealed_this_run": dg.MetadataValue.int(result.windows_sealed),
        "windows_total": dg.MetadataValue.int(result.windows_total),
        "stop_reason": dg.MetadataValue.text(result.stop_reason.value),
        "complete": dg.MetadataValue.bool(result.complete),
        "target_days": dg.MetadataValue.int(target_days),
        "missing_days": dg.MetadataValue.float(result.missing_days),
        "retries": dg.MetadataValue.int(result.retries),
        "responses_429": dg.MetadataValue.int(result.responses_429),
        "elapsed_seconds": dg.MetadataValue.float(result.elapsed_seconds),
        "summary": dg.MetadataValue.md(summary_markdown(result, target_days)),
        "dagster/row_count": dg.MetadataValue.int(rows_total),
    }
    for key in ("oldest_block_time", "newest_block_time", "target_time"):
        ts = _ts(getattr(result, key))
        if ts is not None:
            meta[key] = ts
    return meta


class _ProgressLogger:
    """Forwards the core's progress callbacks to the run log, at most every few seconds."""

    def __init__(self, context: dg.AssetExecutionContext, every_seconds: float = 10.0) -> None:
        self._context = context
        self._every = every_seconds
        self._last = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        payload = args[0] if len(args) == 1 and not kwargs else (args or kwargs)
        if hasattr(payload, "to_dict"):
            payload = payload.to_dict()
        self._context.log.info(f"backfill progress: {payload}")


@dg.asset(
    key=settings.TRANSACTIONS_KEY,
    group_name="stacks",
    kinds={"duckdb", "python"},
    pool=settings.DUCKDB_POOL,
    description=(
        "Every Stacks transaction of the last `target_days`, exact and resumable: one run "
        "fills uncovered ledger windows newest first until the target, a page budget, "
        "or a clean early stop."
    ),
)
def transactions(
    context: dg.AssetExecutionContext,
    config: TransactionsConfig,
    hiro: HiroResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    """Run `ensure_transaction_history`; early stops succeed, an API error fails the run."""
    from stx_pipeline.backfill import StopReason, ensure_transaction_history
    from stx_pipeline.backfill.api_notice import record_api_notice

    context.log.info(
        f"backfill: target_days={config.target_days} max_pages={config.max_pages} "
        f"force_refresh={config.force_refresh} api={hiro.resolved_base_url()}"
    )
    with hiro.get_client() as client:
        result = ensure_transaction_history(
            max_days=config.target_days,
            force_refresh=config.force_refresh,
            max_pages=config.max_pages,
            db_path=duckdb.database,
            client=client,
            on_progress=_ProgressLogger(context),
        )
        record_api_notice(client.deprecation.to_dict())
        api = api_metadata(client.deprecation.to_dict())
    notice = deprecation_message({k: v.value for k, v in api.items()})
    if notice:
        context.log.warning(notice)
    if result.stop_reason == StopReason.API_ERROR:
        message = (result.error or "API error").strip().splitlines()[0]
        raise dg.Failure(
            description=message,
            metadata={**backfill_metadata(result, config.target_days), **api},
            allow_retries=False,
        )
    if not result.complete:
        context.log.warning(
            f"backfill stopped early ({result.stop_reason}); the next run resumes. "
            f"coverage={result.coverage_percent:.2f}% missing_days={result.missing_days:.2f}"
        )
    return dg.MaterializeResult(metadata={**backfill_metadata(result, config.target_days), **api})
