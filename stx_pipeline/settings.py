"""Settings read from the environment by the core, the CLI and the Dagster layer alike.

One strict parser: a malformed value is a one-line error that names the variable and what
it wants, never a silent fallback to the default (a typo in `STX_PIPELINE_TARGET_DAYS`
must not start a 180-day backfill). Read at call time, so tests and `devserver` can set
the environment after import.
"""

from __future__ import annotations

import os

DEFAULT_TARGET_DAYS = 180
DEFAULT_MAX_PAGES = 10_000


class SettingError(ValueError):
    """A malformed environment variable; the message says which and what to do."""


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """The integer in `$name`, `default` when unset or blank; SettingError if malformed."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SettingError(
            f"{name}={raw!r} is not a whole number >= {minimum}; fix or unset it"
        )
    return value


def target_days() -> int:
    """The history target of every launch of `transactions`: CLI, button, sensor, schedule."""
    return env_int("STX_PIPELINE_TARGET_DAYS", DEFAULT_TARGET_DAYS)


def max_pages_per_run() -> int:
    """The page budget of one backfill run."""
    return env_int("STX_PIPELINE_MAX_PAGES", DEFAULT_MAX_PAGES)
