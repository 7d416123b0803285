"""Hiro Stacks API client: pooled HTTP, shared rate limiting, retries, typed pages and rows."""

from stx_pipeline.hiro.client import DEFAULT_BASE_URL, HiroClient, validate_base_url
from stx_pipeline.hiro.client_stats import ClientStats
from stx_pipeline.hiro.errors import (
    BadResponse,
    EndpointGone,
    HiroError,
    HiroRequestError,
    HiroUnavailable,
    MonthlyQuotaExhausted,
    QuotaReserveReached,
    RateLimitExhausted,
)
from stx_pipeline.hiro.limiter import RateLimiter
from stx_pipeline.hiro.page import TxPage
from stx_pipeline.hiro.rows import RejectedRow, RowError, map_page, map_transaction

__all__ = [
    "DEFAULT_BASE_URL",
    "BadResponse",
    "ClientStats",
    "EndpointGone",
    "HiroClient",
    "HiroError",
    "HiroRequestError",
    "HiroUnavailable",
    "MonthlyQuotaExhausted",
    "QuotaReserveReached",
    "RateLimitExhausted",
    "RateLimiter",
    "RejectedRow",
    "RowError",
    "TxPage",
    "map_page",
    "map_transaction",
    "validate_base_url",
]
