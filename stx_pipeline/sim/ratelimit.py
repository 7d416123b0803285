"""The hosted gateway's rate limiting as Hiro documents it: fixed windows, Hiro's header set.

Windows: per second, per minute and per month (each optional), counted on allowed
requests. Every answer carries `x-ratelimit-cost-stacks`, the named
`x-ratelimit-{limit,remaining}-stacks-{second,minute,month}` headers of each configured
window, and the generic `ratelimit-limit/remaining/reset` of the minute window (else the
second, else the month). A request over a short window gets 429 with `retry-after` and the
generic headers of that window; over the month, 429 *without* `retry-after` and the
generic headers of the month (its reset in seconds or as a unix timestamp). Clients must
learn limits from headers (the published plans disagree), so every setting can change
while a test runs. `quota_exhausted_seconds` is the older blunt mode: every request 429
with that `retry-after`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

RESET_FORMS = ("seconds", "timestamp")
HEADER_SETS = ("both", "generic", "named")
_UNSET: object = object()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None


def _month_bounds(now: float, period: int | None) -> tuple[int, int]:
    """(id, end as unix time) of the month window holding `now`."""
    if period:
        index = int(now // period)
        return index, (index + 1) * period
    day = datetime.fromtimestamp(now, UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return day.year * 12 + day.month, int(datetime(year, month, 1, tzinfo=UTC).timestamp())


class GatewayLimits:
    """Off while no window and no `quota_exhausted_seconds` is set."""

    def __init__(
        self,
        rpm: int | None = None,
        reset_form: str = "seconds",
        quota_exhausted_seconds: int | None = None,
        clock: Callable[[], float] = time.time,
        *,
        rps: int | None = None,
        month: int | None = None,
        month_seconds: int | None = None,
        headers: str = "both",
        cost: int = 1,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock  # swappable, so tests can pin the window
        self._counts: dict[str, tuple[int, int]] = {}  # window -> (window id, count)
        self.rpm: int | None = None
        self.rps: int | None = None
        self.month: int | None = None
        self.month_seconds: int | None = None
        self.reset_form = "seconds"
        self.headers = "both"
        self.cost = 1
        self.quota_exhausted_seconds: int | None = None
        self.configure(rpm=rpm, reset_form=reset_form,
                       quota_exhausted_seconds=quota_exhausted_seconds, rps=rps, month=month,
                       month_seconds=month_seconds, headers=headers, cost=cost)

    def configure(
        self, *, rpm: object = _UNSET, reset_form: object = _UNSET,
        quota_exhausted_seconds: object = _UNSET, rps: object = _UNSET, month: object = _UNSET,
        month_seconds: object = _UNSET, headers: object = _UNSET, cost: object = _UNSET,
        month_used: object = _UNSET,
    ) -> None:
        """Change any setting at run time; the current windows' counts are kept.

        `month_used` sets this month's count (e.g. 0 to renew the quota now).
        """
        with self._lock:
            for name, value in (("rate_limit_rpm", rpm), ("rate_limit_rps", rps),
                                ("rate_limit_month", month),
                                ("quota_exhausted_seconds", quota_exhausted_seconds),
                                ("month_seconds", month_seconds)):
                if value is _UNSET:
                    continue
                if value is not None and (not isinstance(value, int) or value < 1):
                    raise ValueError(f"{name} must be a positive int or None")
            if cost is not _UNSET and (not isinstance(cost, int) or cost < 1):
                raise ValueError("ratelimit_cost must be a positive int")
            if reset_form is not _UNSET and reset_form not in RESET_FORMS:
                raise ValueError(f"ratelimit_reset_form must be one of {RESET_FORMS}")
            if headers is not _UNSET and headers not in HEADER_SETS:
                raise ValueError(f"ratelimit_headers must be one of {HEADER_SETS}")
            if rpm is not _UNSET:
                self.rpm = rpm  # type: ignore[assignment]
            if rps is not _UNSET:
                self.rps = rps  # type: ignore[assignment]
            if month is not _UNSET:
                self.month = month  # type: ignore[assignment]
            if month_seconds is not _UNSET:
                self.month_seconds = month_seconds  # type: ignore[assignment]
                self._counts.pop("month", None)
            if reset_form is not _UNSET:
                self.reset_form = str(reset_form)
            if headers is not _UNSET:
                self.headers = str(headers)
            if cost is not _UNSET:
                self.cost = int(cost)  # type: ignore[call-overload]
            if quota_exhausted_seconds is not _UNSET:
                self.quota_exhausted_seconds = quota_exhausted_seconds  # type: ignore[assignment]
            if month_used is not _UNSET:
                if not isinstance(month_used, int) or month_used < 0:
                    raise ValueError("month_used must be an int >= 0")
                window, _ = _month_bounds(self.clock(), self.month_seconds)
                self._counts["month"] = (window, month_used)

    @property
    def month_used(self) -> int:
        with self._lock:
            window, _ = _month_bounds(self.clock(), self.month_seconds)
            seen, count = self._counts.get("month", (window, 0))
            return count if seen == window else 0

    def _reset_value(self, now: float, seconds: int) -> str:
        return str(seconds if self.reset_form == "seconds" else int(now) + seconds)

    def _windows(self, now: float) -> list[tuple[str, int, int, int]]:
        """(name, limit, window id, seconds to its end) of each configured window."""
        out = []
        if self.rps:
            out.append(("second", self.rps, int(now), 1))
        if self.rpm:
            window = int(now // 60)
            out.append(("minute", self.rpm, window, max(1, math.ceil((window + 1) * 60 - now))))
        if self.month:
            window, end = _month_bounds(now, self.month_seconds)
            out.append(("month", self.month, window, max(1, math.ceil(end - now))))
        return out

    def check(self) -> Decision:
        """Count one request and say whether it may pass, with the headers to send."""
        with self._lock:
            now = self.clock()
            if self.quota_exhausted_seconds is not None:
                wait = self.quota_exhausted_seconds
                limit = self.rpm or 0
                return Decision(False, {
                    "ratelimit-limit": str(limit),
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": self._reset_value(now, wait),
                    "x-ratelimit-limit-stacks-minute": str(limit),
                    "x-ratelimit-remaining-stacks-minute": "0",
                    "retry-after": str(wait),
                }, wait)
            windows = self._windows(now)
            if not windows:
                return Decision(True)
            used: dict[str, int] = {}
            for name, _limit, window, _reset in windows:
                seen, count = self._counts.get(name, (window, 0))
                used[name] = count if seen == window else 0
            over = next((w for w in windows if used[w[0]] + self.cost > w[1]), None)
            if over is None:
                for name, _limit, window, _reset in windows:
                    used[name] += self.cost
                    self._counts[name] = (window, used[name])
            headers = self._headers(now, windows, used, over)
            if over is None:
                return Decision(True, headers)
            if over[0] == "month":
                return Decision(False, headers, None)
            headers["retry-after"] = str(over[3])
            return Decision(False, headers, over[3])

    def _headers(self, now: float, windows: list[tuple[str, int, int, int]],
                 used: dict[str, int], over: tuple[str, int, int, int] | None
                 ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.headers in ("both", "named"):
            headers["x-ratelimit-cost-stacks"] = str(self.cost)
            for name, limit, _window, _reset in windows:
                headers[f"x-ratelimit-limit-stacks-{name}"] = str(limit)
                headers[f"x-ratelimit-remaining-stacks-{name}"] = str(max(0, limit - used[name]))
        if self.headers in ("both", "generic"):
            by_name = {w[0]: w for w in windows}
            shown = over or by_name.get("minute") or by_name.get("second") or windows[0]
            name, limit, _window, reset = shown
            headers["ratelimit-limit"] = str(limit)
            headers["ratelimit-remaining"] = str(max(0, limit - used[name]))
            headers["ratelimit-reset"] = self._reset_value(now, reset)
        return headers
