"""Alerts that reach people: bodies Slack and Teams accept, one message per state change,
retries with backoff, freshness judged without any run, and `status --check`.

The receivers are real HTTP servers on loopback that refuse what Slack and Teams refuse
(`chat_webhooks`); the data comes from the simulator through the real backfill.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from stx_pipeline import alerts
from stx_pipeline.backfill.runner import ensure_transaction_history
from stx_pipeline.defs.alerts.freshness import freshness_sensor
from stx_pipeline.defs.alerts.sensors import check_alert_sensor
from stx_pipeline.defs.transactions.assets import transactions
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.chat_webhooks import slack_rejects, teams_rejects
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.loopback import WebhookReceiver
from stx_pipeline_tests.test_dagster_materialize import CHECKS, resources, run_config

UI = "https://dagster.example.com/"
FAST = alerts.DeliveryPolicy(attempts=3, backoff_seconds=0.01, timeout=2.0)
VALIDATORS = {"slack": slack_rejects, "teams": teams_rejects}


@pytest.fixture
def env(status_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No pipeline variable of the shell (`status_file` -> `clean_env`), fast retries."""
    monkeypatch.setenv("STX_PIPELINE_ALERT_BACKOFF_SECONDS", "0.01")
    return tmp_path


@pytest.fixture
def chat(env: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., WebhookReceiver]:
    """`chat("slack" | "teams")`: a receiver validating like that service, configured."""
    opened: list[WebhookReceiver] = []

    def make(fmt: str, status: int | list[int] = 200) -> WebhookReceiver:
        rec = WebhookReceiver(status=status, path="/services/T000/B000/secret",
                              validate=VALIDATORS[fmt]).__enter__()
        opened.append(rec)
        monkeypatch.setenv("STX_PIPELINE_ALERT_WEBHOOK", rec.url)
        monkeypatch.setenv("STX_PIPELINE_ALERT_FORMAT", fmt)
        return rec

    yield make
    for rec in opened:
        rec.__exit__(None, None, None)


def _alert(**kw: Any) -> alerts.Alert:
    fields: dict[str, Any] = {"asset": "transactions", "check": "no_gaps", "severity": "ERROR",
                              "message": "2 gaps <inside> & 1 miscounted", "run_id": "run-1",
                              "action": "re-run the backfill"}
    fields.update(kw)
    return alerts.Alert(**fields)


# --- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["slack", "teams"])
def test_firing_and_resolved_bodies_are_accepted_with_a_run_link(
    fmt: str, chat: Callable[..., WebhookReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = chat(fmt)
    monkeypatch.setenv("STX_PIPELINE_UI_URL", UI)
    for state in ("firing", "resolved"):
        delivery = alerts.send_alert(_alert(state=state))
        assert delivery.ok and delivery.webhook_format == fmt, rec.refused
    assert rec.refused == [] and len(rec.accepted) == 2
    firing, resolved = (json.dumps(body) for body in rec.accepted)
    for text in (firing, resolved):
        assert "transactions" in text and "no_gaps" in text
        assert "https://dagster.example.com/runs/run-1" in text
    assert "re-run the backfill" in firing and "re-run the backfill" not in resolved
    assert "RESOLVED" in resolved
    if fmt == "slack":
        body = rec.accepted[0]
        assert "&lt;inside&gt; &amp;" in body["text"]  # Slack's three escapes
        buttons = [b for b in body["blocks"] if b["type"] == "actions"]
        assert buttons[0]["elements"][0]["url"] == "https://dagster.example.com/runs/run-1"
    else:
        card = rec.accepted[0]["attachments"][0]["content"]
        assert card["actions"][0]["url"] == "https://dagster.example.com/runs/run-1"


def test_receivers_refuse_what_the_services_refuse(
    chat: Callable[..., WebhookReceiver], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The validators can fail: the old flat body never reached Slack, and a refused body
    is logged once, not retried (resending the same body cannot help)."""
    old_body = {"asset": "transactions", "check": "no_gaps", "severity": "ERROR",
                "message": "1 gap", "run_id": None, "timestamp": "2026-01-01T00:00:00+00:00"}
    assert slack_rejects(old_body) and slack_rejects({"text": " "}) == "no_text"
    assert teams_rejects(old_body) and teams_rejects({"text": "hi"})
    slack_body = alerts.slack_payload(_alert(), None)
    teams_body = alerts.teams_payload(_alert(), None)
    assert slack_rejects(slack_body) is None and teams_rejects(teams_body) is None
    assert teams_rejects(slack_body) and slack_rejects(teams_body)
    too_long = alerts.slack_payload(_alert(check="x" * 400, message="y" * 5000), None)
    assert slack_rejects(too_long) is None  # cut to Slack's limits, not refused

    rec = chat("slack")
    monkeypatch.setenv("STX_PIPELINE_ALERT_FORMAT", "generic")  # the wrong body for Slack
    with caplog.at_level(logging.ERROR, logger="stx_pipeline.alerts"):
        delivery = alerts.send_alert(_alert(), policy=FAST)
    assert not delivery.webhook_sent and delivery.webhook_status == 400
    assert delivery.webhook_attempts == 1 and "not retried" in (delivery.webhook_error or "")
    assert len(rec.received) == 1 and rec.accepted == []
    assert any("not delivered" in r.getMessage() for r in caplog.records)


def test_format_setting_and_auto_detection() -> None:
    assert alerts.detect_format("https://hooks.slack.com/services/T/B/x", "auto") == "slack"
    assert alerts.detect_format("https://acme.webhook.office.com/webhookb2/x", "") == "teams"
    assert alerts.detect_format(
        "https://prod-12.westus.logic.azure.com:443/workflows/x", "auto") == "teams"
    assert alerts.detect_format("https://alerts.example.com/hook", "auto") == "generic"
    assert alerts.detect_format("https://alerts.example.com/hook", "Slack") == "slack"
    with pytest.raises(ValueError, match="STX_PIPELINE_ALERT_FORMAT='discord' is not one of"):
        alerts.detect_format("https://x", "discord")


def test_bad_format_setting_is_logged_not_raised(env: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    with WebhookReceiver() as rec:
        monkeypatch.setenv("STX_PIPELINE_ALERT_FORMAT", "discord")
        delivery = alerts.send_alert(_alert(), webhook_url=rec.url)
    assert delivery.webhook_error and "is not one of" in delivery.webhook_error
    assert rec.received == []


# --- delivery -------------------------------------------------------------------------------


def test_a_500_receiver_is_retried_then_logged(chat: Callable[..., WebhookReceiver],
                                               caplog: pytest.LogCaptureFixture) -> None:
    rec = chat("slack", status=500)
    with caplog.at_level(logging.WARNING, logger="stx_pipeline.alerts"):
        delivery = alerts.send_alert(_alert(), policy=FAST)  # never raises
    assert len(rec.received) == 3 and rec.accepted == []
    assert not delivery.webhook_sent and delivery.webhook_attempts == 3
    assert delivery.webhook_error == "webhook answered HTTP 500 (server error) after 3 attempts"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("retrying in" in m for m in messages) == 2
    failed = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert "secret" not in "\n".join(messages)  # the URL (a token) is never logged
    # the alert is still in the status file for whoever looks there
    assert json.loads(Path(os.environ["STX_PIPELINE_STATUS_FILE"]).read_text())["alerts"]


def test_a_flaky_receiver_gets_the_alert_on_a_later_attempt(
    chat: Callable[..., WebhookReceiver],
) -> None:
    rec = chat("teams", status=[500, 503, 200])
    delivery = alerts.send_alert(_alert(), policy=FAST)
    assert delivery.ok and delivery.webhook_attempts == 3 and len(rec.accepted) == 1


def test_backoff_grows_and_honours_retry_after() -> None:
    policy = alerts.DeliveryPolicy(backoff_seconds=1.0, max_backoff_seconds=30.0)
    waits = [policy.delay(n) for n in (1, 2, 3, 4)]
    assert 1.0 <= waits[0] <= 1.25 and 2.0 <= waits[1] <= 2.5 and 4.0 <= waits[2] <= 5.0
    assert policy.delay(10) == 30.0 and policy.delay(1, retry_after=7) == 7.0
    assert policy.delay(1, retry_after=600) == 30.0


def test_a_failed_delivery_never_fails_the_sensor_tick(
    chat: Callable[..., WebhookReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = chat("slack", status=500)
    monkeypatch.setenv("STX_PIPELINE_ALERT_ATTEMPTS", "2")
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("transactions"), check_name="no_gaps", passed=False,
            severity=dg.AssetCheckSeverity.ERROR, description="1 gap"))
        result = check_alert_sensor(dg.build_sensor_context(instance=instance))
    assert "1 alerts sent" in result.skip_reason.skip_message
    assert len(rec.received) == 2  # tried twice, then given up for this state change
    assert set(json.loads(result.cursor)["firing"]) == {"transactions/no_gaps"}


# --- fail -> resolved through real runs ------------------------------------------------------


def test_failing_then_passing_check_over_runs_is_exactly_two_messages(
    chat: Callable[..., WebhookReceiver], make_simulator: Callable[..., Simulator],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`backfill_complete` fails in two page-limited runs and passes in the third."""
    rec = chat("slack")
    monkeypatch.setenv("STX_PIPELINE_UI_URL", UI)
    sim = make_simulator(history_days=3, tx_per_day=1500)
    db = tmp_path / "w.duckdb"
    cursor = None
    run_ids = []
    with dg.instance_for_test() as instance:
        for max_pages in (4, 4, 10_000):
            result = dg.materialize([transactions, *CHECKS], instance=instance,
                                    resources=resources(sim, db),
                                    run_config=run_config(max_pages=max_pages))
            assert result.success
            run_ids.append(result.run_id)
            for _ in range(2):  # ticks between runs add nothing
                tick = check_alert_sensor(dg.build_sensor_context(instance=instance,
                                                                  cursor=cursor))
                cursor = tick.cursor
    assert rec.refused == []
    assert [(b["blocks"][0]["text"]["text"]) for b in rec.accepted] == [
        ":warning: [WARN] transactions / backfill_complete",
        ":white_check_mark: [RESOLVED] transactions / backfill_complete",
    ]
    firing, resolved = rec.accepted
    assert f"{UI}runs/{run_ids[0]}" in firing["text"] and "days still missing" in firing["text"]
    assert f"{UI}runs/{run_ids[2]}" in resolved["text"]


# --- freshness without runs ------------------------------------------------------------------


def _backfill(sim: Simulator, db: Path) -> None:
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        result = ensure_transaction_history(max_days=1, db_path=str(db), client=client,
                                            status_path=str(db.parent / "bf.json"))
    assert result.complete, result.to_dict()


@pytest.fixture
def stale_history(env: Path, make_simulator: Callable[..., Simulator], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Simulator, Path]]:
    """A complete 1-day history whose newest block is 10 h old (the API stopped moving)."""
    sim = make_simulator(history_days=2, tx_per_day=1500, now=int(time.time()) - 10 * 3600)
    db = tmp_path / "w.duckdb"
    _backfill(sim, db)
    monkeypatch.setenv("STX_PIPELINE_DB", str(db))
    yield sim, db


def test_stale_data_without_any_run_alerts_once_then_resolves(
    stale_history: tuple[Simulator, Path], chat: Callable[..., WebhookReceiver],
) -> None:
    sim, db = stale_history
    rec = chat("slack")
    cursor = None
    recorded: list[dg.AssetCheckEvaluation] = []
    with dg.instance_for_test() as instance:
        for _ in range(4):  # four ticks, no run anywhere
            result = freshness_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
            cursor = result.cursor
            recorded += result.asset_events
        assert instance.get_runs() == []
        assert len(rec.accepted) == 1, rec.accepted
        text = rec.accepted[0]["text"]
        assert text.startswith("[WARN] transactions / fresh: newest block_time is 10.")
        assert "SLA 6 h" in text and "What to do" in text
        # recorded once as a failed `fresh` evaluation, for the UI
        assert [(e.check_name, e.passed) for e in recorded] == [("fresh", False)]

        # The head moves and a backfill outside Dagster (cron) catches up: one resolved.
        sim.advance(10 * 3600)
        _backfill(sim, db)
        for _ in range(2):
            result = freshness_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
            cursor = result.cursor
            recorded += result.asset_events
        assert instance.get_runs() == []
    assert len(rec.accepted) == 2 and rec.refused == []
    assert rec.accepted[1]["text"].startswith("[RESOLVED] transactions / fresh")
    assert [(e.check_name, e.passed) for e in recorded] == [("fresh", False), ("fresh", True)]


def test_freshness_sensor_says_nothing_before_any_data(env: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STX_PIPELINE_DB", str(env / "missing.duckdb"))
    with dg.instance_for_test() as instance:
        result = freshness_sensor(dg.build_sensor_context(instance=instance))
    assert result.asset_events == [] and "no transactions loaded" in (
        result.skip_reason.skip_message)


# --- the external health check ----------------------------------------------------------------


def _status_check(db: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stx_pipeline.cli", "status", "--check", "--days", "1",
         "--db", str(db), *extra], env=cli_env(tmp_path), capture_output=True, text=True,
        timeout=60,
    )


def test_status_check_exit_codes_for_monitors(stale_history: tuple[Simulator, Path],
                                              tmp_path: Path) -> None:
    sim, db = stale_history
    stale = _status_check(db, tmp_path)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert stale.stdout.startswith("UNHEALTHY: stale: newest block_time is 10.")
    assert "incomplete" not in stale.stdout
    relaxed = _status_check(db, tmp_path, "--fresh-hours", "12")
    assert relaxed.returncode == 0 and relaxed.stdout.startswith("OK: complete"), relaxed.stdout
    longer = _status_check(db, tmp_path, "--days", "2", "--fresh-hours", "12", "--json")
    report = json.loads(longer.stdout)
    assert longer.returncode == 1 and report["healthy"] is False
    assert [p.split(":")[0] for p in report["problems"]] == ["incomplete"]
    missing = _status_check(tmp_path / "nope.duckdb", tmp_path)
    assert missing.returncode == 1 and "no database yet" in missing.stdout
    bad = _status_check(db, tmp_path, "--fresh-hours", "0")
    assert bad.returncode == 2 and "expected a number > 0" in bad.stderr

    sim.advance(10 * 3600)
    _backfill(sim, db)
    fresh = _status_check(db, tmp_path)
    assert fresh.returncode == 0 and fresh.stdout.startswith("OK: complete"), fresh.stdout
