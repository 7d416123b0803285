"""End to end: `dg dev` (webserver + daemon) with the simulator drives the backfill to
completion through the sensor, the downstream assets follow and the checks pass; a run
launched the way the Materialize button launches it gets the sensor's target.

Observed only through the GraphQL API, like a user of the UI would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from stx_pipeline.defs.transactions.checks import CHECKS
from stx_pipeline.devserver import dagster_dev_command, prepare_home, stop_process_group
from stx_pipeline.sim import Simulator

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 120.0
COMPLETION_TIMEOUT = 240.0  # the brief's bound: four minutes from UI up to all green

STATE_QUERY = """
query E2EState {
  assetNodes {
    assetKey { path }
    assetObservations(limit: 1) { runId timestamp }
    assetMaterializations(limit: 1) {
      runId
      timestamp
      metadataEntries {
        label
        ... on BoolMetadataEntry { boolValue }
        ... on TextMetadataEntry { text }
        ... on IntMetadataEntry { intValue }
        ... on FloatMetadataEntry { floatValue }
        ... on PathMetadataEntry { path }
      }
    }
    assetChecksOrError {
      ... on AssetChecks {
        checks {
          name
          executionForLatestMaterialization {
            status
            evaluation { success severity description }
          }
        }
      }
    }
  }
  runsOrError(filter: {pipelineName: "transactions_backfill_job"}) {
    ... on Runs { results { runId status } }
  }
}
"""

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry_value(entry: dict[str, Any]) -> Any:
    for key in ("boolValue", "text", "intValue", "floatValue", "path"):
        if key in entry:
            return entry[key]
    return None


class DagsterDev:
    """`dagster dev` in its own process group with its log in a file."""

    def __init__(self, port: int, home: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            dagster_dev_command(port, home),
            cwd=home,  # as `stx-pipeline ui` runs it
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = requests.post(
            self.url, json={"query": query, "variables": variables or {}}, timeout=30
        )
        resp.raise_for_status()
        body = resp.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"dagster dev exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if self.graphql("{ version }").get("version"):
                    return
            except (requests.RequestException, AssertionError, ValueError):
                pass
            time.sleep(1.0)
        pytest.fail(f"dagster dev not answering after {STARTUP_TIMEOUT:.0f}s:\n{self.tail()}")

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


@pytest.fixture
def dagster_dev(
    tmp_path: Path, make_simulator: Callable[..., Simulator]
) -> Iterator[tuple[DagsterDev, Path]]:
    sim = make_simulator(history_days=3, tx_per_day=1500)
    home = prepare_home(tmp_path / "dagster_home")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "HIRO_API_URL": sim.url,
        "STX_PIPELINE_DB": str(tmp_path / "cache" / "wallet_metrics.duckdb"),
        "STX_PIPELINE_STATUS_FILE": str(tmp_path / "backfill_status.json"),
        "STX_PIPELINE_DASHBOARD": str(tmp_path / "dashboards" / "wallet_metrics.html"),
        "STX_PIPELINE_SENSOR_INTERVAL": "3",
        "STX_PIPELINE_TARGET_DAYS": "2",
        "STX_PIPELINE_MAX_PAGES": "25",  # several sensor-driven runs to reach the target
        "STX_PIPELINE_STALL_RUNS": "5",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HIRO_API_KEY", None)
    env.pop("STX_PIPELINE_ALERT_WEBHOOK", None)
    server = DagsterDev(_free_port(), home, env, tmp_path / "dagster_dev.log")
    try:
        server.wait_ready()
        yield server, tmp_path
    finally:
        server.stop()


def _state(server: DagsterDev) -> dict[str, Any]:
    data = server.graphql(STATE_QUERY)
    assets: dict[str, Any] = {}
    for node in data["assetNodes"]:
        name = "/".join(node["assetKey"]["path"])
        mats = node["assetMaterializations"]
        latest = mats[0] if mats else None
        checks = (node.get("assetChecksOrError") or {}).get("checks") or []
        assets[name] = {
            "timestamp": float(latest["timestamp"]) if latest else None,
            "metadata": {e["label"]: _entry_value(e) for e in latest["metadataEntries"]}
            if latest
            else {},
            "checks": {c["name"]: c["executionForLatestMaterialization"] for c in checks},
            "observed_in_runs": {o["runId"] for o in node.get("assetObservations") or []},
        }
    runs = (data.get("runsOrError") or {}).get("results") or []
    return {"assets": assets, "backfill_runs": runs}


DEPRECATION_CHECK = "source_not_deprecated"
WEEKLY_CHECKS = {"sealed_history_matches_api"}


def _all_green(state: dict[str, Any]) -> tuple[bool, str]:
    assets = state["assets"]
    tx = assets.get("transactions", {})
    if not tx.get("metadata", {}).get("complete"):
        meta = tx.get("metadata", {})
        return False, (
            f"transactions not complete yet (stop={meta.get('stop_reason')}, "
            f"missing_days={meta.get('missing_days')}, runs={len(state['backfill_runs'])})"
        )
    wm, dash = assets.get("metrics_run", {}), assets.get("dashboard", {})
    if not wm.get("timestamp") or wm["timestamp"] < tx["timestamp"]:
        return False, "the metrics have not followed the complete transactions yet"
    if not dash.get("timestamp") or dash["timestamp"] < wm["timestamp"]:
        return False, "dashboard has not followed the metrics yet"
    for name, execution in tx["checks"].items():
        if name in WEEKLY_CHECKS:  # not part of the backfill runs (its own weekly job)
            continue
        if name == DEPRECATION_CHECK:  # expected to WARN while the backfill reads v1
            if not execution or execution["status"] not in ("SUCCEEDED", "FAILED"):
                return False, f"check {name}: {execution}"
            continue
        if not execution or execution["status"] != "SUCCEEDED":
            return False, f"check {name}: {execution}"
    return True, "all green"


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
    started = time.monotonic()
    button_run = press_materialize(server)
    deadline = started + COMPLETION_TIMEOUT
    why = "no state yet"
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = _state(server)
        except (requests.RequestException, AssertionError) as exc:
            why = f"GraphQL error: {exc}"
        else:
            ok, why = _all_green(state)
            if ok:
                break
        if server.proc.poll() is not None:
            pytest.fail(f"dagster dev died ({server.proc.returncode}):\n{server.tail()}")
        time.sleep(3.0)
    else:
        pytest.fail(
            f"not all green after {COMPLETION_TIMEOUT:.0f}s: {why}\n"
            f"backfill runs: {state.get('backfill_runs')}\n--- dagster log tail ---\n"
            f"{server.tail(80)}"
        )
    elapsed = time.monotonic() - started
    tx = state["assets"]["transactions"]
    assert tx["metadata"]["stop_reason"] in ("target_reached", "start_of_chain")
    assert tx["metadata"]["rows_total"] > 0
    assert set(tx["checks"]) == {*CHECKS, DEPRECATION_CHECK} | WEEKLY_CHECKS
    assert tx["observed_in_runs"], "progress observations recorded by the runs"
    # The simulated API is v9: /extended/v1/tx, which the backfill reads, is deprecated, and
    # the check says so (a WARN, not a failed run) with what to do.
    warned = tx["checks"][DEPRECATION_CHECK]
    assert warned["status"] == "FAILED", warned
    assert warned["evaluation"]["severity"] == "WARN", warned
    assert "/extended/v1/tx is deprecated" in warned["evaluation"]["description"], warned
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
    assert targets[button_run] == 2
    assert {targets[r] for r in sensor_runs if r in targets} == {targets[button_run]}

    # A quiet start: no superseded-command or misleading instance warning.
    log = server.log_path.read_text(errors="replace")
    assert "superseded" not in log and "will not be used" not in log
    print(f"e2e: all green {elapsed:.0f}s after the UI came up, {len(runs)} backfill runs")


def test_python_runs_this_interpreter() -> None:
    """`dagster dev` must run in the project's venv, where stx_pipeline is importable."""
    command = dagster_dev_command(3000, Path("/tmp/home"))
    assert command[0] == sys.executable and command[2] == "dev"
