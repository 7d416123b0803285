"""The DuckDB file: schema, migrations, connections."""

from stx_pipeline.warehouse.db import (
    WarehouseError,
    WarehouseLocked,
    connect,
    default_db_path,
    open_db,
    resolve_db_path,
)

__all__ = [
    "WarehouseError",
    "WarehouseLocked",
    "connect",
    "default_db_path",
    "open_db",
    "resolve_db_path",
]
