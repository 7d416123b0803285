"""Typed errors of the Hiro client.

Every message is one line that says what went wrong and what to do, and never
contains the API key (the key lives only in the session's headers).
"""

from __future__ import annotations

from datetime import datetime


class TransientError(Exception):
    """A failure worth another attempt; only the client's retry policy sees it.

    `kind` feeds the fault counters. `wait_seconds` is set when the server said how long
    to wait (429 retry-after); otherwise the exponential backoff applies. The message is
    already redacted.
    """

    def __init__(self, kind: str, message: str, wait_seconds: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.wait_seconds = wait_seconds


class HiroError(Exception):
    """Base class: anything the Hiro API or the network did wrong."""


class HiroRequestError(HiroError):
    """A 4xx other than 410/429: our request is wrong; retrying will not help."""

    def __init__(self, status: int, server_message: str, url_path: str) -> None:
        self.status = status
        self.server_message = server_message
        self.url_path = url_path
        super().__init__(
            f"Hiro API rejected the request {url_path} with HTTP {status}: {server_message}"
        )


class EndpointGone(HiroError):
    """410 Gone: the operator switched the deprecated /extended/v1/tx route off."""

    def __init__(self, url_path: str, server_message: str = "") -> None:
        self.url_path = url_path
        self.server_message = server_message
        super().__init__(
            f"Hiro API answered 410 Gone for {url_path}: the endpoint has been retired"
            f" by this server ({server_message or 'no message'}); its replacement is"
            " /extended/v3/transactions: set HIRO_SOURCE=v3 (or auto, the default)"
        )


class RateLimitExhausted(HiroError):
    """429 asking for a wait longer than we are willing to sleep (a spent quota)."""

    def __init__(self, wait_seconds: float, retry_at: datetime, message: str | None = None
                 ) -> None:
        self.wait_seconds = wait_seconds
        self.retry_at = retry_at
        super().__init__(message or (
            f"Hiro API rate limit exhausted: the server asks to wait {wait_seconds:.0f}s;"
            f" stopped instead of sleeping, retry after {retry_at.isoformat()}"
        ))


def _month_reset(retry_at: datetime, known: bool) -> str:
    return retry_at.isoformat() + ("" if known else " (assumed: the next calendar month, UTC)")


class MonthlyQuotaExhausted(RateLimitExhausted):
    """429 with the month's quota at 0 and no `retry-after`: nothing to wait for today."""

    def __init__(self, limit: int | None, retry_at: datetime, reset_known: bool,
                 now: datetime) -> None:
        self.limit = limit
        self.reset_known = reset_known
        of = f" of {limit:,}" if limit else ""
        super().__init__(
            max((retry_at - now).total_seconds(), 0.0), retry_at,
            f"Hiro API rate limit exhausted: this month's quota is spent (0{of} requests"
            f" left); stopped, the backfill resumes after {_month_reset(retry_at, reset_known)}",
        )


class QuotaReserveReached(RateLimitExhausted):
    """The month's quota is down to the reserve we keep: stop before spending it."""

    def __init__(self, remaining: int, limit: int | None, reserve: int, retry_at: datetime,
                 reset_known: bool, now: datetime) -> None:
        self.remaining = remaining
        self.limit = limit
        self.reserve = reserve
        self.reset_known = reset_known
        of = f" of {limit:,}" if limit else ""
        super().__init__(
            max((retry_at - now).total_seconds(), 0.0), retry_at,
            f"Hiro API rate limit exhausted: {remaining:,}{of} requests left this month and"
            f" {reserve:,} are kept in reserve (HIRO_QUOTA_RESERVE); stopped before spending"
            f" them, the backfill resumes after {_month_reset(retry_at, reset_known)}",
        )


class BadResponse(HiroError):
    """A 2xx answer that is not the JSON we expect (wrong content type, wrong shape)."""


class HiroUnavailable(HiroError):
    """Retries exhausted on transient failures (connection, timeout, 429, 5xx, bad JSON)."""

    def __init__(self, url_path: str, attempts: int, last_problem: str) -> None:
        self.url_path = url_path
        self.attempts = attempts
        self.last_problem = last_problem
        super().__init__(
            f"Hiro API unavailable: {url_path} failed {attempts} times (last: {last_problem});"
            " the backfill is resumable, run it again later"
        )
