"""The typed answer of GET /extended/v1/tx."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TxPage:
    limit: int
    offset: int
    total: int
    results: list[dict[str, Any]]
    # Lower-cased response headers of interest: ratelimit-*, retry-after, x-api-version,
    # warning, etag.
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0
