"""The one way a `HiroClient` is built from settings: the CLI and Dagster both call this.

Why one factory: the CLI and the Dagster resource used to build clients differently (a
500 RPM default in one, none in the other), so the same key behaved differently
depending on the entry point. Every variable is parsed by `stx_pipeline/settings.py`.

The variables (HIRO_API_URL, HIRO_API_KEY, HIRO_RPM, the timeouts, HIRO_MAX_RATE_LIMIT_WAIT,
HIRO_QUOTA_RESERVE) are listed with their defaults in `settings.VARIABLES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stx_pipeline import settings
from stx_pipeline.hiro.client import HiroClient


def client_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> HiroClient:
    """A client from HIRO_* variables (parsed by settings.py); keyword `overrides` that are
    not None win. A malformed variable raises a one-line SettingError naming it."""
    current = settings.current(environ)
    given = {k: v for k, v in overrides.items() if v is not None}
    base_url = given.pop("base_url", None) or current.hiro_api_url
    api_key = given.pop("api_key", None) or current.hiro_api_key
    kwargs: dict[str, Any] = {
        "requests_per_minute": current.hiro_rpm,
        "connect_timeout": current.hiro_connect_timeout,
        "read_timeout": current.hiro_read_timeout,
        "max_rate_limit_wait": current.hiro_max_rate_limit_wait,
    }
    if current.hiro_quota_reserve is not None:
        kwargs["quota_reserve"] = current.hiro_quota_reserve
    kwargs.update(given)
    return HiroClient(base_url, api_key, **kwargs)
