"""Environment-driven settings of the Dagster layer, read at call time.

Read lazily (not at import) so that tests and `devserver` can set the environment
after the definitions module has been imported. One function per decision: every way to
launch `transactions` (Materialize button, sensor, schedule) takes its target from
`default_target_days()`, and every job that writes the warehouse its tags from
`writer_run_tags()`.
"""

from __future__ import annotations

import os
from pathlib import Path

from stx_pipeline import settings as core_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DB_RELATIVE = Path("data/cache/wallet_metrics.duckdb")
DEFAULT_DASHBOARD_RELATIVE = Path("data/dashboards/wallet_metrics.html")
DEFAULT_EXPORT_RELATIVE = Path("data/exports/transactions_parquet")
DEFAULT_TARGET_DAYS = core_settings.DEFAULT_TARGET_DAYS
DEFAULT_MAX_PAGES = core_settings.DEFAULT_MAX_PAGES

TRANSACTIONS_KEY = "transactions"
BACKFILL_JOB_NAME = "transactions_backfill_job"
DAILY_JOB_NAME = "daily_refresh_job"
METRICS_JOB_NAME = "metrics_refresh_job"
DUCKDB_POOL = "duckdb"
# dagster.yaml limits runs carrying this tag to one at a time (tag_concurrency_limits).
WRITER_TAG = "stx_pipeline/writer"
MAX_RUNTIME_TAG = "dagster/max_runtime"


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


def dashboard_path() -> Path:
    """`$STX_PIPELINE_DASHBOARD` or `<repo>/data/dashboards/wallet_metrics.html`."""
    env = os.environ.get("STX_PIPELINE_DASHBOARD", "").strip()
    if env:
        return Path(env).resolve()
    return PROJECT_ROOT / DEFAULT_DASHBOARD_RELATIVE


def export_path() -> Path:
    """The Parquet export asset's folder: `$STX_PIPELINE_EXPORT_DIR` or
    `<repo>/data/exports/transactions_parquet`."""
    env = os.environ.get("STX_PIPELINE_EXPORT_DIR", "").strip()
    return Path(env).resolve() if env else PROJECT_ROOT / DEFAULT_EXPORT_RELATIVE


def dashboard_url() -> str:
    """Where a browser opens the dashboard: `$STX_PIPELINE_DASHBOARD_URL` (set by
    `stx-pipeline ui`, which serves the file) or the file's own `file://` URI."""
    return os.environ.get("STX_PIPELINE_DASHBOARD_URL", "").strip() or dashboard_path().as_uri()


def sensor_interval_seconds() -> int:
    return _env_int("STX_PIPELINE_SENSOR_INTERVAL", 60)


def stall_runs() -> int:
    return _env_int("STX_PIPELINE_STALL_RUNS", 3)


def refresh_cron() -> str:
    return os.environ.get("STX_PIPELINE_REFRESH_CRON", "").strip() or "0 3 * * *"


def fresh_hours() -> float:
    """The freshness SLA in hours (`STX_PIPELINE_FRESH_HOURS`, 6), shared with the CLI."""
    from stx_pipeline.health import sla_hours

    return sla_hours()


def fresh_interval_seconds() -> int:
    """How often `freshness_sensor` looks at the newest block_time (300 s)."""
    return _env_int("STX_PIPELINE_FRESH_INTERVAL", 300)


def max_runtime_seconds() -> int:
    """`dagster/max_runtime` of the jobs holding the `duckdb` pool.

    `STX_PIPELINE_MAX_RUNTIME_SECONDS`, else twice what a run's page budget takes at the
    slowest published rate of its plan (500 requests/min with `HIRO_API_KEY`, 25 per IP
    without; a lower `HIRO_RPM` cap counts) plus 30 minutes for checks, metrics and the
    dashboard: a run that takes longer is hung, and run monitoring fails it so the queue
    behind the pool moves on.
    """
    explicit = _env_int("STX_PIPELINE_MAX_RUNTIME_SECONDS", 0, minimum=1)
    if explicit:
        return explicit
    plan = 500 if os.environ.get("HIRO_API_KEY") else 25
    rpm = min(plan, _env_int("HIRO_RPM", plan))
    return int(2 * max_pages_per_run() / rpm * 60) + 1800


def default_target_days() -> int:
    """The history target of every launch of `transactions` (`STX_PIPELINE_TARGET_DAYS`)."""
    return core_settings.target_days()


def max_pages_per_run() -> int:
    """Page budget of one run of `transactions` (`STX_PIPELINE_MAX_PAGES`)."""
    return core_settings.max_pages_per_run()


def progress_interval_seconds() -> float:
    """How often a running backfill records its progress in Dagster (default 10 s)."""
    return _env_float("STX_PIPELINE_PROGRESS_SECONDS", 10.0)


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
    return os.environ.get("STX_PIPELINE_AUDIT_CRON", "").strip() or "0 4 * * 0"


def audit_sample() -> int | None:
    """Sealed windows the audit checks at random; unset: all of them."""
    raw = os.environ.get("STX_PIPELINE_AUDIT_SAMPLE", "").strip()
    return _env_int("STX_PIPELINE_AUDIT_SAMPLE", 1) if raw else None
