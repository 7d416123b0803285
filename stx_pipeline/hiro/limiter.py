"""A thread-safe client-side rate limiter shared by every worker of one HiroClient.

Why: many fetch threads share one API key. Bouncing off 429s wastes attempts and, on the
hosted gateway, can escalate into long penalties; spacing requests evenly just below what
the server grants keeps every worker busy without tripping it.

Model: a GCRA (virtual-time token bucket). Each `acquire()` reserves the next free slot
under a lock and sleeps outside it, so N threads are spaced evenly regardless of N. The
rate is *what the server grants*, learned from its headers, up and down:

- named windows `x-ratelimit-limit-stacks-{second,minute}` and the generic
  `ratelimit-limit` (taken as per minute unless it repeats a named window's limit): the
  tightest window wins, divided by `x-ratelimit-cost-stacks`, minus a 1% reserve;
- `HIRO_RPM` (`requests_per_minute`) is a cap the user chose, never a default;
- before the first answer only one request is in flight (a cautious start); a server
  that answers without any limit header (a self-hosted node) is then not paced at all;
- `ratelimit-remaining` / `ratelimit-reset` slow or park everyone when the generic
  window runs low, and `block_until()` parks everyone after a 429's `retry-after`;
- a 429/503 without `retry-after` from a server that announces nothing halves the rate
  observed over the last 10 s; it grows back by a quarter every 5 s without one;
- the monthly quota (`x-ratelimit-{limit,remaining}-stacks-month`) is tracked, and
  `acquire()` raises `QuotaReserveReached` instead of spending the last `quota_reserve`
  requests of the month.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from stx_pipeline.hiro.errors import QuotaReserveReached

# A `ratelimit-reset` below this is a number of seconds; above it, a unix timestamp.
RESET_EPOCH_THRESHOLD = 1e9
# Requests of every server window kept unused: 1% of its limit, at least one request. The
# 1% absorbs arrival jitter at window edges (measured: 0 x 429 at 1200 rpm and at 20/s).
SERVER_LIMIT_RESERVE = 0.01
MIN_RESERVE_REQUESTS = 1.0
# The generic `ratelimit-limit` window when no named header says otherwise (Hiro: minute).
GENERIC_WINDOW_SECONDS = 60.0
WINDOW_SECONDS = {"second": 1.0, "minute": 60.0}
# Requests allowed back to back to catch up after a stall (within every window's slack).
MAX_BURST = 8
# Unannounced servers: a 429/503 sets the rate to this share of the observed one, and
# every clean `BACKOFF_STEP_SECONDS` it grows by `BACKOFF_RECOVERY` until it stops binding.
BACKOFF_SHARE = 0.5
BACKOFF_STEP_SECONDS = 5.0
BACKOFF_RECOVERY = 1.25
MIN_BACKOFF_RATE = 1.0  # requests per second
# Until the first answer, one request at a time; a probe that never reports (a bug in a
# caller) stops gating after this long.
PROBE_TIMEOUT_SECONDS = 60.0
# Default monthly reserve: this share of the month's limit, at least MIN_QUOTA_RESERVE.
QUOTA_RESERVE_SHARE = 0.01
MIN_QUOTA_RESERVE = 100

NAMED_LIMIT = "x-ratelimit-limit-stacks-{}"
NAMED_REMAINING = "x-ratelimit-remaining-stacks-{}"
COST_HEADER = "x-ratelimit-cost-stacks"
LIMIT_HEADERS = (
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    COST_HEADER,
    *(NAMED_LIMIT.format(w) for w in ("second", "minute", "month")),
    *(NAMED_REMAINING.format(w) for w in ("second", "minute", "month")),
)


def reset_seconds(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds until a `ratelimit-reset` value; None if absent or unparseable.

    The Hiro docs disagree on its meaning (unix timestamp vs seconds remaining), so a
    value below 1e9 is taken as seconds and anything larger as a unix timestamp.
    """
    number = _to_float(value)
    if number is None or number < 0:
        return None
    if number < RESET_EPOCH_THRESHOLD:
        return number
    now_epoch = time.time() if now_epoch is None else now_epoch
    return max(0.0, number - now_epoch)


def next_month_start(now: datetime | None = None) -> datetime:
    """First instant of the next UTC calendar month: when a monthly quota is assumed to reset."""
    now = now or datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


def server_reserve(limit: float) -> float:
    """Requests of a window of `limit` kept unused."""
    return max(limit * SERVER_LIMIT_RESERVE, MIN_RESERVE_REQUESTS)


@dataclass(frozen=True)
class Quota:
    """The month's quota as last announced (requests; `reset_at` is when it renews)."""

    limit: int | None
    remaining: int
    observed_at: datetime
    reset_at: datetime
    reset_known: bool  # False: the reset is assumed (next calendar month, UTC)

    @property
    def used(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.remaining, 0)


class RateLimiter:
    """Spaces requests of many threads under what the server grants (and the user's cap).

    `requests_per_minute` None or 0 means no client-side cap. `adaptive=False` ignores
    the server's headers (a fixed rate, for experiments). `max_block_seconds` caps how
    long headers may park callers: a reset hours away (a spent quota) is left to the 429
    path, which raises instead of hanging every thread. `quota_reserve` None means 1% of
    the announced monthly limit (at least 100 requests).
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        *,
        adaptive: bool = True,
        max_block_seconds: float = 300.0,
        quota_reserve: int | None = None,
        cautious_start: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute is not None and requests_per_minute < 0:
            raise ValueError("requests_per_minute must be >= 0 (0 or None = unlimited)")
        if quota_reserve is not None and quota_reserve < 0:
            raise ValueError("quota_reserve must be >= 0 requests")
        self._configured: float | None = float(requests_per_minute) if requests_per_minute else None
        self._adaptive = adaptive
        self._max_block = float(max_block_seconds)
        self._quota_reserve = quota_reserve
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._cond = threading.Condition(threading.Lock())
        # "learning" until the first answer, then "announced" (limit headers seen) or
        # "unannounced" (answers without any limit header). Fixed when not adaptive.
        self._mode = "learning" if (adaptive and cautious_start) else "fixed"
        if adaptive and not cautious_start:
            self._mode = "unannounced"
        self._probe_started: float | None = None
        self._windows: dict[str, float] = {}  # window name -> announced limit
        self._window_seconds: dict[str, float] = {}
        self._cost = 1.0
        self._tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._blocked_until = 0.0
        self._slow_interval = 0.0  # temporary pacing while the generic window runs low
        self._slow_until = 0.0
        self._backoff_rate: float | None = None  # requests/s after a 429/503, unannounced
        self._backoff_step_at = 0.0
        self._backoff_release = 0.0
        self._recent: deque[float] = deque(maxlen=4096)  # acquire times, for the backoff
        self._quota: Quota | None = None
        self.total_wait_seconds = 0.0
        self.idle_seconds = 0.0

    # -- what is applied -----------------------------------------------------------------
    @property
    def configured_rpm(self) -> float | None:
        """The user's cap (HIRO_RPM), None when there is none."""
        return self._configured

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def current_rpm(self) -> float | None:
        """The rate now applied (requests per minute), None when unpaced."""
        with self._cond:
            interval = self._interval_locked(self._clock())
        return None if interval <= 0 else 60.0 / interval

    @property
    def quota(self) -> Quota | None:
        with self._cond:
            return self._quota

    def quota_reserve(self, limit: int | None = None) -> int:
        """Requests of the month never spent: HIRO_QUOTA_RESERVE, else 1% (>= 100)."""
        if self._quota_reserve is not None:
            return self._quota_reserve
        if limit is None:
            quota = self._quota
            limit = quota.limit if quota is not None else None
        if not limit:
            return MIN_QUOTA_RESERVE
        return max(MIN_QUOTA_RESERVE, math.ceil(limit * QUOTA_RESERVE_SHARE))

    def snapshot(self) -> dict[str, object]:
        """JSON-safe view: mode, the applied rate and its source, windows, quota."""
        with self._cond:
            now = self._clock()
            interval = self._interval_locked(now)
            source = self._binding_locked()
            quota = self._quota
            windows = dict(self._windows)
        return {
            "mode": self._mode,
            "rpm": round(60.0 / interval, 1) if interval > 0 else None,
            "source": source,
            "configured_rpm": self._configured,
            "server_windows": windows,
            "cost": self._cost,
            "idle_seconds": round(self.idle_seconds, 3),
            "quota_limit": quota.limit if quota else None,
            "quota_remaining": quota.remaining if quota else None,
            "quota_reset_at": quota.reset_at.isoformat() if quota else None,
        }

    def _rates_locked(self, now: float) -> dict[str, float]:
        """Requests per second allowed by each source in force."""
        rates: dict[str, float] = {}
        if self._configured:
            rates["configured"] = self._configured / 60.0
        for name, limit in self._windows.items():
            seconds = self._window_seconds[name]
            usable = max(limit - server_reserve(limit), MIN_RESERVE_REQUESTS) / seconds
            rates[f"server {name}"] = usable / self._cost
        if self._backoff_rate is not None:
            self._recover_backoff_locked(now)
            if self._backoff_rate is not None:
                rates["backoff"] = self._backoff_rate
        return rates

    def _binding_locked(self) -> str:
        rates = self._rates_locked(self._clock())
        if not rates:
            return "none"
        return min(rates, key=rates.__getitem__)

    def _base_interval_locked(self, now: float) -> float:
        rates = self._rates_locked(now)
        return 1.0 / min(rates.values()) if rates else 0.0

    def _interval_locked(self, now: float) -> float:
        interval = self._base_interval_locked(now)
        if now < self._slow_until:
            interval = max(interval, self._slow_interval)
        return interval

    def _tolerance_locked(self, now: float, interval: float) -> float:
        """Burst allowance when a server window binds: its slack less one, at most 8.

        It lets workers catch up on slots lost to a stall (a slow answer, a busy CPU)
        without any window ever holding more than its limit. None when the user's cap or a
        backoff binds (a cap is exact) or while the server says its window runs low.
        """
        if interval <= 0 or not self._windows or now < self._slow_until:
            return 0.0
        rates = self._rates_locked(now)
        if not min(rates, key=rates.__getitem__).startswith("server"):
            return 0.0
        rate = 1.0 / self._base_interval_locked(now) * self._cost
        slack = min(limit - rate * self._window_seconds[name]
                    for name, limit in self._windows.items())
        burst = max(1, min(MAX_BURST, math.floor(slack) - 1))
        return (burst - 1) * interval

    # -- acquiring -----------------------------------------------------------------------
    def acquire(self) -> float:
        """Wait for this caller's slot; returns the seconds waited.

        Raises `QuotaReserveReached` when the month's quota is down to its reserve.
        """
        with self._cond:
            while self._mode == "learning" and self._probe_started is not None:
                if self._clock() - self._probe_started > PROBE_TIMEOUT_SECONDS:
                    break
                self._cond.wait(timeout=0.5)
            self._check_quota_locked()
            now = self._clock()
            if self._mode == "learning":
                self._probe_started = now
            interval = self._interval_locked(now)
            tolerance = self._tolerance_locked(now, interval)
            start = max(now, self._tat - tolerance, self._blocked_until)
            if interval > 0 and 0 < self._tat < now and self._mode == "announced":
                self.idle_seconds += now - self._tat  # slots nobody was there to use
            self._tat = max(self._tat, start) + interval
            wait = start - now
            self.total_wait_seconds += wait
            self._recent.append(start)
        if wait > 0:
            self._sleep(wait)
        return wait

    def _check_quota_locked(self) -> None:
        quota = self._quota
        if quota is None or not self._adaptive:
            return
        reserve = self.quota_reserve(quota.limit)
        if quota.remaining > reserve:
            return
        if self._wall() >= quota.reset_at:
            return  # the month renewed: the next answer tells the new remaining
        raise QuotaReserveReached(quota.remaining, quota.limit, reserve, quota.reset_at,
                                  quota.reset_known, self._wall())

    def block_until(self, monotonic_deadline: float) -> None:
        """Hold every caller until `monotonic_deadline` (after a 429's retry-after)."""
        with self._cond:
            if monotonic_deadline > self._blocked_until:
                self._blocked_until = monotonic_deadline
            self._tat = max(self._tat, monotonic_deadline)

    # -- learning from answers -----------------------------------------------------------
    def update_from_headers(self, headers: Mapping[str, str]) -> None:
        """Follow one answer's rate-limit headers (lower-cased keys); see `observe`."""
        self.observe(200, headers)

    def observe(self, status: int | None, headers: Mapping[str, str]) -> None:
        """Learn from one answer: `status` None when no answer came (connection failure)."""
        if not self._adaptive:
            return
        with self._cond:
            try:
                self._observe_locked(status, headers)
            finally:
                if self._probe_started is not None:
                    self._probe_started = None
                    self._cond.notify_all()

    def _observe_locked(self, status: int | None, headers: Mapping[str, str]) -> None:
        now = self._clock()
        if status is None:
            return  # no answer: still learning if we were
        self._observe_quota_locked(headers)
        cost = _to_float(headers.get(COST_HEADER))
        if cost is not None and cost > 0:
            self._cost = cost
        named: dict[str, float] = {}
        for name in WINDOW_SECONDS:
            limit = _to_float(headers.get(NAMED_LIMIT.format(name)))
            if limit is not None and limit > 0:
                named[name] = limit
        generic = _to_float(headers.get("ratelimit-limit"))
        generic_name: str | None = None
        if generic is not None and generic > 0:
            month = _to_float(headers.get(NAMED_LIMIT.format("month")))
            generic_name = next((n for n, lim in named.items() if lim == generic), None)
            if generic_name is None and month is not None and month == generic:
                generic_name = "month"  # the quota window: not pacing advice
            elif generic_name is None:
                generic_name = "generic"
                named["generic"] = generic
        if named:
            self._mode = "announced"
            self._backoff_rate = None
            for name, limit in named.items():
                self._windows[name] = limit
                self._window_seconds[name] = WINDOW_SECONDS.get(name, GENERIC_WINDOW_SECONDS)
            if "generic" not in named and generic_name not in (None, "generic"):
                self._windows.pop("generic", None)
        elif self._mode == "learning":
            self._mode = "unannounced"
        if (self._mode == "unannounced" and status in (429, 503)
                and headers.get("retry-after") is None):
            self._back_off_locked(now)  # nothing announced and no wait given: halve
        if generic_name != "month":
            self._follow_remaining_locked(now, headers, generic_name or "generic")

    def _follow_remaining_locked(
        self, now: float, headers: Mapping[str, str], window: str
    ) -> None:
        remaining = _to_float(headers.get("ratelimit-remaining"))
        reset_in = reset_seconds(headers.get("ratelimit-reset"))
        if remaining is None or reset_in is None or reset_in > self._max_block:
            return  # a reset hours away is not pacing advice (the 429 path handles it)
        deadline = now + reset_in
        if remaining <= 0:
            self._blocked_until = max(self._blocked_until, deadline)
            self._tat = max(self._tat, deadline)
            return
        if self._window_seconds.get(window, GENERIC_WINDOW_SECONDS) < 10:
            return  # whole-second resets are too coarse to spread a per-second window
        # A whole-second reset is rounded up: the window may end up to a second sooner,
        # so spread over the shorter span (the last request still never exceeds it).
        span = max(reset_in - 1.0, reset_in / 2) if reset_in >= 1 else reset_in
        pace = span / remaining * self._cost
        if pace > self._interval_locked(now):
            self._slow_interval = pace
            self._slow_until = deadline

    def _observe_quota_locked(self, headers: Mapping[str, str]) -> None:
        remaining = _to_float(headers.get(NAMED_REMAINING.format("month")))
        if remaining is None:
            return
        limit = _to_float(headers.get(NAMED_LIMIT.format("month")))
        now = self._wall()
        current = self._quota
        value = max(int(remaining), 0)
        lim = int(limit) if limit is not None and limit > 0 else None
        if current is not None and now < current.reset_at:
            # answers arrive out of order: keep the lowest count unless the month renewed
            renewed = value > current.remaining + max(64, (lim or 0) * 0.01)
            if not renewed:
                value = min(value, current.remaining)
        reset_at, known = (current.reset_at, current.reset_known) if (
            current is not None and current.reset_known and now < current.reset_at
        ) else (next_month_start(now), False)
        self._quota = Quota(lim, value, now, reset_at, known)

    def quota_exhausted(self, reset_at: datetime | None) -> Quota:
        """A 429 said the month is spent: remaining 0 until `reset_at` (None: assumed)."""
        with self._cond:
            now = self._wall()
            current = self._quota
            known = reset_at is not None
            when = reset_at or (current.reset_at if current else next_month_start(now))
            self._quota = Quota(current.limit if current else None, 0, now, when,
                                known or bool(current and current.reset_known))
            return self._quota

    def _back_off_locked(self, now: float) -> None:
        while self._recent and self._recent[0] < now - 10.0:
            self._recent.popleft()
        span = max(now - self._recent[0], 1.0) if self._recent else 10.0
        observed = len(self._recent) / span if self._recent else 1.0
        current = self._backoff_rate if self._backoff_rate is not None else observed
        self._backoff_rate = max(min(current, observed) * BACKOFF_SHARE, MIN_BACKOFF_RATE)
        self._backoff_step_at = now + BACKOFF_STEP_SECONDS
        self._backoff_release = max(observed, MIN_BACKOFF_RATE) * 2

    def _recover_backoff_locked(self, now: float) -> None:
        rate = self._backoff_rate
        while rate is not None and now >= self._backoff_step_at:
            rate *= BACKOFF_RECOVERY
            self._backoff_step_at += BACKOFF_STEP_SECONDS
            if rate > self._backoff_release:  # well above what was sent: unpaced again
                rate = None
        self._backoff_rate = rate


def _to_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return None if number != number or number in (float("inf"), float("-inf")) else number
