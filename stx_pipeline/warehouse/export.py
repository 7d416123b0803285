"""Exports of `transactions`: Parquet partitioned by UTC day (hive style) or one CSV file.

A day is the UTC date of `block_time`, the same day the metrics count in. Canonical rows
only unless orphaned ones are asked for. An address selects every transaction that
principal touched: as sender, as sponsor, or as token recipient.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from stx_pipeline import settings
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

FORMATS = ("parquet", "csv")
# A standard principal (S + version + c32 hash, 40-41 chars) with an optional contract name.
_PRINCIPAL_RE = re.compile(r"^S[0-9A-Z]{38,41}(\.[A-Za-z][A-Za-z0-9_-]{0,127})?$")
_DAY_DIR_RE = re.compile(r"^day=\d{4}-\d{2}-\d{2}$")


class ExportError(ValueError):
    """Bad export arguments; the message says what to fix."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    fmt: str
    rows: int
    rows_per_day: dict[date, int]


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{flag} {text!r} is not a date like 2026-01-31") from None


def check_address(address: str) -> str:
    if not _PRINCIPAL_RE.match(address):
        raise ExportError(
            f"--address {address!r} is not a Stacks principal (SP…, ST…, or SP….contract-name)"
        )
    return address


def default_out(fmt: str, since: date, until: date, address: str | None = None) -> Path:
    name = f"transactions_{since.isoformat()}_{until.isoformat()}"
    if address:
        name += f"_{address.replace('.', '_')}"
    return settings.current().export_dir / (name + (".csv" if fmt == "csv" else ""))


def selection_sql(include_orphaned: bool, address: str | None) -> str:
    """The exported rows, with their `day`; parameters: since, until[, address x3]."""
    cols = ", ".join(TRANSACTION_COLUMNS)
    where = ["(block_time AT TIME ZONE 'UTC')::DATE BETWEEN ? AND ?"]
    if not include_orphaned:
        where.append("canonical")
    if address:
        where.append("(sender_address = ? OR sponsor_address = ? OR token_recipient = ?)")
    return (
        f"SELECT {cols}, (block_time AT TIME ZONE 'UTC')::DATE AS day FROM transactions"
        f" WHERE {' AND '.join(where)}"
    )


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    """First and last UTC day holding a canonical row, or None for an empty table."""
    row = con.execute(
        "SELECT min((block_time AT TIME ZONE 'UTC')::DATE),"
        " max((block_time AT TIME ZONE 'UTC')::DATE) FROM transactions WHERE canonical"
    ).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def _params(since: date, until: date, address: str | None) -> list[object]:
    return [since, until, *([address] * 3 if address else [])]


def _prepare_parquet_dir(out: Path) -> None:
    """Replace a previous export in place; refuse to delete anything that is not one."""
    if out.is_file():
        raise ExportError(f"--out {out} is a file; a Parquet export is a folder of day=… folders")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if not _DAY_DIR_RE.match(p.name)]
        if foreign:
            raise ExportError(
                f"--out {out} holds files that are not an export ({', '.join(foreign[:3])});"
                " choose an empty or new folder"
            )
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)


def export_transactions(
    con: duckdb.DuckDBPyConnection,
    *,
    fmt: str,
    since: date,
    until: date,
    out: Path | None = None,
    address: str | None = None,
    include_orphaned: bool = False,
) -> ExportResult:
    """Write the selected rows; the counts per day are read from the same selection."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if since > until:
        raise ExportError(f"--since {since} is after --until {until}")
    if address:
        check_address(address)
    out = Path(out) if out else default_out(fmt, since, until, address)
    sql = selection_sql(include_orphaned, address)
    params = _params(since, until, address)
    con.execute("BEGIN TRANSACTION")  # one snapshot for the file and its counts
    try:
        counts = dict(
            con.execute(
                f"SELECT day, count(*) FROM ({sql}) GROUP BY day ORDER BY day", params
            ).fetchall()
        )
        if fmt == "parquet":
            _prepare_parquet_dir(out)
            if counts:
                con.execute(
                    f"COPY ({sql} ORDER BY day, block_height, tx_index) TO '{_quoted(out)}'"
                    " (FORMAT parquet, PARTITION_BY (day), COMPRESSION zstd)",
                    params,
                )
            else:
                out.mkdir(parents=True, exist_ok=True)
        else:
            if out.is_dir():
                raise ExportError(f"--out {out} is a folder; a CSV export is one file")
            out.parent.mkdir(parents=True, exist_ok=True)
            cols = ", ".join(TRANSACTION_COLUMNS)
            con.execute(
                f"COPY (SELECT {cols} FROM ({sql}) ORDER BY day, block_height, tx_index)"
                f" TO '{_quoted(out)}' (FORMAT csv, HEADER)",
                params,
            )
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return ExportResult(out, fmt, sum(counts.values()), counts)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
