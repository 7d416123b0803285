"""The multi-machine warehouse: DuckLake with a PostgreSQL catalog and Parquet on S3.

A connection is an in-memory DuckDB that attaches the lake as `lake` and `USE`s it, so
every query of the project stays unqualified and runs unchanged on the embedded file.
The extensions come from PyPI packages (`duckdb-extension-*`) and load by file path:
nothing is downloaded at run time.

The one-writer rule survives across machines as a lease: a PostgreSQL advisory lock in the
catalog database, held on its own session for the whole backfill run (`writer_lease`).
A second writer anywhere waits for it, then says in one line who holds it. A machine that
dies loses its session, and with it the lease (TCP keepalives bound how long that takes).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import duckdb

from stx_pipeline.warehouse.setting import Warehouse, redact, s3_settings

LAKE = "lake"
# 'stx_writ' as a bigint: the advisory-lock key of the writer lease.
LEASE_KEY = 0x7374785F77726974
_EXTENSIONS = (
    ("httpfs", "duckdb_extension_httpfs"),
    ("postgres_scanner", "duckdb_extension_postgres_scanner"),
    ("ducklake", "duckdb_extension_ducklake"),
)


class LakeError(Exception):
    """Base for the lake's one-line errors (re-raised as WarehouseError by db.py)."""


def extension_path(name: str, package: str) -> Path:
    mod = __import__(package)
    return (Path(mod.__file__).parent / "extensions" / f"v{duckdb.__version__}"
            / f"{name}.duckdb_extension")


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    for name, package in _EXTENSIONS:
        try:
            path = extension_path(name, package)
        except ImportError:
            raise LakeError(
                f"the DuckLake warehouse needs the {package} package; run `make setup`"
                " (or pip install stx_pipeline) in this environment"
            ) from None
        con.execute(f"LOAD {_sql_text(str(path))}")


def _create_s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    s3 = s3_settings()
    parts = [
        "TYPE s3", f"KEY_ID {_sql_text(s3.key_id)}", f"SECRET {_sql_text(s3.secret)}",
        f"REGION {_sql_text(s3.region)}", f"URL_STYLE {_sql_text(s3.url_style)}",
        f"USE_SSL {'true' if s3.use_ssl else 'false'}",
    ]
    if s3.session_token:
        parts.append(f"SESSION_TOKEN {_sql_text(s3.session_token)}")
    if s3.endpoint:
        parts.append(f"ENDPOINT {_sql_text(s3.endpoint)}")
    con.execute(f"CREATE OR REPLACE TEMPORARY SECRET stx_lake_s3 ({', '.join(parts)})")


def attach(
    warehouse: Warehouse, *, read_only: bool = False, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` and in use."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        if memory_limit:
            con.execute(f"SET memory_limit = {_sql_text(memory_limit)}")
        load_extensions(con)
        if warehouse.data_path.startswith("s3://"):
            _create_s3_secret(con)
        else:
            Path(warehouse.data_path).mkdir(parents=True, exist_ok=True)
        options = [f"DATA_PATH {_sql_text(warehouse.data_path)}"]
        if read_only:
            options.append("READ_ONLY")
        con.execute(f"ATTACH {_sql_text('ducklake:postgres:' + warehouse.catalog_dsn)}"
                    f" AS {LAKE} ({', '.join(options)})")
        con.execute(f"USE {LAKE}")
    except duckdb.Error as exc:
        con.close()
        raise LakeError(
            f"cannot open the DuckLake warehouse {warehouse.describe()}: {_first_line(exc)}"
        ) from None
    except BaseException:
        con.close()
        raise
    return con


def _first_line(exc: BaseException) -> str:
    text = redact(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


# -- the writer lease ------------------------------------------------------------------
class LeaseHeld(LakeError):
    """Another writer holds the lake's lease."""


def _holder(cur: object) -> str:
    cur.execute(  # type: ignore[attr-defined]
        "SELECT a.application_name, a.client_addr, a.backend_start FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
        " AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
        [LEASE_KEY >> 32, LEASE_KEY & 0xFFFFFFFF],
    )
    row = cur.fetchone()  # type: ignore[attr-defined]
    if row is None:
        return "another writer"
    name, addr, since = row
    return f"{name or 'a session'} from {addr or 'local socket'} since {since:%H:%M:%S %Z}"


class Lease:
    """The writer lease: a session-level advisory lock on its own catalog connection."""

    def __init__(self, connection: object) -> None:
        self._pg = connection

    def release(self) -> None:
        self._pg.close()  # type: ignore[attr-defined]  # the session ends: so does the lock


def acquire_lease(warehouse: Warehouse, timeout: float) -> Lease:
    """Take the lake's writer lease, waiting up to `timeout` s; LeaseHeld names the holder."""
    import psycopg2

    name = f"stx_pipeline writer {socket.gethostname()} pid {os.getpid()}"
    try:
        pg = psycopg2.connect(warehouse.catalog_dsn, application_name=name[:63],
                              keepalives=1, keepalives_idle=30, keepalives_interval=10,
                              keepalives_count=3)
    except psycopg2.Error as exc:
        raise LakeError(
            f"cannot reach the DuckLake catalog {redact(warehouse.catalog_dsn)}:"
            f" {_first_line(exc)}"
        ) from None
    pg.autocommit = True
    try:
        cur = pg.cursor()
        deadline = time.monotonic() + timeout
        delay = 0.1
        while True:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [LEASE_KEY])
            if cur.fetchone()[0]:
                return Lease(pg)
            if time.monotonic() >= deadline:
                raise LeaseHeld(
                    f"the DuckLake warehouse is being written by {_holder(cur)}"
                    f" (waited {timeout:.0f}s); one writer at a time: wait for that run"
                    " to finish, or stop it"
                )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    except BaseException:
        pg.close()
        raise


# -- compaction ------------------------------------------------------------------------
def data_files(con: duckdb.DuckDBPyConnection) -> int:
    """Live Parquet data files of every table in the lake."""
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = ?"
        " AND table_schema = 'main' AND table_type = 'BASE TABLE'", [LAKE]).fetchall()]
    total = 0
    for t in tables:
        total += con.execute(
            f"SELECT count(*) FROM ducklake_list_files('{LAKE}', {_sql_text(t)})"
        ).fetchone()[0]
    return int(total)


def compact(con: duckdb.DuckDBPyConnection, *, keep_snapshots_hours: float = 24.0) -> dict:
    """Merge small files, rewrite files with many deleted rows, expire old snapshots and
    delete files no snapshot needs any more. Safe while the writer commits (DuckLake's
    own transactions)."""
    started = time.perf_counter()
    before = data_files(con)
    con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
    con.execute(f"CALL ducklake_rewrite_data_files('{LAKE}')")
    con.execute(f"CALL ducklake_merge_adjacent_files('{LAKE}')")
    con.execute(
        f"CALL ducklake_expire_snapshots('{LAKE}', older_than => now() - INTERVAL"
        f" '{float(keep_snapshots_hours)} hours')"
    )
    con.execute(f"CALL ducklake_cleanup_old_files('{LAKE}', cleanup_all => true)")
    return {"files_before": before, "files_after": data_files(con),
            "seconds": round(time.perf_counter() - started, 3)}
