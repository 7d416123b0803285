"""The Dagster layer's view of the settings: names of its objects, and one function per
decision it takes from the environment.

Every value comes from `stx_pipeline/settings.py` (one strict parser: a malformed variable
is a one-line SettingError, raised when the definitions load, never a silent default).
Read at call time so that tests and `devserver` can set the environment after import.
Every way to launch `transactions` (Materialize button, sensor, schedule) takes its target
from `default_target_days()`, and every job that writes the warehouse its tags from
`writer_run_tags()`.
"""

from __future__ import annotations

from pathlib import Path

from stx_pipeline import settings as core_settings

DEFAULT_TARGET_DAYS = core_settings.DEFAULT_TARGET_DAYS
DEFAULT_MAX_PAGES = core_settings.DEFAULT_MAX_PAGES
EXPORT_FOLDER = "transactions_parquet"

TRANSACTIONS_KEY = "transactions"
BACKFILL_JOB_NAME = "transactions_backfill_job"
DAILY_JOB_NAME = "daily_refresh_job"
METRICS_JOB_NAME = "metrics_refresh_job"
DUCKDB_POOL = "duckdb"
# dagster.yaml limits runs carrying this tag to one at a time (tag_concurrency_limits).
WRITER_TAG = "stx_pipeline/writer"
MAX_RUNTIME_TAG = "dagster/max_runtime"


def _current() -> core_settings.Settings:
    return core_settings.current()


def db_path() -> str:
    """The DuckDB file (`$STX_PIPELINE_DB`; the rule for paths is in settings.py)."""
    return str(_current().db_path)


def dashboard_path() -> Path:
    """The dashboard file (`$STX_PIPELINE_DASHBOARD`)."""
    return _current().dashboard_path


def export_path() -> Path:
    """The Parquet export asset's folder: `transactions_parquet` in `$STX_PIPELINE_EXPORT_DIR`."""
    return _current().export_dir / EXPORT_FOLDER


def dashboard_url() -> str:
    """Where a browser opens the dashboard: `$STX_PIPELINE_DASHBOARD_URL` (set by
    `stx-pipeline ui`, which serves the file) or the file's own `file://` URI."""
    return _current().dashboard_url or dashboard_path().as_uri()


def sensor_interval_seconds() -> int:
    return _current().sensor_interval_seconds


def stall_runs() -> int:
    return _current().stall_runs


def refresh_cron() -> str:
    return _current().refresh_cron


def fresh_hours() -> float:
    """The freshness SLA in hours (`STX_PIPELINE_FRESH_HOURS`, 6), shared with the CLI."""
    return _current().fresh_hours


def fresh_interval_seconds() -> int:
    """How often `freshness_sensor` looks at the newest block_time (300 s)."""
    return _current().fresh_interval_seconds


def max_runtime_seconds() -> int:
    """`dagster/max_runtime` of the jobs holding the `duckdb` pool.

    `STX_PIPELINE_MAX_RUNTIME_SECONDS`, else twice what a run's page budget takes at the
    slowest published rate of its plan (500 requests/min with `HIRO_API_KEY`, 25 per IP
    without; a lower `HIRO_RPM` cap counts) plus 30 minutes for checks, metrics and the
    dashboard: a run that takes longer is hung, and run monitoring fails it so the queue
    behind the pool moves on.
    """
    current = _current()
    if current.max_runtime_seconds is not None:
        return current.max_runtime_seconds
    plan = 500 if current.hiro_api_key else 25
    rpm = min(plan, current.hiro_rpm) if current.hiro_rpm else plan
    return int(2 * current.max_pages / rpm * 60) + 1800


def default_target_days() -> int:
    """The history target of every launch of `transactions` (`STX_PIPELINE_TARGET_DAYS`)."""
    return core_settings.target_days()


def max_pages_per_run() -> int:
    """Page budget of one run of `transactions` (`STX_PIPELINE_MAX_PAGES`)."""
    return core_settings.max_pages_per_run()


def progress_interval_seconds() -> float:
    """How often a running backfill records its progress in Dagster (default 10 s)."""
    return _current().progress_seconds


def writer_run_tags() -> dict[str, str]:
    """Run tags of every job that writes the warehouse file (backfill, daily, metrics).

    The one place for writer run tags: add a tag here and every writing job carries it.
    Runs launched with the Materialize button use Dagster's implicit asset job, which
    takes no job tags in Dagster 1.13; the pool (`DUCKDB_POOL`, on every asset and check)
    and the sensor's in-flight test (any run that materializes an asset) cover those, and
    `run_monitoring.max_runtime_seconds` in dagster.yaml bounds their runtime.

    `dagster/max_runtime` lets run monitoring fail a hung run instead of leaving every later
    run queued behind its pool slot (read when the code location loads).
    """
    return {WRITER_TAG: "duckdb", MAX_RUNTIME_TAG: str(max_runtime_seconds())}


def audit_cron() -> str:
    """The weekly audit of sealed history (Sundays 04:00 UTC by default)."""
    return _current().audit_cron


def compaction_cron() -> str:
    """Compaction of the DuckLake warehouse (every six hours by default; UTC)."""
    return _current().compaction_cron


def audit_sample() -> int | None:
    """Sealed windows the audit checks at random; unset: all of them."""
    return _current().audit_sample
