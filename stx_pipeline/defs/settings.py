"""Environment-driven settings of the Dagster layer, read at call time.

Read lazily (not at import) so that tests and `devserver` can set the environment
after the definitions module has been imported.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_RELATIVE = Path("data/cache/wallet_metrics.duckdb")

TRANSACTIONS_KEY = "transactions"
BACKFILL_JOB_NAME = "transactions_backfill_job"
DAILY_JOB_NAME = "daily_refresh_job"
DUCKDB_POOL = "duckdb"


def _env_int(name: str, default: int, minimum: int = 1) -> int:
    """An integer env var; a malformed or too small value falls back to the default."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        return default
    return value if value >= minimum else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def db_path() -> str:
    """DuckDB file: `$STX_PIPELINE_DB` (relative to cwd) or `<repo>/data/cache/...`."""
    env = os.environ.get("STX_PIPELINE_DB", "").strip()
    if env:
        return os.path.abspath(env)
    return str(PROJECT_ROOT / DEFAULT_DB_RELATIVE)


def sensor_interval_seconds() -> int:
    return _env_int("STX_PIPELINE_SENSOR_INTERVAL", 60)


def stall_runs() -> int:
    return _env_int("STX_PIPELINE_STALL_RUNS", 3)


def refresh_cron() -> str:
    return os.environ.get("STX_PIPELINE_REFRESH_CRON", "").strip() or "0 3 * * *"


def fresh_hours() -> float:
    return _env_float("STX_PIPELINE_FRESH_HOURS", 6.0)


def default_target_days() -> int:
    return _env_int("STX_PIPELINE_TARGET_DAYS", 180)


def max_pages_per_run() -> int:
    """Page budget of one sensor/schedule-driven run (`dg.Config` default otherwise)."""
    return _env_int("STX_PIPELINE_MAX_PAGES", 10_000)
