"""`STX_PIPELINE_WAREHOUSE`: which warehouse every command and Dagster run opens.

Two forms, parsed strictly (a typo must never silently open an empty local file):

- unset, blank or `duckdb`: the embedded default, one DuckDB file at `--db` /
  `STX_PIPELINE_DB` (serverless; `make demo` needs nothing else);
- `ducklake:postgres:<libpq keyword/value DSN> data_path=<s3://bucket/prefix | /abs/dir>`:
  DuckLake with its catalog in PostgreSQL and its Parquet files under `data_path`, shared
  by several machines. The password is best left out of the value (libpq reads
  `PGPASSWORD` and `~/.pgpass`); S3 credentials and endpoint come from the standard AWS
  variables (see `s3_settings`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

ENV = "STX_PIPELINE_WAREHOUSE"
EXAMPLE = "ducklake:postgres:host=db1 dbname=stx_lake user=stx data_path=s3://bucket/prefix"

# libpq's connection keywords (PostgreSQL 15-17 docs, "Parameter Key Words").
LIBPQ_KEYWORDS = frozenset((
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth",
    "channel_binding", "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
    "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service",
    "target_session_attrs", "load_balance_hosts",
))

_TOKEN = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)")


class WarehouseSettingError(ValueError):
    """A malformed `STX_PIPELINE_WAREHOUSE`; the message says what to write instead."""


@dataclass(frozen=True)
class Warehouse:
    """Where the tables live: the embedded DuckDB file, or a DuckLake shared by machines."""

    kind: str  # "duckdb" | "ducklake"
    catalog_dsn: str = ""  # libpq keyword/value string for the DuckLake catalog database
    data_path: str = ""  # s3://bucket/prefix/ or an absolute folder, ends with "/"

    @property
    def is_lake(self) -> bool:
        return self.kind == "ducklake"

    def describe(self) -> str:
        """For logs and the terminal: never the password."""
        if not self.is_lake:
            return "duckdb (embedded file)"
        return f"ducklake:postgres:{redact(self.catalog_dsn)} data_path={self.data_path}"


EMBEDDED = Warehouse(kind="duckdb")


def redact(dsn: str) -> str:
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


def _fail(raw: str, why: str) -> WarehouseSettingError:
    return WarehouseSettingError(
        f"{ENV}={redact(raw)!r}: {why}; use `duckdb` (the default) or `{EXAMPLE}`"
    )


def parse_warehouse(raw: str | None) -> Warehouse:
    """The one parser of the setting (the CLI, the Dagster resource and settings.py)."""
    value = (raw or "").strip()
    if value in ("", "duckdb"):
        return EMBEDDED
    if not value.startswith("ducklake:"):
        raise _fail(value, "unknown warehouse kind")
    rest = value[len("ducklake:"):]
    if not rest.startswith("postgres:"):
        raise _fail(value, "the DuckLake catalog must be `postgres:` (a PostgreSQL database)")
    body = rest[len("postgres:"):].strip()
    pairs: list[tuple[str, str]] = []
    pos = 0
    while pos < len(body):
        m = _TOKEN.match(body, pos)
        if not m:
            raise _fail(value, f"cannot read `{redact(body[pos:].strip())[:30]}` as key=value")
        pairs.append((m.group(1), m.group(2)))
        pos = m.end()
        while pos < len(body) and body[pos].isspace():
            pos += 1
    data = [v for k, v in pairs if k == "data_path"]
    if len(data) != 1:
        raise _fail(value, "give exactly one data_path=s3://bucket/prefix (or an absolute"
                           " folder) for the Parquet files")
    unknown = sorted({k for k, _ in pairs if k != "data_path" and k not in LIBPQ_KEYWORDS})
    if unknown:
        raise _fail(value, f"{', '.join(unknown)} is not a libpq connection keyword")
    if not any(k in ("dbname", "service") for k, _ in pairs):
        raise _fail(value, "name the catalog database with dbname=")
    data_path = _data_path(value, data[0].strip("'"))
    dsn = " ".join(f"{k}={v}" for k, v in pairs if k != "data_path")
    return Warehouse(kind="ducklake", catalog_dsn=dsn, data_path=data_path)


def _data_path(raw: str, path: str) -> str:
    if path.startswith("s3://"):
        parts = urlsplit(path)
        if not parts.netloc:
            raise _fail(raw, "data_path s3:// needs a bucket (s3://bucket/prefix)")
    elif not path.startswith("/"):
        raise _fail(raw, "data_path must be s3://bucket/prefix or an absolute folder")
    return path if path.endswith("/") else path + "/"


def warehouse_from_env() -> Warehouse:
    """The setting as `settings.current()` parsed it (this parser, through its row in
    `settings.VARIABLES`), read at call time: tests and the dev server set it late."""
    from stx_pipeline import settings

    return settings.current().warehouse or EMBEDDED


@dataclass(frozen=True)
class S3Settings:
    key_id: str
    secret: str
    session_token: str
    region: str
    endpoint: str  # host[:port], empty for AWS itself
    use_ssl: bool
    url_style: str  # "path" for a custom endpoint (MinIO, moto, ...), else "vhost"


def s3_settings() -> S3Settings:
    """The standard AWS variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION), AWS_ENDPOINT_URL_S3 (or
    AWS_ENDPOINT_URL) for an S3-compatible server."""
    key = os.environ.get("AWS_ACCESS_KEY_ID", "").strip()
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "").strip()
    if not key or not secret:
        raise WarehouseSettingError(
            f"{ENV} puts data on S3 but AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not"
            " set; export them (and AWS_ENDPOINT_URL_S3 for an S3-compatible server)"
        )
    region = (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
              or "us-east-1").strip()
    url = (os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
           or "").strip()
    endpoint, use_ssl, style = "", True, "vhost"
    if url:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WarehouseSettingError(
                f"AWS_ENDPOINT_URL_S3={url!r} is not a URL like http://127.0.0.1:9000"
            )
        endpoint, use_ssl, style = parts.netloc, parts.scheme == "https", "path"
    return S3Settings(key, secret, os.environ.get("AWS_SESSION_TOKEN", "").strip(), region,
                      endpoint, use_ssl, style)
