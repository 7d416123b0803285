"""What the parts of one backfill run share: the request budget, the stop flag, the first
fatal error, and the head the run is working against."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

from stx_pipeline.backfill.planner import WindowPlanner
from stx_pipeline.hiro.client import HiroClient


class Outcome(Enum):
    """How one unit of fetch work ended (a window walked or paged, a span verified)."""

    DONE = "done"
    VERIFIED = "verified"
    SPLIT = "split"  # too many rows for one window: fetch its halves instead
    UNSTABLE = "unstable"  # the chain moved under the fetch: try again
    BUDGET = "budget"
    STOPPED = "stopped"


class RequestBudget:
    """The run's `max_pages`: every request the run makes counts, shared by the workers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Claim one request; False once the budget is spent."""
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def count(self, n: int = 1) -> None:
        """Count requests that must be made whatever the budget (probes, listings)."""
        with self._lock:
            self.used += n

    @property
    def exhausted(self) -> bool:
        with self._lock:
            return self.used >= self.limit


class FirstError:
    """The first error that must stop the run (rate-limit exhaustion or an API error)."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def set(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc

    def clear(self) -> None:
        with self._lock:
            self.error = None


@dataclass(frozen=True)
class Head:
    """The newest transaction's burn time and the chain's transaction count, as probed."""

    burn_time: int
    burn_height: int | None
    total_txs: int
    latency_seconds: float


@dataclass
class RunState:
    """Shared by the run's loop, its fetch workers and its source."""

    client: HiroClient
    budget: RequestBudget
    stop: threading.Event = field(default_factory=threading.Event)
    fatal: FirstError = field(default_factory=FirstError)
    head: Head | None = None
    horizon: int = 0  # windows ending before it are sealed final
    lower: int = 0  # the oldest burn time the run fills
    planner: WindowPlanner | None = None

    @property
    def head_ts(self) -> int:
        return self.head.burn_time if self.head is not None else 0
