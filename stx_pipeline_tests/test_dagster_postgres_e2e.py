"""End to end on Postgres: `dagster-daemon` + `dagster-webserver` with the instance of
`deploy/dagster.postgres.yaml` (Postgres run, event-log and schedule storage, the queued
run coordinator) against a real local PostgreSQL server (`deploy/local-postgres.sh`).
The backfill sensor drives the backfill to a complete, exact history, the downstream
assets follow and every check passes: `test_dagster_e2e.py`'s scenario, on Postgres.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from stx_pipeline.devserver import PROJECT_ROOT
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.dagster_services import (
    DagsterServices,
    e2e_env,
    postgres_database,
    postgres_server_env,
    wait_until_all_green,
)
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

POSTGRES_YAML = PROJECT_ROOT / "deploy" / "dagster.postgres.yaml"
TARGET_DAYS = 2
# The SQLite test's bound is 240 s; two services and Postgres on a shared 2-core machine
# need more headroom (measured: 201 s under a load average of 16).
COMPLETION_TIMEOUT = 480.0


@pytest.fixture
def postgres_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    with postgres_database(postgres_server_env()) as env:
        for key, value in env.items():  # the test's own DagsterInstance resolves `env:` too
            monkeypatch.setenv(key, value)
        yield env


@pytest.fixture
def services(
    tmp_path: Path, make_simulator: Callable[..., Simulator], postgres_env: dict[str, str]
) -> Iterator[tuple[DagsterServices, Simulator, Path]]:
    sim = make_simulator(history_days=3, tx_per_day=1500)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(POSTGRES_YAML, home / "dagster.yaml")  # the deployment file, unchanged
    env = e2e_env(tmp_path, sim.url, TARGET_DAYS, DAGSTER_HOME=str(home), **postgres_env)
    server = DagsterServices(env, tmp_path)
    try:
        server.wait_ready()
        yield server, sim, tmp_path
    finally:
        server.stop()


def test_sensor_drives_backfill_to_completion_on_postgres(
    services: tuple[DagsterServices, Simulator, Path],
) -> None:
    server, sim, tmp_path = services
    state, elapsed = wait_until_all_green(server, COMPLETION_TIMEOUT)
    tx = state["assets"]["transactions"]
    assert tx["metadata"]["stop_reason"] in ("target_reached", "start_of_chain")
    runs = state["backfill_runs"]
    assert len(runs) >= 2, f"the sensor should have needed several runs: {runs}"
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    dashboard = Path(state["assets"]["dashboard"]["metadata"]["path"])
    assert dashboard == tmp_path / "dashboards" / "wallet_metrics.html" and dashboard.exists()

    # The instance really is Postgres, and runs really went through the daemon's queue.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        from dagster._core.run_coordinator import QueuedRunCoordinator
        from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        backfill_runs = instance.get_runs(dg.RunsFilter(job_name="transactions_backfill_job"))
        for run in backfill_runs:
            assert run.tags["dagster/max_runtime"] and run.tags["stx_pipeline/writer"] == "duckdb"
            kinds = {e.dagster_event_type for e in instance.all_logs(run.run_id)}
            assert dg.DagsterEventType.RUN_ENQUEUED in kinds, run.run_id
            assert dg.DagsterEventType.RUN_START in kinds, run.run_id
        sensor = next(s for s in instance.all_instigator_state()
                      if s.instigator_name == "transactions_backfill_sensor")
        ticks = instance.get_ticks(sensor.instigator_origin_id, sensor.selector_id)
        assert any(t.run_ids for t in ticks), "the sensor's ticks are stored in Postgres"
    server.stop()  # no writer left: the DuckDB file may be opened
    db = tmp_path / "cache" / "wallet_metrics.duckdb"
    loaded = assert_exact(sim, db, int(time.time()) - TARGET_DAYS * 86400 + 60)
    assert_ledger_consistent(db)
    print(f"postgres e2e: all green {elapsed:.0f}s after the webserver came up, "
          f"{len(runs)} backfill runs, {loaded:,} rows exact")
