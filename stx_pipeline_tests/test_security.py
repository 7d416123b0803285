"""Secrets never reach disk or output, and the simulator never listens beyond loopback.

The API key and the alert webhook URL are read from the environment only. These tests run
the real commands with distinctive secrets and then grep every byte they could have left
behind: stdout/stderr, the log file, the status JSON, the DuckDB file (raw bytes and every
column of every table), the dashboard, Dagster's event log and storage.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from stx_pipeline import alerts
from stx_pipeline.sim import SimConfig, Simulator, run_simulator
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.loopback import LoopbackServer, WebhookReceiver

API_KEY = "sk-LEAKCHECK-7f3a9c"
HOOK_SECRET = "hook-SECRET123"
SIM = {"seed": 41, "history_days": 1.5, "tx_per_day": 1500, "frozen": True}


# --------------------------------------------------------------------------- helpers


def _cli(*args: str, tmp: Path, timeout: float = 180, **env_extra: str):
    env = cli_env(
        tmp,
        HIRO_API_KEY=API_KEY,
        HIRO_MAX_RATE_LIMIT_WAIT="30",
        STX_PIPELINE_LOG_FILE=str(tmp / "logs" / "backfill.log"),
        STX_PIPELINE_DASHBOARD=str(tmp / "dash" / "default.html"),
        **env_extra,
    )
    return subprocess.run([sys.executable, "-m", "stx_pipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=tmp)


def _files_containing(root: Path, needle: str) -> list[Path]:
    """Every regular file under `root` whose raw bytes contain `needle` (any case)."""
    hits = []
    variants = {needle.encode(), needle.lower().encode(), needle.upper().encode(),
                needle.encode("utf-16-le")}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(v in data for v in variants):
                hits.append(path)
    return hits


def _db_cells_containing(db: Path, needle: str) -> tuple[int, list[str]]:
    """(number of columns scanned, `table.column`s with a value containing `needle`)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
            " WHERE table_catalog = current_database()"
        ).fetchall()
        hits = []
        for schema, table, column in columns:
            n = con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}"'
                f' WHERE lower(CAST("{column}" AS VARCHAR)) LIKE ?',
                [f"%{needle.lower()}%"],
            ).fetchone()[0]
            if n:
                hits.append(f"{table}.{column}")
        return len(columns), hits
    finally:
        con.close()


def _tables(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables").fetchall()}
    finally:
        con.close()


class RecordingProxy:
    """Loopback HTTP proxy in front of the simulator, recording each request's headers."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append({"path": self.path, **{k.lower(): v for k, v in
                                                         self.headers.items()}})
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                resp = requests.get(upstream + self.path, headers=headers, timeout=30,
                                    allow_redirects=False)
                self.send_response(resp.status_code)
                for name in ("content-type", "ratelimit-limit", "ratelimit-remaining",
                             "ratelimit-reset", "retry-after", "x-api-version"):
                    if name in resp.headers:
                        self.send_header(name, resp.headers[name])
                self.send_header("content-length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = LoopbackServer(Handler)
        self.url = self._server.url

    def __enter__(self) -> RecordingProxy:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)




# --------------------------------------------------------------------------- the API key


def test_api_key_appears_in_no_output_file_or_table(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    outputs: list[str] = []

    def run(*args: str, **kw: str):
        proc = _cli(*args, tmp=tmp_path, **kw)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    with run_simulator(**SIM) as sim, RecordingProxy(sim.url) as proxy:
        # 1. a clean run through a proxy that records what the simulator receives
        first = run("backfill", "--days", "1", "--db", str(db), "--api-url", proxy.url)
        assert first.returncode == 0, first.stderr
        assert "target_reached" in first.stdout
        # 2. with faults, so retries (with the request URL) get logged
        sim.set_faults(fault_rate=0.3, fault_kinds=["500", "502", "503", "truncated"])
        sim.advance(3 * 3600)
        faulty = run("-v", "backfill", "--days", "1", "--db", str(db), "--api-url", sim.url,
                     "--force-refresh")
        assert faulty.returncode in (0, 1), faulty.stderr
        assert sim.stats["faults_total"] > 0
        assert "retrying" in faulty.stderr
        # 3. a 410 on v1 (the run says so and goes on on v3), then an API error printed
        sim.set_faults(fault_rate=0.0, gone=True)
        gone = run("backfill", "--days", "1", "--db", str(db), "--api-url", sim.url,
                   "--source", "v1")
        assert gone.returncode == 0, gone.stderr
        sim.set_faults(gone=False, wrong_content_type=True)
        bad = run("backfill", "--days", "1", "--db", str(db), "--api-url", sim.url)
        assert bad.returncode == 1
        assert "stx-pipeline: error:" in bad.stderr and "JSON" in bad.stderr, bad.stderr
        # 4. a bounded run that stops early (resumable) still says nothing of the key
        sim.set_faults(wrong_content_type=False)
        cut = run("backfill", "--days", "1", "--db", str(db), "--api-url", sim.url,
                  "--max-pages", "2", "--force-refresh")
        assert cut.returncode == 75, cut.stderr
        final = run("backfill", "--days", "1", "--db", str(db), "--api-url", sim.url)
        assert final.returncode == 0, final.stderr

    # the simulator did get the key, in the x-api-key header of the paged requests
    # (both sources: the v1 list, the v3 list and the v2 block lists it is sealed against)
    tx_requests = [r for r in proxy.seen if r["path"].startswith(
        ("/extended/v1/tx", "/extended/v3/", "/extended/v2/"))]
    keyed = [r for r in tx_requests if r.get("x-api-key") == API_KEY]
    assert len(keyed) >= 5, f"{len(keyed)} of {len(tx_requests)} requests carried the key"
    # only the connectivity preflight (one bare GET of /extended) goes without it
    assert len(tx_requests) == len(keyed)
    assert all(API_KEY not in r["path"] for r in proxy.seen), "key in a query string"

    status = run("status", "--days", "1", "--db", str(db), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["complete"] is True
    metrics = run("metrics", "--db", str(db))
    assert metrics.returncode == 0, metrics.stderr
    dash = tmp_path / "dash" / "wallet_metrics.html"
    dashboard = run("dashboard", "--db", str(db), "--out", str(dash))
    assert dashboard.returncode == 0, dashboard.stderr

    # everything that was produced exists and was really looked at
    log_file = tmp_path / "logs" / "backfill.log"
    status_file = tmp_path / "status.json"
    assert log_file.stat().st_size > 0 and "retrying" in log_file.read_text()
    assert json.loads(status_file.read_text())["status"] == "complete"
    assert dash.stat().st_size > 10_000
    assert {"transactions", "coverage_ledger"} <= _tables(db)

    for text in outputs:
        assert API_KEY not in text and API_KEY.lower() not in text.lower()
    assert not _files_containing(tmp_path, API_KEY), "the API key was written to disk"
    n_columns, hits = _db_cells_containing(db, API_KEY)
    assert n_columns > 20 and not hits, hits
    # the scans do find what is there: the request paths are in the log, a tx_id in the DB
    # (the DB is scanned by SQL: DuckDB 1.5 compresses strings, so its bytes hide them)
    con = duckdb.connect(str(db), read_only=True)
    tx_id = con.execute("SELECT tx_id FROM transactions LIMIT 1").fetchone()[0]
    con.close()
    assert _db_cells_containing(db, tx_id)[1]
    assert _files_containing(tmp_path, "/extended/v3/transactions?limit=")


def test_api_key_not_in_dagster_event_log_or_storage(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from stx_pipeline.defs.resources import HiroResource, WarehouseResource
    from stx_pipeline.defs.transactions.assets import TransactionsConfig, transactions

    monkeypatch.setenv("HIRO_API_KEY", API_KEY)
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    monkeypatch.delenv("STX_PIPELINE_ALERT_WEBHOOK", raising=False)
    db = tmp_path / "w.duckdb"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with run_simulator(**SIM) as sim, RecordingProxy(sim.url) as proxy, \
            dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        # as the project's definitions wire it: the key comes from an EnvVar
        hiro = HiroResource(base_url=proxy.url, api_key=dg.EnvVar("HIRO_API_KEY"),
                            max_attempts=2)
        result = dg.materialize(
            [transactions], instance=instance,
            resources={"hiro": hiro, "duckdb": WarehouseResource(database=str(db))},
            run_config=dg.RunConfig(ops={"transactions": TransactionsConfig(target_days=1)}),
        )
        assert result.success
        mats = result.asset_materializations_for_node("transactions")
        assert mats and mats[-1].metadata["complete"].value is True
        assert proxy.seen and all(r.get("x-api-key") == API_KEY for r in proxy.seen)

        events = instance.all_logs(result.run_id)
        assert len(events) > 5
        for event in events:
            assert API_KEY not in str(event) and API_KEY not in repr(event), event
        run = instance.get_run_by_id(result.run_id)
        assert API_KEY not in repr(run) and API_KEY not in json.dumps(run.run_config,
                                                                       default=str)
    assert not _files_containing(tmp_path, API_KEY), "the API key was written to disk"
    assert any(dagster_home.rglob("*")), "the Dagster instance stored nothing to scan"
    _, hits = _db_cells_containing(db, API_KEY)
    assert not hits, hits


# --------------------------------------------------------------------------- the webhook

ALERT_SCRIPT = """
import json, sys
from stx_pipeline.cli import setup_logging
from stx_pipeline import alerts

setup_logging(verbose=True)  # the most talkative logging the CLI has, to the log file
out = []
for i, url in enumerate(sys.argv[1:]):
    kw = {} if i == 0 else {"webhook_url": url, "timeout": 2.0}
    d = alerts.send_alert(alerts.Alert(asset="transactions", check="no_gaps",
                                       severity="ERROR", message=f"alert {i}", run_id="r1"), **kw)
    out.append({"sent": d.webhook_sent, "status": d.webhook_status, "error": d.webhook_error,
                "status_file_error": d.status_file_error})
print(json.dumps(out))
"""


def test_webhook_url_is_never_written_to_disk(tmp_path: Path) -> None:
    status_file = tmp_path / "data" / "status.json"
    log_file = tmp_path / "logs" / "backfill.log"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/{HOOK_SECRET}"
    hook = f"/{HOOK_SECRET}"
    with WebhookReceiver(path=hook) as ok, WebhookReceiver(status=500, path=hook) as failing:
        env = cli_env(tmp_path, STX_PIPELINE_STATUS_FILE=str(status_file),
                      STX_PIPELINE_LOG_FILE=str(log_file), STX_PIPELINE_ALERT_WEBHOOK=ok.url,
                      STX_PIPELINE_ALERT_BACKOFF_SECONDS="0.01")
        # 1st alert: the webhook from the environment; then explicit 500 and dead URLs
        proc = subprocess.run([sys.executable, "-c", ALERT_SCRIPT, "env", failing.url, dead],
                              env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results[0] == {"sent": True, "status": 200, "error": None, "status_file_error": None}
    assert results[1]["status"] == 500 and not results[1]["sent"]
    assert results[2]["status"] is None and results[2]["error"] and not results[2]["sent"]
    # the receiver got the POST, on the secret path, with the alert as JSON
    assert len(ok.received) == 1
    path, payload = ok.paths[0], ok.received[0]
    assert path == f"/{HOOK_SECRET}"
    assert payload["check"] == "no_gaps" and payload["severity"] == "ERROR"
    assert len(failing.received) == alerts.DeliveryPolicy().attempts  # retried, then given up
    # all three alerts were recorded and logged, none with the URL
    stored = json.loads(status_file.read_text())
    assert [a["message"] for a in stored["alerts"]] == ["alert 0", "alert 1", "alert 2"]
    log_text = log_file.read_text()
    assert "ALERT ERROR transactions/no_gaps" in log_text
    assert "webhook" in log_text  # the failures were logged...
    for text in (proc.stdout, proc.stderr, log_text, status_file.read_text()):
        assert HOOK_SECRET not in text  # ...without the URL
    assert not _files_containing(tmp_path, HOOK_SECRET)


def test_webhook_url_not_stored_by_the_dagster_alert_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from stx_pipeline.defs.alerts.sensors import process_check_evaluations

    status_file = tmp_path / "status.json"
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(status_file))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    with WebhookReceiver(path=f"/{HOOK_SECRET}") as rec, \
            dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        monkeypatch.setenv("STX_PIPELINE_ALERT_WEBHOOK", rec.url)
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("transactions"), check_name="no_gaps", passed=False,
                severity=dg.AssetCheckSeverity.ERROR, description="2 holes", metadata={},
            )
        )
        sent, cursor = process_check_evaluations(dg.build_sensor_context(instance=instance))
        assert [a.check for a in sent] == ["no_gaps"]
        assert len(rec.received) == 1 and rec.paths[0] == f"/{HOOK_SECRET}"
        assert HOOK_SECRET not in cursor
    assert json.loads(status_file.read_text())["alerts"][-1]["check"] == "no_gaps"
    assert not _files_containing(tmp_path, HOOK_SECRET)


# --------------------------------------------------------------------------- the simulator


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "example.com"])
def test_simulator_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimConfig(host=host)
    with pytest.raises(ValueError, match="loopback"):
        Simulator(SimConfig(), host=host)


def _non_loopback_ipv4() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_started_simulator_listens_on_loopback_only(host: str) -> None:
    sim = Simulator(SimConfig(seed=1, history_days=1, tx_per_day=10, frozen=True, host=host))
    with sim:
        server = sim._server
        assert server is not None
        bound_host, bound_port = server.socket.getsockname()[:2]
        assert bound_host == "127.0.0.1" and server.server_address[0] == "127.0.0.1"
        assert bound_port == sim.port and sim.url == f"http://127.0.0.1:{sim.port}"
        assert requests.get(f"{sim.url}/extended/v1/tx?limit=1", timeout=10).status_code == 200
        other = _non_loopback_ipv4()
        if other is not None:
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((other, sim.port))

