"""Gateway-style rate limiting: a fixed one-minute window per server, Hiro's header set.

Clients must learn limits from headers (the published plans disagree), so the limit, the form
of `ratelimit-reset` and a "monthly quota exhausted" mode can all change while a test runs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RESET_FORMS = ("seconds", "timestamp")
_UNSET: object = object()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None


class RateLimiter:
    """Off while both `rpm` and `quota_exhausted_seconds` are None."""

    def __init__(
        self,
        rpm: int | None = None,
        reset_form: str = "seconds",
        quota_exhausted_seconds: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock  # swappable, so tests can pin the window
        self._window = -1
        self._count = 0
        self.rpm: int | None = None
        self.reset_form = "seconds"
        self.quota_exhausted_seconds: int | None = None
        self.configure(rpm=rpm, reset_form=reset_form,
                       quota_exhausted_seconds=quota_exhausted_seconds)

    def configure(
        self, *, rpm: object = _UNSET, reset_form: object = _UNSET,
        quota_exhausted_seconds: object = _UNSET,
    ) -> None:
        """Change any setting at run time; the current window's count is kept."""
        with self._lock:
            if rpm is not _UNSET:
                if rpm is not None and (not isinstance(rpm, int) or rpm < 1):
                    raise ValueError("rate_limit_rpm must be a positive int or None")
                self.rpm = rpm
            if reset_form is not _UNSET:
                if reset_form not in RESET_FORMS:
                    raise ValueError(f"ratelimit_reset_form must be one of {RESET_FORMS}")
                self.reset_form = str(reset_form)
            if quota_exhausted_seconds is not _UNSET:
                q = quota_exhausted_seconds
                if q is not None and (not isinstance(q, int) or q < 1):
                    raise ValueError("quota_exhausted_seconds must be a positive int or None")
                self.quota_exhausted_seconds = q

    def _reset_value(self, now: float, seconds: int) -> str:
        return str(seconds if self.reset_form == "seconds" else int(now) + seconds)

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
            if self.rpm is None:
                return Decision(True)
            window = int(now // 60)
            if window != self._window:
                self._window, self._count = window, 0
            self._count += 1
            reset = max(1, math.ceil((window + 1) * 60 - now))
            remaining = max(0, self.rpm - self._count)
            headers = {
                "ratelimit-limit": str(self.rpm),
                "ratelimit-remaining": str(remaining),
                "ratelimit-reset": self._reset_value(now, reset),
                "x-ratelimit-limit-stacks-minute": str(self.rpm),
                "x-ratelimit-remaining-stacks-minute": str(remaining),
                "x-ratelimit-cost-stacks": "1",
            }
            if self._count > self.rpm:
                headers["retry-after"] = str(reset)
                return Decision(False, headers, reset)
            return Decision(True, headers)
