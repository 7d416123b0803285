"""`pipeline_meta`, the warehouse's key/value facts (genesis time, highest head, quota).

Written by UPDATE, then INSERT when no row had the key: DuckLake has no PRIMARY KEY, so
no ON CONFLICT / INSERT OR REPLACE, and this shape means the same on the embedded file.
The one writer (its lock or lease) is what keeps a key to one row.
"""

from __future__ import annotations

import duckdb


def put_meta(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    updated = con.execute(
        "UPDATE pipeline_meta SET value = ? WHERE key = ?", [value, key]
    ).fetchone()
    if not updated or not updated[0]:
        con.execute("INSERT INTO pipeline_meta VALUES (?, ?)", [key, value])


def get_meta(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM pipeline_meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None
