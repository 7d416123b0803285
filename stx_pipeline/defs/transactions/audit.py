"""The audit of sealed history in Dagster: a check, its own job and a weekly schedule.

A backfill run never reads a final window again; the audit (backfill/audit.py) re-asks the
API for each sealed window's total, one request each, and reopens the windows that drifted
so the next run refetches them. It costs a request per window, so it is not part of the
backfill runs: it runs in `audit_sealed_history_job`, weekly, and fails (ERROR) with the
windows and rows that drifted, which the alert sensor sends on.
"""

from __future__ import annotations

import dagster as dg

from stx_pipeline.backfill.audit import audit_sealed_history
from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import HiroResource, WarehouseResource

AUDIT_CHECK_NAME = "sealed_history_matches_api"


@dg.asset_check(
    asset=settings.TRANSACTIONS_KEY,
    name=AUDIT_CHECK_NAME,
    blocking=False,
    pool=settings.DUCKDB_POOL,
    description=(
        "ERROR if sealed history no longer matches the API: every sealed window's total is"
        " asked again (one request each, or `STX_PIPELINE_AUDIT_SAMPLE` random windows); a"
        " window that drifted is reopened and the next backfill run refetches it. Runs"
        " weekly in `audit_sealed_history_job`, not with the backfill runs."
    ),
)
def sealed_history_matches_api(
    hiro: HiroResource, duckdb: WarehouseResource
) -> dg.AssetCheckResult:
    client = hiro.get_client()
    try:
        result = audit_sealed_history(
            settings.default_target_days(), settings.audit_sample(),
            db_path=duckdb.database, client=client,
        )
    finally:
        client.close()
    drifted = [
        {"window": f"{d.window_start.isoformat()}..{d.window_end.isoformat()}",
         "final": d.final, "api_total": d.api_total, "stored_rows": d.stored_rows,
         "rows": d.rows, "reason": d.reason}
        for d in result.drifted[:50]
    ]
    return dg.AssetCheckResult(
        passed=result.ok,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.summary(),
        metadata={
            "windows_checked": result.windows_checked,
            "windows_sealed": result.windows_sealed,
            "requests": result.requests,
            "windows_drifted": len(result.drifted),
            "rows_drift": result.rows_drift,
            "drifted": dg.MetadataValue.json(drifted),
        },
    )


audit_sealed_history_job = dg.define_asset_job(
    name="audit_sealed_history_job",
    selection=dg.AssetSelection.checks(sealed_history_matches_api),
    description="Re-ask the API for every sealed window's total; reopen those that drifted.",
    tags=settings.writer_run_tags(),
)


@dg.schedule(
    name="audit_sealed_history_schedule",
    job=audit_sealed_history_job,
    cron_schedule=settings.audit_cron(),
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Weekly audit of sealed history (`STX_PIPELINE_AUDIT_CRON`, UTC).",
)
def audit_sealed_history_schedule(_context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=None, tags={"stx_pipeline/trigger": "schedule"})
