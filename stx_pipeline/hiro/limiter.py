"""A thread-safe client-side rate limiter shared by every worker of one HiroClient.

Why: many fetch threads share one API key. Bouncing off 429s wastes attempts and,
on the hosted gateway, can escalate into long penalties; spacing requests evenly
below the limit keeps every worker busy without ever tripping it.

Model: a GCRA (virtual-time token bucket). Each `acquire()` reserves the next free
slot under a lock and sleeps outside it, so N threads are spaced `60/rpm` apart
regardless of N. The rate is the configured requests per minute, lowered (never
raised above the configured value) by what the server reports in its
`ratelimit-limit` / `ratelimit-remaining` / `ratelimit-reset` headers, and
`block_until()` parks everyone after a 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

# A `ratelimit-reset` below this is a number of seconds; above it, a unix timestamp.
RESET_EPOCH_THRESHOLD = 1e9
# Use this fraction of a server-announced limit: a 3% reserve for clock skew between our
# pacing and the gateway's window (measured: 0 x 429 at 150 ms and 1200 rpm, 92% of ceiling).
SERVER_LIMIT_SAFETY = 0.97


def reset_seconds(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds until a `ratelimit-reset` value; None if absent or unparseable.

    The Hiro docs disagree on its meaning (unix timestamp vs seconds remaining), so a
    value below 1e9 is taken as seconds and anything larger as a unix timestamp.
    """
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if number != number or number < 0:  # NaN or negative
        return None
    if number < RESET_EPOCH_THRESHOLD:
        return number
    now_epoch = time.time() if now_epoch is None else now_epoch
    return max(0.0, number - now_epoch)


class RateLimiter:
    """Spaces requests of many threads under one requests-per-minute budget.

    `requests_per_minute` None or 0 means no client-side cap; server headers and
    `block_until` still apply (set `adaptive=False` to ignore headers). `burst` is the
    number of requests allowed back to back; it defaults to 1 because we do not know
    where the server's window starts, and a burst at a window edge can cross it.
    `max_block_seconds` caps how long headers may park callers: a reset hours away (a
    spent quota) is left to the 429 path, which raises instead of hanging every thread.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        *,
        burst: int = 1,
        adaptive: bool = True,
        max_block_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute < 0:
            raise ValueError("requests_per_minute must be >= 0 (0 or None = unlimited)")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._configured: float | None = float(requests_per_minute) if requests_per_minute else None
        self._server_rpm: float | None = None
        self._burst = burst
        self._adaptive = adaptive
        self._max_block = float(max_block_seconds)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._blocked_until = 0.0
        # Temporary slower pacing while the server says few requests remain in its window.
        self._slow_interval = 0.0
        self._slow_until = 0.0
        self.total_wait_seconds = 0.0

    @property
    def configured_rpm(self) -> float | None:
        return self._configured

    @property
    def current_rpm(self) -> float | None:
        """The rate now applied (requests per minute), None when unlimited."""
        with self._lock:
            interval = self._interval_locked(self._clock())
        return None if interval <= 0 else 60.0 / interval

    def _interval_locked(self, now: float) -> float:
        rates = [r for r in (self._configured, self._server_rpm) if r]
        interval = 60.0 / min(rates) if rates else 0.0
        if now < self._slow_until:
            interval = max(interval, self._slow_interval)
        return interval

    def acquire(self) -> float:
        """Wait for this caller's slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            interval = self._interval_locked(now)
            tolerance = (self._burst - 1) * interval
            start = max(now, self._tat - tolerance, self._blocked_until)
            self._tat = max(self._tat, start) + interval
            wait = start - now
            self.total_wait_seconds += wait
        if wait > 0:
            self._sleep(wait)
        return wait

    def block_until(self, monotonic_deadline: float) -> None:
        """Hold every caller until `monotonic_deadline` (after a 429's retry-after)."""
        with self._lock:
            if monotonic_deadline > self._blocked_until:
                self._blocked_until = monotonic_deadline
            self._tat = max(self._tat, monotonic_deadline)

    def update_from_headers(self, headers: Mapping[str, str]) -> None:
        """Follow the server's `ratelimit-*` headers (lower-cased keys).

        - a `ratelimit-limit` below the configured rate is adopted (with a 10% reserve);
        - `ratelimit-remaining` 0 blocks until `ratelimit-reset`;
        - few remaining for the time to reset spreads them evenly until the reset.
        Headers are per minute on the Hiro gateway; that is assumed here.
        """
        if not self._adaptive:
            return
        limit = _to_float(headers.get("ratelimit-limit"))
        remaining = _to_float(headers.get("ratelimit-remaining"))
        reset_in = reset_seconds(headers.get("ratelimit-reset"))
        with self._lock:
            now = self._clock()
            if limit is not None and limit > 0:
                adopted = max(1.0, limit * SERVER_LIMIT_SAFETY)
                if self._configured is None or adopted < self._configured:
                    self._server_rpm = adopted
                else:
                    self._server_rpm = None
            if remaining is None or reset_in is None:
                return
            if reset_in > self._max_block:
                return  # a quota reset hours away is not pacing advice
            deadline = now + reset_in
            if remaining <= 0:
                self._blocked_until = max(self._blocked_until, deadline)
                self._tat = max(self._tat, deadline)
                return
            pace = reset_in / remaining
            if pace > self._interval_locked(now):
                self._slow_interval = pace
                self._slow_until = deadline


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return None if number != number else number
