"""Fault injection: the failures a Hiro client meets in the wild, reproducible from a seed.

Each kind is off by default. A per-request roll (`fault_rate`) picks one of the enabled kinds;
`wrong_content_type` is a mode that hits every request; `gone` (and its delayed forms
`gone_after_requests`, `gone_at`) hits the deprecated v1 route only, as Hiro's switch does.
The RNG is seeded so that the n-th request of a test always gets the same fault.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any

FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "truncated", "stall")

GONE_BODY = {
    "error": "Gone",
    "message": "This endpoint has been disabled. See https://docs.hiro.so/stacks/api for more "
    "information",
}
ERROR_500_BODY = {
    "statusCode": 500,
    "error": "Internal Server Error",
    "message": "canceling statement due to statement timeout",
}
ERROR_503_BODY = {"error": "The database service is unavailable"}
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Hiro Platform</title></head>"
    "<body><h1>Service maintenance</h1><p>We'll be back soon.</p></body></html>"
)


@dataclass(frozen=True)
class FaultSettings:
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    stall_seconds: float = 5.0
    gone: bool = False  # deprecated routes (v1) answer 410, as ENABLE_DEPRECATED_ENDPOINTS=false
    gone_after_requests: int | None = None  # ... once this many v1 requests were served
    gone_at: float | None = None  # ... from this sim time (unix seconds) on
    wrong_content_type: bool = False
    fault_seed: int = 0
    # Share of transactions served malformed (chosen per tx_id, so a re-fetch of the same
    # window sees the same bad rows, as with a real server bug).
    malformed_rate: float = 0.0

    def validated(self) -> FaultSettings:
        kinds = tuple(self.fault_kinds)
        bad = [k for k in kinds if k not in FAULT_KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds {bad}; choose from {FAULT_KINDS}")
        if not 0.0 <= float(self.fault_rate) <= 1.0:
            raise ValueError("fault_rate must be within [0, 1]")
        if not 0.0 <= float(self.malformed_rate) <= 1.0:
            raise ValueError("malformed_rate must be within [0, 1]")
        if self.gone_after_requests is not None and (
            not isinstance(self.gone_after_requests, int) or self.gone_after_requests < 0
        ):
            raise ValueError("gone_after_requests must be an integer >= 0 or None")
        if self.gone_at is not None and not isinstance(self.gone_at, int | float):
            raise ValueError("gone_at must be a unix time in seconds or None")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0 or self.stall_seconds < 0:
            raise ValueError("latency and stall durations must be >= 0")
        return replace(self, fault_kinds=kinds, fault_rate=float(self.fault_rate))


FAULT_SETTING_NAMES = frozenset(f.name for f in fields(FaultSettings))


@dataclass
class FaultInjector:
    """Thread-safe holder of the current settings and the seeded RNG."""

    settings: FaultSettings = field(default_factory=FaultSettings)

    def __post_init__(self) -> None:
        self.settings = self.settings.validated()
        self._lock = threading.Lock()
        self._rng = random.Random(self.settings.fault_seed)

    def update(self, **kw: Any) -> FaultSettings:
        unknown = set(kw) - FAULT_SETTING_NAMES
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}")
        if "fault_kinds" in kw and isinstance(kw["fault_kinds"], str):
            kw["fault_kinds"] = tuple(k for k in kw["fault_kinds"].split(",") if k)
        with self._lock:
            self.settings = replace(self.settings, **kw).validated()
            if "fault_seed" in kw:
                self._rng = random.Random(self.settings.fault_seed)
            return self.settings

    def latency_seconds(self) -> float:
        s = self.settings
        if s.latency_ms <= 0 and s.latency_jitter_ms <= 0:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(-s.latency_jitter_ms, s.latency_jitter_ms)
        return max(0.0, s.latency_ms + jitter) / 1000.0

    def roll(self) -> str | None:
        """The fault for this request, or None."""
        s = self.settings
        if s.fault_rate <= 0 or not s.fault_kinds:
            return None
        with self._lock:
            if self._rng.random() >= s.fault_rate:
                return None
            return self._rng.choice(s.fault_kinds)


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


MALFORMATIONS: tuple[str, ...] = (
    "missing_field",
    "wrong_type",
    "negative_fee",
    "non_numeric_fee",
    "unknown_type",
    "bad_block_hash",
)


def malformation(tx_id: str, rate: float, seed: int) -> str | None:
    """Which malformation (if any) this transaction is served with; deterministic."""
    if rate <= 0:
        return None
    digest = hashlib.sha256(f"{seed}:{tx_id}".encode()).digest()
    if int.from_bytes(digest[:8], "big") / 2**64 >= rate:
        return None
    return MALFORMATIONS[digest[8] % len(MALFORMATIONS)]


def malform(tx: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of `tx` broken the way a buggy upstream would break it."""
    bad = dict(tx)
    if kind == "missing_field":
        bad.pop("sender_address", None)
    elif kind == "wrong_type":
        bad["block_height"] = str(bad.get("block_height"))
    elif kind == "negative_fee":
        bad["fee_rate"] = "-" + str(bad.get("fee_rate", "1"))
    elif kind == "non_numeric_fee":
        bad["fee_rate"] = "lots"
    elif kind == "unknown_type":
        bad["tx_type"] = "quantum_transfer"
    elif kind == "bad_block_hash":
        # (block_time before burn_block_time is legal: a header may run ahead of its blocks)
        bad["block_hash"] = "0x"
    return bad
