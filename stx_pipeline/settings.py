"""Every environment variable the project reads, parsed once, strictly, into `Settings`.

Why one module: the CLI, the Dagster layer, `devserver`, the client factory and the core
used to read the environment four ways, and some fell back to the default on a typo (a
malformed `STX_PIPELINE_TARGET_DAYS` must not start a 180-day backfill). Here each
variable has one row in `VARIABLES` — its default, what it allows, what it means — and one
parser; a malformed value is a one-line `SettingError` naming the variable, its value (not
for secrets) and what is allowed. The entry points parse everything before they start
(`stx-pipeline` exits 2, the Dagster definitions fail to load), so a bad value is seen
where a user looks, and nothing later falls back silently.

Read at call time (`current()`), never cached: tests and `devserver` set the environment
after import. This module never imports Dagster, and imports the project only inside the
two parsers that delegate (`HIRO_API_URL`/`HIRO_API_KEY` to the client's validators,
`HIRO_SOURCE` to `hiro/source_choice.py`).

Paths: a value from the environment is relative to the current directory (resolved when
read); a default is under the project, `<project>/data/...` (the checkout that holds
`pyproject.toml`; for an installed package without one, the current directory), so the
CLI, `dg dev` and every Dagster run worker agree on the same files whatever their cwd.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TARGET_DAYS = 180
DEFAULT_MAX_PAGES = 10_000
DEFAULT_MTP_LAG_SECONDS = 3600
DEFAULT_REORG_DEPTH = 6
DEFAULT_HIRO_URL = "https://api.hiro.so"

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]
_IN_CHECKOUT = (_PACKAGE_PARENT / "pyproject.toml").exists()


def project_root() -> Path:
    """The checkout the defaults live under (see the module docstring)."""
    return _PACKAGE_PARENT if _IN_CHECKOUT else Path.cwd()


class SettingError(ValueError):
    """A malformed environment variable; the message says which, and what is allowed."""


# -- the parsers: text -> value, or ValueError(what is allowed) ----------------------------
Parser = Callable[[str], Any]


def _whole(minimum: int) -> tuple[Parser, str]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError
        return value

    return parse, f"a whole number >= {minimum}"


def _number(minimum: float, *, inclusive: bool) -> tuple[Parser, str]:
    op = ">=" if inclusive else ">"

    def parse(raw: str) -> float:
        value = float(raw)
        ok = value >= minimum if inclusive else value > minimum
        if not ok or value != value or value == float("inf"):
            raise ValueError
        return value

    return parse, f"a finite number {op} {minimum:g}"


def _choice(*options: str) -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ValueError
        return value

    return parse, f"one of {', '.join(options)}"


_SIZE_RE = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def _size() -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        if not _SIZE_RE.match(raw):
            raise ValueError
        return raw

    return parse, "a size like 512MB or 3GB"


_CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,?-]+$")
_CRON_ALIASES = {"@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"}


def _cron() -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        parts = raw.split()
        if raw in _CRON_ALIASES or (len(parts) == 5 and all(map(_CRON_FIELD_RE.match, parts))):
            return " ".join(parts)
        raise ValueError

    return parse, "a cron expression of 5 fields like '0 3 * * *' (UTC), or @daily"


def _http_url() -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        if not re.match(r"^https?://[^\s/]+", raw):
            raise ValueError
        return raw

    return parse, "an http:// or https:// URL"


def _path() -> tuple[Parser, str]:
    def parse(raw: str) -> Path:
        return Path(os.path.abspath(os.path.expanduser(raw)))

    return parse, "a path"


def _failpoint() -> tuple[Parser, str]:
    def parse(raw: str) -> tuple[str, int]:
        name, sep, nth = raw.partition(":")
        count = int(nth) if sep else 1
        if not re.match(r"^[a-z_][a-z0-9_.]*$", name) or count < 1:
            raise ValueError
        return name, count

    return parse, "a failpoint like writer.before_commit:3 (tests only)"


def _delegate(module: str, function: str, allowed: str) -> tuple[Parser, str]:
    """The parser another module owns: `module.function(raw)`, imported when first used
    (this module imports nothing of the project when it loads)."""

    def parse(raw: str) -> Any:
        return getattr(importlib.import_module(module), function)(raw)

    return parse, allowed


def _warehouse() -> tuple[Parser, str]:
    """`warehouse/setting.py` owns the parser (its errors name the variable, hide passwords)."""
    return _delegate("stx_pipeline.warehouse.setting", "parse_warehouse",
                     "`duckdb` or `ducklake:postgres:<libpq dsn> data_path=<s3://bucket/prefix>`")


@dataclass(frozen=True)
class Variable:
    """One environment variable: where it goes, its default, its parser, what it means."""

    name: str
    attr: str
    default: Any
    parser: tuple[Parser, str]
    meaning: str
    secret: bool = False
    delegated: bool = False  # the parser's own ValueError already names variable and value

    def parse(self, raw: str) -> Any:
        parse, allowed = self.parser
        try:
            return parse(raw)
        except ValueError as exc:
            if self.delegated and str(exc):
                raise SettingError(str(exc).splitlines()[0]) from None
            shown = "" if self.secret else f"={raw!r}"
            hidden = " (the value is not shown: it is a secret)" if self.secret else ""
            raise SettingError(
                f"{self.name}{shown} is not {allowed}{hidden}; fix or unset it"
            ) from None


def _project_path(*parts: str) -> Callable[[], Path]:
    return lambda: project_root().joinpath(*parts)


_W1, _W0 = _whole(1), _whole(0)
VARIABLES: tuple[Variable, ...] = (
    # the Hiro client (hiro/factory.py)
    Variable("HIRO_API_URL", "hiro_api_url", DEFAULT_HIRO_URL, _delegate(
             "stx_pipeline.hiro.client", "validate_base_url", "an http(s) URL"),
             "API base URL (the simulator's URL offline)", delegated=True),
    Variable("HIRO_API_KEY", "hiro_api_key", None, _delegate(
             "stx_pipeline.hiro.client", "_validate_api_key", "printable ASCII, no spaces"),
             "sent as `x-api-key`; never logged or stored", secret=True, delegated=True),
    Variable("HIRO_RPM", "hiro_rpm", None, _number(0, inclusive=True),
             "a cap in requests per minute below what the server grants; 0 = none"),
    Variable("HIRO_CONNECT_TIMEOUT", "hiro_connect_timeout", 10.0,
             _number(0, inclusive=False), "HTTP connect timeout, seconds"),
    Variable("HIRO_READ_TIMEOUT", "hiro_read_timeout", 30.0,
             _number(0, inclusive=False), "HTTP read timeout, seconds"),
    Variable("HIRO_MAX_RATE_LIMIT_WAIT", "hiro_max_rate_limit_wait", 300.0,
             _number(0, inclusive=True),
             "a 429 asking for a longer wait stops the run instead of sleeping"),
    Variable("HIRO_QUOTA_RESERVE", "hiro_quota_reserve", None, _W0,
             "requests of the monthly quota never spent (default 1%, >= 100)"),
    Variable("HIRO_SOURCE", "hiro_source", "auto", _delegate(
             "stx_pipeline.hiro.source_choice", "source_setting", "one of auto, v3, v1"),
             "transaction list: auto, v3 or v1 (hiro/source_choice.py)", delegated=True),
    # files: one definition each
    Variable("STX_PIPELINE_DB", "db_path", _project_path("data", "cache",
             "wallet_metrics.duckdb"), _path(), "the DuckDB file"),
    Variable("STX_PIPELINE_STATUS_FILE", "status_file", _project_path(
             "data", "backfill_status.json"), _path(), "status JSON (progress, alerts)"),
    Variable("STX_PIPELINE_LOG_FILE", "log_file", _project_path("logs", "backfill.log"),
             _path(), "the CLI's log file (also to the console)"),
    Variable("STX_PIPELINE_DASHBOARD", "dashboard_path", _project_path(
             "data", "dashboards", "wallet_metrics.html"), _path(), "dashboard HTML file"),
    Variable("STX_PIPELINE_EXPORT_DIR", "export_dir", _project_path("data", "exports"),
             _path(), "folder of exports: the CLI's default `--out` and the"
             " `transactions_parquet` asset (`<dir>/transactions_parquet`)"),
    Variable("STX_PIPELINE_DAGSTER_HOME", "dagster_home", _project_path("data", "dagster"),
             _path(), "Dagster instance of `stx-pipeline ui`"),
    # the warehouse
    Variable("STX_PIPELINE_WAREHOUSE", "warehouse", None, _warehouse(),
             "`duckdb` (the file at STX_PIPELINE_DB) or `ducklake:postgres:<libpq dsn>"
             " data_path=s3://bucket/prefix` (several machines; docs/operations.md)",
             delegated=True),
    Variable("STX_PIPELINE_LOCK_TIMEOUT", "lock_timeout_seconds", 30.0,
             _number(0, inclusive=True), "seconds to wait for another process's DuckDB lock"),
    Variable("STX_PIPELINE_DUCKDB_MEMORY_LIMIT", "memory_limit", "3GB", _size(),
             "DuckDB memory cap of metrics, checks and the CLI"),
    Variable("STX_PIPELINE_BACKFILL_MEMORY_LIMIT", "backfill_memory_limit", "64MB", _size(),
             "DuckDB cache of the backfill writer"),
    Variable("STX_PIPELINE_READ_SNAPSHOT_SECONDS", "read_snapshot_seconds", 30.0,
             _number(0, inclusive=False), "how often a writer publishes `<db>.read`"),
    # the backfill
    Variable("STX_PIPELINE_TARGET_DAYS", "target_days", DEFAULT_TARGET_DAYS, _W1,
             "history target of every backfill: CLI, button, sensor, schedule"),
    Variable("STX_PIPELINE_MAX_PAGES", "max_pages", DEFAULT_MAX_PAGES, _W1,
             "page budget of one backfill run"),
    Variable("STX_PIPELINE_FINALITY_MTP_LAG_SECONDS", "finality_mtp_lag_seconds",
             DEFAULT_MTP_LAG_SECONDS, _W0, "how far the median-time-past lags the tip"),
    Variable("STX_PIPELINE_REORG_DEPTH", "reorg_depth", DEFAULT_REORG_DEPTH, _W0,
             "burn blocks a Bitcoin fork may reach"),
    # health and alerts
    Variable("STX_PIPELINE_FRESH_HOURS", "fresh_hours", 6.0, _number(0, inclusive=False),
             "freshness SLA: max age of the newest block_time, hours"),
    Variable("STX_PIPELINE_ALERT_WEBHOOK", "alert_webhook", None, _http_url(),
             "chat webhook for alerts", secret=True),
    Variable("STX_PIPELINE_ALERT_FORMAT", "alert_format", "auto",
             _choice("auto", "slack", "teams", "generic"), "webhook body"),
    Variable("STX_PIPELINE_UI_URL", "ui_url", None, _http_url(),
             "Dagster UI address: alerts link to the run"),
    Variable("STX_PIPELINE_ALERT_ATTEMPTS", "alert_attempts", 4, _W1,
             "webhook delivery attempts"),
    Variable("STX_PIPELINE_ALERT_BACKOFF_SECONDS", "alert_backoff_seconds", 1.0,
             _number(0, inclusive=True), "first webhook retry wait (doubles)"),
    # Dagster
    Variable("STX_PIPELINE_SENSOR_INTERVAL", "sensor_interval_seconds", 60, _W1,
             "interval of the backfill, metrics and alert sensors, seconds"),
    Variable("STX_PIPELINE_STALL_RUNS", "stall_runs", 3, _W1,
             "backfill runs without progress before the sensor stops and alerts"),
    Variable("STX_PIPELINE_REFRESH_CRON", "refresh_cron", "0 3 * * *", _cron(),
             "daily refresh schedule (UTC)"),
    Variable("STX_PIPELINE_FRESH_INTERVAL", "fresh_interval_seconds", 300, _W1,
             "how often `freshness_sensor` judges freshness, seconds"),
    Variable("STX_PIPELINE_MAX_RUNTIME_SECONDS", "max_runtime_seconds", None, _W1,
             "`dagster/max_runtime` of the writer jobs (default from the page budget)"),
    Variable("STX_PIPELINE_PROGRESS_SECONDS", "progress_seconds", 10.0,
             _number(0, inclusive=False), "interval of progress observations, seconds"),
    Variable("STX_PIPELINE_AUDIT_CRON", "audit_cron", "0 4 * * 0", _cron(),
             "weekly audit of sealed history (UTC)"),
    Variable("STX_PIPELINE_COMPACTION_CRON", "compaction_cron", "17 */6 * * *", _cron(),
             "when the DuckLake warehouse's small files are merged (UTC; no-op on the file)"),
    Variable("STX_PIPELINE_AUDIT_SAMPLE", "audit_sample", None, _W1,
             "sealed windows the audit checks at random (default all)"),
    Variable("STX_PIPELINE_DASHBOARD_URL", "dashboard_url", None, _http_url(),
             "where a browser opens the dashboard (set by `stx-pipeline ui`)"),
    # tests only
    Variable("STX_PIPELINE_FAILPOINT", "failpoint", None, _failpoint(),
             "crash point for crash-safety tests"),
)
BY_NAME = {v.name: v for v in VARIABLES}


@dataclass(frozen=True)
class Settings:
    """The whole configuration at one moment. Build it with `Settings.from_env()`."""

    hiro_api_url: str
    hiro_api_key: str | None = field(repr=False)
    hiro_rpm: float | None
    hiro_connect_timeout: float
    hiro_read_timeout: float
    hiro_max_rate_limit_wait: float
    hiro_quota_reserve: int | None
    hiro_source: str
    db_path: Path
    status_file: Path
    log_file: Path
    dashboard_path: Path
    export_dir: Path
    dagster_home: Path
    warehouse: Any  # a warehouse.setting.Warehouse, None when unset (the DuckDB file)
    lock_timeout_seconds: float
    memory_limit: str
    backfill_memory_limit: str
    read_snapshot_seconds: float
    target_days: int
    max_pages: int
    finality_mtp_lag_seconds: int
    reorg_depth: int
    fresh_hours: float
    alert_webhook: str | None = field(repr=False)
    alert_format: str
    ui_url: str | None
    alert_attempts: int
    alert_backoff_seconds: float
    sensor_interval_seconds: int
    stall_runs: int
    refresh_cron: str
    fresh_interval_seconds: int
    max_runtime_seconds: int | None
    progress_seconds: float
    audit_cron: str
    compaction_cron: str
    audit_sample: int | None
    dashboard_url: str | None
    failpoint: tuple[str, int] | None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every variable of `environ` (default: the process's); SettingError if any
        is malformed, the first in `VARIABLES` order. Unset or blank means the default."""
        env = os.environ if environ is None else environ
        values = {v.attr: _read(v, env) for v in VARIABLES}
        return cls(**values)


def _read(variable: Variable, env: Mapping[str, str]) -> Any:
    raw = (env.get(variable.name) or "").strip()
    if not raw:
        default = variable.default
        return default() if callable(default) else default
    return variable.parse(raw)


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings now (parsed afresh: cheap, and the environment may have changed)."""
    return Settings.from_env(environ)


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Is variable `name` set (not blank), rather than left to its default?"""
    env = os.environ if environ is None else environ
    return bool((env.get(BY_NAME[name].name) or "").strip())


def parse_value(name: str, raw: str) -> Any:
    """`raw` parsed as variable `name` would be (for a value given in code or a flag)."""
    return BY_NAME[name].parse(raw.strip())


def target_days() -> int:
    """The history target of every launch of `transactions`: CLI, button, sensor, schedule."""
    return current().target_days


def max_pages_per_run() -> int:
    """The page budget of one backfill run."""
    return current().max_pages


def markdown_table() -> str:
    """The variables as a Markdown table (docs/operations.md carries it; a test compares)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for v in VARIABLES:
        default = v.default() if callable(v.default) else v.default
        if isinstance(default, Path):
            default = "<project>/" + default.relative_to(project_root()).as_posix()
        shown = "unset" if default is None else f"`{default}`"
        rows.append(f"| `{v.name}` | {shown} | {v.meaning} |")
    return "\n".join(rows)
