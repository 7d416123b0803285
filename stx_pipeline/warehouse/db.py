"""Opening the warehouse: paths, lock waits, schema creation and forward migration.

The one opener of both warehouses `STX_PIPELINE_WAREHOUSE` names (warehouse/setting.py):
the embedded DuckDB file, or a DuckLake shared by machines (warehouse/lake.py), attached
and `USE`d so that every query of the project runs unqualified on either.

DuckDB allows one read-write process per file, and while it holds the file no other
process can open it at all. So opening waits a bounded time for a lock and then says
in one line which process holds it, instead of failing with DuckDB's long message.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from stx_pipeline import settings
from stx_pipeline.warehouse import lake
from stx_pipeline.warehouse.schema import (
    BACKFILL_RUN_COLUMNS,
    BACKFILL_RUNS_DDL,
    COVERAGE_LEDGER_DDL,
    LEDGER_COLUMNS,
    SCHEMA_VERSION,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_DDL,
    schema_ddl,
)
from stx_pipeline.warehouse.setting import Warehouse, WarehouseSettingError, warehouse_from_env

OUR_TABLES = {
    "transactions",
    "coverage_ledger",
    "rejected_rows",
    "backfill_runs",
    "pipeline_meta",
    "schema_version",
}


class WarehouseError(Exception):
    """The DuckDB file cannot be used as it is; the message says what to do."""


class WarehouseLocked(WarehouseError):
    """Another process holds the DuckDB file."""


def current_warehouse() -> Warehouse:
    """`$STX_PIPELINE_WAREHOUSE`, parsed (settings.py; a malformed value is its one-line
    SettingError, like any other variable's)."""
    return warehouse_from_env()


def _lake(warehouse: Warehouse, *, read_only: bool,
          memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    try:
        return lake.attach(warehouse, read_only=read_only, memory_limit=memory_limit)
    except (lake.LakeError, WarehouseSettingError) as exc:
        raise WarehouseError(str(exc)) from None


@contextlib.contextmanager
def writer_lease(
    lock_timeout: float | None = None, warehouse: Warehouse | None = None
) -> Iterator[None]:
    """The one-writer rule for a whole run. The embedded file needs nothing here (its
    read-write lock is the rule); the lake holds a lease in its catalog (lake.py)."""
    warehouse = warehouse or current_warehouse()
    if not warehouse.is_lake:
        yield
        return
    if lock_timeout is None:
        lock_timeout = settings.current().lock_timeout_seconds
    try:
        lease = lake.acquire_lease(warehouse, lock_timeout)
    except lake.LeaseHeld as exc:
        raise WarehouseLocked(str(exc)) from None
    except lake.LakeError as exc:
        raise WarehouseError(str(exc)) from None
    try:
        yield
    finally:
        lease.release()


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`con.cursor()` on the same warehouse: a DuckDB cursor starts on the in-memory
    catalog, so on the lake it must `USE` it again."""
    cur = con.cursor()
    if current_warehouse().is_lake:
        cur.execute(f"USE {lake.LAKE}")
    return cur


def default_db_path() -> Path:
    """`$STX_PIPELINE_DB`, else `<project>/data/cache/wallet_metrics.duckdb` (settings.py)."""
    return settings.current().db_path


def resolve_db_path(db_path: str | os.PathLike[str] | None) -> Path:
    return Path(db_path) if db_path else default_db_path()


def warehouse_exists(db_path: str | os.PathLike[str] | None = None) -> bool:
    """Is there anything to read yet? The file must exist; a lake is a server's."""
    return current_warehouse().is_lake or resolve_db_path(db_path).exists()


def check_db_path_writable(path: Path) -> None:
    """Fail early, in one line, on a path that can never hold the database."""
    if path.is_dir():
        raise WarehouseError(
            f"database path {path} is a directory; point STX_PIPELINE_DB (or --db) at a file"
        )
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseError(
            f"cannot create the folder {parent} for the database ({exc.strerror});"
            " choose a writable path with STX_PIPELINE_DB or --db"
        ) from None
    if not os.access(parent, os.W_OK):
        raise WarehouseError(
            f"folder {parent} is not writable; choose a writable path with"
            " STX_PIPELINE_DB or --db"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise WarehouseError(f"database file {path} is not writable; fix its permissions")


_PID_RE = re.compile(r"PID (\d+)")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def connect(
    db_path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    lock_timeout: float | None = None,
    warehouse: Warehouse | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (`warehouse`, else the setting); the file waits up to
    `lock_timeout` s for another process's lock."""
    warehouse = warehouse or current_warehouse()
    if warehouse.is_lake:
        return _lake(warehouse, read_only=read_only)
    path = resolve_db_path(db_path)
    if lock_timeout is None:
        lock_timeout = settings.current().lock_timeout_seconds
    if read_only and not path.exists():
        raise WarehouseError(f"no database at {path} yet; run a backfill first")
    if not read_only:
        check_db_path_writable(path)
    deadline = time.monotonic() + lock_timeout
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if _is_lock_error(exc):
                if time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                match = _PID_RE.search(str(exc))
                holder = f"process {match.group(1)}" if match else "another process"
                raise WarehouseLocked(
                    f"database {path} is locked by {holder} (waited {lock_timeout:.0f}s);"
                    " wait for that backfill or Dagster run to finish, or stop it"
                ) from None
            if "Trying to read a database file with version number" in str(exc):
                raise WarehouseError(
                    f"{path} was written by a newer DuckDB (2.x) than this stx_pipeline's"
                    f" {duckdb.__version__}; convert it once as docs/operations.md"
                    " 'From a DuckDB 2.0 file' says, or point STX_PIPELINE_DB elsewhere"
                ) from None
            if "not a valid DuckDB database file" in str(exc) or "Magic" in str(exc):
                raise WarehouseError(
                    f"{path} is not a DuckDB database file (corrupted or foreign);"
                    " move it away or point STX_PIPELINE_DB at another path"
                ) from None
            raise WarehouseError(f"cannot open database {path}: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open database {path}: {_first_line(exc)}") from None


def memory_limit_setting(value: str | None = None) -> str:
    """DuckDB's memory cap: explicit, else $STX_PIPELINE_DUCKDB_MEMORY_LIMIT, else 3GB.

    DuckDB's own default is 80% of RAM; a cap keeps metrics over 10M rows under 4 GB of
    RSS (DuckDB spills to disk beyond it) and lets several processes share a machine.
    """
    if value:
        return str(settings.parse_value("STX_PIPELINE_DUCKDB_MEMORY_LIMIT", value))
    return settings.current().memory_limit


# DuckLake writes each commit group as Parquet through a buffer of ~77 MiB: the embedded
# writer's 64MB cap would make every insert fail with "could not allocate block".
LAKE_MIN_MEMORY = "512MB"
_UNITS = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


def _size_bytes(size: str) -> float:
    number, unit = re.match(r"^([\d.]+)\s*([A-Za-z]+)$", size.strip()).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit.lower()]


def _at_least(limit: str, floor: str) -> str:
    return limit if _size_bytes(limit) >= _size_bytes(floor) else floor


def open_db(
    db_path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    lock_timeout: float | None = None,
    memory_limit: str | None = None,
    warehouse: Warehouse | None = None,
) -> duckdb.DuckDBPyConnection:
    """Connect and make sure the warehouse holds our schema at the current version."""
    limit = memory_limit_setting(memory_limit)
    warehouse = warehouse or current_warehouse()
    if warehouse.is_lake:
        limit = _at_least(limit, LAKE_MIN_MEMORY)
        con = _lake(warehouse, read_only=read_only, memory_limit=limit)
        label: Path | str = warehouse.describe()
    else:
        con = connect(db_path, read_only=read_only, lock_timeout=lock_timeout,
                      warehouse=warehouse)
        label = resolve_db_path(db_path)
    try:
        con.execute(f"SET memory_limit = '{limit}'")
        if read_only:
            version = schema_version_of(con)
            if version is not None and version > SCHEMA_VERSION:
                raise WarehouseError(_newer_message(label, version))
        else:
            ensure_schema(con, label, lake=warehouse.is_lake)
    except BaseException:
        con.close()
        raise
    return con


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _newer_message(path: Path | str, version: int) -> str:
    return (
        f"{path} has schema version {version}, newer than this stx_pipeline"
        f" (version {SCHEMA_VERSION}); upgrade stx_pipeline or use another file"
    )


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        " AND table_catalog = current_database()"
    ).fetchall()
    return {r[0] for r in rows}


def schema_version_of(con: duckdb.DuckDBPyConnection) -> int | None:
    if "schema_version" not in _tables(con):
        return None
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'main' AND table_name = ? AND table_catalog = current_database()",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def ensure_schema(
    con: duckdb.DuckDBPyConnection, path: Path | str | None = None, *, lake: bool = False
) -> None:
    """Create a new file's tables, migrate a known older version, refuse anything else."""
    label = path or "the database"
    tables = _tables(con)
    version = schema_version_of(con)
    if version is None and tables and not tables <= OUR_TABLES:
        foreign = ", ".join(sorted(tables - OUR_TABLES)[:5])
        raise WarehouseError(
            f"{label} holds tables that are not stx_pipeline's ({foreign});"
            " point STX_PIPELINE_DB at a new file"
        )
    if version is None and "transactions" in tables:
        required = {"tx_id", "tx_type", "sender_address", "block_time", "burn_block_time"}
        if not required <= _columns(con, "transactions"):
            raise WarehouseError(
                f"{label} has a `transactions` table of an unknown layout;"
                " point STX_PIPELINE_DB at a new file"
            )
        version = 1  # a file from before the schema was versioned
    if version is not None and version > SCHEMA_VERSION:
        raise WarehouseError(_newer_message(Path(str(label)), version))
    con.execute("BEGIN TRANSACTION")
    try:
        if version is not None and version < SCHEMA_VERSION:
            _migrate(con, version)
        for ddl in schema_ddl(lake=lake):
            con.execute(ddl)
        if version != SCHEMA_VERSION:
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION, datetime.now(UTC)]
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


# Version 1 is the layout of the seed's cache (docs/architecture.md, "The seed
# algorithm"): transactions without the canonical flag, the fee payer and the ingestion
# time, and a ledger without offsets. Version 2 added those; version 3 dropped the
# primary key on tx_id (see schema.py); version 4 added `index_block_hash` on rows and
# `final` / `verified_head` on the ledger.
#
# Each table is rebuilt in the current layout (create, copy, drop, rename) rather than
# ALTERed column by column and then updated: DuckDB 1.5 refuses to commit a transaction
# that alters a table twice and then updates it ("Attempting to modify table ... but
# another transaction has altered this table"), and a migration must be one transaction.
def _migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    cols = _columns(con, "transactions")
    if version < 3 or not set(TRANSACTION_COLUMNS) - {"index_block_hash"} <= cols:
        missing, present = _transaction_fills(cols)
        _rebuild(con, "transactions", TRANSACTIONS_DDL, TRANSACTION_COLUMNS, missing, present)
    elif "index_block_hash" not in cols:  # one ALTER, no update after it: allowed
        con.execute("ALTER TABLE transactions ADD COLUMN index_block_hash VARCHAR")
    if "coverage_ledger" in _tables(con) and version < 5:
        _rebuild(con, "coverage_ledger", COVERAGE_LEDGER_DDL, LEDGER_COLUMNS,
                 _LEDGER_MISSING, {}, [_V4_FINAL_BEFORE_SECONDS])
    if "backfill_runs" in _tables(con) and version < 5:
        _rebuild(con, "backfill_runs", BACKFILL_RUNS_DDL, BACKFILL_RUN_COLUMNS, {}, {})


# What a version-3 file sealed before finality was tracked: final if it ended this long
# before the newest burn time the file holds (backfill/finality.py, the default horizon).
_V4_FINAL_BEFORE_SECONDS = 4 * 3600

# What a column missing from an older ledger becomes (`?` is _V4_FINAL_BEFORE_SECONDS).
_LEDGER_MISSING = {
    "expected": "NULL", "loaded": "0", "rejected": "0", "next_offset": "0", "attempts": "1",
    "pages": "0", "verified_head": "NULL", "cursor": "NULL",
    "source": "'v1'",  # version 5: every window of an older file was filled through v1
    "final": "coalesce(status = 'sealed' AND window_end <"
             " (SELECT max(burn_block_time) FROM transactions) - to_seconds(?), false)",
}


def _transaction_fills(cols: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """What a column missing from older transactions becomes (versions 1-3), and what a
    present one left empty by a half-done version-2 upgrade is filled with."""
    sponsored = "sponsored" if "sponsored" in cols else "false"
    sponsor = "sponsor_address" if "sponsor_address" in cols else "NULL"
    payer = (f"CASE WHEN {sponsored} AND {sponsor} IS NOT NULL THEN {sponsor}"
             " ELSE sender_address END")
    missing = {"sponsored": "false", "canonical": "true", "ingested_at": "now()",
               "fee_payer": payer}
    present = {"fee_payer": f"coalesce(fee_payer, {payer})",
               "ingested_at": "coalesce(ingested_at, now())"}
    return missing, present


def _rebuild(
    con: duckdb.DuckDBPyConnection, table: str, ddl: str, columns: tuple[str, ...],
    missing: dict[str, str], present: dict[str, str], params: list[object] | None = None,
) -> None:
    """`table` in its current layout: columns it has copied (or filled, `present`), columns
    it lacks computed (`missing`, else NULL)."""
    have = _columns(con, table)
    exprs = [
        f"{present.get(c, c)} AS {c}" if c in have else f"{missing.get(c, 'NULL')} AS {c}"
        for c in columns
    ]
    new = f"{table}__new"
    con.execute(ddl.replace(f"IF NOT EXISTS {table}", new, 1))
    uses_param = any("?" in e for e in exprs)
    con.execute(f"INSERT INTO {new} ({', '.join(columns)}) SELECT {', '.join(exprs)}"
                f" FROM {table}", (params or []) if uses_param else [])
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {new} RENAME TO {table}")
