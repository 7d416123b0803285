"""Compaction of the DuckLake warehouse, for the schedule and `stx-pipeline warehouse compact`.

DuckLake writes at least one Parquet file per commit group (and a delete file per update),
so a backfill leaves thousands of small files that every query must open. Compaction
merges them and deletes what no snapshot needs. It rewrites files the writer may be
updating, so it takes the writer lease: it never races a backfill's commits (a busy
writer means "try at the next tick", not a wait of hours). The embedded DuckDB file needs
none of this: its checkpoints reuse its blocks.
"""

from __future__ import annotations

from stx_pipeline.warehouse import lake
from stx_pipeline.warehouse.db import current_warehouse, open_db, writer_lease

DEFAULT_KEEP_SNAPSHOTS_HOURS = 24.0


def compact_warehouse(
    *, keep_snapshots_hours: float = DEFAULT_KEEP_SNAPSHOTS_HOURS, lock_timeout: float = 5.0
) -> dict | None:
    """Files before/after and seconds; None on the embedded file (nothing to do).
    Raises WarehouseLocked when a writer holds the lease for `lock_timeout` s."""
    if not current_warehouse().is_lake:
        return None
    with writer_lease(lock_timeout):
        con = open_db()
        try:
            return lake.compact(con, keep_snapshots_hours=keep_snapshots_hours)
        finally:
            con.close()
