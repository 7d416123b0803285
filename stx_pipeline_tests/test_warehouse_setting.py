"""`STX_PIPELINE_WAREHOUSE`: one strict parser, one-line errors that never show a password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stx_pipeline.warehouse.setting import (
    EMBEDDED,
    WarehouseSettingError,
    parse_warehouse,
    s3_settings,
)
from stx_pipeline_tests.cli_env import cli_env


@pytest.mark.parametrize("raw", [None, "", "  ", "duckdb"])
def test_unset_blank_or_duckdb_is_the_embedded_file(raw: str | None) -> None:
    assert parse_warehouse(raw) == EMBEDDED
    assert not parse_warehouse(raw).is_lake


def test_the_multi_machine_form() -> None:
    w = parse_warehouse("ducklake:postgres:host=db1 port=5433 dbname=stx_lake user=stx"
                        " sslmode=require data_path=s3://stx-lake/prod")
    assert w.is_lake
    assert w.catalog_dsn == "host=db1 port=5433 dbname=stx_lake user=stx sslmode=require"
    assert w.data_path == "s3://stx-lake/prod/"
    local = parse_warehouse("ducklake:postgres:dbname=lake data_path=/srv/lake")
    assert local.data_path == "/srv/lake/" and local.catalog_dsn == "dbname=lake"
    quoted = parse_warehouse("ducklake:postgres:dbname=lake password='a b\\'c'"
                             " data_path=s3://b/p/")
    assert quoted.catalog_dsn == "dbname=lake password='a b\\'c'"
    assert "a b" not in quoted.describe() and "password=***" in quoted.describe()


@pytest.mark.parametrize(("raw", "says"), [
    ("duckdb:/tmp/x.duckdb", "unknown warehouse kind"),
    ("motherduck:md", "unknown warehouse kind"),
    ("ducklake:sqlite:/tmp/c.sqlite data_path=/tmp/d", "must be `postgres:`"),
    ("ducklake:postgres:dbname=lake", "exactly one data_path"),
    ("ducklake:postgres:dbname=lake data_path=s3://a/b data_path=s3://c/d", "exactly one"),
    ("ducklake:postgres:host=db1 data_path=s3://a/b", "dbname="),
    ("ducklake:postgres:dbname=lake hots=db1 data_path=s3://a/b", "hots is not a libpq"),
    ("ducklake:postgres:dbname=lake data_path=relative/dir", "absolute folder"),
    ("ducklake:postgres:dbname=lake data_path=s3:///prefix", "needs a bucket"),
    ("ducklake:postgres:dbname=lake oops password=secret99 data_path=s3://a/b",
     "cannot read `oops"),
])
def test_bad_values_are_one_line_errors_that_say_what_to_write(raw: str, says: str) -> None:
    with pytest.raises(WarehouseSettingError) as err:
        parse_warehouse(raw)
    text = str(err.value)
    assert says in text and "\n" not in text, text
    assert "STX_PIPELINE_WAREHOUSE=" in text and "ducklake:postgres:" in text
    assert "secret99" not in text


def test_s3_settings_come_from_the_standard_aws_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(WarehouseSettingError, match="AWS_ACCESS_KEY_ID"):
        s3_settings()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    aws = s3_settings()
    assert (aws.endpoint, aws.use_ssl, aws.url_style, aws.region) == ("", True, "vhost",
                                                                     "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    minio = s3_settings()
    assert (minio.endpoint, minio.use_ssl, minio.url_style, minio.region) == (
        "127.0.0.1:9000", False, "path", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.test")
    assert s3_settings().endpoint == "s3.example.test" and s3_settings().use_ssl
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "ftp://x")
    with pytest.raises(WarehouseSettingError, match="not a URL"):
        s3_settings()


def test_the_cli_exits_2_with_one_line_on_a_bad_value(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stx_pipeline.cli", "status", "--db", str(tmp_path / "w.duckdb")],
        env=cli_env(tmp_path, STX_PIPELINE_WAREHOUSE="ducklake:postgres:dbname=x"),
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "exactly one data_path" in lines[0], lines
