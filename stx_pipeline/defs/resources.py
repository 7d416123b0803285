"""Resources shared by every domain (the Hiro API client factory, the warehouse) and the
default executor of every job, including the one behind the Materialize button."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from stx_pipeline import settings as core_settings
from stx_pipeline.defs import settings
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.factory import client_from_env
from stx_pipeline.warehouse.db import current_warehouse, open_db, warehouse_exists

DEFAULT_HIRO_URL = core_settings.DEFAULT_HIRO_URL


class HiroResource(dg.ConfigurableResource):
    """Builds a `HiroClient` per run with the CLI's factory; unset fields come from HIRO_*."""

    base_url: str | None = None
    api_key: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    requests_per_minute: int | None = None
    max_attempts: int | None = None
    # the transaction list: auto (v3 where served, else v1), v3 or v1; None: $HIRO_SOURCE
    source: str | None = None

    def resolved_base_url(self) -> str:
        """Explicit config, else `$HIRO_API_URL`, else the public Hiro API."""
        return self.base_url or core_settings.current().hiro_api_url

    def get_client(self) -> HiroClient:
        """The same client the CLI builds (hiro/factory.py); unset fields: the environment."""
        return client_from_env(
            base_url=self.base_url,
            api_key=self.api_key or None,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            requests_per_minute=self.requests_per_minute,
            max_attempts=self.max_attempts,
        )


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's `DuckDBResource`, whose connections come from `warehouse/db.py`
    like the CLI's.

    Its own `get_connection` opened the file with a lock-retry policy of its own and no
    schema check, so a check could read a file of a newer schema, or a metrics run create
    tables in a foreign file. Here every connection waits for a lock the bounded time the
    core does (`STX_PIPELINE_LOCK_TIMEOUT`), names the holder in one line, refuses foreign
    or newer files, migrates older ones and attaches the lake when one is configured
    (`open_db`); `connection_config` is not used.
    """

    database: str
    memory_limit: str | None = None  # None: `$STX_PIPELINE_DUCKDB_MEMORY_LIMIT` (3GB)

    def describe(self) -> str:
        """The file, or the lake `STX_PIPELINE_WAREHOUSE` names (never a password)."""
        where = current_warehouse()
        return where.describe() if where.is_lake else self.database

    @contextmanager
    def get_connection(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one step, closed after it."""
        if read_only and not warehouse_exists(self.database):
            raise dg.Failure(
                f"DuckDB file {self.database} does not exist yet: materialize "
                "`transactions` first"
            )
        con = open_db(self.database, read_only=read_only, memory_limit=self.memory_limit)
        try:
            yield con
        finally:
            con.close()


def _optional_env(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar` only when set: an unset EnvVar is a config error, the key is optional."""
    return dg.EnvVar(name) if core_settings.is_set(name) else None


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        # Every step opens the one DuckDB file and steps run one at a time anyway (pool
        # "duckdb"): a process per step would only add start-up time. As the default it
        # also applies to Dagster's implicit asset job, i.e. to the Materialize button.
        executor=dg.in_process_executor,
        resources={
            "hiro": HiroResource(api_key=_optional_env("HIRO_API_KEY")),
            "duckdb": WarehouseResource(database=settings.db_path()),
        }
    )
