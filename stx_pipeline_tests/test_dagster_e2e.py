"""End to end: `dagster dev` (webserver + daemon) with the simulator drives the backfill to
completion through the sensor, the downstream assets follow and the checks pass.

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

from stx_pipeline.devserver import (
    PROJECT_ROOT,
    dagster_dev_command,
    stop_process_group,
    write_instance_yaml,
)
from stx_pipeline.sim import Simulator

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT = 120.0
COMPLETION_TIMEOUT = 240.0  # the brief's bound: four minutes from UI up to all green

STATE_QUERY = """
query E2EState {
  assetNodes {
    assetKey { path }
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

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            dagster_dev_command(port),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def graphql(self, query: str) -> dict[str, Any]:
        resp = requests.post(self.url, json={"query": query}, timeout=30)
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
    home = tmp_path / "dagster_home"
    write_instance_yaml(home)
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
    server = DagsterDev(_free_port(), env, tmp_path / "dagster_dev.log")
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
        }
    runs = (data.get("runsOrError") or {}).get("results") or []
    return {"assets": assets, "backfill_runs": runs}


DEPRECATION_CHECK = "source_not_deprecated"


def _all_green(state: dict[str, Any]) -> tuple[bool, str]:
    assets = state["assets"]
    tx = assets.get("transactions", {})
    if not tx.get("metadata", {}).get("complete"):
        meta = tx.get("metadata", {})
        return False, (
            f"transactions not complete yet (stop={meta.get('stop_reason')}, "
            f"missing_days={meta.get('missing_days')}, runs={len(state['backfill_runs'])})"
        )
    wm, dash = assets.get("wallet_metrics", {}), assets.get("dashboard", {})
    if not wm.get("timestamp") or wm["timestamp"] < tx["timestamp"]:
        return False, "wallet_metrics has not followed the complete transactions yet"
    if not dash.get("timestamp") or dash["timestamp"] < wm["timestamp"]:
        return False, "dashboard has not followed wallet_metrics yet"
    for name, execution in tx["checks"].items():
        if name == DEPRECATION_CHECK:  # expected to WARN while the backfill reads v1
            if not execution or execution["status"] not in ("SUCCEEDED", "FAILED"):
                return False, f"check {name}: {execution}"
            continue
        if not execution or execution["status"] != "SUCCEEDED":
            return False, f"check {name}: {execution}"
    return True, "all green"


def test_sensor_drives_backfill_to_completion_in_dagster_dev(
    dagster_dev: tuple[DagsterDev, Path],
) -> None:
    server, tmp_path = dagster_dev
    started = time.monotonic()
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
    assert set(tx["checks"]) == {
        "backfill_complete",
        "no_gaps",
        "unique_tx_id",
        "valid_rows",
        "no_rejected_rows",
        "fresh",
        DEPRECATION_CHECK,
    }
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
    print(f"e2e: all green {elapsed:.0f}s after the UI came up, {len(runs)} backfill runs")


def test_python_runs_this_interpreter() -> None:
    """`dagster dev` must run in the project's venv, where stx_pipeline is importable."""
    assert dagster_dev_command(3000)[0] == sys.executable
