"""Dagster running for real in end-to-end tests, observed only through its GraphQL API:
`dg dev` (webserver and daemon in one, as `stx-pipeline ui` runs it), or
`dagster-webserver` and `dagster-daemon run` as two processes, the way a team deploys them;
each in its own process group with its log in a file. Plus what both e2e tests ask of it
(the assets' state, "all green", the wait for it) and a throw-away Postgres database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from stx_pipeline.devserver import PROJECT_ROOT, dagster_dev_command, stop_process_group
from stx_pipeline_tests.cli_env import cli_env

BIN = Path(sys.executable).parent
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
POSTGRES_SCRIPT = PROJECT_ROOT / "deploy" / "local-postgres.sh"
STARTUP_TIMEOUT = 120.0
POLL_SECONDS = 3.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path,
                 cwd: Path = PROJECT_ROOT) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.name} log tail ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


class GraphQLServer:
    """What both ways of running Dagster share: the GraphQL endpoint and its liveness."""

    url: str

    def tail(self, lines: int = 40) -> str:
        raise NotImplementedError

    def check_alive(self) -> None:
        raise NotImplementedError

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = requests.post(self.url, json={"query": query, "variables": variables or {}},
                             timeout=30)
        resp.raise_for_status()
        body = resp.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if self.graphql("{ version }").get("version"):
                    return
            except (requests.RequestException, AssertionError, ValueError):
                pass
            time.sleep(1.0)
        pytest.fail(f"dagster-webserver not answering after {STARTUP_TIMEOUT:.0f}s:\n"
                    f"{self.tail()}")


class DagsterDev(GraphQLServer):
    """`dg dev` on the workspace in `home`, run from `home` as `stx-pipeline ui` runs it."""

    def __init__(self, home: Path, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.service = Service("dg dev", dagster_dev_command(self.port, home), env, log,
                               cwd=home)
        self.log_path = log

    def tail(self, lines: int = 60) -> str:
        return self.service.tail(lines)

    def check_alive(self) -> None:
        proc = self.service.proc
        if proc.poll() is not None:
            pytest.fail(f"dg dev exited with {proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        self.service.stop()


class DagsterServices(GraphQLServer):
    """The daemon, and the webserver on a free loopback port unless `webserver=False`."""

    def __init__(self, env: dict[str, str], logs: Path, webserver: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.services: list[Service] = []
        self.services.append(Service(
            "dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            env, logs / "daemon.log"))
        if webserver:
            self.services.append(Service(
                "dagster-webserver",
                [str(BIN / "dagster-webserver"), "-w", str(WORKSPACE), "-h", "127.0.0.1",
                 "-p", str(self.port)],
                env, logs / "webserver.log"))

    def tail(self, lines: int = 40) -> str:
        return "\n".join(s.tail(lines) for s in self.services)

    def check_alive(self) -> None:
        for s in self.services:
            if s.proc.poll() is not None:
                pytest.fail(f"{s.name} exited with {s.proc.returncode}:\n{self.tail()}")

    def stop(self) -> None:
        for s in reversed(self.services):
            s.stop()


# --- what the end-to-end tests observe ------------------------------------------------------

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

def _entry_value(entry: dict[str, Any]) -> Any:
    for key in ("boolValue", "text", "intValue", "floatValue", "path"):
        if key in entry:
            return entry[key]
    return None


def dagster_state(server: GraphQLServer) -> dict[str, Any]:
    """Each asset's latest materialization metadata, checks and observations; the
    backfill job's runs."""
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


def all_green(state: dict[str, Any]) -> tuple[bool, str]:
    """Backfill complete, metrics and dashboard after it, every backfill check passed
    (`source_not_deprecated` too: by default the backfill reads v3, which is not deprecated)."""
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
        if not execution or execution["status"] != "SUCCEEDED":
            return False, f"check {name}: {execution}"
    return True, "all green"


def wait_until_all_green(server: GraphQLServer, timeout: float) -> tuple[dict[str, Any], float]:
    """Poll the state until `all_green`; (the state, seconds it took). Fails with the
    reason and the services' log tails after `timeout` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    why = "no state yet"
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = dagster_state(server)
        except (requests.RequestException, AssertionError) as exc:
            why = f"GraphQL error: {exc}"
        else:
            ok, why = all_green(state)
            if ok:
                return state, time.monotonic() - started
        server.check_alive()
        time.sleep(POLL_SECONDS)
    pytest.fail(
        f"not all green after {timeout:.0f}s: {why}\n"
        f"backfill runs: {state.get('backfill_runs')}\n{server.tail(80)}"
    )


def e2e_env(tmp_path: Path, api_url: str, target_days: int, **extra: str) -> dict[str, str]:
    """The pipeline's settings of both e2e tests: files in `tmp_path`, a fast sensor, a
    small page budget so that several sensor-driven runs are needed to reach the target."""
    return cli_env(
        tmp_path,
        HIRO_API_URL=api_url,
        STX_PIPELINE_DB=str(tmp_path / "cache" / "wallet_metrics.duckdb"),
        STX_PIPELINE_STATUS_FILE=str(tmp_path / "backfill_status.json"),
        STX_PIPELINE_DASHBOARD=str(tmp_path / "dashboards" / "wallet_metrics.html"),
        STX_PIPELINE_SENSOR_INTERVAL="3",
        STX_PIPELINE_TARGET_DAYS=str(target_days),
        # 40, not 25: a v3 run (the default) spends ~10 requests of each run on listing the
        # tenures its windows are sealed against, so 25 took 5+ runs where v1 took 3
        STX_PIPELINE_MAX_PAGES="40",
        STX_PIPELINE_STALL_RUNS="5",
        PYTHONUNBUFFERED="1",
        **extra,
    )


# --- Postgres -------------------------------------------------------------------------------


def _read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def postgres_server_env() -> dict[str, str]:
    """DAGSTER_PG_* of the local server: `$STX_PIPELINE_PG_ENV` (set by `make test`), else
    from `deploy/local-postgres.sh start` (idempotent: installs, creates, starts or reuses
    it; `make postgres-stop` stops it). No server is a failure, never a skip."""
    env_file = os.environ.get("STX_PIPELINE_PG_ENV", "").strip()
    if not env_file:
        proc = subprocess.run(["bash", str(POSTGRES_SCRIPT), "start"], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"no local PostgreSQL server (run `make postgres`): "
                        f"{proc.stderr.strip()}")
        env_file = proc.stdout.strip().splitlines()[-1]
    return _read_env_file(Path(env_file))


@contextmanager
def postgres_database(server: dict[str, str]) -> Iterator[dict[str, str]]:
    """A new, empty database on the server for one test; dropped afterwards."""
    import psycopg2

    name = f"stx_test_{uuid.uuid4().hex[:12]}"
    connect = {"host": server["DAGSTER_PG_HOST"], "port": int(server["DAGSTER_PG_PORT"]),
               "user": server["DAGSTER_PG_USER"], "password": server["DAGSTER_PG_PASSWORD"],
               "dbname": server["DAGSTER_PG_DB"]}
    con = psycopg2.connect(**connect)
    con.autocommit = True
    try:
        with con.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield {**server, "DAGSTER_PG_DB": name}
    finally:
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.close()
