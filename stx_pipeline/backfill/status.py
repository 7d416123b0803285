"""How far the backfill has got: the seed's progress dict plus the ledger's figures
(docs/architecture.md, "The seed algorithm").

While a backfill holds the DuckDB file no other process can open it, so progress falls
back to `data/backfill_status.json`, which the running backfill refreshes every few
seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from stx_pipeline import settings
from stx_pipeline.backfill.coverage import judged_lower, ledger_coverage
from stx_pipeline.backfill.quota import read as read_quota
from stx_pipeline.warehouse.db import (
    WarehouseLocked,
    connect,
    resolve_db_path,
    warehouse_exists,
)

# Keys other writers own (the alert sensor; the API notice written after each run, see
# api_notice.py): a backfill's status update keeps them.
PRESERVED_KEYS = ("alerts", "last_alert", "api")


def default_status_path() -> Path:
    """`$STX_PIPELINE_STATUS_FILE`, else `<project>/data/backfill_status.json` (settings.py)."""
    return settings.current().status_file


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise read-modify-write of the status file between processes (sidecar lock)."""
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A corrupt status file must not stop monitoring: keep a copy, start afresh.
        with contextlib.suppress(OSError):
            path.replace(path.with_name(path.name + ".corrupt"))
        return {}
    return data if isinstance(data, dict) else {}


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    """Temp file in the same folder + rename: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, default=_json_default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_status_file(
    change: Callable[[dict[str, Any]], dict[str, Any]],
    path: str | os.PathLike[str] | None = None,
) -> Path:
    """Locked read-modify-write of the status JSON; `change` returns the new document."""
    target = Path(path) if path else default_status_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        _atomic_write(target, change(_read(target)))
    return target


def write_status_file(status: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Replace the backfill's status, stamped with the time; alerts already there stay."""

    def change(current: dict[str, Any]) -> dict[str, Any]:
        kept = {k: current[k] for k in PRESERVED_KEYS if k in current}
        return {**status, **kept, "timestamp": datetime.now(UTC).isoformat()}

    return update_status_file(change, path)


def read_status_file(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    target = Path(path) if path else default_status_path()
    try:
        return json.loads(target.read_text())
    except (OSError, ValueError):
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def _empty(status: str, target_days: float) -> dict[str, Any]:
    return {
        "status": status,
        "rows": 0,
        "oldest": None,
        "newest": None,
        "complete": False,
        "days_coverage": 0,
        "target_days": target_days,
    }


def progress_from_db(
    con: duckdb.DuckDBPyConnection, target_days: float, *, now: datetime | None = None
) -> dict[str, Any]:
    """The seed's dict and the ledger's figures, from an open connection."""
    now = now or datetime.now(UTC)
    rows, oldest, newest = con.execute(
        "SELECT count(*), min(block_time), max(block_time) FROM transactions WHERE canonical"
    ).fetchone()
    if not oldest:
        out = _empty("empty", target_days)
        out.update(_ledger_figures(con, target_days, now))
        return out
    target_time = now - timedelta(days=target_days)
    ledger = _ledger_figures(con, target_days, now)
    oldest_reached = oldest <= target_time
    complete = ledger["ledger_complete"] if ledger["windows_total"] else oldest_reached
    return {
        "status": "complete" if complete else "in_progress",
        "rows": int(rows),
        "oldest": oldest,
        "newest": newest,
        "complete": bool(complete),
        "days_coverage": (newest - oldest).total_seconds() / 86400,
        "target_days": target_days,
        "oldest_reached_target": bool(oldest_reached),
        **ledger,
    }


def _ledger_figures(
    con: duckdb.DuckDBPyConnection, target_days: float, now: datetime
) -> dict[str, Any]:
    target_ts = int(now.timestamp() - target_days * 86400)
    lower = judged_lower(con, target_ts)
    head = con.execute(
        "SELECT epoch(max(burn_block_time))::BIGINT FROM transactions WHERE canonical"
    ).fetchone()[0]
    newest_sealed = con.execute(
        "SELECT epoch(max(window_end))::BIGINT FROM coverage_ledger WHERE status = 'sealed'"
    ).fetchone()[0]
    upper = int(head) - 1 if head is not None else int(newest_sealed or lower)
    cov = ledger_coverage(con, lower, upper)
    rejected = con.execute("SELECT count(*) FROM rejected_rows").fetchone()[0]
    last_run = con.execute(
        "SELECT run_id, started_at, finished_at, stop_reason, pages, rows_inserted,"
        " elapsed_seconds, source FROM backfill_runs WHERE finished_at IS NOT NULL"
        " ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    rate = None
    if last_run and last_run[6]:
        rate = (last_run[5] or 0) / last_run[6] if last_run[6] > 0 else None
    missing_seconds = cov.missing_seconds
    density = cov.expected_rows / max(cov.sealed_seconds, 1) if cov.windows_sealed else None
    eta = (missing_seconds * density / rate) if (rate and density and missing_seconds) else None
    horizon = con.execute(
        "SELECT value FROM pipeline_meta WHERE key = 'max_head_burn_time'"
    ).fetchone()
    return {
        "windows_sealed": cov.windows_sealed,
        "windows_final": cov.windows_final,
        "windows_provisional": cov.windows_provisional,
        "windows_total": cov.windows_total,
        "windows_partial": cov.windows_partial,
        "expected_rows": cov.expected_rows,
        "loaded_rows": cov.loaded_rows,
        "rejected_rows": int(rejected),
        # sealed = fetched and verified against the API; final = beyond reorgs' reach
        "percent_complete": round(cov.sealed_percent, 2) if cov.span_seconds else 0.0,
        "percent_final": round(cov.final_percent, 2),
        "percent_provisional": round(cov.provisional_percent, 2),
        "missing_days": round(missing_seconds / 86400, 3),
        "ledger_complete": cov.complete,
        "newest_head_seen": (datetime.fromtimestamp(int(horizon[0]), UTC)
                             if horizon else None),
        # the transaction list the last run ended on ("v1" or "v3"); windows mean the same
        "source": last_run[7] if last_run else None,
        "last_run": {
            "run_id": last_run[0],
            "started_at": last_run[1],
            "finished_at": last_run[2],
            "stop_reason": last_run[3],
            "pages": last_run[4],
            "rows_inserted": last_run[5],
            "elapsed_seconds": last_run[6],
            "source": last_run[7],
        }
        if last_run
        else None,
        "rows_per_second": round(rate, 1) if rate is not None else None,
        "eta_seconds": round(eta, 1) if eta is not None else None,
        "quota": read_quota(con),
    }


def check_backfill_progress(
    target_days: float = 180,
    db_path: str | os.PathLike[str] | None = None,
    *,
    status_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The seed's progress check, from the ledger (or the live status file while locked)."""
    path = resolve_db_path(db_path)
    if not warehouse_exists(path):
        return _empty("no_cache", target_days)
    try:
        con = connect(path, read_only=True, lock_timeout=0.5)
    except WarehouseLocked:
        live = read_status_file(status_path) or {}
        out = _empty("in_progress", target_days)
        out.update({k: v for k, v in live.items() if k not in ("status", "target_days")})
        out["status"] = "in_progress"
        out["note"] = "a backfill holds the database; figures come from the live status file"
        return out
    try:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_catalog = current_database()")
                  .fetchall()}
        if "transactions" not in tables or "coverage_ledger" not in tables:
            return _empty("empty", target_days)
        return progress_from_db(con, target_days)
    finally:
        con.close()
