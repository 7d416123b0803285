"""`dagster-webserver` and `dagster-daemon run` as two processes, the way a team deploys
them (`dagster dev` runs both in one), each in its own process group with its log in a
file; plus a throw-away Postgres database for their instance storage."""

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

from stx_pipeline.devserver import PROJECT_ROOT, stop_process_group

BIN = Path(sys.executable).parent
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
POSTGRES_SCRIPT = PROJECT_ROOT / "deploy" / "local-postgres.sh"
STARTUP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return f"--- {self.name} log tail ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        stop_process_group(self.proc)
        self._log.close()


class DagsterServices:
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

    def stop(self) -> None:
        for s in reversed(self.services):
            s.stop()


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
