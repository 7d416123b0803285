"""Alert delivery: an `alerts` entry in the status JSON and an optional webhook POST.

Pure Python (no Dagster) so the CLI, the until-complete loop and the Dagster sensors share one
implementation. Delivering an alert must never break the caller: every failure is
retried with backoff, then logged and reported in the returned `AlertDelivery`, never
raised. The webhook URL is read from the environment only and is never written to disk
or logged.

The webhook body is one a chat tool accepts as it is: Slack's incoming webhooks want a
`text` (and optional `blocks`), Microsoft Teams (Workflows and the older connectors) an
Adaptive Card in `attachments`; the two cannot share one body, so
`$STX_PIPELINE_ALERT_FORMAT` picks one (`auto` guesses from the URL's host).

An alert describes a state change of one condition (`key`): `firing` when it starts to
fail, `resolved` when it passes again. `AlertStates` is the bookkeeping that turns a
stream of evaluations into exactly those two messages.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import requests

from stx_pipeline import settings
from stx_pipeline.backfill.status import default_status_path, update_status_file

log = logging.getLogger(__name__)

# Keep the status file small: old alerts are dropped, newest kept.
MAX_ALERTS_KEPT = 200
WEBHOOK_TIMEOUT_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 30.0

SEVERITIES = ("INFO", "WARN", "ERROR")
State = Literal["firing", "resolved"]

# Slack's documented limits, so a long message is cut instead of the whole POST refused.
SLACK_HEADER_MAX = 150
SLACK_TEXT_MAX = 3000
SLACK_FIELD_MAX = 2000


@dataclass(frozen=True)
class Alert:
    """One alert: a condition (`asset`/`check`) that started failing or passes again."""

    asset: str
    check: str
    severity: str
    message: str
    run_id: str | None = None
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    state: State = "firing"
    action: str | None = None  # what to do about it, one line

    @property
    def key(self) -> str:
        return f"{self.asset}/{self.check}"

    def run_url(self, ui_url: str | None = None) -> str | None:
        """The run (else the asset) in the Dagster UI when `$STX_PIPELINE_UI_URL` is set."""
        base = (ui_url if ui_url is not None else settings.current().ui_url or "").strip()
        if not base:
            return None
        base = base.rstrip("/")
        if self.run_id:
            return f"{base}/runs/{self.run_id}"
        return f"{base}/assets/{self.asset}"

    def headline(self) -> str:
        word = "RESOLVED" if self.state == "resolved" else f"{self.severity}"
        return f"[{word}] {self.asset} / {self.check}"

    def one_line(self) -> str:
        first = (self.message or "").strip().splitlines()
        return first[0] if first else ("passes again" if self.state == "resolved" else "failed")

    def to_dict(self) -> dict[str, Any]:
        """The record kept in the status file (and the `generic` webhook body's fields)."""
        return {
            "asset": self.asset,
            "check": self.check,
            "severity": self.severity,
            "state": self.state,
            "message": self.message,
            "action": self.action,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
        }


# --- webhook bodies -------------------------------------------------------------------------


def detect_format(url: str, setting: str | None = None) -> str:
    """`slack`, `teams` or `generic`: the setting, or for `auto` a guess from the URL's host."""
    if setting is not None and setting.strip():
        value = settings.parse_value("STX_PIPELINE_ALERT_FORMAT", setting)
    else:
        value = settings.current().alert_format if setting is None else "auto"
    if value != "auto":
        return value
    host = (urlsplit(url).hostname or "").lower()
    if host == "hooks.slack.com" or host.endswith(".slack.com"):
        return "slack"
    teams_hosts = (".webhook.office.com", ".logic.azure.com", ".powerplatform.com",
                   ".powerautomate.com")
    if host.endswith(teams_hosts) or host == "outlook.office.com":
        return "teams"
    return "generic"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain_text(alert: Alert, run_url: str | None) -> str:
    """The message as one short paragraph: the `text` of every format."""
    parts = [f"{alert.headline()}: {alert.one_line()}"]
    if alert.action and alert.state == "firing":
        parts.append(f"What to do: {alert.action}")
    if run_url:
        parts.append(f"Run: {run_url}")
    return "\n".join(parts)


def slack_payload(alert: Alert, run_url: str | None) -> dict[str, Any]:
    """`text` (notifications, fallback) plus Block Kit blocks with the structured fields."""
    emoji = ":white_check_mark:" if alert.state == "resolved" else (
        ":red_circle:" if alert.severity == "ERROR" else ":warning:")
    body = f"*What is wrong:* {_slack_escape(alert.one_line())}"
    if alert.state == "resolved":
        body = f"*Resolved:* {_slack_escape(alert.one_line())}"
    elif alert.action:
        body += f"\n*What to do:* {_slack_escape(alert.action)}"
    fields = [
        ("Asset", alert.asset), ("Check", alert.check), ("Severity", alert.severity),
        ("State", alert.state), ("At", alert.timestamp),
    ]
    if alert.run_id:
        fields.append(("Run", alert.run_id))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "emoji": True,
                                    "text": _cut(f"{emoji} {alert.headline()}", SLACK_HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, SLACK_TEXT_MAX)}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": _cut(f"*{name}*\n{_slack_escape(value)}", SLACK_FIELD_MAX)}
            for name, value in fields
        ]},
    ]
    if run_url:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open in Dagster"},
            "url": run_url,
        }]})
    return {"text": _cut(_slack_escape(plain_text(alert, run_url)), SLACK_TEXT_MAX),
            "blocks": blocks}


def teams_payload(alert: Alert, run_url: str | None) -> dict[str, Any]:
    """A message with one Adaptive Card: what Teams Workflows webhooks (and connectors) take."""
    color = "Good" if alert.state == "resolved" else (
        "Attention" if alert.severity == "ERROR" else "Warning")
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": alert.headline(), "weight": "Bolder", "size": "Medium",
         "color": color, "wrap": True},
        {"type": "TextBlock", "text": alert.one_line(), "wrap": True},
    ]
    if alert.action and alert.state == "firing":
        body.append({"type": "TextBlock", "text": f"What to do: {alert.action}", "wrap": True})
    facts = [("Asset", alert.asset), ("Check", alert.check), ("Severity", alert.severity),
             ("State", alert.state), ("At", alert.timestamp)]
    if alert.run_id:
        facts.append(("Run", alert.run_id))
    body.append({"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in facts]})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if run_url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Dagster", "url": run_url}]
    return {
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": None,
            "content": card,
        }],
    }


def generic_payload(alert: Alert, run_url: str | None) -> dict[str, Any]:
    """Every field flat, plus `text` so Slack-compatible receivers (Mattermost...) show it."""
    return {"text": plain_text(alert, run_url), **alert.to_dict(), "run_url": run_url}


PAYLOADS: dict[str, Callable[[Alert, str | None], dict[str, Any]]] = {
    "slack": slack_payload,
    "teams": teams_payload,
    "generic": generic_payload,
}


def webhook_payload(alert: Alert, fmt: str, ui_url: str | None = None) -> dict[str, Any]:
    return PAYLOADS[fmt](alert, alert.run_url(ui_url))


# --- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: attempts, exponential backoff with jitter, per-request timeout."""

    attempts: int = settings.BY_NAME["STX_PIPELINE_ALERT_ATTEMPTS"].default
    backoff_seconds: float = settings.BY_NAME["STX_PIPELINE_ALERT_BACKOFF_SECONDS"].default
    max_backoff_seconds: float = MAX_BACKOFF_SECONDS
    timeout: float = WEBHOOK_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> DeliveryPolicy:
        current = settings.current()
        return cls(attempts=current.alert_attempts,
                   backoff_seconds=current.alert_backoff_seconds, timeout=timeout)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before attempt `attempt + 1`: the server's Retry-After, else 1x, 2x, 4x ..."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_backoff_seconds)
        base = self.backoff_seconds * (2 ** (attempt - 1))
        return min(base * (1 + random.uniform(0, 0.25)), self.max_backoff_seconds)


@dataclass
class AlertDelivery:
    """What happened to one alert, so callers can log it and tests can assert on it."""

    status_file: Path | None = None
    status_file_error: str | None = None
    webhook_sent: bool = False
    webhook_status: int | None = None
    webhook_error: str | None = None
    webhook_attempts: int = 0
    webhook_format: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_file_error is None and self.webhook_error is None


def status_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The status JSON: explicit path, else the one status file (settings.py)."""
    return Path(path) if path is not None else default_status_path()


def record_alert(alert: Alert, path: str | os.PathLike[str] | None = None) -> Path:
    """Append `alert` to the `alerts` list of the status JSON, keeping every other key."""

    def change(data: dict[str, Any]) -> dict[str, Any]:
        alerts = data.get("alerts")
        if not isinstance(alerts, list):
            alerts = []
        alerts.append(alert.to_dict())
        return {**data, "alerts": alerts[-MAX_ALERTS_KEPT:], "last_alert": alert.to_dict()}

    return update_status_file(change, status_file_path(path))


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After", "").strip()
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def post_webhook(
    payload: dict[str, Any],
    url: str,
    policy: DeliveryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int | None, str | None, int]:
    """POST `payload` as JSON, retrying network errors, 429 and 5xx with backoff.

    Returns (last HTTP status, error text or None, attempts made). Never raises; the
    error text never contains the URL (it may hold a secret token).
    """
    policy = policy or DeliveryPolicy.from_env()
    status: int | None = None
    error: str | None = None
    for attempt in range(1, policy.attempts + 1):
        retry_after: float | None = None
        try:
            resp = requests.post(url, json=payload, timeout=policy.timeout)
        except requests.RequestException as exc:
            # The exception text can contain the URL; report only its class.
            status, error = None, f"webhook request failed: {type(exc).__name__}"
        else:
            status = resp.status_code
            if status < 300:
                return status, None, attempt
            detail = " ".join(resp.text.split())[:120]
            error = f"webhook answered HTTP {status}" + (f" ({detail})" if detail else "")
            if status != 429 and status < 500:
                return status, error + "; the payload was refused, not retried", attempt
            retry_after = _retry_after(resp) if status == 429 else None
        if attempt < policy.attempts:
            wait = policy.delay(attempt, retry_after)
            log.warning("alert webhook attempt %d/%d: %s; retrying in %.1f s",
                        attempt, policy.attempts, error, wait)
            sleep(wait)
    return status, f"{error} after {policy.attempts} attempts", policy.attempts


def send_alert(
    alert: Alert,
    *,
    status_path: str | os.PathLike[str] | None = None,
    webhook_url: str | None = None,
    timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    policy: DeliveryPolicy | None = None,
) -> AlertDelivery:
    """Log the alert, record it in the status file and POST it to the webhook if configured.

    `webhook_url` defaults to `$STX_PIPELINE_ALERT_WEBHOOK`; it is never persisted.
    """
    if alert.state == "resolved":
        level = logging.INFO
    else:
        level = logging.ERROR if alert.severity == "ERROR" else logging.WARNING
    word = "RESOLVED" if alert.state == "resolved" else alert.severity
    log.log(level, "ALERT %s %s/%s: %s", word, alert.asset, alert.check, alert.message)
    delivery = AlertDelivery()
    try:
        delivery.status_file = record_alert(alert, status_path)
    except Exception as exc:  # never let bookkeeping break the caller
        delivery.status_file_error = f"{type(exc).__name__}: {exc}"
        log.error("could not record alert in status file: %s", delivery.status_file_error)
    try:
        url = webhook_url if webhook_url is not None else settings.current().alert_webhook
        if not url:
            return delivery
        fmt = detect_format(url)
        payload = webhook_payload(alert, fmt)
    except Exception as exc:  # a bad setting must not break the caller either
        delivery.webhook_error = f"alert not sent: {exc}"
        log.error("%s", delivery.webhook_error)
        return delivery
    delivery.webhook_format = fmt
    status, error, attempts = post_webhook(
        payload, url, policy or DeliveryPolicy.from_env(timeout=timeout)
    )
    delivery.webhook_status, delivery.webhook_error = status, error
    delivery.webhook_attempts = attempts
    delivery.webhook_sent = error is None
    if error:
        log.error("alert webhook (%s) not delivered for %s: %s", fmt, alert.key, error)
    return delivery


# --- one alert per state change -------------------------------------------------------------


@dataclass
class AlertStates:
    """Which conditions are firing (key -> since when), kept in a sensor cursor.

    `observe` says what to send for a new evaluation: `firing` the first time a condition
    fails, `resolved` the first time it passes after that, nothing otherwise.
    """

    firing: dict[str, str] = field(default_factory=dict)

    def observe(self, key: str, failing: bool, at: str | None = None) -> State | None:
        if failing and key not in self.firing:
            self.firing[key] = at or datetime.now(UTC).isoformat()
            return "firing"
        if not failing and key in self.firing:
            del self.firing[key]
            return "resolved"
        return None

    @classmethod
    def from_dict(cls, raw: Any) -> AlertStates:
        if not isinstance(raw, dict):
            return cls()
        return cls({str(k): str(v) for k, v in raw.items()})

    def to_dict(self) -> dict[str, str]:
        return dict(sorted(self.firing.items()))
