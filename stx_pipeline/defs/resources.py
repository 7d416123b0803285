"""Resources shared by every domain (the Hiro API client factory, the DuckDB file) and the
default executor of every job, including the one behind the Materialize button."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from stx_pipeline.defs import settings
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.factory import client_from_env
from stx_pipeline.warehouse.db import connect, memory_limit_setting

DEFAULT_HIRO_URL = "https://api.hiro.so"


class HiroResource(dg.ConfigurableResource):
    """Builds a `HiroClient` per run with the CLI's factory; unset fields come from HIRO_*."""

    base_url: str | None = None
    api_key: str | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    requests_per_minute: int | None = None
    max_attempts: int | None = None

    def resolved_base_url(self) -> str:
        """Explicit config, else `$HIRO_API_URL`, else the public Hiro API."""
        return self.base_url or os.environ.get("HIRO_API_URL", "").strip() or DEFAULT_HIRO_URL

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


@contextmanager
def read_only_connection(
    database: str, timeout_seconds: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short read-only connection to the warehouse file, through the one opener
    (`warehouse.db.connect`: bounded wait while a writer holds the file, one-line errors)."""
    con = connect(database, read_only=True, lock_timeout=timeout_seconds)
    try:
        yield con
    finally:
        con.close()


def _optional_env(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar` only when set: an unset EnvVar is a config error, the key is optional."""
    return dg.EnvVar(name) if os.environ.get(name) else None


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        # Every step opens the one DuckDB file and steps run one at a time anyway (pool
        # "duckdb"): a process per step would only add start-up time. As the default it
        # also applies to Dagster's implicit asset job, i.e. to the Materialize button.
        executor=dg.in_process_executor,
        resources={
            "hiro": HiroResource(api_key=_optional_env("HIRO_API_KEY")),
            "duckdb": DuckDBResource(
                database=settings.db_path(),
                connection_config={"memory_limit": memory_limit_setting()},
            ),
        }
    )
