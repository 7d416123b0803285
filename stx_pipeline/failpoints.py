"""Named crash points for crash-safety tests (the failpoint idea from FoundationDB/TiKV).

`STX_PIPELINE_FAILPOINT=writer.before_commit:3` makes the third pass through that point
SIGKILL its own process — a real crash at an exact spot, e.g. between a window's row
insert and its COMMIT. Unset (always, outside tests) it costs one parse of the settings.
"""

from __future__ import annotations

import os
import signal
import threading

from stx_pipeline import settings

_counts: dict[str, int] = {}
_lock = threading.Lock()


def hit(name: str) -> None:
    spec = settings.current().failpoint
    if spec is None or spec[0] != name:
        return
    nth = spec[1]
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        count = _counts[name]
    if count >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
