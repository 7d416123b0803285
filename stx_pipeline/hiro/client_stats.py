"""The counters one Hiro client keeps: requests, retries, 429s, waits and faults by kind.

The retry policy itself (what is transient, how long to wait) is in `client.py`; the
failure it retries is `errors.TransientError`.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class ClientStats:
    """Thread-safe counters of one client, for run metadata and status reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.responses_429 = 0
        self.rate_limit_wait_seconds = 0.0
        self.faults_by_kind: Counter[str] = Counter()

    def add(self, *, requests: int = 0, retries: int = 0, responses_429: int = 0,
            rate_limit_wait_seconds: float = 0.0, fault: str | None = None) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.responses_429 += responses_429
            self.rate_limit_wait_seconds += rate_limit_wait_seconds
            if fault:
                self.faults_by_kind[fault] += 1

    def snapshot(self) -> dict[str, Any]:
        """A JSON-safe copy: requests, retries, responses_429, faults_by_kind, waits."""
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "responses_429": self.responses_429,
                "rate_limit_wait_seconds": round(self.rate_limit_wait_seconds, 3),
                "faults_by_kind": dict(sorted(self.faults_by_kind.items())),
            }

    def __repr__(self) -> str:
        return f"ClientStats({self.snapshot()!r})"
