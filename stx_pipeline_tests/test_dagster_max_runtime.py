"""No hung writer: a backfill run stuck on an API that never answers is failed by run
monitoring once it exceeds `dagster/max_runtime`, its pool slot is freed, the run queued
behind it starts and succeeds, and the failure reaches people as an alert.

Real parts only: `dagster-daemon run` on the project's `dagster.yaml` (SQLite, queued
runs, run monitoring), the backfill sensor launching the stuck run, `dagster job launch`
queueing the next one, and two simulators: one whose every answer takes minutes, one
healthy.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import yaml

from stx_pipeline.devserver import write_instance_yaml
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.dagster_services import BIN, WORKSPACE, DagsterServices

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MAX_RUNTIME = 8
TIMEOUT = 420.0  # per wait; a loaded 2-core machine starts code servers slowly


def _instance_home(home: Path) -> Path:
    """The project's dagster.yaml with run monitoring polling every second (30 s there)."""
    write_instance_yaml(home)
    path = home / "dagster.yaml"
    config = yaml.safe_load(path.read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return home


def _wait(what: str, condition: Callable[[], object], services: DagsterServices,
          state: Callable[[], object], timeout: float = TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        services.check_alive()
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}; runs: {state()}\n{services.tail(60)}")


def test_stuck_run_is_failed_by_max_runtime_and_the_queue_moves_on(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> None:
    stuck = make_simulator(history_days=2, tx_per_day=1500, latency_ms=120_000)
    healthy = make_simulator(history_days=2, tx_per_day=1500)
    home = _instance_home(tmp_path / "dagster_home")
    status_file = tmp_path / "backfill_status.json"
    env = cli_env(
        tmp_path,
        DAGSTER_HOME=str(home),
        HIRO_API_URL=stuck.url,
        HIRO_READ_TIMEOUT="300",  # the client would wait for minutes: the run hangs
        STX_PIPELINE_DB=str(tmp_path / "w.duckdb"),
        STX_PIPELINE_STATUS_FILE=str(status_file),
        STX_PIPELINE_DASHBOARD=str(tmp_path / "dashboard.html"),
        STX_PIPELINE_SENSOR_INTERVAL="2",
        STX_PIPELINE_TARGET_DAYS="1",
        STX_PIPELINE_MAX_RUNTIME_SECONDS=str(MAX_RUNTIME),
        PYTHONUNBUFFERED="1",
    )
    services = DagsterServices(env, tmp_path, webserver=False)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def runs(status: dg.DagsterRunStatus | None = None) -> list[dg.DagsterRun]:
                return list(reversed(instance.get_runs(dg.RunsFilter(
                    job_name="transactions_backfill_job",
                    statuses=[status] if status else []))))

            def overview() -> list[tuple[str, str, str | None]]:
                return [(r.run_id[:8], r.status.value, r.tags.get("stx_pipeline/trigger"))
                        for r in runs()]

            # The backfill sensor's first run gets stuck on the API.
            first = _wait("the sensor's run to start",
                          lambda: runs(dg.DagsterRunStatus.STARTED), services, overview)[0]
            assert first.tags["dagster/max_runtime"] == str(MAX_RUNTIME)

            # Someone launches another writer run: it queues behind the stuck one. Its own
            # max_runtime tag (run tags win over job tags) leaves it time on a busy machine.
            config = {
                "ops": {"transactions": {"config": {"target_days": 1, "max_pages": 10_000}}},
                "resources": {"hiro": {"config": {"base_url": healthy.url}}},
            }
            launch = subprocess.run(
                [str(BIN / "dagster"), "job", "launch", "-w", str(WORKSPACE),
                 "-j", "transactions_backfill_job", "--config-json", json.dumps(config),
                 "--tags", json.dumps({"stx_pipeline/trigger": "manual",
                                       "dagster/max_runtime": "600"})],
                env=env, capture_output=True, text=True, timeout=180,
            )
            assert launch.returncode == 0, launch.stdout + launch.stderr
            second = next(r for r in runs() if r.tags.get("stx_pipeline/trigger") == "manual")
            assert second.tags["dagster/max_runtime"] == "600"

            def finished(run_id: str) -> dg.DagsterRun | None:
                run = instance.get_run_by_id(run_id)
                return run if run is not None and run.is_finished else None

            failed = _wait("the stuck run to be failed", lambda: finished(first.run_id),
                           services, overview)
            done = _wait("the queued run to finish", lambda: finished(second.run_id),
                         services, overview)
            assert failed.status == dg.DagsterRunStatus.FAILURE
            messages = [e.message or "" for e in instance.all_logs(first.run_id)]
            assert any(f"maximum runtime of {MAX_RUNTIME} seconds" in m for m in messages), (
                messages[-10:])
            assert done.status == dg.DagsterRunStatus.SUCCESS, services.tail(60)
            records = {r.dagster_run.run_id: r for r in instance.get_run_records(
                dg.RunsFilter(run_ids=[first.run_id, second.run_id]))}
            assert records[second.run_id].start_time >= records[first.run_id].end_time
            latest = instance.get_latest_materialization_event(dg.AssetKey("transactions"))
            assert latest is not None and latest.run_id == second.run_id
            assert latest.asset_materialization.metadata["complete"].value is True

            # The hung run reached people: the run-failure sensor alerted about it.
            def alerted() -> list[dict[str, str]]:
                data = json.loads(status_file.read_text()) if status_file.exists() else {}
                return [a for a in data.get("alerts", []) if a.get("run_id") == first.run_id]

            alert = _wait("the run-failure alert", alerted, services, overview)[0]
            assert alert["check"] == "run:transactions_backfill_job"
    finally:
        services.stop()
