"""The multi-machine warehouse for real on one box: DuckLake with its catalog on the local
PostgreSQL server and its Parquet files on an S3-compatible server (moto), reached the way
a second machine would reach them (TCP on loopback, the standard AWS variables).

Two writer processes with their own working directories share one catalog: the lease in
the catalog lets one write at a time, a reader in a third process never waits, and the
history ends exact. A `.duckdb` file moves into the lake without a refetch, and
compaction merges the small files without losing a row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from stx_pipeline.sim import Simulator
from stx_pipeline.warehouse.db import connect
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent
from stx_pipeline_tests.lake_services import lake_environment, s3_object_count

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COUNT_SQL = "SELECT count(*) AS n FROM transactions"


@pytest.fixture
def lake_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh lake, also set in this process's environment (for the in-process reads)."""
    with lake_environment() as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env


def _cli(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stx_pipeline.cli", *args], cwd=cwd,
                          env=cli_env(cwd, **env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def _writer(sim: Simulator, workdir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    workdir.mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "2", "--workers",
         "2", "--api-url", sim.url, "--db", str(workdir / "w.duckdb")],
        cwd=workdir, env=cli_env(workdir, STX_PIPELINE_LOCK_TIMEOUT="300", **env),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lake_rows(sql: str, params: list | None = None) -> list[tuple]:
    con = connect(read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _transaction_files() -> int:
    return _lake_rows("SELECT count(*) FROM ducklake_list_files('lake', 'transactions')")[0][0]


def _count_via_duckdb_cli(env: dict[str, str]) -> int:
    """The DuckDB CLI (`duckdb-cli`, the same 1.5.5) as docs/operations.md has it: load the
    three extensions by path, an S3 secret, attach the lake read-only."""
    from stx_pipeline.warehouse.lake import _EXTENSIONS, extension_path

    endpoint = env["AWS_ENDPOINT_URL_S3"].removeprefix("http://")
    dsn = env["STX_PIPELINE_WAREHOUSE"].removeprefix("ducklake:postgres:").split(" data_path=")
    sql = "".join(f"LOAD '{extension_path(n, p)}';" for n, p in _EXTENSIONS) + (
        f"CREATE SECRET (TYPE s3, KEY_ID '{env['AWS_ACCESS_KEY_ID']}',"
        f" SECRET '{env['AWS_SECRET_ACCESS_KEY']}', ENDPOINT '{endpoint}', URL_STYLE 'path',"
        f" USE_SSL false, REGION 'us-east-1');"
        f"ATTACH 'ducklake:postgres:{dsn[0]}' AS lake (READ_ONLY);"
        f"SELECT count(*) FROM lake.transactions;")
    proc = subprocess.run([str(Path(sys.executable).with_name("duckdb")), "-csv", "-noheader",
                           "-c", sql], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PGPASSWORD": env["PGPASSWORD"]})
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


def _target(sim: Simulator) -> int:
    return int(sim.now()) - 2 * 86400 + 3600  # inside the 2-day target, past its margin


def test_two_writers_on_one_catalog_take_turns_a_reader_never_waits_and_it_ends_exact(
    make_simulator: Callable[..., Simulator], tmp_path: Path, lake_env: dict[str, str]
) -> None:
    sim = make_simulator(seed=41, history_days=3, tx_per_day=6000, frozen=True,
                         latency_ms=100)
    writers = [_writer(sim, tmp_path / "machine_a", lake_env),
               _writer(sim, tmp_path / "machine_b", lake_env)]
    reader_dir = tmp_path / "analyst"
    reader_dir.mkdir()
    reads: list[int] = []
    refused: subprocess.CompletedProcess[str] | None = None
    try:
        deadline = time.monotonic() + 400
        while any(w.poll() is None for w in writers):
            assert time.monotonic() < deadline, "the writers did not finish"
            proc = _cli(["query", "--format", "json", COUNT_SQL], reader_dir, lake_env)
            if proc.returncode == 0:
                reads.append(int(json.loads(proc.stdout)[0]["n"]))
            else:  # before the first writer created the tables: nothing to count yet
                assert "does not exist" in proc.stderr, proc.stderr
            if refused is None and reads and reads[-1] > 0:
                # A third writer that will not wait: refused in one line naming the holder.
                third = tmp_path / "machine_c"
                third.mkdir()
                refused = _cli(["backfill", "--days", "2", "--api-url", sim.url, "--db",
                                str(third / "w.duckdb")], third,
                               {**lake_env, "STX_PIPELINE_LOCK_TIMEOUT": "0.5"})
            time.sleep(1.0)
        for w in writers:
            assert w.wait(timeout=60) == 0, w.stderr.read()
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
                w.wait()

    assert refused is not None, "no read saw rows while a writer ran"
    assert refused.returncode != 0
    message = refused.stderr.strip().splitlines()
    assert len(message) == 1 and "being written by stx_pipeline writer" in message[0], message
    assert "one writer at a time" in message[0]
    assert lake_env["PGPASSWORD"] not in refused.stderr

    assert reads == sorted(reads), reads  # a reader never sees rows disappear
    final = _lake_rows(COUNT_SQL)[0][0]
    assert any(0 < n < final for n in reads), (reads, final)  # reads during the writes
    assert _count_via_duckdb_cli(lake_env) == final

    # One writer at a time: the two runs did not overlap, and the second found every
    # window sealed by the first (frozen chain) and wrote no row again.
    runs = _lake_rows("SELECT started_at, finished_at, rows_inserted, stop_reason"
                      " FROM backfill_runs ORDER BY started_at")
    assert len(runs) == 2, runs
    (_, end_1, inserted_1, reason_1), (start_2, _, inserted_2, reason_2) = runs
    assert isinstance(end_1, datetime) and end_1 <= start_2, runs
    assert reason_1 == reason_2 == "target_reached", runs
    assert inserted_1 == final and inserted_2 == 0, runs
    assert_exact(sim, None, _target(sim))
    assert_ledger_consistent(None)
    assert s3_object_count(lake_env["AWS_ENDPOINT_URL_S3"], "stx/") > 0  # data is on S3

    # Compaction: the small files of two runs' commits become few; every row stays.
    files_before = _transaction_files()
    compacted = _cli(["warehouse", "compact", "--keep-hours", "0"], reader_dir, lake_env)
    assert compacted.returncode == 0, compacted.stderr
    assert _transaction_files() < files_before, (files_before, compacted.stdout)
    assert_exact(sim, None, _target(sim))


def test_a_duckdb_file_moves_into_the_lake_without_refetching(
    make_simulator: Callable[..., Simulator], tmp_path: Path, lake_env: dict[str, str]
) -> None:
    sim = make_simulator(seed=43, history_days=3, tx_per_day=3000, frozen=True)
    file_dir = tmp_path / "laptop"
    file_dir.mkdir()
    db = file_dir / "wallet_metrics.duckdb"
    done = _cli(["backfill", "--days", "2", "--api-url", sim.url, "--db", str(db)],
                file_dir, {})  # the embedded default: no STX_PIPELINE_WAREHOUSE
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        file_rows = con.execute(COUNT_SQL).fetchone()[0]
        file_ledger = con.execute("SELECT count(*) FROM coverage_ledger").fetchone()[0]

    lake_dir = tmp_path / "server"
    lake_dir.mkdir()
    moved = _cli(["warehouse", "migrate", "--from", str(db)], lake_dir, lake_env)
    assert moved.returncode == 0, moved.stderr
    assert f"transactions {file_rows:,}" in moved.stdout
    assert _lake_rows(COUNT_SQL)[0][0] == file_rows
    assert _lake_rows("SELECT count(*) FROM coverage_ledger")[0][0] == file_ledger
    again = _cli(["warehouse", "migrate", "--from", str(db)], lake_dir, lake_env)
    assert again.returncode != 0 and "already holds transactions" in again.stderr

    # The next run on the lake refetches nothing: a few probes, no row inserted.
    after = _cli(["backfill", "--days", "2", "--api-url", sim.url], lake_dir, lake_env)
    assert after.returncode == 0, after.stderr
    runs = _lake_rows("SELECT requests, rows_inserted FROM backfill_runs"
                      " ORDER BY started_at DESC LIMIT 1")
    requests, inserted = runs[0]
    assert inserted == 0 and requests <= 20, runs
    assert_exact(sim, None, _target(sim))

    # A folder of Parquet files as DuckDB's EXPORT DATABASE writes it (the way out of a
    # DuckDB 2.x file, deploy/export-duckdb2.sh) becomes a new embedded file.
    export = tmp_path / "export"
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(f"EXPORT DATABASE '{export}' (FORMAT parquet)")
    new_db = tmp_path / "converted.duckdb"
    converted = _cli(["warehouse", "migrate", "--from", str(export), "--to", "duckdb",
                      "--db", str(new_db)], file_dir, {})
    assert converted.returncode == 0, converted.stderr
    with duckdb.connect(str(new_db), read_only=True) as con:
        assert con.execute(COUNT_SQL).fetchone()[0] == file_rows


def test_the_dagster_graph_and_the_compaction_job_run_on_the_lake(
    make_simulator: Callable[..., Simulator], tmp_path: Path, lake_env: dict[str, str],
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stx_pipeline.defs.metrics.assets import wallet_metrics
    from stx_pipeline.defs.resources import HiroResource, WarehouseResource
    from stx_pipeline.defs.transactions import checks
    from stx_pipeline.defs.transactions.assets import TransactionsConfig, transactions
    from stx_pipeline.defs.warehouse.compaction import warehouse_compaction_job

    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    sim = make_simulator(seed=47, history_days=3, tx_per_day=2000, frozen=True)
    resources = {"hiro": HiroResource(base_url=sim.url, max_attempts=2),
                 "duckdb": WarehouseResource(database=str(tmp_path / "unused.duckdb"))}
    result = dg.materialize(
        [transactions, wallet_metrics, checks.transactions_checks], instance=instance,
        resources=resources,
        run_config=dg.RunConfig(ops={"transactions": TransactionsConfig(target_days=2)}))
    assert result.success
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    assert not failed, failed
    assert not (tmp_path / "unused.duckdb").exists()  # everything went to the lake
    assert _lake_rows("SELECT count(*) FROM metrics_daily_activity")[0][0] > 0
    assert_exact(sim, None, _target(sim))

    files_before = _transaction_files()
    job = warehouse_compaction_job.execute_in_process(instance=instance)
    assert job.success
    out = job.output_for_node("compact_lake")
    assert out["files_after"] < out["files_before"], out  # every table's live files
    assert _transaction_files() < files_before, (files_before, out)
    assert_exact(sim, None, _target(sim))
