"""HTTP client of the Hiro Stacks API: one pooled session, a shared rate limiter,
bounded retries on transient faults, and typed errors for everything else.

Why it looks like this:
- many fetch threads share one client, so the session pool and the limiter are shared;
- a transient fault (connection, timeout, 429, 5xx, truncated or malformed JSON) is
  retried with jittered exponential backoff, at most `max_attempts` times in total;
- a 429 that asks for a longer wait than `max_rate_limit_wait`, or says the month's quota
  is spent (no `retry-after`), raises `RateLimitExhausted` at once instead of sleeping;
- the limiter learns what the server grants from every answer (hiro/limiter.py);
- the API key lives only in the session's `x-api-key` header. It is scrubbed from every
  message we build, exceptions are raised without chaining the `requests` exception, and
  redirects are not followed (requests would forward `x-api-key` to another host).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from stx_pipeline.hiro.client_stats import ClientStats
from stx_pipeline.hiro.deprecation import DeprecationWatch
from stx_pipeline.hiro.errors import (
    BadResponse,
    EndpointGone,
    HiroError,
    HiroRequestError,
    HiroUnavailable,
    MonthlyQuotaExhausted,
    RateLimitExhausted,
    TransientError,
)
from stx_pipeline.hiro.limiter import (
    LIMIT_HEADERS,
    NAMED_REMAINING,
    RateLimiter,
    reset_seconds,
)
from stx_pipeline.hiro.page import TxPage
from stx_pipeline.hiro.rows import TX_TYPES

logger = logging.getLogger("stx_pipeline.hiro")

DEFAULT_BASE_URL = "https://api.hiro.so"
TX_LIST_PATH = "/extended/v1/tx"
STATUS_PATH = "/extended"
MAX_PAGE_LIMIT = 50
# No rate is assumed: the published plans disagree (25 RPM per IP without a key; 500, 900,
# 3000 or 7000 RPM with one), so the limiter starts with one request and then follows the
# gateway's headers. HIRO_RPM is a cap the user may add, not a default.
DEFAULT_POOL_SIZE = 32

ORDERS = frozenset({"asc", "desc"})
SORT_BYS = frozenset({"block_height", "burn_block_time", "fee"})
HEADERS_OF_INTEREST = (
    *LIMIT_HEADERS,
    "retry-after",
    "x-api-version",
    "warning",
    "etag",
)
_REDACTED = "***"


def validate_base_url(base_url: str) -> str:
    """Return the base URL without a trailing slash, or raise a one-line ValueError."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("HIRO_API_URL is empty: give a URL such as https://api.hiro.so")
    url = base_url.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(
            f"HIRO_API_URL {url!r} is not a valid URL: expected e.g. https://api.hiro.so"
        ) from None
    if parts.username or parts.password:
        raise ValueError(
            "HIRO_API_URL must not embed credentials (user:password@); "
            "use HIRO_API_KEY for the API key"
        )
    if parts.scheme not in ("http", "https") or not hostname:
        raise ValueError(
            f"HIRO_API_URL {url!r} must be an http:// or https:// URL with a host,"
            " e.g. https://api.hiro.so"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"HIRO_API_URL {url!r} must not carry a query string or fragment")
    return url


def _validate_api_key(api_key: str | None) -> str | None:
    if api_key is None:
        return None
    key = api_key.strip()
    if not key:
        return None
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        # requests would echo an invalid header value in its exception: refuse it first.
        raise ValueError(
            "HIRO_API_KEY contains characters not allowed in an HTTP header"
            " (whitespace, control or non-ASCII characters); the key is not shown"
        )
    return key


def _one_line(text: str, limit: int = 240) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `retry-after` header (delta-seconds or HTTP date)."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds:
        return None
    return max(0.0, seconds)


class HiroClient:
    """Client of the Hiro Stacks API, safe to share between threads.

    `requests_per_minute` None or 0 means no client-side cap: the limiter follows what the
    server grants (its headers and 429s). `quota_reserve` is the number of this month's
    requests never spent (None: 1% of the announced quota). `base_url` None means
    https://api.hiro.so; the constructor reads no environment (hiro/factory.py does).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        requests_per_minute: float | None = None,
        max_rate_limit_wait: float = 300.0,
        quota_reserve: int | None = None,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
        limiter: RateLimiter | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = validate_base_url(base_url or DEFAULT_BASE_URL)
        key = _validate_api_key(api_key)
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("connect_timeout and read_timeout must be > 0 seconds")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if backoff_initial < 0 or backoff_max < backoff_initial:
            raise ValueError("backoff must satisfy 0 <= backoff_initial <= backoff_max")
        if max_rate_limit_wait < 0:
            raise ValueError("max_rate_limit_wait must be >= 0 seconds")
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.max_rate_limit_wait = float(max_rate_limit_wait)
        self.max_attempts = int(max_attempts)
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.limiter = limiter if limiter is not None else RateLimiter(
            requests_per_minute, max_block_seconds=self.max_rate_limit_wait,
            quota_reserve=quota_reserve,
        )
        self.stats = ClientStats()
        self.deprecation = DeprecationWatch()  # X-API-Version and Warning of every answer
        self._sleep = sleep
        self._has_key = key is not None
        # Kept only to scrub it from text we did not write (server bodies, requests errors).
        self._redact_token = key
        self._backoff = wait_exponential_jitter(
            multiplier=self.backoff_initial,  # 0.5, 1, 2, 4, 8 s (+ jitter), capped
            max=self.backoff_max,
            jitter=self.backoff_initial,
        )
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {"Accept": "application/json", "User-Agent": "stx_pipeline-hiro-client/0.1"}
        )
        if key is not None:
            self._session.headers["x-api-key"] = key

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> HiroClient:
        """The one factory's client (hiro/factory.py): HIRO_* variables, `overrides` win."""
        from stx_pipeline.hiro.factory import client_from_env

        return client_from_env(environ, **overrides)

    def describe(self) -> dict[str, Any]:
        """Everything that shapes this client's behaviour (no secrets), for comparisons."""
        return {
            "base_url": self.base_url,
            "api_key": self._has_key,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_rate_limit_wait": self.max_rate_limit_wait,
            "max_attempts": self.max_attempts,
            "backoff": (self.backoff_initial, self.backoff_max),
            "requests_per_minute_cap": self.limiter.configured_rpm,
            "quota_reserve_setting": self.limiter._quota_reserve,
            "limiter_mode": self.limiter.mode,
        }

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HiroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        key = "set" if self._has_key else "none"
        return (
            f"HiroClient(base_url={self.base_url!r}, api_key={key},"
            f" rpm_cap={self.limiter.configured_rpm})"
        )

    @property
    def has_api_key(self) -> bool:
        return self._has_key

    # -- endpoints ------------------------------------------------------------------

    def list_transactions(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        order: str | None = None,
        sort_by: str | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        types: Sequence[str] | None = None,
    ) -> TxPage:
        """GET /extended/v1/tx. `start_time`/`end_time` filter burn_block_time, inclusive.

        Arguments are checked before sending (a 400 would waste a rate-limited request).
        `elapsed_seconds` is the wall time of the call, retries and waits included.
        """
        params = _tx_list_params(limit, offset, order, sort_by, start_time, end_time, types)
        body, headers, elapsed = self._get_json(TX_LIST_PATH, params, _check_envelope)
        return TxPage(
            limit=body["limit"],
            offset=body["offset"],
            total=body["total"],
            results=body["results"],
            headers=headers,
            elapsed_seconds=elapsed,
        )

    def get_status(self) -> dict[str, Any]:
        """GET /extended: server version and chain tip, a cheap reachability check."""
        body, _headers, _elapsed = self._get_json(STATUS_PATH, {}, _check_dict)
        return body

    def get_json(
        self, path: str, params: Mapping[str, Any], check: Callable[[Any], str | None]
    ) -> tuple[Any, dict[str, str], float]:
        """GET `path` with the client's limiter, retries and typed errors; `check(body)`
        returns a problem (retried as a bad shape) or None. For the endpoint modules
        (`hiro/v3.py`): (body, headers of interest, elapsed seconds)."""
        return self._get_json(path, params, check)

    # -- machinery ------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        token = self._redact_token
        return text.replace(token, _REDACTED) if token else text

    def _describe(self, path: str, params: Mapping[str, Any]) -> str:
        return self._redact(f"{path}?{urlencode(params)}" if params else path)

    def _get_json(
        self,
        path: str,
        params: Mapping[str, Any],
        check: Callable[[Any], str | None],
    ) -> tuple[Any, dict[str, str], float]:
        started = time.monotonic()
        where = self._describe(path, params)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            problem = exc.message if isinstance(exc, TransientError) else repr(exc)
            wait = state.next_action.sleep if state.next_action else 0.0
            self.stats.add(retries=1)
            logger.warning(
                "Hiro GET %s failed (attempt %d/%d: %s); retrying in %.2fs",
                where, state.attempt_number, self.max_attempts, problem, wait,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            body, headers = retrying(self._attempt, path, params, check)
        except TransientError as exc:
            logger.error(
                "Hiro GET %s gave up after %d attempts: %s", where, self.max_attempts, exc.message
            )
            raise HiroUnavailable(where, self.max_attempts, exc.message) from None
        return body, headers, time.monotonic() - started

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.wait_seconds:
            return exc.wait_seconds
        return float(self._backoff(state))

    def _attempt(
        self, path: str, params: Mapping[str, Any], check: Callable[[Any], str | None]
    ) -> tuple[Any, dict[str, str]]:
        waited = self.limiter.acquire()
        if waited:
            self.stats.add(rate_limit_wait_seconds=waited)
        self.stats.add(requests=1)
        try:
            resp = self._session.get(
                self.base_url + path,
                params=params,
                timeout=(self.connect_timeout, self.read_timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            self.limiter.observe(None, {})
            raise self._send_failed(exc, path, params) from None
        except BaseException:
            self.limiter.observe(None, {})
            raise
        headers = {k: resp.headers[k] for k in HEADERS_OF_INTEREST if k in resp.headers}
        self.deprecation.observe(path, headers, resp.status_code)
        self.limiter.observe(resp.status_code, headers)
        return self._answer(resp, headers, path, params, check)

    def _send_failed(
        self, exc: requests.RequestException, path: str, params: Mapping[str, Any]
    ) -> Exception:
        if isinstance(exc, requests.Timeout):
            return self._fault("timeout", f"timeout ({type(exc).__name__})")
        if isinstance(exc, requests.ConnectionError):
            return self._fault(
                "connection", f"connection error: {_one_line(self._redact(str(exc)), 200)}"
            )
        if isinstance(exc, requests.exceptions.ChunkedEncodingError
                      | requests.exceptions.ContentDecodingError):
            return self._fault(
                "truncated", f"truncated body: {_one_line(self._redact(str(exc)), 160)}"
            )
        return HiroError(
            f"Hiro request to {self._describe(path, params)} could not be sent:"
            f" {type(exc).__name__}: {_one_line(self._redact(str(exc)), 200)}"
        )

    def _answer(self, resp: requests.Response, headers: dict[str, str], path: str,
                params: Mapping[str, Any], check: Callable[[Any], str | None]
                ) -> tuple[Any, dict[str, str]]:
        status = resp.status_code
        if status == 200:
            return self._parse_ok(resp, path, params, check), headers
        if status == 429:
            raise self._rate_limited(headers)
        message = self._server_message(resp)
        if status >= 500:
            raise self._fault("http_5xx", f"HTTP {status}: {message}")
        if status == 410:
            raise EndpointGone(path, message)
        if 400 <= status < 500:
            raise HiroRequestError(status, message, self._describe(path, params))
        if 300 <= status < 400:
            raise BadResponse(
                f"Hiro API at {self.base_url} answered HTTP {status} (redirect) for {path};"
                " redirects are not followed so the API key cannot leak: set HIRO_API_URL to"
                " the final URL"
            )
        raise BadResponse(f"Hiro API answered unexpected HTTP {status} for {path}: {message}")

    def _fault(self, kind: str, message: str, wait: float | None = None) -> TransientError:
        self.stats.add(fault=kind)
        return TransientError(kind, self._redact(message), wait)

    def _rate_limited(self, headers: Mapping[str, str]) -> Exception:
        self.stats.add(responses_429=1)
        retry_after = _parse_retry_after(headers.get("retry-after"))
        reset = reset_seconds(headers.get("ratelimit-reset"))
        wait = retry_after if retry_after is not None else reset
        month_left = headers.get(NAMED_REMAINING.format("month"), "").strip()
        if month_left in ("0", "0.0") and retry_after is None:
            # The month is spent: no retry-after, and no short wait will help.
            self.stats.add(fault="rate_limit_exhausted")
            far = reset if reset is not None and reset > self.max_rate_limit_wait else None
            now = datetime.now(UTC)
            quota = self.limiter.quota_exhausted(
                now + timedelta(seconds=far) if far is not None else None
            )
            error = MonthlyQuotaExhausted(quota.limit, quota.reset_at, quota.reset_known, now)
            logger.error("%s", error)
            return error
        if wait is not None and wait > self.max_rate_limit_wait:
            self.stats.add(fault="rate_limit_exhausted")
            retry_at = datetime.now(UTC) + timedelta(seconds=wait)
            logger.error(
                "Hiro API rate limit exhausted: server asks to wait %.0fs (> max %.0fs)",
                wait, self.max_rate_limit_wait,
            )
            return RateLimitExhausted(wait, retry_at)
        if wait:
            # Park every thread sharing this client, not just this one.
            self.limiter.block_until(time.monotonic() + wait)
        shown = f"{wait:.2f}s" if wait else "unspecified"
        return self._fault("http_429", f"HTTP 429 rate limited (server wait {shown})", wait)

    def _parse_ok(
        self,
        resp: requests.Response,
        path: str,
        params: Mapping[str, Any],
        check: Callable[[Any], str | None],
    ) -> Any:
        content_type = resp.headers.get("content-type", "")
        if "json" not in content_type.lower():
            raise BadResponse(
                f"{self.base_url}{path} answered 200 with content-type"
                f" {_one_line(content_type, 60)!r}, not JSON: this URL does not look like the"
                " Stacks API (check HIRO_API_URL)"
            )
        try:
            body = resp.json()
        except ValueError as exc:
            raise self._fault(
                "malformed_json",
                f"HTTP 200 with unparseable JSON ({len(resp.content)} bytes: {type(exc).__name__})",
            ) from None
        problem = check(body)
        if problem:
            raise self._fault("bad_shape", f"HTTP 200 with unexpected JSON shape: {problem}")
        return body

    def _server_message(self, resp: requests.Response) -> str:
        """The server's own words: Fastify `{statusCode,error,message}` or old `{error}`."""
        text = resp.text or ""
        message = ""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            error = body.get("error")
            detail = body.get("message")
            parts = [str(p) for p in (error, detail) if isinstance(p, str | int) and str(p)]
            message = ": ".join(parts)
        if not message:
            content_type = resp.headers.get("content-type", "").lower()
            if "html" in content_type or text.lstrip().lower().startswith(("<!doctype", "<html")):
                message = f"HTML error page ({resp.reason or 'no reason'})"
            else:
                message = text or resp.reason or "no message"
        return _one_line(self._redact(message), 300)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_envelope(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected an object, got {type(body).__name__}"
    for key in ("limit", "offset", "total"):
        if not _is_int(body.get(key)):
            return f"'{key}' missing or not an integer"
    if body["limit"] < 0 or body["offset"] < 0 or body["total"] < 0:
        return "negative limit/offset/total"
    if not isinstance(body.get("results"), list):
        return "'results' missing or not a list"
    return None


def _check_dict(body: Any) -> str | None:
    return None if isinstance(body, dict) else f"expected an object, got {type(body).__name__}"


def _tx_list_params(
    limit: int,
    offset: int,
    order: str | None,
    sort_by: str | None,
    start_time: int | None,
    end_time: int | None,
    types: Sequence[str] | None,
) -> dict[str, Any]:
    if not _is_int(limit) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}, got {limit!r}")
    if not _is_int(offset) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if order is not None:
        if order not in ORDERS:
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        params["order"] = order
    if sort_by is not None:
        if sort_by not in SORT_BYS:
            raise ValueError(f"sort_by must be one of {sorted(SORT_BYS)}, got {sort_by!r}")
        params["sort_by"] = sort_by
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if value is None:
            continue
        # The API silently ignores 0 (falsy), which would turn a window into "everything".
        if not _is_int(value) or value <= 0:
            raise ValueError(
                f"{name} must be a positive integer unix time in seconds, got {value!r}"
            )
        params[name] = value
    if start_time is not None and end_time is not None and start_time > end_time:
        raise ValueError(f"start_time {start_time} is after end_time {end_time}")
    if types is not None:
        if isinstance(types, str):
            types = [types]
        unknown = [t for t in types if t not in TX_TYPES]
        if unknown or not types:
            raise ValueError(
                f"types must be a non-empty subset of {sorted(TX_TYPES)}, got {types!r}"
            )
        params["type"] = ",".join(types)
    return params
