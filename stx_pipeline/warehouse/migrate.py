"""Moving a warehouse without refetching: a `.duckdb` file, or a DuckDB 2.x export, into
the DuckLake (or into a new embedded file).

The history is the six tables of `db.OUR_TABLES`; the `metrics_*` tables are derived and
are rebuilt after (`stx-pipeline metrics`). A DuckDB 2.x file cannot be opened by DuckDB
1.5, so its owner exports it once with 2.x (`deploy/export-duckdb2.sh`: `EXPORT DATABASE
... (FORMAT parquet)`) and migrates from that folder; docs/operations.md has the commands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from stx_pipeline.warehouse.db import (
    OUR_TABLES,
    WarehouseError,
    _columns,
    _first_line,
    open_db,
    schema_version_of,
    writer_lease,
)
from stx_pipeline.warehouse.schema import SCHEMA_VERSION
from stx_pipeline.warehouse.setting import Warehouse

# Parents before children does not matter (no foreign keys); the big table goes first so
# that a failure shows early.
COPY_ORDER = ("transactions", "coverage_ledger", "rejected_rows", "backfill_runs",
              "pipeline_meta", "schema_version")
assert set(COPY_ORDER) == OUR_TABLES


@dataclass
class MigrationResult:
    source: str
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        parts = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
        return f"migrated {self.source} -> {self.target} in {self.seconds:.1f}s: {parts}"


def _quoted(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _source_relations(con: duckdb.DuckDBPyConnection, source: Path) -> dict[str, str]:
    """table -> a SQL relation to read it from: the attached file, or the export's Parquet."""
    if source.is_dir():
        found = {}
        for table in COPY_ORDER:
            path = source / f"{table}.parquet"
            if not path.exists():
                raise WarehouseError(
                    f"{source} has no {table}.parquet; export the whole file with"
                    " deploy/export-duckdb2.sh (EXPORT DATABASE ... (FORMAT parquet))"
                )
            found[table] = f"read_parquet({_quoted(path)})"
        version = con.execute(
            f"SELECT max(version) FROM {found['schema_version']}").fetchone()[0]
    else:
        if not source.exists():
            raise WarehouseError(f"no database at {source}; give a .duckdb file or an export")
        try:
            con.execute(f"ATTACH {_quoted(source)} AS src (READ_ONLY)")
        except duckdb.Error as exc:
            text = _first_line(exc)
            hint = ("; it was written by DuckDB 2.x: export it first with"
                    " deploy/export-duckdb2.sh") if "version number" in text else ""
            raise WarehouseError(f"cannot read {source}: {text}{hint}") from None
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'src'"
        ).fetchall()}
        missing = OUR_TABLES - tables
        if missing:
            raise WarehouseError(
                f"{source} is not an stx_pipeline warehouse (no {', '.join(sorted(missing))})"
            )
        found = {t: f"src.main.{t}" for t in COPY_ORDER}
        version = con.execute("SELECT max(version) FROM src.main.schema_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        raise WarehouseError(
            f"{source} has schema version {version}, this stx_pipeline {SCHEMA_VERSION};"
            " open it once with the stx_pipeline that wrote it upgraded (any command"
            " migrates it), then migrate"
        )
    return found


def migrate(source: str | Path, target: Warehouse, db_path: str | Path | None = None
            ) -> MigrationResult:
    """Copy the history into `target` (empty), in one transaction, under the writer lease."""
    source = Path(source)
    started = time.perf_counter()
    result = MigrationResult(str(source), target.describe() if target.is_lake else
                             str(db_path))
    if not target.is_lake and db_path is not None and Path(db_path).resolve() == \
            source.resolve():
        raise WarehouseError("the source and the target are the same file")
    with writer_lease(warehouse=target):
        con = open_db(db_path, warehouse=target, memory_limit="2GB")
        try:
            if schema_version_of(con) is None or con.execute(
                    "SELECT count(*) FROM transactions").fetchone()[0]:
                raise WarehouseError(
                    f"{result.target} already holds transactions; migrate into an empty"
                    " warehouse"
                )
            relations = _source_relations(con, source)
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute("DELETE FROM schema_version")  # the source's history of versions
                for table in COPY_ORDER:
                    cols = ", ".join(sorted(_columns(con, table)))
                    con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols}"
                                f" FROM {relations[table]}")
                    result.rows[table] = con.execute(
                        f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in COPY_ORDER:
                    expected = con.execute(
                        f"SELECT count(*) FROM {relations[table]}").fetchone()[0]
                    if expected != result.rows[table]:
                        raise WarehouseError(
                            f"{table}: {result.rows[table]} rows copied, {expected} in the"
                            " source; nothing was migrated"
                        )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            raise WarehouseError(f"migration failed, nothing was written: {_first_line(exc)}"
                                 ) from None
        finally:
            con.close()
    result.seconds = round(time.perf_counter() - started, 2)
    return result
