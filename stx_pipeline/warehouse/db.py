"""Opening the DuckDB file: paths, lock waits, schema creation and forward migration.

DuckDB allows one read-write process per file, and while it holds the file no other
process can open it at all. So opening waits a bounded time for a lock and then says
in one line which process holds it, instead of failing with DuckDB's long message.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from stx_pipeline import settings
from stx_pipeline.warehouse.schema import (
    ALL_DDL,
    SCHEMA_VERSION,
    TRANSACTION_COLUMNS,
    TRANSACTIONS_DDL,
)

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


def default_db_path() -> Path:
    """`$STX_PIPELINE_DB`, else `<project>/data/cache/wallet_metrics.duckdb` (settings.py)."""
    return settings.current().db_path


def resolve_db_path(db_path: str | os.PathLike[str] | None) -> Path:
    return Path(db_path) if db_path else default_db_path()


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
) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting up to `lock_timeout` seconds for another process's lock."""
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


def open_db(
    db_path: str | os.PathLike[str] | None = None,
    *,
    read_only: bool = False,
    lock_timeout: float | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Connect and make sure the file holds our schema at the current version."""
    limit = memory_limit_setting(memory_limit)
    con = connect(db_path, read_only=read_only, lock_timeout=lock_timeout)
    try:
        con.execute(f"SET memory_limit = '{limit}'")
        if read_only:
            version = schema_version_of(con)
            if version is not None and version > SCHEMA_VERSION:
                raise WarehouseError(_newer_message(resolve_db_path(db_path), version))
        else:
            ensure_schema(con, resolve_db_path(db_path))
    except BaseException:
        con.close()
        raise
    return con


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _newer_message(path: Path, version: int) -> str:
    return (
        f"{path} has schema version {version}, newer than this stx_pipeline"
        f" (version {SCHEMA_VERSION}); upgrade stx_pipeline or use another file"
    )


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
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
        " WHERE table_schema = 'main' AND table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def ensure_schema(con: duckdb.DuckDBPyConnection, path: Path | None = None) -> None:
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
        for ddl in ALL_DDL:
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
# algorithm"): transactions without the canonical
# flag, the fee payer and the ingestion time, and a ledger without offsets.
def _migrate(con: duckdb.DuckDBPyConnection, version: int) -> None:
    if version < 2:
        _migrate_to_2(con)
    if "index_block_hash" not in _columns(con, "transactions"):
        con.execute("ALTER TABLE transactions ADD COLUMN index_block_hash VARCHAR")
    if version < 3:
        _drop_transactions_primary_key(con)
    if version < 4:
        _migrate_to_4(con)


# What a version-3 file sealed before finality was tracked: final if it ended this long
# before the newest burn time the file holds (backfill/finality.py, the default horizon).
_V4_FINAL_BEFORE_SECONDS = 4 * 3600


def _migrate_to_4(con: duckdb.DuckDBPyConnection) -> None:
    """Version 4: `index_block_hash` on rows; `final` and `verified_head` on the ledger."""
    if "coverage_ledger" not in _tables(con):
        return
    lcols = _columns(con, "coverage_ledger")
    if "final" not in lcols:
        con.execute("ALTER TABLE coverage_ledger ADD COLUMN final BOOLEAN DEFAULT false")
    if "verified_head" not in lcols:
        con.execute("ALTER TABLE coverage_ledger ADD COLUMN verified_head TIMESTAMPTZ")
    con.execute(
        "UPDATE coverage_ledger SET final = coalesce(status = 'sealed' AND window_end <"
        " (SELECT max(burn_block_time) FROM transactions) - to_seconds(?), false)",
        [_V4_FINAL_BEFORE_SECONDS],
    )


def _drop_transactions_primary_key(con: duckdb.DuckDBPyConnection) -> None:
    """Version 3: the same table without the in-memory primary-key index (see schema.py)."""
    cols = ", ".join(TRANSACTION_COLUMNS)
    con.execute(TRANSACTIONS_DDL.replace("IF NOT EXISTS transactions", "transactions__v3", 1))
    con.execute(f"INSERT INTO transactions__v3 ({cols}) SELECT {cols} FROM transactions")
    con.execute("DROP TABLE transactions")
    con.execute("ALTER TABLE transactions__v3 RENAME TO transactions")


def _migrate_to_2(con: duckdb.DuckDBPyConnection) -> None:
    cols = _columns(con, "transactions")
    additions = {
        "sponsored": "BOOLEAN DEFAULT false",
        "sponsor_address": "VARCHAR",
        "fee_payer": "VARCHAR",
        "canonical": "BOOLEAN DEFAULT true",
        "contract_id": "VARCHAR",
        "function_name": "VARCHAR",
        "token_recipient": "VARCHAR",
        "token_amount_ustx": "BIGINT",
        "ingested_at": "TIMESTAMPTZ",
    }
    for name, decl in additions.items():
        if name not in cols:
            con.execute(f"ALTER TABLE transactions ADD COLUMN {name} {decl}")
    con.execute(
        "UPDATE transactions SET fee_payer = CASE WHEN sponsored AND sponsor_address"
        " IS NOT NULL THEN sponsor_address ELSE sender_address END WHERE fee_payer IS NULL"
    )
    con.execute("UPDATE transactions SET ingested_at = now() WHERE ingested_at IS NULL")
    if "coverage_ledger" in _tables(con):
        lcols = _columns(con, "coverage_ledger")
        for name, decl in {
            "rejected": "BIGINT DEFAULT 0",
            "next_offset": "BIGINT DEFAULT 0",
            "pages": "INTEGER DEFAULT 0",
        }.items():
            if name not in lcols:
                con.execute(f"ALTER TABLE coverage_ledger ADD COLUMN {name} {decl}")
