"""`stx-pipeline ui`: the simulator (or the real API) plus `dg dev`, stopped together.

Runs the Dagster webserver and daemon in their own process group against a Dagster home
in `data/dagster` whose `dagster.yaml` and `workspace.yaml` are the project's with absolute
paths, so the UI, the daemon and every run worker agree on where runs, logs, the warehouse
and the dashboard live whatever their cwd. It runs from that home, so Dagster finds the
instance it uses and does not warn about the project's own `dagster.yaml`; it serves the
dashboard over loopback HTTP so the asset's `open` link works from the UI.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from stx_pipeline import settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
PROJECT_WORKSPACE_YAML = PROJECT_ROOT / "workspace.yaml"
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


def write_workspace_yaml(home: Path, source: Path = PROJECT_WORKSPACE_YAML) -> Path:
    """Copy `workspace.yaml` into `home` with each `working_directory` made absolute
    (Dagster resolves a module location's working directory against the cwd)."""
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = yaml.safe_load(source.read_text()) or {}
    for location in config.get("load_from", []):
        for spec in location.values():
            if isinstance(spec, dict) and "working_directory" in spec:
                folder = source.parent / spec["working_directory"]
                spec["working_directory"] = str(folder.resolve())
    target = home / "workspace.yaml"
    header = f"# Generated from {source} by stx_pipeline.devserver; edit that file instead.\n"
    target.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return target


def dagster_dev_command(port: int, home: Path, host: str = "127.0.0.1") -> list[str]:
    """`dg dev` (not the superseded `dagster dev`) on the workspace in `home`, with this
    interpreter; run it with `cwd=home`."""
    dg_script = Path(sys.executable).parent / "dg"
    return [
        sys.executable,
        str(dg_script),
        "dev",
        "-w",
        str(Path(home).resolve() / "workspace.yaml"),  # location "stx_pipeline", as [tool.dg]
        "-h",
        host,
        "-p",
        str(port),
    ]


def prepare_home(home: Path) -> Path:
    """The Dagster home `dg dev` runs in: instance and workspace files, absolute paths."""
    write_instance_yaml(home)
    write_workspace_yaml(home)
    return home.resolve()


def pipeline_environment(environ: Mapping[str, str], home: Path, days: int) -> dict[str, str]:
    """The environment of `dg dev` and every run: one target, absolute file locations.

    Parsed by settings.py like every entry point: a malformed variable is a SettingError.
    """
    current = settings.current(environ)
    env = dict(environ)
    env["DAGSTER_HOME"] = str(home)
    # An explicit STX_PIPELINE_TARGET_DAYS wins over `--days`; either way it is the one
    # target of the button, the sensor and the schedule.
    explicit = settings.is_set("STX_PIPELINE_TARGET_DAYS", environ)
    env["STX_PIPELINE_TARGET_DAYS"] = str(current.target_days if explicit else days)
    # Absolute, so a run worker whatever its cwd opens the files the terminal shows.
    env["STX_PIPELINE_DB"] = str(current.db_path)
    env["STX_PIPELINE_DASHBOARD"] = str(current.dashboard_path)
    env["STX_PIPELINE_STATUS_FILE"] = str(current.status_file)
    env["STX_PIPELINE_EXPORT_DIR"] = str(current.export_dir)
    return env


@contextlib.contextmanager
def serve_dashboard(path: Path, port: int) -> Iterator[str]:
    """Serve the dashboard's folder on loopback (`port`, or any free one if taken); yield
    the dashboard's URL. A browser does not follow a `file://` link from an http page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_QuietFileHandler, directory=str(path.parent))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.5,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def uses_real_api(environ: Mapping[str, str]) -> bool:
    """The real Hiro API only when a key is set and no URL overrides it."""
    return bool(environ.get("HIRO_API_KEY")) and not environ.get("HIRO_API_URL")


@contextlib.contextmanager
def _simulator(sim_port: int, days: int) -> Iterator[str]:
    """Start the in-process simulator with `days` + margin of history; yield its URL."""
    from stx_pipeline.sim import run_simulator

    with run_simulator(port=sim_port, history_days=days + HISTORY_MARGIN_DAYS) as sim:
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
    """Run the simulator (unless the real API is configured) and `dg dev` until Ctrl-C.

    Returns the exit status for the CLI: 0 after a Ctrl-C, dagster's own status otherwise.
    """
    _interrupt_on_sigterm()
    # The project's own instance, not a personal ~/.dagster: regenerated from dagster.yaml.
    home = prepare_home(settings.current().dagster_home)
    env = pipeline_environment(os.environ, home, days)
    target_days = int(env["STX_PIPELINE_TARGET_DAYS"])
    with contextlib.ExitStack() as stack:
        if uses_real_api(env):
            api = "the real Hiro API (HIRO_API_KEY set, no HIRO_API_URL)"
        elif env.get("HIRO_API_URL"):
            api = f"HIRO_API_URL={env['HIRO_API_URL']}"
        else:
            env["HIRO_API_URL"] = stack.enter_context(_simulator(sim_port, target_days))
            api = (
                f"the simulator on {env['HIRO_API_URL']} "
                f"({target_days + HISTORY_MARGIN_DAYS} days of history)"
            )
        dashboard = Path(env["STX_PIPELINE_DASHBOARD"])
        env["STX_PIPELINE_DASHBOARD_URL"] = stack.enter_context(
            serve_dashboard(dashboard, port + 1)
        )
        print(
            f"target:    {target_days} days of history (STX_PIPELINE_TARGET_DAYS; the "
            "Materialize button, the sensor and the schedule all use it)\n"
            f"API:       {api}\n"
            f"warehouse: {env['STX_PIPELINE_DB']}\n"
            f"dashboard: {dashboard}\n"
            f"           served at {env['STX_PIPELINE_DASHBOARD_URL']} once built\n"
            f"Dagster:   http://127.0.0.1:{port} (DAGSTER_HOME={home})\n"
            "Ctrl-C stops the UI, the daemon and the simulator.",
            flush=True,
        )
        proc = subprocess.Popen(
            dagster_dev_command(port, home),
            cwd=home,
            env=env,
            start_new_session=True,
            preexec_fn=_reset_signals,
        )
        try:
            while proc.poll() is None:
                time.sleep(0.5)
            return proc.returncode
        except KeyboardInterrupt:
            print("\nstopping dagster ...", flush=True)
            stop_process_group(proc)
            return 0
        finally:
            if proc.poll() is None:
                stop_process_group(proc)


if __name__ == "__main__":  # pragma: no cover - manual entry point
    raise SystemExit(run_ui())
