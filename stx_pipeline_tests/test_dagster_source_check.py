"""`source_not_deprecated`: the asset records what the server said, the check WARNs with what to
do, and the check-alert sensor delivers it through the usual alert path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg

from stx_pipeline.defs.alerts.sensors import process_check_evaluations
from stx_pipeline.defs.transactions.assets import transactions
from stx_pipeline.defs.transactions.source_checks import source_not_deprecated
from stx_pipeline_tests.loopback import WebhookReceiver
from stx_pipeline_tests.test_dagster_materialize import resources, run_config


def test_deprecated_v1_source_warns_and_alerts(make_simulator, tmp_path: Path, monkeypatch,
                                               isolated_env: None, status_file: Path) -> None:
    sim = make_simulator(history_days=2, tx_per_day=1500)
    with WebhookReceiver() as hook, dg.instance_for_test() as instance:
        monkeypatch.setenv("STX_PIPELINE_ALERT_WEBHOOK", hook.url)
        # pinned to v1: the check is about reading the deprecated route (auto reads v3)
        monkeypatch.setenv("HIRO_SOURCE", "v1")
        result = dg.materialize(
            [transactions, source_not_deprecated], instance=instance,
            resources=resources(sim, tmp_path / "w.duckdb"), run_config=run_config(),
        )
        assert result.success
        mat = result.asset_materializations_for_node("transactions")[0].metadata
        assert mat["api_version"].value == "v9.0.2 (master:759c4a58)"
        assert mat["api_deprecated_paths"].value == ["/extended/v1/tx"]
        assert mat["api_warning"].value.startswith('299 - "Deprecated:')
        (check,) = result.get_asset_check_evaluations()
        assert check.check_name == "source_not_deprecated"
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        text = check.description or ""
        assert "/extended/v1/tx is deprecated" in text and "v9.0.2" in text
        assert "410 Gone" in text and "What to do:" in text
        assert "/extended/v3/transactions" in text and "HIRO_SOURCE" in text
        said = [e.user_message for e in instance.all_logs(result.run_id)
                if e.level == logging.WARNING and "is deprecated" in e.user_message]
        assert len(said) == 1  # once per run, in the run log
        sent, _cursor = process_check_evaluations(dg.build_sensor_context(instance=instance))
    assert [(a.check, a.severity) for a in sent] == [("source_not_deprecated", "WARN")]
    assert hook.received[0]["message"] == text
    status = json.loads(status_file.read_text())
    assert status["last_alert"]["check"] == "source_not_deprecated"
    assert [d["path"] for d in status["api"]["deprecated"]] == ["/extended/v1/tx"]


def test_default_source_reads_v3_and_passes(make_simulator, tmp_path: Path,
                                            isolated_env: None) -> None:
    """HIRO_SOURCE unset (auto) against a v9 server: the run reads v3, nothing deprecated."""
    sim = make_simulator(history_days=2, tx_per_day=1500)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [transactions, source_not_deprecated], instance=instance,
            resources=resources(sim, tmp_path / "w.duckdb"), run_config=run_config(),
        )
        assert result.success
        mat = result.asset_materializations_for_node("transactions")[0].metadata
        assert mat["source"].value == "v3"
        assert mat["api_deprecated_paths"].value == [] and mat["api_gone_paths"].value == []
        (check,) = result.get_asset_check_evaluations()
        assert check.passed, check.description
        assert "no deprecated route in use" in (check.description or "")
    assert sim.stats["by_route"].get("v1_tx", 0) == 0


def test_passes_without_deprecated_routes_and_before_any_run() -> None:
    with dg.instance_for_test() as instance:
        first = source_not_deprecated(dg.build_asset_check_context(instance=instance))
        assert first.passed and "no backfill" in (first.description or "")
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="transactions",
            metadata={"api_version": "v10.0.0 (master:abc)", "api_deprecated_paths": [],
                      "api_warning": "", "api_gone_paths": []},
        ))
        clean = source_not_deprecated(dg.build_asset_check_context(instance=instance))
        assert clean.passed and "v10.0.0" in (clean.description or "")
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="transactions",
            metadata={"api_version": "v10.0.0 (master:abc)", "api_deprecated_paths": [],
                      "api_warning": "", "api_gone_paths": ["/extended/v1/tx"]},
        ))
        gone = source_not_deprecated(dg.build_asset_check_context(instance=instance))
        assert not gone.passed and "answered 410 Gone" in (gone.description or "")
