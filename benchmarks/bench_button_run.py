"""What a Materialize-button run of `transactions` costs around its own work.

    .venv/bin/python benchmarks/bench_button_run.py [--baseline COMMIT]

For this checkout (and, with `--baseline`, for `git archive COMMIT` unpacked in a temporary
folder, run the same way one after the other): `dagster dev` with the simulator (3 days,
3,000 tx/day), the backfill sensor fills the history, then the UI's own launch mutation
(implicit asset job, empty config, `transactions` and its checks) starts a refresh run.
Printed: the run's wall time from start to end, the sum of its steps, and each step.
The gap between the two is executor overhead (a process per step, steps waiting on the
`duckdb` pool).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("backfill_complete", "no_gaps", "unique_tx_id", "valid_rows", "no_rejected_rows",
          "fresh")
LAUNCH = """mutation L($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } } }"""
STATE = """{ assetNodes(assetKeys: [{path: ["transactions"]}]) {
    assetMaterializations(limit: 1) { metadataEntries { label
      ... on BoolMetadataEntry { boolValue } } } }
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) {
    ... on Runs { results { runId } } } }"""
RUN = """query R($id: ID!) { runOrError(runId: $id) { ... on Run {
  status startTime endTime stepStats { stepKey startTime endTime } } } }"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}},
                         timeout=30)
    resp.raise_for_status()
    body = resp.json()
    if "errors" in body:
        raise RuntimeError(body["errors"])
    return body["data"]


def _wait(test: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, RuntimeError, KeyError):
            value = test()
            if value:
                return value
        time.sleep(1.0)
    raise SystemExit("timed out")


def measure(code: Path) -> dict[str, Any]:
    """One `dagster dev` on `code` (its own stx_pipeline first on PYTHONPATH)."""
    from stx_pipeline.devserver import stop_process_group, write_instance_yaml
    from stx_pipeline.sim import run_simulator

    with tempfile.TemporaryDirectory(prefix="bench-button-") as tmp, run_simulator(
        history_days=3, tx_per_day=3000, seed=7
    ) as sim:
        tmp_path = Path(tmp)
        home = tmp_path / "home"
        write_instance_yaml(home, code / "dagster.yaml")
        env = {**os.environ, "PYTHONPATH": str(code), "DAGSTER_HOME": str(home),
               "HIRO_API_URL": sim.url, "STX_PIPELINE_DB": str(tmp_path / "w.duckdb"),
               "STX_PIPELINE_STATUS_FILE": str(tmp_path / "status.json"),
               "STX_PIPELINE_DASHBOARD": str(tmp_path / "dash.html"),
               # the same target for both codes: the baseline's button ignored the setting
               "STX_PIPELINE_TARGET_DAYS": "180", "STX_PIPELINE_SENSOR_INTERVAL": "5"}
        env.pop("HIRO_API_KEY", None)
        url = f"http://127.0.0.1:{_port()}"
        with open(tmp_path / "dagster.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dagster", "dev", "-w", str(code / "workspace.yaml"),
                 "-p", url.rsplit(":", 1)[1]],
                cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                _wait(lambda: _gql(url, "{ version }")["version"], 180)

                def backfilled() -> bool:
                    data = _gql(url, STATE)
                    mats = data["assetNodes"][0]["assetMaterializations"]
                    complete = bool(mats) and any(
                        e["label"] == "complete" and e.get("boolValue")
                        for e in mats[0]["metadataEntries"]
                    )
                    return complete and not data["runsOrError"]["results"]

                _wait(backfilled, 600)
                time.sleep(8)  # let the metrics sensor's run come and go
                _wait(lambda: not _gql(url, STATE)["runsOrError"]["results"], 300)
                params = {
                    "mode": "default", "executionMetadata": {"tags": []}, "runConfigData": "{}",
                    "selector": {
                        "repositoryLocationName": "stx_pipeline",
                        "repositoryName": "__repository__", "pipelineName": "__ASSET_JOB",
                        "assetSelection": [{"path": ["transactions"]}],
                        "assetCheckSelection": [
                            {"assetKey": {"path": ["transactions"]}, "name": n} for n in CHECKS
                        ],
                    },
                }
                run_id = _gql(url, LAUNCH, {"p": params})["launchPipelineExecution"]["run"][
                    "runId"
                ]

                def finished() -> dict[str, Any] | None:
                    run = _gql(url, RUN, {"id": run_id})["runOrError"]
                    return run if run["status"] in ("SUCCESS", "FAILURE") else None

                run = _wait(finished, 600)
            finally:
                stop_process_group(proc)
    steps = {s["stepKey"]: round(s["endTime"] - s["startTime"], 2) for s in run["stepStats"]}
    return {
        "code": str(code),
        "status": run["status"],
        "run_wall_s": round(run["endTime"] - run["startTime"], 1),
        "sum_of_steps_s": round(sum(steps.values()), 1),
        "steps": len(steps),
        "step_s": steps,
    }


def unpack(commit: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="a commit to measure the same way, first")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-button-code-") as tmp:
        if args.baseline:
            results.append(measure(unpack(args.baseline, Path(tmp))))
        results.append(measure(ROOT))
    for result in results:
        print(json.dumps(result))
    if len(results) == 2:
        before, after = results
        print(f"run wall time {before['run_wall_s']} s -> {after['run_wall_s']} s "
              f"({before['run_wall_s'] / max(after['run_wall_s'], 0.1):.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
