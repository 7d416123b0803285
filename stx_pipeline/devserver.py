"""`stx-pipeline ui`: the simulator (or the real API) plus `dagster dev`, stopped together.

Runs the Dagster webserver and daemon in their own process group against a Dagster home
in `data/dagster` whose `dagster.yaml` is the project's one with absolute paths, so the
UI, the daemon and every run worker agree on where runs and logs live whatever their cwd.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
DEFAULT_DAGSTER_HOME = PROJECT_ROOT / "data" / "dagster"
# Days of simulated history beyond the backfill target, so the target is reachable.
HISTORY_MARGIN_DAYS = 2
STOP_GRACE_SECONDS = 20.0


def write_instance_yaml(home: Path, source: Path = PROJECT_DAGSTER_YAML) -> Path:
    """Copy `dagster.yaml` into `home` with every storage path made absolute under `home`."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
    if "sqlite" in config.get("storage", {}):
        config["storage"]["sqlite"]["base_dir"] = str(home / "storage")
    if "local_artifact_storage" in config:
        config["local_artifact_storage"].setdefault("config", {})["base_dir"] = str(home)
    if "compute_logs" in config:
        config["compute_logs"].setdefault("config", {})["base_dir"] = str(home / "logs")
    target = home / "dagster.yaml"
    header = f"# Generated from {source} by stx_pipeline.devserver; edit that file instead.\n"
    target.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return target


def dagster_dev_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """`dagster dev` on the project's definitions module, with this interpreter."""
    return [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(PROJECT_ROOT / "workspace.yaml"),  # location "stx_pipeline", as in [tool.dg]
        "-h",
        host,
        "-p",
        str(port),
    ]


def uses_real_api(environ: Mapping[str, str]) -> bool:
    """The real Hiro API only when a key is set and no URL overrides it."""
    return bool(environ.get("HIRO_API_KEY")) and not environ.get("HIRO_API_URL")


@contextlib.contextmanager
def _simulator(sim_port: int, days: int) -> Iterator[str]:
    """Start the in-process simulator with `days` + margin of history; yield its URL."""
    from stx_pipeline.sim import run_simulator

    wanted: dict[str, Any] = {"port": sim_port, "history_days": days + HISTORY_MARGIN_DAYS}
    params = inspect.signature(run_simulator).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in wanted.items() if accepts_any or k in params}
    with run_simulator(**kwargs) as sim:
        yield str(sim.url)


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGINT the whole group (dagster dev shuts its children down), then TERM, then KILL."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    # Reap stragglers of the group (code server, daemon) even after the leader exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode if proc.returncode is not None else -9


def _reset_signals() -> None:  # runs in the child between fork and exec
    """Default SIGINT/SIGTERM in `dagster dev`: a parent started in the background (nohup,
    `&` in a script) ignores SIGINT, and an ignored signal stays ignored across exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM (and an inherited ignored SIGINT) stop `run_ui` like Ctrl-C does."""

    def raise_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, raise_interrupt)


def run_ui(port: int = 3000, sim_port: int = 3999, days: int = 30) -> int:
    """Run the simulator (unless the real API is configured) and `dagster dev` until Ctrl-C.

    Returns the exit status for the CLI: 0 after a Ctrl-C, dagster's own status otherwise.
    """
    _interrupt_on_sigterm()
    env = dict(os.environ)
    # The project's own instance, not a personal ~/.dagster: regenerated from dagster.yaml.
    home = Path(env.get("STX_PIPELINE_DAGSTER_HOME") or DEFAULT_DAGSTER_HOME)
    write_instance_yaml(home)
    env["DAGSTER_HOME"] = str(home.resolve())
    env.setdefault("STX_PIPELINE_TARGET_DAYS", str(days))
    with contextlib.ExitStack() as stack:
        if uses_real_api(env):
            print("using the real Hiro API (HIRO_API_KEY set, no HIRO_API_URL)", flush=True)
        elif env.get("HIRO_API_URL"):
            print(f"using HIRO_API_URL={env['HIRO_API_URL']}", flush=True)
        else:
            env["HIRO_API_URL"] = stack.enter_context(_simulator(sim_port, days))
            print(f"simulator on {env['HIRO_API_URL']} ({days}+ days of history)", flush=True)
        print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={env['DAGSTER_HOME']})")
        print("Ctrl-C stops the UI, the daemon and the simulator.", flush=True)
        proc = subprocess.Popen(
            dagster_dev_command(port),
            cwd=PROJECT_ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=_reset_signals,
        )
        try:
            while proc.poll() is None:
                time.sleep(0.5)
            return proc.returncode
        except KeyboardInterrupt:
            print("\nstopping dagster dev ...", flush=True)
            stop_process_group(proc)
            return 0
        finally:
            if proc.poll() is None:
                stop_process_group(proc)


if __name__ == "__main__":  # pragma: no cover - manual entry point
    raise SystemExit(run_ui())
