"""Alert delivery: an `alerts` entry in the status JSON and an optional webhook POST.

Pure Python (no Dagster) so the CLI, the monitor loop and the Dagster sensors share one
implementation. Delivering an alert must never break the caller: every failure is
logged and reported in the returned `AlertDelivery`, never raised. The webhook URL is
read from the environment only and is never written to disk.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from stx_pipeline.backfill.status import update_status_file

log = logging.getLogger(__name__)

STATUS_FILE_ENV = "STX_PIPELINE_STATUS_FILE"
WEBHOOK_ENV = "STX_PIPELINE_ALERT_WEBHOOK"
DEFAULT_STATUS_FILE = Path("data/backfill_status.json")
# Keep the status file small: old alerts are dropped, newest kept.
MAX_ALERTS_KEPT = 200
WEBHOOK_TIMEOUT_SECONDS = 5.0

SEVERITIES = ("INFO", "WARN", "ERROR")


@dataclass(frozen=True)
class Alert:
    """One alert; `to_dict()` is exactly the webhook payload."""

    asset: str
    check: str
    severity: str
    message: str
    run_id: str | None = None
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
        }


@dataclass
class AlertDelivery:
    """What happened to one alert, so callers can log it and tests can assert on it."""

    status_file: Path | None = None
    status_file_error: str | None = None
    webhook_sent: bool = False
    webhook_status: int | None = None
    webhook_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_file_error is None and self.webhook_error is None


def status_file_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The status JSON: explicit path, else `$STX_PIPELINE_STATUS_FILE`, else the default."""
    if path is not None:
        return Path(path)
    env = os.environ.get(STATUS_FILE_ENV)
    return Path(env) if env else DEFAULT_STATUS_FILE


def record_alert(alert: Alert, path: str | os.PathLike[str] | None = None) -> Path:
    """Append `alert` to the `alerts` list of the status JSON, keeping every other key."""

    def change(data: dict[str, Any]) -> dict[str, Any]:
        alerts = data.get("alerts")
        if not isinstance(alerts, list):
            alerts = []
        alerts.append(alert.to_dict())
        return {**data, "alerts": alerts[-MAX_ALERTS_KEPT:], "last_alert": alert.to_dict()}

    return update_status_file(change, status_file_path(path))


def post_webhook(
    alert: Alert, url: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS
) -> tuple[int | None, str | None]:
    """POST the alert as JSON; return (HTTP status, error text). Never raises."""
    try:
        resp = requests.post(url, json=alert.to_dict(), timeout=timeout)
    except requests.RequestException as exc:
        # The exception text can contain the URL; report only its class.
        return None, f"webhook request failed: {type(exc).__name__}"
    if resp.status_code >= 400:
        return resp.status_code, f"webhook answered HTTP {resp.status_code}"
    return resp.status_code, None


def send_alert(
    alert: Alert,
    *,
    status_path: str | os.PathLike[str] | None = None,
    webhook_url: str | None = None,
    timeout: float = WEBHOOK_TIMEOUT_SECONDS,
) -> AlertDelivery:
    """Log the alert, record it in the status file and POST it to the webhook if configured.

    `webhook_url` defaults to `$STX_PIPELINE_ALERT_WEBHOOK`; it is never persisted.
    """
    level = logging.ERROR if alert.severity == "ERROR" else logging.WARNING
    log.log(level, "ALERT %s %s/%s: %s", alert.severity, alert.asset, alert.check, alert.message)
    delivery = AlertDelivery()
    try:
        delivery.status_file = record_alert(alert, status_path)
    except Exception as exc:  # never let bookkeeping break the caller
        delivery.status_file_error = f"{type(exc).__name__}: {exc}"
        log.error("could not record alert in status file: %s", delivery.status_file_error)
    url = webhook_url if webhook_url is not None else os.environ.get(WEBHOOK_ENV, "").strip()
    if url:
        status, error = post_webhook(alert, url, timeout=timeout)
        delivery.webhook_status = status
        delivery.webhook_error = error
        delivery.webhook_sent = error is None
        if error:
            log.error("alert webhook not delivered: %s", error)
    return delivery
