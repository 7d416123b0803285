"""One `Settings`: every variable parsed strictly, its malformed value a one-line error
where a user sees it (the CLI, the Dagster definitions, a launched asset)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from stx_pipeline import cli, settings
from stx_pipeline.settings import VARIABLES, SettingError, Settings

PACKAGE = Path(settings.__file__).resolve().parent
DOCS = PACKAGE.parent / "docs" / "operations.md"

# A malformed value of every variable with a parser that can refuse one.
BAD = {
    "HIRO_API_URL": "ftp://x",
    "HIRO_API_KEY": "two words",
    "HIRO_RPM": "fast",
    "HIRO_CONNECT_TIMEOUT": "0",
    "HIRO_READ_TIMEOUT": "-1",
    "HIRO_MAX_RATE_LIMIT_WAIT": "soon",
    "HIRO_QUOTA_RESERVE": "2.5",
    "HIRO_SOURCE": "v2",
    "STX_PIPELINE_WAREHOUSE": "sqlite:/tmp/lake.db",
    "STX_PIPELINE_LOCK_TIMEOUT": "forever",
    "STX_PIPELINE_DUCKDB_MEMORY_LIMIT": "lots",
    "STX_PIPELINE_BACKFILL_MEMORY_LIMIT": "64",
    "STX_PIPELINE_READ_SNAPSHOT_SECONDS": "0",
    "STX_PIPELINE_TARGET_DAYS": "seven",
    "STX_PIPELINE_MAX_PAGES": "0",
    "STX_PIPELINE_FINALITY_MTP_LAG_SECONDS": "-5",
    "STX_PIPELINE_REORG_DEPTH": "deep",
    "STX_PIPELINE_FRESH_HOURS": "0",
    "STX_PIPELINE_ALERT_WEBHOOK": "hooks.slack.com/services/T/B/secret",
    "STX_PIPELINE_ALERT_FORMAT": "discord",
    "STX_PIPELINE_UI_URL": "dagster.example.com",
    "STX_PIPELINE_ALERT_ATTEMPTS": "0",
    "STX_PIPELINE_ALERT_BACKOFF_SECONDS": "-1",
    "STX_PIPELINE_SENSOR_INTERVAL": "1.5",
    "STX_PIPELINE_STALL_RUNS": "x",
    "STX_PIPELINE_REFRESH_CRON": "daily at 3",
    "STX_PIPELINE_FRESH_INTERVAL": "0",
    "STX_PIPELINE_MAX_RUNTIME_SECONDS": "1h",
    "STX_PIPELINE_PROGRESS_SECONDS": "0",
    "STX_PIPELINE_AUDIT_CRON": "sunday",
    "STX_PIPELINE_COMPACTION_CRON": "every 6 hours",
    "STX_PIPELINE_AUDIT_SAMPLE": "all",
    "STX_PIPELINE_DASHBOARD_URL": "localhost:3001/wallet_metrics.html",
    "STX_PIPELINE_FAILPOINT": "writer.before_commit:0",
}
# Any text is a path.
ANY_TEXT = {"STX_PIPELINE_DB", "STX_PIPELINE_STATUS_FILE", "STX_PIPELINE_LOG_FILE",
            "STX_PIPELINE_DASHBOARD", "STX_PIPELINE_EXPORT_DIR", "STX_PIPELINE_DAGSTER_HOME"}


def test_every_variable_has_a_malformed_case_or_takes_any_text() -> None:
    assert set(BAD) | ANY_TEXT == {v.name for v in VARIABLES}
    assert {f.name for f in dataclasses.fields(Settings)} == {v.attr for v in VARIABLES}


def _assert_one_line(text: str, name: str) -> None:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, text
    variable = settings.BY_NAME[name]
    assert name in lines[0], lines[0]
    if variable.secret:
        assert BAD[name] not in lines[0], lines[0]
    else:
        assert BAD[name] in lines[0], lines[0]
    assert "Traceback" not in text


@pytest.mark.parametrize("name", sorted(BAD))
@pytest.mark.parametrize("command", ["status", "backfill"])
def test_a_malformed_value_is_one_line_exit_2_from_the_cli(
    name: str, command: str, clean_env: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(tmp_path / "status.json"))
    monkeypatch.setenv("STX_PIPELINE_LOG_FILE", str(tmp_path / "backfill.log"))
    monkeypatch.setenv(name, BAD[name])
    assert cli.main([command, "--db", str(tmp_path / "w.duckdb")]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    _assert_one_line(captured.err, name)
    assert not (tmp_path / "w.duckdb").exists()  # refused before anything started


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_malformed_value_fails_the_dagster_definitions_in_one_line(
    name: str, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stx_pipeline.definitions import defs

    monkeypatch.setenv(name, BAD[name])
    with pytest.raises(SettingError) as info:
        defs()
    _assert_one_line(str(info.value), name)


def test_a_malformed_value_fails_a_launched_asset_in_one_line(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run worker whose environment differs from the code location's (set per run in
    Kubernetes, say) fails the step with the variable's own line, not a default."""
    import dagster as dg

    from stx_pipeline.defs.resources import HiroResource, WarehouseResource
    from stx_pipeline.defs.transactions.assets import transactions

    resources = {"hiro": HiroResource(base_url="http://127.0.0.1:9"),
                 "duckdb": WarehouseResource(database=str(tmp_path / "w.duckdb"))}
    with dg.instance_for_test() as instance:
        for name in sorted(BAD):
            monkeypatch.setenv(name, BAD[name])
            result = dg.materialize([transactions], instance=instance, resources=resources,
                                    raise_on_error=False)
            monkeypatch.delenv(name)
            assert not result.success, name
            failure = next(e for e in result.all_events if e.is_step_failure)
            error = failure.step_failure_data.error
            cause = error.cause or error
            assert cause.cls_name == "SettingError", (name, cause.cls_name)
            _assert_one_line(cause.message, name)
    assert not (tmp_path / "w.duckdb").exists()


def test_defaults_are_under_the_project_and_env_paths_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = settings.project_root()
    assert (root / "pyproject.toml").exists()
    defaults = Settings.from_env({})
    assert defaults.db_path == root / "data" / "cache" / "wallet_metrics.duckdb"
    assert defaults.status_file == root / "data" / "backfill_status.json"
    assert defaults.dashboard_path == root / "data" / "dashboards" / "wallet_metrics.html"
    assert defaults.export_dir == root / "data" / "exports"
    assert defaults.log_file == root / "logs" / "backfill.log"
    monkeypatch.chdir(tmp_path)
    given = Settings.from_env({"STX_PIPELINE_DB": "w.duckdb",
                               "STX_PIPELINE_EXPORT_DIR": "out"})
    assert given.db_path == tmp_path / "w.duckdb"
    assert given.export_dir == tmp_path / "out"
    assert Settings.from_env({}).db_path == defaults.db_path  # the cwd does not move it


def test_unset_and_blank_mean_the_default_and_values_are_typed() -> None:
    assert Settings.from_env({}) == Settings.from_env({"HIRO_RPM": "  ", "HIRO_SOURCE": ""})
    given = Settings.from_env({"HIRO_RPM": "120", "STX_PIPELINE_AUDIT_SAMPLE": "3",
                               "STX_PIPELINE_REFRESH_CRON": "0  5 * * *",
                               "STX_PIPELINE_FAILPOINT": "writer.before_commit:3",
                               "HIRO_SOURCE": " V3 ", "STX_PIPELINE_ALERT_FORMAT": "Slack"})
    assert given.hiro_rpm == 120.0 and given.audit_sample == 3
    assert given.refresh_cron == "0 5 * * *" and given.failpoint == ("writer.before_commit", 3)
    assert given.hiro_source == "v3" and given.alert_format == "slack"
    with pytest.raises(dataclasses.FrozenInstanceError):
        given.target_days = 7  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    current = Settings.from_env({"HIRO_API_KEY": "sk-distinctive-1234",
                                 "STX_PIPELINE_ALERT_WEBHOOK": "https://hooks.example/tok-5678"})
    assert current.hiro_api_key == "sk-distinctive-1234"
    assert "sk-distinctive" not in repr(current) and "tok-5678" not in repr(current)


def test_nothing_else_reads_the_environment() -> None:
    """settings.py is the one reader; the two delegated parsers and `devserver` (which
    passes the environment on to `dg dev`) are the named exceptions, and the lake's S3
    settings, which are AWS's standard variables, not ours. The simulator has its own
    flags."""
    allowed = {PACKAGE / "settings.py", PACKAGE / "hiro" / "source_choice.py",
               PACKAGE / "devserver.py", PACKAGE / "warehouse" / "setting.py"}
    readers = {
        path for path in PACKAGE.rglob("*.py")
        if "sim" not in path.relative_to(PACKAGE).parts[:1]
        and re.search(r"os\.environ|getenv\(", path.read_text())
    }
    assert readers <= allowed, sorted(str(p) for p in readers - allowed)


def test_operations_doc_lists_every_variable_as_settings_defines_it() -> None:
    assert settings.markdown_table() in DOCS.read_text()
