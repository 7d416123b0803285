"""Readers never wait for the writer: SQL from other processes while a backfill runs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.warehouse import WarehouseError
from stx_pipeline.warehouse.readers import connect_readonly, snapshot_path
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact

COUNT_SQL = "SELECT count(*) AS n FROM transactions"


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stx_pipeline.cli", *args],
                          env=cli_env(cwd, **env), capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def _count_via_cli(db: Path, cwd: Path) -> int:
    proc = _cli("query", "--db", str(db), "--format", "json", COUNT_SQL, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return int(json.loads(proc.stdout)[0]["n"])


def _count_via_python(db: Path) -> int:
    con = connect_readonly(db)
    try:
        return int(con.execute(COUNT_SQL).fetchone()[0])
    finally:
        con.close()


def _count_via_pandas(db: Path) -> int:
    con = connect_readonly(db)
    try:
        return int(con.execute(COUNT_SQL).df()["n"].iloc[0])
    finally:
        con.close()


def _count_via_duckdb_cli(db: Path) -> int:
    """The DuckDB CLI (the `duckdb-cli` package, the same 1.5.5) on the read snapshot."""
    duckdb_cli = Path(sys.executable).with_name("duckdb")
    proc = subprocess.run([str(duckdb_cli), "-readonly", "-csv", "-noheader",
                           str(snapshot_path(db)), "-c", COUNT_SQL],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def test_counts_grow_while_a_backfill_writes_and_end_exact(make_simulator, tmp_path):
    sim = make_simulator(seed=31, history_days=3, tx_per_day=6000, frozen=True, latency_ms=150)
    db = tmp_path / "w.duckdb"
    env = cli_env(tmp_path, STX_PIPELINE_READ_SNAPSHOT_SECONDS="1")
    writer = subprocess.Popen(
        [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", "2", "--workers", "2",
         "--api-url", sim.url, "--db", str(db)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        cwd=tmp_path, text=True)
    reads: list[tuple[str, int]] = []
    try:
        deadline = time.monotonic() + 60
        while not snapshot_path(db).exists():  # published before the writer's first fetch
            assert writer.poll() is None, writer.stderr.read()
            assert time.monotonic() < deadline, "the writer published no read snapshot"
            time.sleep(0.1)
        while writer.poll() is None:
            reads.append(("python", _count_via_python(db)))
            reads.append(("pandas", _count_via_pandas(db)))
            reads.append(("cli", _count_via_cli(db, tmp_path)))
            reads.append(("duckdb cli", _count_via_duckdb_cli(db)))
            time.sleep(1.0)
        code = writer.wait(timeout=300)
        said = writer.stderr.read()
        assert code == 0, said
        # Every publish went through: an open cursor once made CHECKPOINT refuse most of them.
        assert "could not publish the read snapshot" not in said, said
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    counts = [n for _, n in reads]
    assert counts == sorted(counts), reads  # a reader never sees rows disappear
    with duckdb.connect(str(db), read_only=True) as con:
        final = con.execute(COUNT_SQL).fetchone()[0]
    # Reads happened during the run, and some saw a part of it.
    assert any(0 < n < final for n in counts), (reads, final)
    assert _count_via_python(db) == _count_via_pandas(db) == _count_via_cli(db, tmp_path) == final
    assert _count_via_duckdb_cli(db) == final
    assert_exact(sim, db, int(sim.now()) - 2 * 86400 + 3600)


def test_a_reader_refreshes_the_snapshot_when_no_writer_holds_the_file(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE transactions AS SELECT range AS i FROM range(5)")
    con.close()
    assert _count_via_python(db) == 5  # no snapshot yet: made from the idle file
    con = duckdb.connect(str(db))
    con.execute("INSERT INTO transactions SELECT range FROM range(3)")
    con.close()
    assert _count_via_python(db) == 8
    # While a writer holds the file, readers get the last snapshot, at once.
    holder = duckdb.connect(str(db))
    holder.execute("INSERT INTO transactions SELECT range FROM range(100)")
    try:
        assert _count_via_python(db) == 8
        assert _count_via_cli(db, tmp_path) == 8
    finally:
        holder.close()
    assert _count_via_python(db) == 108


def test_query_errors_are_one_line_and_writes_are_refused(tmp_path):
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE transactions AS SELECT range AS i FROM range(5)")
    con.close()
    for sql, needle in (("SELEC 1", "syntax"), ("DELETE FROM transactions", "read-only")):
        proc = _cli("query", "--db", str(db), sql, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("stx-pipeline")]
        assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
        assert needle in lines[0].lower(), lines[0]
    proc = _cli("query", "--db", str(db), "--format", "csv", "SELECT i FROM transactions"
                " ORDER BY i", cwd=tmp_path)
    assert proc.stdout.split() == ["i", "0", "1", "2", "3", "4"]
    proc = _cli("query", "--db", str(db), "SELECT count(*) AS n FROM transactions",
                cwd=tmp_path)
    assert proc.stdout.split() == ["n", "-", "5"]
    with pytest.raises(WarehouseError, match="no database"):
        connect_readonly(tmp_path / "absent.duckdb")


def test_publishing_keeps_the_writers_lock(tmp_path):
    """A copy made inside the writer's process would drop its POSIX lock on the file."""
    from stx_pipeline.warehouse.db import open_db
    from stx_pipeline.warehouse.readers import publish_snapshot

    db = tmp_path / "w.duckdb"
    con = open_db(db)
    try:
        publish_snapshot(con, db)
        probe = subprocess.run(
            [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1])", str(db)],
            capture_output=True, text=True, timeout=60)
        assert probe.returncode != 0 and "lock" in probe.stderr.lower(), probe.stderr
    finally:
        con.close()
    assert _count_via_python(db) == 0
