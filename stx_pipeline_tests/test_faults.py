"""Reliability: faults, bad rows, full disks, foreign files and concurrent runs lose nothing.

Faults, bad rows and a full disk run on both sources (the `source` fixture). The file
checks (corrupted, foreign, newer or older schema) and the lock between two runs are
source-independent: they act before any request or on the file alone, so they run once."""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.backfill import StopReason, check_backfill_progress, ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.warehouse.db import WarehouseError, open_db
from stx_pipeline.warehouse.schema import SCHEMA_VERSION
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent


def _cli(sim, db: Path, tmp_path: Path, *extra: str, preexec=None, timeout=180, **env):
    return subprocess.run(
        [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "1", "--db", str(db),
         "--api-url", sim.url, *extra],
        env=cli_env(tmp_path, **env), capture_output=True, text=True, timeout=timeout,
        preexec_fn=preexec,
    )


def _finish_exact(sim, db: Path, days: float = 1, source: str | None = None) -> None:
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        result = ensure_transaction_history(max_days=days, db_path=str(db), client=client,
                                            status_path=str(db.parent / "final.json"))
    assert result.complete, result.to_dict()
    if source is not None:
        assert result.source == source
    assert_exact(sim, db, int(result.target_time.timestamp()))
    assert_ledger_consistent(db)


def test_ten_percent_faults_under_a_tight_rate_limit(make_simulator, tmp_path, caplog, source):
    sim = make_simulator(seed=41, history_days=2, tx_per_day=3000, frozen=True,
                         fault_rate=0.10, stall_seconds=1.5, rate_limit_rpm=1500)
    db = tmp_path / "w.duckdb"
    # the client asks for more than the server allows: it must follow the server's headers
    client = HiroClient(sim.url, requests_per_minute=1800, read_timeout=0.5,
                        backoff_initial=0.05, backoff_max=0.5)
    with caplog.at_level(logging.WARNING, logger="stx_pipeline"), client:
        result = ensure_transaction_history(max_days=1, db_path=str(db), client=client,
                                            status_path=str(tmp_path / "s.json"))
    assert result.stop_reason is StopReason.TARGET_REACHED, result.to_dict()
    assert result.source == source
    assert_exact(sim, db, int(result.target_time.timestamp()))
    assert_ledger_consistent(db)
    injected = sim.stats["faults"]
    assert sum(injected.values()) >= 5
    assert len([k for k, n in injected.items() if n]) >= 3, injected
    # the retries are visible: in the result (run metadata) and in the logs
    assert result.retries >= sum(injected.values()) - 1
    assert sum(result.faults_by_kind.values()) >= result.retries
    retry_lines = [r for r in caplog.records if "retry" in r.getMessage().lower()]
    assert len(retry_lines) >= result.retries


def test_malformed_rows_are_kept_aside_with_reasons(make_simulator, tmp_path, source):
    sim = make_simulator(seed=42, history_days=2, tx_per_day=4000, frozen=True,
                         malformed_rate=0.02)
    db = tmp_path / "w.duckdb"
    with HiroClient(sim.url) as client:
        result = ensure_transaction_history(max_days=1, db_path=str(db), client=client,
                                            status_path=str(tmp_path / "s.json"))
    assert result.complete, result.to_dict()
    assert result.source == source
    target = int(result.target_time.timestamp())
    truth = [t for t in sim.ground_truth(start_time=target) if t["canonical"]]
    bad = {t["tx_id"]: sim.malformed_kind(t["tx_id"]) for t in truth}
    bad = {k: v for k, v in bad.items() if v}
    assert len(set(bad.values())) >= 4 and len(bad) >= 20
    con = duckdb.connect(str(db), read_only=True)
    loaded = {r[0] for r in con.execute(
        "SELECT tx_id FROM transactions WHERE burn_block_time >= to_timestamp(?)", [target]
    ).fetchall()}
    rejected = con.execute(
        "SELECT tx_id, reason, raw_json FROM rejected_rows"
        " WHERE burn_block_time >= to_timestamp(?) OR burn_block_time IS NULL", [target]
    ).fetchall()
    con.close()
    rejected_ids = {r[0] for r in rejected}
    assert rejected_ids == set(bad)  # every malformed row kept aside, nothing else
    assert loaded == {t["tx_id"] for t in truth} - set(bad)  # the rest of each page loaded
    for tx_id, reason, raw in rejected:
        assert reason and json.loads(raw)["tx_id"] == tx_id
    assert result.rows_rejected >= len(bad)
    assert check_backfill_progress(1, db)["rejected_rows"] == result.rows_rejected
    assert_ledger_consistent(db)  # sealed windows count rejected rows towards `total`


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_rolls_back_and_the_next_run_resumes(make_simulator, tmp_path, source):
    sim = make_simulator(seed=43, history_days=3, tx_per_day=8000, frozen=True)
    db = tmp_path / "w.duckdb"
    full = _cli(sim, db, tmp_path, "--days", "2", preexec=_limit_file_size(3 * 1024 * 1024),
                HIRO_SOURCE=source)
    assert full.returncode == 1, full.stderr[-800:]
    assert "Traceback" not in full.stderr
    errors = [ln for ln in full.stderr.splitlines() if ln.startswith("stx-pipeline")]
    assert len(errors) == 1, full.stderr[-800:]
    assert "cannot write to the database" in errors[0] and "run again" in errors[0]
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "error"
    # the file is consistent (every sealed window matches the table) and resumable
    assert_ledger_consistent(db)
    _finish_exact(sim, db, days=2, source=source)


def test_corrupted_file_gets_a_clear_message(simulator, tmp_path):
    db = tmp_path / "w.duckdb"
    db.write_bytes(os.urandom(64 * 1024))
    proc = _cli(simulator, db, tmp_path)
    assert proc.returncode == 1
    assert "not a DuckDB database file" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(db.read_bytes()) == 64 * 1024  # never silently overwritten


def test_foreign_duckdb_file_is_refused(simulator, tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO customers VALUES (1, 'ada')")
    con.close()
    proc = _cli(simulator, db, tmp_path)
    assert proc.returncode == 1
    assert "not stx_pipeline's (customers)" in proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT name FROM customers").fetchall() == [("ada",)]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables")
              .fetchall()}
    con.close()
    assert tables == {"customers"}


def test_newer_schema_version_is_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    open_db(db).close()
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO schema_version VALUES (99, now())")
    con.close()
    with pytest.raises(WarehouseError, match="schema version 99, newer"):
        open_db(db)


def test_version_1_file_is_migrated_forward(make_simulator, tmp_path):
    """The seed's cache layout (docs/architecture.md, "The seed algorithm"):
    no canonical flag, no fee payer, no ledger."""
    sim = make_simulator(seed=44, history_days=2, tx_per_day=2000, frozen=True)
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        """CREATE TABLE transactions (tx_id VARCHAR PRIMARY KEY, tx_type VARCHAR,
           tx_status VARCHAR, sender_address VARCHAR, fee_ustx BIGINT, nonce BIGINT,
           block_height BIGINT, block_hash VARCHAR, tx_index INTEGER,
           block_time TIMESTAMPTZ, burn_block_time TIMESTAMPTZ, burn_block_height BIGINT)"""
    )
    tx = sim.ground_truth()[-1]
    con.execute(
        "INSERT INTO transactions VALUES (?, ?, ?, ?, 1, 0, 1, '0x', 0, to_timestamp(?),"
        " to_timestamp(?), 1)",
        [tx["tx_id"], tx["tx_type"], tx["tx_status"], tx["sender_address"],
         tx["block_time"], tx["burn_block_time"]],
    )
    con.close()
    _finish_exact(sim, db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    row = con.execute("SELECT canonical, fee_payer, sender_address FROM transactions"
                      " WHERE tx_id = ?", [tx["tx_id"]]).fetchone()
    con.close()
    assert row[0] is True and row[1] == row[2]


def _wait_until_running(status_path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    """The first backfill holds the file once it reports progress from its writer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the first backfill ended before the second started"
        try:
            if json.loads(status_path.read_text()).get("status") == "running":
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first backfill never reported progress")


def test_two_backfills_at_once_never_both_write(make_simulator, tmp_path):
    # ~20k rows behind 30 ms latency and 2 workers: several seconds of holding the file
    sim = make_simulator(seed=45, history_days=2, tx_per_day=20000, frozen=True, latency_ms=30)
    db = tmp_path / "w.duckdb"
    status = tmp_path / "status.json"
    cmd = [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "1", "--db", str(db),
           "--api-url", sim.url, "--workers", "2"]
    # a short lock wait: the second run refuses with a one-line message naming the lock
    first = subprocess.Popen(cmd, env=cli_env(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    _wait_until_running(status, first)
    second = subprocess.run(cmd, env=cli_env(tmp_path, STX_PIPELINE_LOCK_TIMEOUT="0.5"),
                            capture_output=True, text=True, timeout=120)
    _out, err = first.communicate(timeout=180)
    assert first.returncode == 0, err[-500:]
    assert second.returncode == 1, second.stderr[-500:]
    assert "is locked by process" in second.stderr
    # a long lock wait: the second waits for the first, then has little left to do
    sim.advance(12 * 3600)
    status.unlink()
    a = subprocess.Popen(cmd, env=cli_env(tmp_path), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _wait_until_running(status, a)
    b = subprocess.run(cmd, env=cli_env(tmp_path, STX_PIPELINE_LOCK_TIMEOUT="120"),
                       capture_output=True, text=True, timeout=180)
    a.communicate(timeout=180)
    assert a.returncode == 0 and b.returncode == 0, b.stderr[-500:]
    _finish_exact(sim, db)


def test_version_2_file_loses_its_primary_key_index_and_keeps_rows(tmp_path):
    """Version 3 dropped the in-memory primary-key index; rows move over untouched."""
    from stx_pipeline.warehouse.schema import TRANSACTIONS_DDL

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    v2_ddl = "\n".join(line for line in TRANSACTIONS_DDL.splitlines()
                        if "index_block_hash" not in line)  # a version-4 column
    con.execute(v2_ddl.replace("tx_id              VARCHAR NOT NULL,",
                               "tx_id              VARCHAR PRIMARY KEY,"))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    con.execute("INSERT INTO schema_version VALUES (2, now())")
    con.execute(
        "INSERT INTO transactions VALUES ('0x01', 'coinbase', 'success', 'SP1', false, NULL,"
        " 'SP1', 0, 0, 1, '0xab', 0, now(), now(), 1, true, NULL, NULL, NULL, NULL, now())"
    )
    pk = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type ="
                     " 'PRIMARY KEY' AND table_name = 'transactions'").fetchone()[0]
    con.close()
    assert pk == 1
    open_db(db).close()
    con = duckdb.connect(str(db), read_only=True)
    pk = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type ="
                     " 'PRIMARY KEY' AND table_name = 'transactions'").fetchone()[0]
    rows = con.execute("SELECT tx_id, fee_payer FROM transactions").fetchall()
    version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    con.close()
    assert (pk, rows, version) == (0, [("0x01", "SP1")], SCHEMA_VERSION)


def test_version_3_file_gains_finality_and_keeps_its_ledger(tmp_path):
    """Version 4 added `index_block_hash` and the ledger's `final`: windows sealed long
    before the newest row become final, the recent ones provisional (re-verified)."""
    from stx_pipeline.warehouse.schema import COVERAGE_LEDGER_DDL, TRANSACTIONS_DDL

    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("\n".join(line for line in TRANSACTIONS_DDL.splitlines()
                          if "index_block_hash" not in line))
    con.execute(COVERAGE_LEDGER_DDL.replace(
        ",\n    final          BOOLEAN NOT NULL DEFAULT false,\n    verified_head  TIMESTAMPTZ",
        ""))
    assert "final" not in {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name ="
        " 'coverage_ledger'").fetchall()}
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
    con.execute("INSERT INTO schema_version VALUES (3, now())")
    con.execute(
        "INSERT INTO transactions VALUES ('0x01', 'coinbase', 'success', 'SP1', false, NULL,"
        " 'SP1', 0, 0, 1, '0xab', 0, to_timestamp(100000), to_timestamp(100000), 1, true,"
        " NULL, NULL, NULL, NULL, now())"
    )
    for start, end in ((0, 999), (90000, 99999)):
        con.execute(
            "INSERT INTO coverage_ledger (window_start, window_end, expected, loaded, status,"
            " fetched_at) VALUES (to_timestamp(?), to_timestamp(?), 0, 0, 'sealed', now())",
            [start, end])
    con.close()
    open_db(db).close()
    con = duckdb.connect(str(db), read_only=True)
    final = con.execute("SELECT epoch(window_start)::BIGINT, final FROM coverage_ledger"
                        " ORDER BY 1").fetchall()
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns"
                                      " WHERE table_name = 'transactions'").fetchall()}
    version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    con.close()
    assert final == [(0, True), (90000, False)]
    assert "index_block_hash" in cols and version == SCHEMA_VERSION


def test_dagster_opens_the_warehouse_with_the_schema_check(tmp_path):
    """The checks and metrics open the file through `WarehouseResource` -> `open_db`:
    a newer or foreign file fails the step in one line instead of being read or written."""
    import dagster as dg

    from stx_pipeline.defs.metrics.assets import wallet_metrics
    from stx_pipeline.defs.resources import HiroResource, WarehouseResource
    from stx_pipeline.defs.transactions.assets import transactions
    from stx_pipeline.defs.transactions.checks import transactions_checks

    newer = tmp_path / "newer.duckdb"
    open_db(newer).close()
    con = duckdb.connect(str(newer))
    con.execute("INSERT INTO schema_version VALUES (99, now())")
    con.close()
    foreign = tmp_path / "foreign.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.close()
    cases = [(transactions_checks, newer, "schema version 99, newer"),
             (wallet_metrics, newer, "schema version 99, newer"),
             (wallet_metrics, foreign, "not stx_pipeline's (customers)")]
    with dg.instance_for_test() as instance:
        for definition, db, needle in cases:
            checks_only = definition is transactions_checks
            result = dg.materialize(
                [transactions, definition] if checks_only else [definition],
                instance=instance, raise_on_error=False,
                resources={"duckdb": WarehouseResource(database=str(db)),
                           "hiro": HiroResource(base_url="http://127.0.0.1:9")},
                selection=dg.AssetSelection.all_asset_checks() if checks_only else None)
            assert not result.success, (definition, db)
            error = next(e for e in result.all_events if e.is_step_failure
                         ).step_failure_data.error
            cause = error.cause or error
            assert cause.cls_name == "WarehouseError" and needle in cause.message, cause.message
    con = duckdb.connect(str(foreign), read_only=True)
    assert {r[0] for r in con.execute("SHOW TABLES").fetchall()} == {"customers"}
    con.close()
