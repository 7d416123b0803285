"""The one way a `HiroClient` is built from settings: the CLI and Dagster both call this.

Why one factory: the CLI and the Dagster resource used to build clients differently (a
500 RPM default in one, none in the other), so the same key behaved differently
depending on the entry point. Every variable is read here, at call time.

| variable | default | meaning |
|---|---|---|
| HIRO_API_URL | https://api.hiro.so | base URL |
| HIRO_API_KEY | unset | sent as `x-api-key` |
| HIRO_RPM | unset | a cap (requests per minute) below what the server grants; 0 = none |
| HIRO_CONNECT_TIMEOUT / HIRO_READ_TIMEOUT | 10 / 30 s | HTTP timeouts |
| HIRO_MAX_RATE_LIMIT_WAIT | 300 s | a 429 asking for longer stops the run instead |
| HIRO_QUOTA_RESERVE | 1% of the monthly quota (>= 100) | requests of the month never spent |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from stx_pipeline.hiro.client import DEFAULT_BASE_URL, HiroClient, _validate_api_key


def client_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> HiroClient:
    """A client from HIRO_* variables; keyword `overrides` that are not None win.

    An invalid value raises a one-line ValueError naming the variable.
    """
    env = os.environ if environ is None else environ
    given = {k: v for k, v in overrides.items() if v is not None}
    base_url = given.pop("base_url", None) or (env.get("HIRO_API_URL") or "").strip()
    api_key = given.pop("api_key", None) or _validate_api_key(env.get("HIRO_API_KEY"))
    kwargs: dict[str, Any] = {
        "requests_per_minute": _env_number(env, "HIRO_RPM", None, minimum=0, allow_equal=True),
        "connect_timeout": _env_number(env, "HIRO_CONNECT_TIMEOUT", 10.0, minimum=0,
                                       allow_equal=False),
        "read_timeout": _env_number(env, "HIRO_READ_TIMEOUT", 30.0, minimum=0,
                                    allow_equal=False),
        "max_rate_limit_wait": _env_number(env, "HIRO_MAX_RATE_LIMIT_WAIT", 300.0, minimum=0,
                                           allow_equal=True),
    }
    reserve = _env_number(env, "HIRO_QUOTA_RESERVE", None, minimum=0, allow_equal=True)
    if reserve is not None:
        if reserve != int(reserve):
            raise ValueError(f"HIRO_QUOTA_RESERVE={reserve!r} must be a whole number of requests")
        kwargs["quota_reserve"] = int(reserve)
    kwargs.update(given)
    return HiroClient(base_url or DEFAULT_BASE_URL, api_key, **kwargs)


def _env_number(environ: Mapping[str, str], name: str, default: float | None, *,
                minimum: float, allow_equal: bool) -> float | None:
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw.strip()!r} is not a number") from None
    ok = value >= minimum if allow_equal else value > minimum
    if not ok or value != value or value == float("inf"):
        op = ">=" if allow_equal else ">"
        raise ValueError(f"{name}={raw.strip()!r} must be a finite number {op} {minimum:g}")
    return value
