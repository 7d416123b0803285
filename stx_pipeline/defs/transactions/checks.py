"""Data-quality checks on `transactions`, each on a brief read-only DuckDB connection.

Severity follows the impact: a hole, a duplicate or an invalid row makes every metric
wrong (ERROR, and the first two block downstream assets); an unfinished backfill, stale
data or rejected rows are worth a look but not a stop (WARN).
"""

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import read_only_connection

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
MAX_SAMPLES = 10


def latest_transactions_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    """Plain values of the latest `transactions` materialization's metadata ({} if none)."""
    event = instance.get_latest_materialization_event(TRANSACTIONS)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def target_days_for(context: dg.AssetCheckExecutionContext) -> int:
    """The target of the latest run (checks have no config of their own), else the default."""
    value = latest_transactions_metadata(context.instance).get("target_days")
    try:
        return int(value) if value is not None else settings.default_target_days()
    except (TypeError, ValueError):
        return settings.default_target_days()


@contextmanager
def _warehouse(duckdb_resource: DuckDBResource) -> Iterator[duckdb.DuckDBPyConnection]:
    if not os.path.exists(duckdb_resource.database):
        raise dg.Failure(f"DuckDB file {duckdb_resource.database} does not exist yet")
    with read_only_connection(duckdb_resource.database) as con:
        yield con


# --- coverage ledger ------------------------------------------------------------------


def ledger_windows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Ledger rows as unix-second windows, oldest first."""
    rows = con.execute(
        """
        SELECT epoch(window_start)::BIGINT, epoch(window_end)::BIGINT, expected, loaded,
               rejected, status
        FROM coverage_ledger ORDER BY window_start, window_end
        """
    ).fetchall()
    keys = ("start", "end", "expected", "loaded", "rejected", "status")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def find_ledger_gaps(windows: list[dict[str, Any]], target_epoch: int) -> dict[str, Any]:
    """Problems of the covered span: from the oldest sealed window at/after the target to
    the newest sealed one. The open head (newer) and the not-yet-reached past (older) are
    the backfill's job, reported by `backfill_complete`, not holes."""
    in_range = [w for w in windows if w["end"] >= target_epoch]
    sealed = [w for w in in_range if w["status"] == "sealed"]
    result: dict[str, Any] = {
        "windows_checked": len(sealed),
        "gaps": [],
        "miscounted": [],
        "unsealed_inside": [],
        "overlaps": 0,
        "gap_seconds": 0,
    }
    if not sealed:
        return result
    lo, hi = sealed[0]["start"], max(w["end"] for w in sealed)
    for w in sealed:
        expected = w["expected"]
        if expected is None or int(w["loaded"]) + int(w["rejected"]) != int(expected):
            result["miscounted"].append(
                f"{_iso(w['start'])}..{_iso(w['end'])}: expected={expected} "
                f"loaded={w['loaded']} rejected={w['rejected']}"
            )
    for w in in_range:
        if w["status"] != "sealed" and w["start"] >= lo and w["end"] <= hi:
            result["unsealed_inside"].append(
                f"{_iso(w['start'])}..{_iso(w['end'])} ({w['status']})"
            )
    covered_to = sealed[0]["end"]
    for w in sealed[1:]:
        if w["start"] > covered_to + 1:
            result["gaps"].append(f"{_iso(covered_to + 1)}..{_iso(w['start'] - 1)}")
            result["gap_seconds"] += w["start"] - covered_to - 1
        elif w["start"] <= covered_to:
            result["overlaps"] += 1
        covered_to = max(covered_to, w["end"])
    return result


@dg.asset_check(
    asset=TRANSACTIONS,
    description="Every ledger window from the target to the newest sealed one is sealed.",
    pool=settings.DUCKDB_POOL,
)
def backfill_complete(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    """WARN while the history does not reach the target yet; says how many days are missing."""
    target_days = target_days_for(context)
    progress = _backfill_progress(target_days, duckdb)
    complete = bool(progress.get("complete"))
    missing = float(progress.get("missing_days") or 0.0)
    meta: dict[str, Any] = {
        "target_days": target_days,
        "missing_days": dg.MetadataValue.float(round(missing, 4)),
        "missing_days_rounded_up": math.ceil(missing - 1e-9) if missing > 0 else 0,
        "coverage_percent": dg.MetadataValue.float(
            float(progress.get("percent_complete", progress.get("coverage_percent")) or 0)
        ),
        "rows": int(progress.get("rows") or 0),
        "source": str(progress.get("source", "check_backfill_progress")),
    }
    for key in ("oldest", "newest", "target_time"):
        value = progress.get(key)
        if value is not None:
            meta[key] = str(value)
    return dg.AssetCheckResult(
        passed=complete,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"history covers the {target_days}-day target"
            if complete
            else f"{missing:.2f} of {target_days} days still missing"
        ),
        metadata=meta,
    )


def _backfill_progress(target_days: int, duckdb_resource: DuckDBResource) -> dict[str, Any]:
    """The core's progress report, falling back to the ledger when it lacks the figures."""
    try:
        from stx_pipeline.backfill.status import check_backfill_progress
    except ImportError:  # core not installed yet: ledger only
        check_backfill_progress = None
    if check_backfill_progress is not None:
        progress = dict(
            check_backfill_progress(target_days=target_days, db_path=duckdb_resource.database)
        )
        if "complete" in progress and "missing_days" in progress:
            return progress
    return _ledger_progress(target_days, duckdb_resource)


def _ledger_progress(target_days: int, duckdb_resource: DuckDBResource) -> dict[str, Any]:
    now = int(time.time())
    target = now - target_days * 86400
    with _warehouse(duckdb_resource) as con:
        windows = ledger_windows(con)
        rows = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
    sealed = [w for w in windows if w["status"] == "sealed" and w["end"] >= target]
    oldest = min((w["start"] for w in sealed), default=now)
    missing_seconds = max(0, oldest - target)
    return {
        "source": "coverage_ledger",
        "complete": bool(sealed) and missing_seconds == 0,
        "missing_days": missing_seconds / 86400,
        "coverage_percent": 100.0 * (1 - missing_seconds / max(1, now - target)),
        "rows": rows,
        "target_time": _iso(target),
    }


def count_gap_problems(found: dict[str, Any], claims_complete: bool) -> int:
    """Miscounted sealed windows always count; holes only once the backfill claims complete.

    While a backfill is in progress its concurrent workers leave partial windows and
    not-yet-carved gaps between sealed ones: that is pending work (reported by
    `backfill_complete`), not damage. Once a run reports `complete`, any hole is a defect.
    """
    problems = len(found["miscounted"])
    if claims_complete:
        problems += len(found["gaps"]) + len(found["unsealed_inside"])
    return problems


@dg.asset_check(
    asset=TRANSACTIONS,
    blocking=True,
    description=(
        "Sealed ledger windows are fully counted (loaded + rejected == expected) and, once the "
        "backfill reports complete, contiguous and all sealed from the target to the newest."
    ),
    pool=settings.DUCKDB_POOL,
)
def no_gaps(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """ERROR on a hole: metrics over a hole would show a false drop, so block downstream."""
    target_days = target_days_for(context)
    claims_complete = bool(latest_transactions_metadata(context.instance).get("complete"))
    target_epoch = int(time.time()) - target_days * 86400
    with _warehouse(duckdb) as con:
        found = find_ledger_gaps(ledger_windows(con), target_epoch)
    problems = count_gap_problems(found, claims_complete)
    pending = len(found["gaps"]) + len(found["unsealed_inside"])
    if problems:
        description = (
            f"{len(found['gaps'])} gaps, {len(found['miscounted'])} miscounted and "
            f"{len(found['unsealed_inside'])} unsealed windows inside the covered span"
        )
    elif pending:
        description = (
            f"{found['windows_checked']} sealed windows fully counted; {pending} holes are "
            "pending work of the backfill in progress"
        )
    else:
        description = f"{found['windows_checked']} sealed windows contiguous and fully counted"
    return dg.AssetCheckResult(
        passed=problems == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "backfill_claims_complete": claims_complete,
            "windows_checked": found["windows_checked"],
            "gaps": len(found["gaps"]),
            "gap_seconds": found["gap_seconds"],
            "miscounted_windows": len(found["miscounted"]),
            "unsealed_inside": len(found["unsealed_inside"]),
            "overlapping_windows": found["overlaps"],
            "samples": dg.MetadataValue.json(
                {k: found[k][:MAX_SAMPLES] for k in ("gaps", "miscounted", "unsealed_inside")}
            ),
        },
    )


# --- row-level checks -----------------------------------------------------------------


@dg.asset_check(
    asset=TRANSACTIONS,
    blocking=True,
    description="`tx_id` is unique: a duplicate double-counts fees and activity.",
    pool=settings.DUCKDB_POOL,
)
def unique_tx_id(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with _warehouse(duckdb) as con:
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT tx_id) FROM transactions"
        ).fetchone()
        samples = [
            r[0]
            for r in con.execute(
                "SELECT tx_id FROM transactions GROUP BY tx_id HAVING count(*) > 1 "
                f"ORDER BY tx_id LIMIT {MAX_SAMPLES}"
            ).fetchall()
        ]
    duplicates = int(total) - int(distinct)
    return dg.AssetCheckResult(
        passed=duplicates == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{duplicates} duplicate rows" if duplicates else f"{total:,} unique tx_id",
        metadata={
            "rows": int(total),
            "duplicate_rows": duplicates,
            "duplicate_samples": dg.MetadataValue.json(samples),
        },
    )


VALIDITY_SQL = """
SELECT
    count(*) FILTER (WHERE tx_id IS NULL OR tx_type IS NULL OR tx_status IS NULL
                     OR block_time IS NULL OR burn_block_time IS NULL
                     OR block_height IS NULL OR fee_payer IS NULL) AS null_keys,
    count(*) FILTER (WHERE fee_ustx IS NULL OR fee_ustx < 0) AS negative_fee,
    count(*) FILTER (WHERE block_time < burn_block_time) AS block_before_burn,
    count(*) AS total
FROM transactions
"""


@dg.asset_check(
    asset=TRANSACTIONS,
    description="Keys not null, fee_ustx >= 0 and block_time >= burn_block_time.",
    pool=settings.DUCKDB_POOL,
)
def valid_rows(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with _warehouse(duckdb) as con:
        null_keys, negative_fee, block_before_burn, total = con.execute(VALIDITY_SQL).fetchone()
    bad = int(null_keys) + int(negative_fee) + int(block_before_burn)
    return dg.AssetCheckResult(
        passed=bad == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{bad} invalid rows" if bad else f"{total:,} rows valid",
        metadata={
            "rows": int(total),
            "null_keys": int(null_keys),
            "negative_fee": int(negative_fee),
            "block_time_before_burn_block_time": int(block_before_burn),
        },
    )


@dg.asset_check(
    asset=TRANSACTIONS,
    description="No API row was rejected by the row mapper (they sit in `rejected_rows`).",
    pool=settings.DUCKDB_POOL,
)
def no_rejected_rows(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """WARN: rejected rows are counted in the ledger, so coverage holds, but data is lost."""
    with _warehouse(duckdb) as con:
        rejected = int(con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0])
        reasons = {
            str(reason): int(n)
            for reason, n in con.execute(
                "SELECT reason, count(*) FROM rejected_rows GROUP BY reason "
                f"ORDER BY 2 DESC LIMIT {MAX_SAMPLES}"
            ).fetchall()
        }
    return dg.AssetCheckResult(
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rejected} rejected rows" if rejected else "no rejected rows",
        metadata={"rejected_rows": rejected, "reasons": dg.MetadataValue.json(reasons)},
    )


@dg.asset_check(
    asset=TRANSACTIONS,
    description="The newest block_time is recent (`STX_PIPELINE_FRESH_HOURS`, default 6 h).",
    pool=settings.DUCKDB_POOL,
)
def fresh(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    hours = settings.fresh_hours()
    with _warehouse(duckdb) as con:
        newest = con.execute("SELECT max(block_time) FROM transactions").fetchone()[0]
    now = datetime.now(UTC)
    if newest is None:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no transactions loaded",
            metadata={"fresh_hours": hours},
        )
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    lag = now - newest
    return dg.AssetCheckResult(
        passed=lag <= timedelta(hours=hours),
        severity=dg.AssetCheckSeverity.WARN,
        description=f"newest block_time is {lag.total_seconds() / 3600:.2f} h old",
        metadata={
            "newest_block_time": dg.MetadataValue.timestamp(newest),
            "lag_hours": dg.MetadataValue.float(round(lag.total_seconds() / 3600, 3)),
            "fresh_hours": hours,
        },
    )
