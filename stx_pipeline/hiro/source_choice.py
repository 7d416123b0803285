"""Which transaction list to read: `HIRO_SOURCE=auto|v3|v1`.

- `v1`: `/extended/v1/tx` with burn-time windows (deprecated since API v9, 410 at sunset);
- `v3`: `/extended/v3/transactions` walked by block height (API v9+);
- `auto` (default): v3 where the server serves it, else v1; a 410 on v1 switches to v3.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import HiroRequestError
from stx_pipeline.hiro.v3 import list_transaction_summaries

logger = logging.getLogger("stx_pipeline.hiro")

SOURCES = ("auto", "v3", "v1")
V3_ABSENT = (404, 405, 501)  # what a server without the v3 routes answers
DEFAULT_SOURCE = "auto"


def source_setting(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The chosen source: `value`, else `$HIRO_SOURCE`, else auto; a one-line error if bad."""
    env = os.environ if environ is None else environ
    raw = value if value is not None else env.get("HIRO_SOURCE", "")
    choice = (raw or "").strip().lower() or DEFAULT_SOURCE
    if choice not in SOURCES:
        raise ValueError(f"HIRO_SOURCE={raw!r} is not one of auto, v3, v1 (default auto)")
    return choice


def serves_v3(client: HiroClient) -> bool:
    """One `limit=1` request: does this server answer `/extended/v3/transactions`?"""
    try:
        list_transaction_summaries(client, limit=1)
    except HiroRequestError as exc:
        if exc.status in V3_ABSENT:
            return False
        raise
    return True


def resolve_source(client: HiroClient, setting: str) -> str:
    """`v1` or `v3` for this run; `auto` asks the server once."""
    if setting in ("v1", "v3"):
        return setting
    if serves_v3(client):
        return "v3"
    logger.info("Hiro API at %s has no /extended/v3/transactions (before API v9): using v1",
                client.base_url)
    return "v1"
