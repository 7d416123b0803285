"""The Dagster definitions load, hold every named object, and the instance config is valid."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pydantic
import pytest
import requests
import yaml

from stx_pipeline.defs import settings
from stx_pipeline.defs.transactions.assets import TransactionsConfig
from stx_pipeline.devserver import (
    PROJECT_DAGSTER_YAML,
    PROJECT_ROOT,
    pipeline_environment,
    prepare_home,
    serve_dashboard,
    write_instance_yaml,
)
from stx_pipeline.metrics.sql import METRICS_TABLES
from stx_pipeline.settings import SettingError

ASSETS = {"transactions", "dashboard", "transactions_parquet", *METRICS_TABLES}
# The six warehouse checks are one step; `source_not_deprecated` reads only the event log.
WAREHOUSE_CHECKS = {
    "backfill_complete", "no_gaps", "unique_tx_id", "valid_rows", "no_rejected_rows", "fresh",
}
CHECKS = {*WAREHOUSE_CHECKS, "source_not_deprecated", "sealed_history_matches_api"}
BLOCKING = {"no_gaps", "unique_tx_id"}
SENSORS = {
    "transactions_backfill_sensor",
    "check_alert_sensor",
    "metrics_refresh_sensor",
    "run_failure_alert_sensor",
    "freshness_sensor",
}
SCHEDULES = {"daily_refresh_schedule", "audit_sealed_history_schedule",
             "warehouse_compaction_schedule"}
JOBS = {"transactions_backfill_job", "daily_refresh_job", "metrics_refresh_job",
        "audit_sealed_history_job", "warehouse_compaction_job"}


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    from stx_pipeline.definitions import defs

    loaded = defs()
    dg.Definitions.validate_loadable(loaded)
    return loaded.get_repository_def()


def test_package_init_has_no_defs_name() -> None:
    import stx_pipeline

    assert not hasattr(stx_pipeline, "defs") or isinstance(stx_pipeline.defs, type(stx_pipeline)), (
        "a `defs` Definitions object in stx_pipeline/__init__.py would shadow the defs folder"
    )


def test_every_named_object_exists(repo: dg.RepositoryDefinition) -> None:
    graph = repo.asset_graph
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    checks = {k.name for k in graph.asset_check_keys}
    assert checks == CHECKS
    assert {s.name for s in repo.sensor_defs} == SENSORS
    assert {s.name for s in repo.schedule_defs} == SCHEDULES
    assert {j.name for j in repo.get_all_jobs()} >= JOBS
    for sensor in repo.sensor_defs:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
    assert repo.get_schedule_def("daily_refresh_schedule").default_status == (
        dg.DefaultScheduleStatus.RUNNING
    )


def test_asset_wiring(repo: dg.RepositoryDefinition) -> None:
    graph = repo.asset_graph
    tx, dash = dg.AssetKey("transactions"), dg.AssetKey("dashboard")
    tables = {dg.AssetKey(t) for t in METRICS_TABLES}
    for table in tables:  # one catalog entry per table, built by one step
        assert graph.get(table).parent_keys == {tx}
        assert repo.assets_defs_by_key[table].op.name == "wallet_metrics"
    assert graph.get(dash).parent_keys == tables
    export = dg.AssetKey("transactions_parquet")
    assert graph.get(export).parent_keys == {tx}
    assert graph.get(tx).group_name == "stacks"
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        assert spec.blocking == (check_key.name in BLOCKING), check_key.name
        if check_key.name in WAREHOUSE_CHECKS:
            severity = "ERROR" if check_key.name in {*BLOCKING, "valid_rows"} else "WARN"
            assert spec.description.startswith(severity), (check_key.name, spec.description)
    # Every step touching DuckDB is in the pool that dagster.yaml limits to 1; the six
    # checks are one step (one slot, one connection).
    for key in (tx, dash, export, *tables):
        assert repo.assets_defs_by_key[key].op.pool == "duckdb"
    warehouse_checks = {
        key.name: d for key, d in repo.asset_checks_defs_by_key.items()
        if key.name in WAREHOUSE_CHECKS
    }
    assert set(warehouse_checks) == WAREHOUSE_CHECKS
    assert {d.node_def.name for d in warehouse_checks.values()} == {"transactions_checks"}
    assert {d.op.pool for d in warehouse_checks.values()} == {"duckdb"}
    # The backfill job carries the checks of `transactions`, but not the audit (a request
    # per sealed window): that is the weekly audit job's only step.
    job = repo.get_job("transactions_backfill_job")
    assert {k.name for k in job.asset_layer.asset_graph.asset_check_keys} == CHECKS - {
        "sealed_history_matches_api"}
    daily = repo.get_job("daily_refresh_job")
    assert "sealed_history_matches_api" not in {
        k.name for k in daily.asset_layer.asset_graph.asset_check_keys}
    audit = repo.get_job("audit_sealed_history_job")
    assert {k.name for k in audit.asset_layer.asset_graph.asset_check_keys} == {
        "sealed_history_matches_api"}


def test_every_launch_path_runs_like_the_sensor(repo: dg.RepositoryDefinition) -> None:
    """The Materialize button's implicit job and the named jobs: in-process executor; the
    writing jobs carry the one set of writer tags."""
    button = repo.get_implicit_job_def_for_assets([dg.AssetKey("transactions")])
    assert button is not None and button.executor_def is dg.in_process_executor
    for name in JOBS:
        job = repo.get_job(name)
        assert job.executor_def is dg.in_process_executor, name
        assert settings.writer_run_tags().items() <= job.tags.items(), name


def test_every_job_holding_the_duckdb_pool_has_a_max_runtime(
    repo: dg.RepositoryDefinition,
) -> None:
    """A hung run would hold the pool (limit 1) forever; run monitoring needs the tag.
    Every named job's steps open DuckDB (assets and checks are all in the pool)."""
    named = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert named == JOBS
    for name in named:
        tags = repo.get_job(name).tags
        assert int(tags["dagster/max_runtime"]) > 0, name
        assert tags["stx_pipeline/writer"] == "duckdb", name
    # Runs launched by hand from the UI have no job tags: the instance's default catches them.
    monitoring = yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())["run_monitoring"]
    assert monitoring["enabled"] is True and monitoring["max_runtime_seconds"] > 0


def test_max_runtime_follows_the_page_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from stx_pipeline.defs import settings

    monkeypatch.delenv("STX_PIPELINE_MAX_RUNTIME_SECONDS", raising=False)
    monkeypatch.delenv("HIRO_RPM", raising=False)
    monkeypatch.setenv("STX_PIPELINE_MAX_PAGES", "10000")
    monkeypatch.setenv("HIRO_API_KEY", "k")
    assert settings.max_runtime_seconds() == 2 * 10000 * 60 // 500 + 1800  # 70 minutes
    monkeypatch.setenv("STX_PIPELINE_MAX_RUNTIME_SECONDS", "900")
    assert settings.max_runtime_seconds() == 900


def test_config_rejects_non_positive_target() -> None:
    # The defaults are the settings, so an empty config (the button) gets the sensor's.
    assert TransactionsConfig().target_days == settings.default_target_days()
    assert TransactionsConfig().max_pages == settings.max_pages_per_run()
    with pytest.raises(pydantic.ValidationError):
        TransactionsConfig(target_days=0)


def test_instance_yaml_is_valid_and_made_absolute(tmp_path: Path) -> None:
    target = write_instance_yaml(tmp_path / "home")
    config = yaml.safe_load(target.read_text())
    assert config["storage"]["sqlite"]["base_dir"] == str(tmp_path / "home" / "storage")
    assert config["telemetry"]["enabled"] is False
    assert config["run_monitoring"]["enabled"] is True
    assert config["concurrency"]["pools"]["default_limit"] == 1
    instance = dg.DagsterInstance.from_config(str(tmp_path / "home"))
    try:
        assert instance.run_monitoring_enabled
        pool = instance.get_concurrency_config().pool_config
        assert pool.default_pool_limit == 1
    finally:
        instance.dispose()
    assert yaml.safe_load(PROJECT_DAGSTER_YAML.read_text())["storage"]["sqlite"]["base_dir"] == (
        "data/dagster/storage"
    )


@pytest.mark.skipif(not (PROJECT_ROOT / ".venv/bin/dg").exists(), reason="dg CLI not installed")
def test_dg_check_defs() -> None:
    dg_cli = shutil.which("dg", path=str(PROJECT_ROOT / ".venv/bin"))
    proc = subprocess.run(
        [str(dg_cli), "check", "defs"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_ui_home_and_environment_are_absolute(tmp_path: Path) -> None:
    """`stx-pipeline ui` runs `dg dev` from the Dagster home: every path must be absolute
    and the one target must reach every process."""
    home = prepare_home(tmp_path / "home")
    workspace = yaml.safe_load((home / "workspace.yaml").read_text())
    [location] = workspace["load_from"]
    assert location["python_module"]["working_directory"] == str(PROJECT_ROOT)
    base = {"STX_PIPELINE_DB": "rel/w.duckdb", "STX_PIPELINE_STATUS_FILE": "rel/s.json"}
    env = pipeline_environment(base, home, days=30)
    assert env["STX_PIPELINE_TARGET_DAYS"] == "30"
    assert env["DAGSTER_HOME"] == str(home)
    for key in ("STX_PIPELINE_DB", "STX_PIPELINE_STATUS_FILE", "STX_PIPELINE_DASHBOARD"):
        assert Path(env[key]).is_absolute(), key
    # An explicit setting wins over `--days`; a malformed one is an error, not `--days`
    # (it used to fall back silently: the UI would then backfill another target).
    assert pipeline_environment({"STX_PIPELINE_TARGET_DAYS": "60"}, home, 30)[
        "STX_PIPELINE_TARGET_DAYS"
    ] == "60"
    with pytest.raises(SettingError, match="STX_PIPELINE_TARGET_DAYS='x' is not a whole"):
        pipeline_environment({"STX_PIPELINE_TARGET_DAYS": "x"}, home, 30)


def test_dashboard_is_served_for_the_ui_link(tmp_path: Path) -> None:
    page = tmp_path / "dash" / "wallet_metrics.html"
    page.parent.mkdir()
    page.write_text("<html>metrics</html>")
    with serve_dashboard(page, 0) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/wallet_metrics.html")
        assert requests.get(url, timeout=10).text == "<html>metrics</html>"
