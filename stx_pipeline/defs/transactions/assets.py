"""`transactions`: one resumable backfill run of the core, reported as asset metadata.

The sensor and the checks read this metadata from Dagster's event log, so every figure
they need (completeness, oldest row, rows) is recorded here.
"""

# No `from __future__ import annotations` in decorated modules: Dagster inspects the
# `context` type hints at definition time.

from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field, field_validator

from stx_pipeline.backfill import BackfillResult, StopReason, ensure_transaction_history
from stx_pipeline.backfill.api_notice import record_api_notice
from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import HiroResource, WarehouseResource
from stx_pipeline.defs.transactions.progress import ProgressReporter
from stx_pipeline.defs.transactions.source_checks import api_metadata, deprecation_message


class TransactionsConfig(dg.Config):
    """Run config of one backfill run (the CLI's `backfill` options).

    The defaults are the settings (`STX_PIPELINE_TARGET_DAYS`, `STX_PIPELINE_MAX_PAGES`)
    as the code location read them when it loaded: the Materialize button (empty config)
    and the launchpad get the same target and budget as the sensor and the schedule.
    """

    target_days: int = Field(
        default=settings.default_target_days(),
        description="History to cover, in days before now (`STX_PIPELINE_TARGET_DAYS`).",
    )
    max_pages: int = Field(
        default=settings.max_pages_per_run(),
        description="Page budget of this run (`STX_PIPELINE_MAX_PAGES`).",
    )
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


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def headline(result: BackfillResult, target_days: int) -> str:
    """One sentence: where the history stands, never claiming a target that was not met."""
    if result.stop_reason is StopReason.START_OF_CHAIN:
        return (
            f"**Backfill complete** back to the start of the chain "
            f"({_when(result.oldest_block_time)}): the chain is younger than the "
            f"{target_days}-day target."
        )
    if result.complete:
        return f"**Backfill complete**: the {target_days}-day target is covered."
    return (
        f"**Backfill in progress**: {result.coverage_percent:.2f} % of the {target_days}-day "
        f"target covered, {result.missing_days:.2f} days missing; stopped on "
        f"`{result.stop_reason.value}`, the next run resumes."
    )


def _horizon_hours(result: BackfillResult) -> str:
    if result.finality_horizon is None or result.head_burn_time is None:
        return "4"
    return f"{(result.head_burn_time - result.finality_horizon).total_seconds() / 3600:g}"


def summary_markdown(result: BackfillResult, target_days: int) -> str:
    """The asset page's first metadata entry: what each figure is, in words."""
    lines = [
        headline(result, target_days),
        "",
        "| figure | value | meaning |",
        "|---|---|---|",
        f"| coverage | {result.coverage_percent:.2f} % | share of the span from the target "
        "(or the chain's start) to the newest block held in sealed, fully counted ledger "
        "windows |",
        f"| of which final | {result.coverage_final_percent:.2f} % | sealed and beyond the "
        "reach of reorgs and late Bitcoin timestamps; the rest of the sealed span (the newest "
        f"~{_horizon_hours(result)} h, {result.windows_provisional} window(s)) is provisional "
        f"and re-verified by every run ({result.windows_verified} confirmed, "
        f"{result.windows_reopened} refetched this run) |",
        f"| missing | {result.missing_days:.2f} days | that span not sealed yet |",
        f"| rows | {result.rows_total:,} (+{result.rows_inserted:,} this run) | canonical "
        "transactions in the file |",
        f"| windows sealed | {result.windows_sealed_total:,} of {result.windows_total:,} | "
        "ledger windows from the target to the head |",
        f"| requests | {result.requests:,} ({result.retries} retried, "
        f"{result.responses_429} × HTTP 429) | API calls of this run |",
        f"| oldest / newest block | {_when(result.oldest_block_time)} / "
        f"{_when(result.newest_block_time)} | `block_time` of the rows |",
        f"| elapsed | {result.elapsed_seconds:.1f} s | this run |",
    ]
    if result.quota_left is not None:
        of = f" of {result.quota_limit:,}" if result.quota_limit else ""
        lines.append(f"| API quota left this month | {result.quota_left:,}{of} |")
    return "\n".join(lines)


def backfill_metadata(result: BackfillResult, target_days: int) -> dict[str, Any]:
    """Materialization metadata of one run, the summary first; keys are read back by the
    backfill sensor and share their labels with the progress observations."""
    meta: dict[str, Any] = {
        "summary": dg.MetadataValue.md(summary_markdown(result, target_days)),
        "complete": dg.MetadataValue.bool(result.complete),
        "stop_reason": dg.MetadataValue.text(result.stop_reason.value),
        "source": dg.MetadataValue.text(result.source or "none"),
        "target_days": dg.MetadataValue.int(target_days),
        "coverage_percent": dg.MetadataValue.float(round(result.coverage_percent, 2)),
        "coverage_final_percent": dg.MetadataValue.float(round(result.coverage_final_percent, 2)),
        "windows_final": dg.MetadataValue.int(result.windows_final),
        "windows_provisional": dg.MetadataValue.int(result.windows_provisional),
        "windows_verified_this_run": dg.MetadataValue.int(result.windows_verified),
        "windows_reopened_this_run": dg.MetadataValue.int(result.windows_reopened),
        "missing_days": dg.MetadataValue.float(round(result.missing_days, 3)),
        "rows_total": dg.MetadataValue.int(result.rows_total),
        "rows_new": dg.MetadataValue.int(result.rows_inserted),
        "rows_updated": dg.MetadataValue.int(result.rows_updated),
        "rows_orphaned": dg.MetadataValue.int(result.rows_orphaned),
        "rows_rejected": dg.MetadataValue.int(result.rows_rejected),
        "windows_sealed": dg.MetadataValue.int(result.windows_sealed_total),
        "windows_total": dg.MetadataValue.int(result.windows_total),
        "windows_sealed_this_run": dg.MetadataValue.int(result.windows_sealed),
        "pages": dg.MetadataValue.int(result.pages),
        "requests": dg.MetadataValue.int(result.requests),
        "retries": dg.MetadataValue.int(result.retries),
        "responses_429": dg.MetadataValue.int(result.responses_429),
        "rows_per_second": dg.MetadataValue.float(round(result.rows_per_second, 1)),
        "elapsed_seconds": dg.MetadataValue.float(round(result.elapsed_seconds, 1)),
        "dagster/row_count": dg.MetadataValue.int(result.rows_total),
    }
    for key in ("quota_limit", "quota_left", "quota_used", "quota_needed"):
        value = getattr(result, key)
        if value is not None:  # only when the gateway announces a monthly quota
            meta[key] = dg.MetadataValue.int(value)
    for key in ("oldest_block_time", "newest_block_time", "target_time", "finality_horizon",
                "quota_reset_at"):
        ts = _ts(getattr(result, key))
        if ts is not None:
            meta[key] = ts
    return meta


@dg.asset(
    key=settings.TRANSACTIONS_KEY,
    group_name="stacks",
    kinds={"duckdb", "python"},
    pool=settings.DUCKDB_POOL,
    description=(
        "Every Stacks transaction of the last `target_days` (default "
        f"{settings.default_target_days()} days, `STX_PIPELINE_TARGET_DAYS`), exact and "
        "resumable: one run fills uncovered ledger windows newest first until the target, "
        "a page budget, or a clean early stop. While it runs, progress observations "
        "(coverage, rows, rate, ETA) appear in Events and Plots."
    ),
    metadata={
        "target_days": settings.default_target_days(),
        "max_pages_per_run": settings.max_pages_per_run(),
    },
)
def transactions(
    context: dg.AssetExecutionContext,
    config: TransactionsConfig,
    hiro: HiroResource,
    duckdb: WarehouseResource,
) -> dg.MaterializeResult:
    """Run `ensure_transaction_history`; early stops succeed, an API error fails the run."""
    context.log.info(
        f"backfill to a {config.target_days}-day target, at most {config.max_pages:,} pages"
        f"{', clearing the table first' if config.force_refresh else ''}; "
        f"API {hiro.resolved_base_url()}, warehouse {duckdb.describe()}"
    )
    with hiro.get_client() as client:
        reporter = ProgressReporter(
            context,
            client=client,
            target_days=config.target_days,
            every_seconds=settings.progress_interval_seconds(),
        )
        result = ensure_transaction_history(
            max_days=config.target_days,
            force_refresh=config.force_refresh,
            max_pages=config.max_pages,
            db_path=duckdb.database,
            client=client,
            on_progress=reporter,
            source=hiro.source,
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
            f"backfill stopped early ({result.stop_reason.value}); the next run resumes: "
            f"{result.coverage_percent:.2f} % covered, {result.missing_days:.2f} days missing"
        )
    return dg.MaterializeResult(metadata={**backfill_metadata(result, config.target_days), **api})
