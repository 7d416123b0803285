"""deploy/dagster.production.yaml is a valid Dagster instance config, validated by dagster itself.

No Postgres, Kubernetes or S3 is needed: `dagster_instance_config` checks the file against
the instance schema (storage selector, postgres fields, configurable classes, concurrency)
without connecting to anything or importing the launcher classes.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster._config import process_config
from dagster._config.field_utils import Shape
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import (
    dagster_instance_config,
    dagster_instance_config_schema,
)

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "deploy" / "dagster.production.yaml"
LOCAL = ROOT / "dagster.yaml"
SECRET_KEYS = {"password", "token", "api_key", "secret", "aws_secret_access_key", "postgres_url"}


def _validate(tmp_path: Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if config is None:
        shutil.copyfile(PRODUCTION, home / "dagster.yaml")
    else:
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    value, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    return dict(value)


def _load() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION.read_text())


def test_production_config_is_valid_for_dagster(tmp_path: Path) -> None:
    value = _validate(tmp_path)
    pg = value["storage"]["postgres"]["postgres_db"]
    assert pg["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert value["run_launcher"]["module"] == "dagster_k8s"
    assert value["run_launcher"]["class"] == "K8sRunLauncher"
    assert value["run_monitoring"]["enabled"] is True


def test_env_entries_resolve_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "DAGSTER_PG_HOST": "pg.internal", "DAGSTER_PG_DB": "dagster",
        "DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "s3cret-from-env",
        "DAGSTER_K8S_NAMESPACE": "data", "DAGSTER_RUN_IMAGE": "registry/stx:1",
        "DAGSTER_COMPUTE_LOG_BUCKET": "logs-bucket",
    }
    for name, val in env.items():
        monkeypatch.setenv(name, val)
    result = process_config(Shape(dagster_instance_config_schema()), _load())
    assert result.success, result.errors
    pg = result.value["storage"]["postgres"]["postgres_db"]
    assert pg["password"] == "s3cret-from-env"
    assert pg["hostname"] == "pg.internal"
    assert pg["port"] == 5432


def test_no_secret_is_written_in_the_file() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                here = f"{path}.{k}"
                if str(k).lower() in SECRET_KEYS and not isinstance(v, dict):
                    raise AssertionError(f"{here} holds a literal value; use an env: entry")
                walk(v, here)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(_load(), "")


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda c: c["storage"]["postgres"]["postgres_db"].update(hostnme="x"),
                     id="typo-in-postgres-field"),
        pytest.param(lambda c: c.update(run_launchr=c["run_launcher"]), id="unknown-top-level"),
        pytest.param(lambda c: c["storage"].update(sqlite={"base_dir": "/x"}),
                     id="two-storages"),
        pytest.param(lambda c: c["run_monitoring"].update(enabled="sometimes"),
                     id="wrong-type"),
        pytest.param(lambda c: c["concurrency"]["runs"].update(max_concurrent_runz=3),
                     id="typo-in-concurrency"),
    ],
)
def test_an_invalid_key_fails_validation(tmp_path: Path, mutate) -> None:
    config = copy.deepcopy(_load())
    mutate(config)
    with pytest.raises(DagsterInvalidConfigError):
        _validate(tmp_path, config)


def test_writer_limits_match_the_local_instance() -> None:
    """Scaling out must keep the one-writer rule of the warehouse."""
    prod, local = _load()["concurrency"], yaml.safe_load(LOCAL.read_text())["concurrency"]
    assert prod["pools"] == local["pools"]
    assert prod["runs"]["tag_concurrency_limits"] == local["runs"]["tag_concurrency_limits"]
