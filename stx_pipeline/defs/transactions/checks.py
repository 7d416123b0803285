"""Data-quality checks on `transactions`: one step, one read-only DuckDB connection.

`transactions_checks` is a multi-asset check, so a run takes one pool slot for all six
instead of six steps each waiting on the `duckdb` pool. Severity follows the impact and is
stated first in each description: a hole, a duplicate or an invalid row makes every metric
wrong (ERROR; the first two block downstream assets); an unfinished backfill, stale data
or rejected rows are worth a look but not a stop (WARN).
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb

from stx_pipeline.backfill.coverage import count_gap_problems, find_ledger_gaps, ledger_windows
from stx_pipeline.backfill.status import progress_from_db
from stx_pipeline.defs import settings
from stx_pipeline.defs.resources import WarehouseResource

TRANSACTIONS = dg.AssetKey(settings.TRANSACTIONS_KEY)
MAX_SAMPLES = 10
BLOCKS = "ERROR, blocks metrics and dashboard"


def latest_transactions_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    """Plain values of the latest `transactions` materialization's metadata ({} if none)."""
    event = instance.get_latest_materialization_event(TRANSACTIONS)
    if event is None or event.asset_materialization is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def target_days_of(latest: dict[str, Any]) -> int:
    """The target of the latest run (checks have no config of their own), else the setting."""
    value = latest.get("target_days")
    return int(value) if isinstance(value, int | float) else settings.default_target_days()


@dataclass(frozen=True)
class Facts:
    """What every check may need besides the file: the latest run's claims and the time."""

    target_days: int
    claims_complete: bool
    now: datetime


# --- coverage ledger: the figures come from backfill/coverage.py ---------------------


def _genesis(con: duckdb.DuckDBPyConnection) -> datetime | None:
    row = con.execute(
        "SELECT value FROM pipeline_meta WHERE key = 'genesis_burn_time'"
    ).fetchone()
    return datetime.fromtimestamp(int(row[0]), UTC) if row else None


def backfill_complete(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
    """WARN while the history does not reach the target yet; says how many days are missing,
    and says so when the chain itself is younger than the target."""
    target_days = facts.target_days
    progress = progress_from_db(con, target_days, now=facts.now)
    complete = bool(progress["complete"])
    missing = float(progress["missing_days"] or 0.0)
    genesis = _genesis(con)
    target_time = facts.now - timedelta(days=target_days)
    chain_younger = genesis is not None and genesis > target_time
    if complete and chain_younger:
        description = (
            f"complete back to the start of the chain ({genesis:%Y-%m-%d %H:%M} UTC); "
            f"the chain is younger than the {target_days}-day target"
        )
    elif complete:
        description = f"history covers the {target_days}-day target"
    else:
        description = f"{missing:.2f} of {target_days} days still missing"
    final_pct = float(progress.get("percent_final") or 0.0)
    if complete:
        description += (
            f"; {final_pct:.2f}% final, the newest {progress.get('windows_provisional', 0)}"
            " window(s) provisional (re-verified by every run until reorgs cannot reach them)"
        )
    meta: dict[str, Any] = {
        "target_days": target_days,
        "missing_days": dg.MetadataValue.float(round(missing, 3)),
        "missing_days_rounded_up": math.ceil(missing - 1e-9) if missing > 0 else 0,
        "coverage_percent": dg.MetadataValue.float(
            round(float(progress["percent_complete"] or 0.0), 2)
        ),
        "coverage_final_percent": dg.MetadataValue.float(round(final_pct, 2)),
        "windows_final": int(progress.get("windows_final") or 0),
        "windows_provisional": int(progress.get("windows_provisional") or 0),
        "rows": int(progress["rows"] or 0),
        "reaches_start_of_chain": chain_younger,
        "target_time": dg.MetadataValue.timestamp(target_time),
    }
    for key in ("oldest", "newest"):
        if progress.get(key) is not None:
            meta[f"{key}_block_time"] = dg.MetadataValue.timestamp(progress[key])
    return dg.AssetCheckResult(
        check_name="backfill_complete",
        passed=complete,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=meta,
    )


def no_gaps(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
    """ERROR on a hole: metrics over a hole would show a false drop, so block downstream."""
    target_epoch = int(facts.now.timestamp()) - facts.target_days * 86400
    found = find_ledger_gaps(ledger_windows(con), target_epoch)
    problems = count_gap_problems(found, facts.claims_complete)
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
        check_name="no_gaps",
        passed=problems == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "backfill_claims_complete": facts.claims_complete,
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


def unique_tx_id(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
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
        check_name="unique_tx_id",
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
    -- informational: legal (a Bitcoin header may run up to 2 h ahead of its Stacks blocks)
    count(*) FILTER (WHERE block_time < burn_block_time) AS block_before_burn,
    count(*) AS total
FROM transactions
"""


def valid_rows(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
    null_keys, negative_fee, block_before_burn, total = con.execute(VALIDITY_SQL).fetchone()
    bad = int(null_keys) + int(negative_fee)
    return dg.AssetCheckResult(
        check_name="valid_rows",
        passed=bad == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{bad} invalid rows" if bad else f"{total:,} rows valid",
        metadata={
            "rows": int(total),
            "null_keys": int(null_keys),
            "negative_fee": int(negative_fee),
            # legal, not counted as invalid: shown because it surprises people
            "block_time_before_burn_block_time": int(block_before_burn),
        },
    )


def no_rejected_rows(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
    """WARN: rejected rows are counted in the ledger, so coverage holds, but data is lost."""
    rejected = int(con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0])
    reasons = {
        str(reason): int(n)
        for reason, n in con.execute(
            "SELECT reason, count(*) FROM rejected_rows GROUP BY reason "
            f"ORDER BY 2 DESC LIMIT {MAX_SAMPLES}"
        ).fetchall()
    }
    return dg.AssetCheckResult(
        check_name="no_rejected_rows",
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{rejected} rejected rows" if rejected else "no rejected rows",
        metadata={"rejected_rows": rejected, "reasons": dg.MetadataValue.json(reasons)},
    )


def fresh(con: duckdb.DuckDBPyConnection, facts: Facts) -> dg.AssetCheckResult:
    hours = settings.fresh_hours()
    newest = con.execute("SELECT max(block_time) FROM transactions").fetchone()[0]
    if newest is None:
        return dg.AssetCheckResult(
            check_name="fresh",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no transactions loaded",
            metadata={"fresh_hours": hours},
        )
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    lag_hours = (facts.now - newest).total_seconds() / 3600
    return dg.AssetCheckResult(
        check_name="fresh",
        passed=lag_hours <= hours,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"newest block_time is {lag_hours:.1f} h old (limit {hours:g} h)",
        metadata={
            "newest_block_time": dg.MetadataValue.timestamp(newest),
            "lag_hours": dg.MetadataValue.float(round(lag_hours, 2)),
            "fresh_hours": hours,
        },
    )


Evaluate = Callable[[duckdb.DuckDBPyConnection, Facts], dg.AssetCheckResult]

# name -> (blocking, description with its severity first, evaluation)
CHECKS: dict[str, tuple[bool, str, Evaluate]] = {
    "backfill_complete": (
        False,
        "WARN until done: the ledger holds a sealed (fully fetched and counted) window for "
        "every second from the target, or the chain's start if younger, to the newest block. "
        "Sealed is final or provisional: the newest ~4 h stay provisional (reorgs and late "
        "Bitcoin timestamps can still change them) and every run re-verifies them.",
        backfill_complete,
    ),
    "no_gaps": (
        True,
        f"{BLOCKS}: every sealed ledger window is fully counted (loaded + rejected = the "
        "API's total) and, once the backfill reports complete, the sealed windows leave no "
        "hole between the target and the newest block.",
        no_gaps,
    ),
    "unique_tx_id": (
        True,
        f"{BLOCKS}: `tx_id` is unique; a duplicate double-counts fees and activity.",
        unique_tx_id,
    ),
    "valid_rows": (
        False,
        "ERROR: keys not null and fee_ustx >= 0. (block_time < burn_block_time is legal: a "
        "Bitcoin header may run ahead of its Stacks blocks; it is counted, not failed.)",
        valid_rows,
    ),
    "no_rejected_rows": (
        False,
        "WARN: no API row was rejected by the row mapper (rejected ones sit in "
        "`rejected_rows`; they are counted in the ledger, so coverage holds, but data is lost).",
        no_rejected_rows,
    ),
    "fresh": (
        False,
        "WARN: the newest block_time is recent (`STX_PIPELINE_FRESH_HOURS`, default 6 h).",
        fresh,
    ),
}

CHECK_SPECS = [
    dg.AssetCheckSpec(name, asset=TRANSACTIONS, description=description, blocking=blocking)
    for name, (blocking, description, _) in CHECKS.items()
]


@dg.multi_asset_check(
    name="transactions_checks",
    specs=CHECK_SPECS,
    can_subset=True,
    pool=settings.DUCKDB_POOL,
    description="The data-quality checks of `transactions`, on one read-only connection.",
)
def transactions_checks(
    context: dg.AssetCheckExecutionContext, duckdb: WarehouseResource
) -> Iterable[dg.AssetCheckResult]:
    selected = {key.name for key in context.selected_asset_check_keys}
    latest = latest_transactions_metadata(context.instance)
    facts = Facts(
        target_days=target_days_of(latest),
        claims_complete=bool(latest.get("complete")),
        now=datetime.now(UTC),
    )
    with duckdb.get_connection(read_only=True) as con:
        for name, (_, _, evaluate) in CHECKS.items():
            if name in selected:
                yield evaluate(con, facts)
