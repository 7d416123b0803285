"""Shared helpers of the benchmarks: child processes with their own peak RSS, tables.

Every contender runs in its own Python subprocess so that its peak RSS is its own
(`os.wait4` returns the child's rusage; `ru_maxrss` is in KiB on Linux). The simulator
stays in the parent process, so its CPU and memory are not charged to the contender.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def run_child(argv: list[str], timeout: float | None = None, python: str | None = None,
              prefix: list[str] | None = None) -> tuple[dict[str, Any], float]:
    """Run `python argv...`, which prints one JSON object as its last stdout line.

    Returns (that object, the child's peak RSS in MiB); the object gains
    `child_cpu_seconds` (user + system, from the same rusage). `prefix` runs the child
    under another program (a profiler). Raises on a non-zero exit.
    """
    with tempfile.TemporaryFile(mode="w+") as errf:
        proc = subprocess.Popen(
            [*(prefix or []), python or sys.executable, *argv], stdout=subprocess.PIPE,
            stderr=errf, cwd=str(ROOT), text=True,
        )
        started = time.monotonic()
        assert proc.stdout is not None
        # communicate() would reap the child and lose its rusage: read, then wait4 ourselves.
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        errf.seek(0)
        err = errf.read()
    if timeout is not None and time.monotonic() - started > timeout:
        print(f"warning: child ran {time.monotonic() - started:.0f}s > {timeout}s", file=sys.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(argv)} exited {proc.returncode}:\n{err[-4000:]}")
    lines = [ln for ln in out.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(argv)} printed no JSON:\n{err[-4000:]}")
    result = json.loads(lines[-1])
    result["child_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result, usage.ru_maxrss / 1024.0


def machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import duckdb

    return {
        "nproc": os.cpu_count(),
        "mem_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "platform": platform.platform(),
    }


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    return path
