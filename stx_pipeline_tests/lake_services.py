"""The multi-machine warehouse on one box, for real: an S3-compatible server (moto, from
PyPI) on an ephemeral loopback port, and a new database on the local PostgreSQL server
(`deploy/local-postgres.sh`, started by `make test`) as the DuckLake catalog."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

from stx_pipeline_tests.dagster_services import postgres_database, postgres_server_env

BUCKET = "stx-lake"
# moto accepts any key; these are the standard AWS variables the warehouse reads.
S3_KEY_ID = "test-key-id"
S3_SECRET = "test-secret"


def _as_s3_names_it(app: Callable) -> Callable:
    """moto 5.2 answers CompleteMultipartUpload with a `CompleteMultipartUploadResponse`
    element; S3 (its API reference) and MinIO say `CompleteMultipartUploadResult`, which
    is what DuckDB's httpfs checks. Without this, every file DuckDB uploads in more than
    one part (compaction's merged files) fails on moto alone: `Unexpected response during
    S3 multipart upload finalization`. Only that one answer is rewritten."""

    def wsgi(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or "uploadId" not in environ.get(
                "QUERY_STRING", ""):
            return app(environ, start_response)
        seen: dict[str, Any] = {}

        def keep(status: str, headers: list, exc_info: Any = None) -> Callable:
            seen.update(status=status, headers=headers)
            return lambda data: None

        chunks = app(environ, keep)
        body = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        body = body.replace(b"CompleteMultipartUploadResponse", b"CompleteMultipartUploadResult")
        headers = [(k, str(len(body)) if k.lower() == "content-length" else v)
                   for k, v in seen["headers"]]
        start_response(seen["status"], headers)
        return [body]

    return wsgi


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:  # one line per request is noise here
        pass


class _S3Server(ThreadedMotoServer):
    def _server_entry(self) -> None:
        app = _as_s3_names_it(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, app, True,
                                   request_handler=_Quiet)
        self._server_ready_event.set()
        self._server.serve_forever()


@contextmanager
def s3_server(bucket: str = BUCKET) -> Iterator[str]:
    """moto's S3 on 127.0.0.1, port chosen by the OS, with `bucket`; yields the endpoint."""
    import boto3

    server = _S3Server(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=url, aws_access_key_id=S3_KEY_ID,
                     aws_secret_access_key=S3_SECRET, region_name="us-east-1"
                     ).create_bucket(Bucket=bucket)
        yield url
    finally:
        server.stop()


def s3_object_count(endpoint: str, prefix: str = "") -> int:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY_ID,
                      aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sum(page.get("KeyCount", 0) for page in pages)


@contextmanager
def lake_environment(prefix: str = "stx") -> Iterator[dict[str, str]]:
    """The variables a process needs to use one fresh lake: STX_PIPELINE_WAREHOUSE
    (catalog: a new Postgres database, dropped after; data: s3://stx-lake/<prefix>/),
    the AWS variables for moto, and PGPASSWORD (kept out of the setting itself)."""
    with s3_server() as endpoint, postgres_database(postgres_server_env()) as pg:
        dsn = (f"host={pg['DAGSTER_PG_HOST']} port={pg['DAGSTER_PG_PORT']}"
               f" user={pg['DAGSTER_PG_USER']} dbname={pg['DAGSTER_PG_DB']}")
        yield {
            "STX_PIPELINE_WAREHOUSE": f"ducklake:postgres:{dsn} data_path=s3://{BUCKET}/{prefix}",
            "PGPASSWORD": pg["DAGSTER_PG_PASSWORD"],
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
