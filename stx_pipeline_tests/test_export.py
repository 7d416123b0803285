"""`stx-pipeline export`: Parquet by day and CSV, against a real backfilled file."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from stx_pipeline.backfill import ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.sim import SimConfig, Simulator
from stx_pipeline_tests.cli_env import cli_env


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, Path, date]]:
    """A simulator and a file backfilled from it; the first fully covered UTC day."""
    tmp = tmp_path_factory.mktemp("export")
    sim = Simulator(SimConfig(seed=21, history_days=4, tx_per_day=3000, frozen=True)).start()
    db = tmp / "w.duckdb"
    try:
        with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
            result = ensure_transaction_history(max_days=3, db_path=str(db), client=client,
                                                status_path=str(tmp / "status.json"))
        assert result.complete
        first_full_day = result.target_time.astimezone(UTC).date() + timedelta(days=1)
        yield sim, db, first_full_day
    finally:
        sim.stop()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stx_pipeline.cli", *args],
                          env=cli_env(cwd), capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def _table_counts(db: Path, since: date, until: date, canonical_only: bool = True) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute(
            "SELECT (block_time AT TIME ZONE 'UTC')::DATE d, count(*) FROM transactions"
            " WHERE d BETWEEN ? AND ? AND (canonical OR NOT ?) GROUP BY d",
            [since, until, canonical_only]).fetchall())
    finally:
        con.close()


def _parquet_counts(out: Path) -> dict:
    con = duckdb.connect()
    try:
        return {date.fromisoformat(str(d)): n for d, n in con.execute(
            "SELECT day, count(*) FROM read_parquet(?, hive_partitioning = true) GROUP BY day",
            [str(out / "**" / "*.parquet")]).fetchall()}
    finally:
        con.close()


def test_parquet_by_day_matches_the_table(loaded, tmp_path):
    _, db, first = loaded
    since, until = first - timedelta(days=1), first + timedelta(days=2)
    out = tmp_path / "pq"
    proc = _cli("export", "--db", str(db), "--since", since.isoformat(), "--until",
                until.isoformat(), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = _table_counts(db, since, until)
    assert len(table) >= 3 and sum(table.values()) > 1000
    assert _parquet_counts(out) == table
    assert sorted(p.name for p in out.iterdir()) == [f"day={d.isoformat()}" for d in
                                                      sorted(table)]
    # Run again over a narrower span: the old export is replaced, not mixed in.
    proc = _cli("export", "--db", str(db), "--since", first.isoformat(), "--until",
                first.isoformat(), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _parquet_counts(out) == {first: table[first]}


def test_orphaned_rows_only_when_asked(loaded, tmp_path):
    _, db, first = loaded
    work = tmp_path / "w.duckdb"
    work.write_bytes(db.read_bytes())
    con = duckdb.connect(str(work))
    orphan = con.execute(
        "SELECT tx_id FROM transactions WHERE (block_time AT TIME ZONE 'UTC')::DATE = ?"
        " LIMIT 1", [first]).fetchone()[0]
    con.execute("UPDATE transactions SET canonical = false WHERE tx_id = ?", [orphan])
    con.close()
    args = ("--db", str(work), "--since", first.isoformat(), "--until", first.isoformat(),
            "--format", "csv")
    assert _cli("export", *args, "--out", str(tmp_path / "c.csv"), cwd=tmp_path).returncode == 0
    assert _cli("export", *args, "--out", str(tmp_path / "o.csv"), "--include-orphaned",
                cwd=tmp_path).returncode == 0
    with (tmp_path / "c.csv").open() as f:
        canonical = {r["tx_id"] for r in csv.DictReader(f)}
    with (tmp_path / "o.csv").open() as f:
        everything = {r["tx_id"] for r in csv.DictReader(f)}
    assert orphan not in canonical and everything == canonical | {orphan}
    assert len(canonical) == _table_counts(work, first, first)[first]


def test_address_returns_exactly_that_principals_transactions(loaded, tmp_path):
    sim, db, first = loaded
    since, until = first, first + timedelta(days=1)
    lo = int(datetime.combine(since, datetime.min.time(), UTC).timestamp())
    hi = int(datetime.combine(until + timedelta(days=1), datetime.min.time(), UTC).timestamp())
    truth = [t for t in sim.ground_truth(include_orphaned=False)
             if lo <= t["block_time"] < hi]
    roles: dict[str, Counter] = {}
    for t in truth:
        for role in ("sender_address", "sponsor_address", "token_recipient"):
            if t[role]:
                roles.setdefault(t[role], Counter())[role] += 1
    # The busiest principal that appears in all three roles (else in the most roles).
    address = max(roles, key=lambda a: (len(roles[a]), sum(roles[a].values())))
    assert len(roles[address]) >= 2, roles[address]
    expected = {t["tx_id"] for t in truth
                if address in (t["sender_address"], t["sponsor_address"], t["token_recipient"])}
    out = tmp_path / "a.csv"
    proc = _cli("export", "--db", str(db), "--since", since.isoformat(), "--until",
                until.isoformat(), "--address", address, "--format", "csv", "--out", str(out),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with out.open() as f:
        got = [r["tx_id"] for r in csv.DictReader(f)]
    assert len(got) == len(set(got)) and set(got) == expected


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "2026-13-01", "--until", "2026-01-02"], "is not a date"),
        (["--since", "yesterday", "--until", "2026-01-02"], "is not a date"),
        (["--since", "2026-01-03", "--until", "2026-01-02"], "is after --until"),
        (["--since", "2026-01-01", "--until", "2026-01-02", "--format", "xlsx"],
         "invalid choice"),
        (["--since", "2026-01-01", "--until", "2026-01-02", "--address", "bob"],
         "not a Stacks principal"),
        (["--until", "2026-01-02"], "required"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, needle, loaded, tmp_path):
    _, db, _ = loaded
    proc = _cli("export", "--db", str(db), *args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("stx-pipeline")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_the_core_refuses_to_delete_a_foreign_folder(loaded, tmp_path):
    from stx_pipeline.warehouse.export import ExportError, export_transactions

    _, db, first = loaded
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    con = duckdb.connect(str(db), read_only=True)
    try:
        with pytest.raises(ExportError, match="not an export"):
            export_transactions(con, fmt="parquet", since=first, until=first,
                                out=tmp_path / "mine")
    finally:
        con.close()
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_dagster_asset_exports_the_whole_history_by_day(loaded, tmp_path, monkeypatch):
    import dagster as dg

    from stx_pipeline.defs.exports.assets import transactions_parquet
    from stx_pipeline.defs.resources import WarehouseResource

    _, db, _ = loaded
    out = tmp_path / "asset_export"
    monkeypatch.setenv("STX_PIPELINE_EXPORT_DIR", str(out))
    with dg.instance_for_test() as instance:
        result = dg.materialize([transactions_parquet], instance=instance,
                                resources={"duckdb": WarehouseResource(database=str(db))})
    assert result.success
    table = _table_counts(db, date(1970, 1, 1), date(2999, 1, 1))
    assert _parquet_counts(out) == table
    [mat] = [e.step_materialization_data.materialization
             for e in result.get_asset_materialization_events()]
    assert mat.metadata["dagster/row_count"].value == sum(table.values())
