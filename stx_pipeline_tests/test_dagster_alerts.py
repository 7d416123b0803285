"""Alerts: status-file bookkeeping, the webhook against a real local HTTP server, and the
check-alert sensor turning failed check evaluations into one alert each."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from stx_pipeline import alerts
from stx_pipeline.defs.alerts.sensors import check_alert_sensor, process_check_evaluations
from stx_pipeline.defs.transactions.assets import transactions
from stx_pipeline_tests.loopback import WebhookReceiver

HOOK_PATH = "/hook?token=s3cret"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(path=HOOK_PATH) as rec:
        monkeypatch.setenv("STX_PIPELINE_ALERT_WEBHOOK", rec.url)
        yield rec


def _alert(**overrides: Any) -> alerts.Alert:
    fields = {"asset": "transactions", "check": "no_gaps", "severity": "ERROR", "message": "1 gap"}
    fields.update(overrides)
    return alerts.Alert(**fields)


def test_webhook_posts_the_payload_and_status_file_keeps_other_keys(
    status_file: Path, receiver: WebhookReceiver
) -> None:
    status_file.parent.mkdir(parents=True)
    status_file.write_text(json.dumps({"rows": 42, "complete": False}))
    delivery = alerts.send_alert(_alert(run_id="abc"))
    assert delivery.ok and delivery.webhook_sent and delivery.webhook_status == 200
    assert len(receiver.received) == 1
    payload = receiver.received[0]
    assert delivery.webhook_format == "generic"  # a loopback URL is no chat tool's host
    assert {"text", "asset", "check", "severity", "state", "message", "action", "run_id",
            "run_url", "timestamp"} == set(payload)
    assert payload["run_id"] == "abc" and payload["severity"] == "ERROR"
    assert payload["state"] == "firing" and payload["text"].startswith("[ERROR] transactions")
    data = json.loads(status_file.read_text())
    assert data["rows"] == 42 and data["complete"] is False
    assert data["alerts"][-1]["check"] == "no_gaps"
    assert "s3cret" not in status_file.read_text(), "the webhook URL must never hit the disk"
    assert not list(status_file.parent.glob("*.tmp")), "temp files are renamed or removed"


def test_webhook_failures_never_raise(status_file: Path) -> None:
    fast = alerts.DeliveryPolicy(attempts=2, backoff_seconds=0.01, timeout=1.0)
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    delivery = alerts.send_alert(_alert(), webhook_url=dead, policy=fast)
    assert not delivery.webhook_sent and delivery.webhook_error
    assert delivery.webhook_attempts == 2 and delivery.status_file_error is None
    with WebhookReceiver(status=500, path=HOOK_PATH) as rec:
        delivery = alerts.send_alert(_alert(), webhook_url=rec.url, policy=fast)
    assert delivery.webhook_status == 500 and delivery.webhook_error
    assert len(rec.received) == 2
    assert len(json.loads(status_file.read_text())["alerts"]) == 2


def test_corrupt_status_file_is_replaced(status_file: Path) -> None:
    status_file.parent.mkdir(parents=True)
    status_file.write_text("{not json")
    assert alerts.send_alert(_alert()).ok
    assert len(json.loads(status_file.read_text())["alerts"]) == 1


def test_concurrent_alerts_are_all_recorded(status_file: Path) -> None:
    threads = [
        threading.Thread(target=alerts.send_alert, args=(_alert(message=str(i)),))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    messages = {a["message"] for a in json.loads(status_file.read_text())["alerts"]}
    assert messages == {str(i) for i in range(20)}


def _evaluate(instance: dg.DagsterInstance, check: str, passed: bool, severity: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("transactions"),
            check_name=check,
            passed=passed,
            severity=getattr(dg.AssetCheckSeverity, severity),
            description=f"{check} {'ok' if passed else 'failed'}",
            metadata={},
        )
    )


def test_check_alert_sensor_alerts_once_per_state_change(
    status_file: Path, receiver: WebhookReceiver
) -> None:
    """Failing again and again is one alert; passing after it is one `resolved`."""
    with dg.instance_for_test() as instance:
        _evaluate(instance, "no_gaps", passed=False, severity="ERROR")
        _evaluate(instance, "backfill_complete", passed=False, severity="WARN")
        _evaluate(instance, "unique_tx_id", passed=True, severity="ERROR")
        _evaluate(instance, "fresh", passed=False, severity="WARN")  # freshness_sensor's
        context = dg.build_sensor_context(instance=instance)
        sent, cursor = process_check_evaluations(context)
        assert sorted((a.check, a.severity, a.state) for a in sent) == [
            ("backfill_complete", "WARN", "firing"),
            ("no_gaps", "ERROR", "firing"),
        ]
        assert {p["check"] for p in receiver.received} == {"backfill_complete", "no_gaps"}

        # Next tick: nothing new, nothing sent.
        result = check_alert_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
        assert "no check changed state" in result.skip_reason.skip_message
        assert len(receiver.received) == 2

        # Failing again (the next run's evaluation) is the same state: no new alert.
        _evaluate(instance, "no_gaps", passed=False, severity="ERROR")
        result = check_alert_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor)
        )
        assert len(receiver.received) == 2

        # Passing again: one resolved alert for that check only.
        _evaluate(instance, "no_gaps", passed=True, severity="ERROR")
        _evaluate(instance, "no_gaps", passed=True, severity="ERROR")
        result = check_alert_sensor(
            dg.build_sensor_context(instance=instance, cursor=result.cursor)
        )
        assert "1 alerts sent" in result.skip_reason.skip_message
        assert len(receiver.received) == 3
        resolved = receiver.received[-1]
        assert (resolved["check"], resolved["state"]) == ("no_gaps", "resolved")
        assert json.loads(result.cursor)["firing"].keys() == {"transactions/backfill_complete"}
    stored = json.loads(status_file.read_text())["alerts"]
    assert [(a["check"], a["state"]) for a in stored if a["check"] == "no_gaps"] == [
        ("no_gaps", "firing"), ("no_gaps", "resolved")
    ]


def test_failed_run_becomes_one_alert(
    status_file: Path, receiver: WebhookReceiver, make_simulator: Any, tmp_path: Path
) -> None:
    """A run that fails (here: the API answers no JSON) alerts even though no check
    evaluated. (A 410 on v1 no longer fails a run: it continues on v3.)"""
    from stx_pipeline.defs.alerts.sensors import run_failure_alert_sensor
    from stx_pipeline_tests.test_dagster_materialize import resources, run_config

    sim = make_simulator(wrong_content_type=True)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [transactions], instance=instance, resources=resources(sim, tmp_path / "w.duckdb"),
            run_config=run_config(), raise_on_error=False,
        )
        assert not result.success
        failure = result.get_run_failure_event()
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_instance=instance,
            dagster_run=result.dagster_run, dagster_event=failure,
        ).for_run_failure()
        run_failure_alert_sensor(context)
    assert len(receiver.received) == 1
    payload = receiver.received[0]
    assert payload["severity"] == "ERROR" and payload["asset"] == "transactions"
    assert payload["check"].startswith("run:") and payload["run_id"] == result.run_id
    assert "\n" not in payload["message"]
    assert payload["message"].startswith("transactions: ") and "not JSON" in payload["message"]
    assert json.loads(status_file.read_text())["last_alert"]["run_id"] == result.run_id
