"""What the server says about itself on every answer: `X-API-Version` and `Warning: 299`.

Since API v9.0.0 every `/extended/v1/tx` answer carries
`Warning: 299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"`, and
an operator switch makes the route answer 410 at sunset. A data pipeline that keeps running
for months must hear this long before: the watch remembers the newest server version and every
deprecated path, logs each once per run (one watch per client, one client per run), and hands
a JSON-safe summary to the status file, the asset metadata and the `source_not_deprecated`
check.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("stx_pipeline.hiro")

# RFC 7234 warning-value: warn-code SP warn-agent SP warn-text [SP warn-date]
_WARNING = re.compile(r'(\d{3})\s+(\S+)\s+"((?:[^"\\]|\\.)*)"')
# What the operator can do about it, said once next to the warning.
WHAT_TO_DO = (
    "the route will answer 410 Gone when Hiro switches deprecated endpoints off; "
    "the replacement is GET /extended/v3/transactions, which the backfill reads by default"
    " (HIRO_SOURCE=auto) and switches to by itself on a 410"
)


@dataclass(frozen=True)
class Deprecation:
    """One deprecated route as the server announced it."""

    path: str
    warning: str  # the raw header
    message: str  # the warn-text, e.g. 'Deprecated: See https://docs.hiro.so/stacks/api ...'
    first_seen: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "warning": self.warning,
            "message": self.message,
            "first_seen": self.first_seen.isoformat(),
        }


def parse_warning(value: str) -> list[tuple[int, str]]:
    """`(code, text)` of each warning-value in a `Warning` header (unparseable: code 0)."""
    found = [(int(code), text) for code, _agent, text in _WARNING.findall(value or "")]
    if not found and value and value.strip():
        return [(0, value.strip())]
    return found


def _is_deprecation(code: int, text: str) -> bool:
    return code == 299 or "deprecat" in text.lower()


class DeprecationWatch:
    """Thread-safe record of `X-API-Version` and deprecation warnings seen by one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deprecated: dict[str, Deprecation] = {}
        self._gone: dict[str, str] = {}
        self.api_version: str | None = None
        self.responses_seen = 0

    def observe(self, path: str, headers: dict[str, str], status: int = 200) -> None:
        """Read one answer's headers (lower-cased keys); logs a new deprecation once."""
        version = headers.get("x-api-version")
        new: Deprecation | None = None
        with self._lock:
            self.responses_seen += 1
            if version:
                self.api_version = version
            if status == 410:
                self._gone.setdefault(path, datetime.now(UTC).isoformat())
            raw = headers.get("warning")
            if raw and path not in self._deprecated:
                for code, text in parse_warning(raw):
                    if _is_deprecation(code, text):
                        new = Deprecation(path, raw, text, datetime.now(UTC))
                        self._deprecated[path] = new
                        break
        if new is not None:
            logger.warning(
                "Hiro API %s is deprecated (server %s): %s; %s",
                path, self.api_version or "version unknown", new.message, WHAT_TO_DO,
            )

    @property
    def deprecated(self) -> list[Deprecation]:
        with self._lock:
            return list(self._deprecated.values())

    @property
    def gone(self) -> dict[str, str]:
        """Paths that answered 410 Gone, with when that was first seen."""
        with self._lock:
            return dict(self._gone)

    def to_dict(self) -> dict[str, Any]:
        """For the status JSON and asset metadata."""
        with self._lock:
            return {
                "api_version": self.api_version,
                "deprecated": [d.to_dict() for d in self._deprecated.values()],
                "gone": dict(self._gone),
                "what_to_do": WHAT_TO_DO if self._deprecated or self._gone else None,
            }
