"""The DuckDB file: schema, migrations, connections, and readers that never wait."""

from stx_pipeline.warehouse.db import (
    WarehouseError,
    WarehouseLocked,
    connect,
    default_db_path,
    open_db,
    resolve_db_path,
)
from stx_pipeline.warehouse.readers import connect_readonly, snapshot_path

__all__ = [
    "WarehouseError",
    "WarehouseLocked",
    "connect",
    "connect_readonly",
    "default_db_path",
    "open_db",
    "resolve_db_path",
    "snapshot_path",
]
