"""The server's version and deprecation notices in the status JSON (`api` key).

Written after each run (CLI and Dagster asset) from the client's `DeprecationWatch`, so that
an operator reading `data/backfill_status.json` sees that the route the backfill reads is
deprecated, or gone, next to the progress figures. Bookkeeping never breaks the caller.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from stx_pipeline.backfill.status import default_status_path, read_status_file, update_status_file

log = logging.getLogger(__name__)
API_KEY = "api"


def record_api_notice(api: dict[str, Any], path: str | os.PathLike[str] | None = None
                      ) -> Path | None:
    """Merge `DeprecationWatch.to_dict()` into the status JSON; None if it could not."""
    target = Path(path) if path else default_status_path()
    try:
        return update_status_file(lambda data: {**data, API_KEY: api}, target)
    except Exception as exc:  # never let bookkeeping break a backfill
        log.error("could not record the API notice in %s: %s: %s", target, type(exc).__name__,
                  exc)
        return None


def api_notice_line(path: str | os.PathLike[str] | None = None) -> str | None:
    """One line for `stx-pipeline status`: the server version and what is deprecated."""
    data = read_status_file(path) or {}
    api = data.get(API_KEY)
    if not isinstance(api, dict) or not api.get("api_version"):
        return None
    deprecated = [d.get("path") for d in api.get("deprecated") or [] if isinstance(d, dict)]
    gone = sorted(api.get("gone") or {})
    line = f"Hiro {api['api_version']}"
    if gone:
        line += f"; 410 Gone: {', '.join(gone)}"
    if deprecated:
        line += f"; deprecated: {', '.join(str(p) for p in deprecated)}"
    if api.get("what_to_do"):
        line += f" ({api['what_to_do']})"
    return line
