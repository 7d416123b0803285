"""End to end: `dg dev` (webserver + daemon) with the simulator drives the backfill to
completion through the sensor, the downstream assets follow and the checks pass; a run
launched the way the Materialize button launches it gets the sensor's target.

Observed only through the GraphQL API, like a user of the UI would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stx_pipeline.defs.transactions.checks import CHECKS
from stx_pipeline.devserver import dagster_dev_command, prepare_home
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.dagster_services import (
    DEPRECATION_CHECK,
    WEEKLY_CHECKS,
    DagsterDev,
    e2e_env,
    wait_until_all_green,
)

pytestmark = pytest.mark.slow

COMPLETION_TIMEOUT = 240.0  # the brief's bound: four minutes from UI up to all green
TARGET_DAYS = 2

# What the Materialize button sends (dagster-ui LaunchAssetExecutionButton.tsx,
# executionParamsForAssetJob): the implicit asset job, empty run config, no tags.
LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run { status jobName tags { key value } }
  }
}
"""

MATERIALIZATIONS_QUERY = """
query Mats {
  assetNodes(assetKeys: [{path: ["transactions"]}]) {
    assetMaterializations(limit: 100) {
      runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    }
  }
}
"""


@pytest.fixture
def dagster_dev(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> Iterator[tuple[DagsterDev, Path]]:
    sim = make_simulator(history_days=3, tx_per_day=1500)
    home = prepare_home(tmp_path / "dagster_home")
    env = e2e_env(tmp_path, sim.url, TARGET_DAYS, DAGSTER_HOME=str(home))
    server = DagsterDev(home, env, tmp_path / "dagster_dev.log")
    try:
        server.wait_ready()
        yield server, tmp_path
    finally:
        server.stop()


def press_materialize(server: DagsterDev) -> str:
    """Launch `transactions` exactly as the asset page's Materialize button does."""
    params = {
        "mode": "default",
        "executionMetadata": {"tags": []},
        "runConfigData": "{}",
        "selector": {
            "repositoryLocationName": "stx_pipeline",
            "repositoryName": "__repository__",
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": ["transactions"]}],
            "assetCheckSelection": [
                {"assetKey": {"path": ["transactions"]}, "name": name}
                for name in (*CHECKS, DEPRECATION_CHECK)
            ],
        },
    }
    launched = server.graphql(LAUNCH_MUTATION, {"params": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["runId"]


def _target_days_by_run(server: DagsterDev) -> dict[str, int]:
    node = server.graphql(MATERIALIZATIONS_QUERY)["assetNodes"][0]
    out: dict[str, int] = {}
    for mat in node["assetMaterializations"]:
        for entry in mat["metadataEntries"]:
            if entry["label"] == "target_days":
                out[mat["runId"]] = entry["intValue"]
    return out


def test_sensor_and_button_drive_backfill_to_completion_in_dagster_dev(
    dagster_dev: tuple[DagsterDev, Path],
) -> None:
    server, tmp_path = dagster_dev
    button_run = press_materialize(server)
    state, elapsed = wait_until_all_green(server, COMPLETION_TIMEOUT)
    tx = state["assets"]["transactions"]
    assert tx["metadata"]["stop_reason"] in ("target_reached", "start_of_chain")
    assert tx["metadata"]["rows_total"] > 0
    assert set(tx["checks"]) == {*CHECKS, DEPRECATION_CHECK} | WEEKLY_CHECKS
    assert tx["observed_in_runs"], "progress observations recorded by the runs"
    # The simulated API is v9: by default (HIRO_SOURCE unset: auto) the backfill reads
    # /extended/v3/transactions, not the deprecated /extended/v1/tx, so the check passes.
    assert tx["metadata"]["source"] == "v3"
    passed = tx["checks"][DEPRECATION_CHECK]
    assert passed["status"] == "SUCCEEDED", passed
    assert "no deprecated route in use" in passed["evaluation"]["description"], passed
    runs = state["backfill_runs"]
    assert len(runs) >= 2, f"the sensor should have needed several runs: {runs}"
    assert all(r["status"] in ("SUCCESS",) for r in runs), runs
    dashboard = Path(state["assets"]["dashboard"]["metadata"]["path"])
    assert dashboard == tmp_path / "dashboards" / "wallet_metrics.html" and dashboard.exists()

    # The button's run: done, and with the sensor's target (the setting, not a default).
    button = server.graphql(RUN_QUERY, {"runId": button_run})["runOrError"]
    assert button["jobName"] == "__ASSET_JOB" and button["status"] == "SUCCESS", button
    targets = _target_days_by_run(server)
    sensor_runs = [r["runId"] for r in runs]
    assert targets[button_run] == TARGET_DAYS
    assert {targets[r] for r in sensor_runs if r in targets} == {targets[button_run]}

    # A quiet start: no superseded-command or misleading instance warning.
    log = server.log_path.read_text(errors="replace")
    assert "superseded" not in log and "will not be used" not in log
    print(f"e2e: all green {elapsed:.0f}s after the UI came up, {len(runs)} backfill runs")


def test_python_runs_this_interpreter() -> None:
    """`dagster dev` must run in the project's venv, where stx_pipeline is importable."""
    command = dagster_dev_command(3000, Path("/tmp/home"))
    assert command[0] == sys.executable and command[2] == "dev"
