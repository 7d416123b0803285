"""The environment a test gives a `stx-pipeline` subprocess: ours, never the shell's.

A developer's shell may export a real `HIRO_API_KEY`, a webhook, a database path or a
failpoint; a test that inherited them would talk to the real API, post alerts, or write
outside its temporary directory. So every `HIRO_*` and `STX_PIPELINE_*` variable is
dropped and the test names what it wants.
"""

from __future__ import annotations

import os
from pathlib import Path

# The prefixes of every variable the pipeline reads (see docs/operations.md).
PIPELINE_ENV_PREFIXES = ("HIRO_", "STX_PIPELINE_")


def pipeline_env_names() -> list[str]:
    """The pipeline's variables set in this process's environment."""
    return [name for name in os.environ if name.startswith(PIPELINE_ENV_PREFIXES)]


def cli_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """This process's environment without the pipeline's variables, plus: no client-side
    rate limit (the simulator has its own), and every file the pipeline writes by default
    (database, status file, log, dashboard, exports) inside `tmp`, not the checkout's
    `data/` (defaults are under the project, whatever the cwd: settings.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PIPELINE_ENV_PREFIXES)}
    env.update(
        HIRO_RPM="0",
        STX_PIPELINE_STATUS_FILE=str(tmp / "status.json"),
        STX_PIPELINE_LOG_FILE=str(tmp / "backfill.log"),
        STX_PIPELINE_DB=str(tmp / "wallet_metrics.duckdb"),
        STX_PIPELINE_DASHBOARD=str(tmp / "wallet_metrics.html"),
        STX_PIPELINE_EXPORT_DIR=str(tmp / "exports"),
    )
    env.update(overrides)
    return env
