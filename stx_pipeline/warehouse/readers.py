"""Readers that never wait for the writer: a read snapshot published beside the file.

DuckDB lets no other process open a file, not even read-only, while one process holds it
read-write. So the writer publishes a copy: between two commits, on its own connection,
it checkpoints (the WAL is folded into the file, which is then consistent on its own) and
copies the file to `<db>.read` by a temporary name and an atomic rename. Readers open
that copy read-only; a reader already open keeps the copy it opened (the old inode), the
next one gets the new one. Readers never touch the main file while a writer holds it, and
so never block a backfill from starting either.

When no process holds the main file and it is newer than the copy (a metrics build, a run
that crashed), the first reader refreshes the copy itself under a shared read lock.

A DuckLake warehouse needs no copy: every reader attaches the lake read-only and sees the
latest commit (warehouse/lake.py), so publishing is off there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import duckdb

from stx_pipeline import settings
from stx_pipeline.warehouse.db import (
    WarehouseError,
    _first_line,
    _is_lock_error,
    connect,
    current_warehouse,
    memory_limit_setting,
    resolve_db_path,
)

log = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".read"


def snapshot_path(db_path: str | os.PathLike[str] | None = None) -> Path:
    """The read snapshot of the embedded warehouse: `<db>.read` beside the file."""
    path = resolve_db_path(db_path)
    return path.with_name(path.name + SNAPSHOT_SUFFIX)


def publish_seconds() -> float:
    """How often a writer publishes: `$STX_PIPELINE_READ_SNAPSHOT_SECONDS` (30)."""
    return settings.current().read_snapshot_seconds


def _replace_atomically(source: Path, target: Path) -> None:
    """Copy `source` to `target` by a temporary name and a rename.

    The copy runs in a child process, never here: DuckDB's lock on the file is a POSIX
    record lock, and closing *any* descriptor of the file in the holding process drops
    all of that process's locks on it — a copy made here would let a second writer in
    (seen: a concurrent backfill then opened the file and corrupted its own connection).
    """
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        done = subprocess.run(["cp", "--", str(source), str(tmp)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise OSError(done.stderr.strip().splitlines()[0] if done.stderr.strip()
                          else f"cp exited {done.returncode}")
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish_snapshot(con: duckdb.DuckDBPyConnection, db_path: str | os.PathLike[str]) -> Path:
    """Checkpoint the writer's file and publish a copy; call it between commits only."""
    path = resolve_db_path(db_path)
    con.execute("CHECKPOINT")
    target = snapshot_path(path)
    _replace_atomically(path, target)
    return target


class SnapshotPublisher:
    """The writer's hook: publish after a commit or while idle, at most every `every` s.

    Runs in the thread that commits, so no commit (and no automatic checkpoint) can
    change the file while it is copied.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        db_path: str | os.PathLike[str] | None,
        every: float | None = None,
    ) -> None:
        self.con = con
        self.db_path = resolve_db_path(db_path)
        self.every = publish_seconds() if every is None else every
        self.published = 0
        self._dirty = False
        self._last = float("-inf")
        self.enabled = not current_warehouse().is_lake  # lake readers read the lake itself

    def publish(self) -> None:
        if not self.enabled:
            return
        try:
            publish_snapshot(self.con, self.db_path)
        except (duckdb.Error, OSError) as exc:  # readers stay on the previous copy
            log.warning("could not publish the read snapshot: %s", _first_line(exc))
            return
        self.published += 1
        self._dirty = False
        self._last = time.monotonic()

    def after_commit(self, *_: object) -> None:
        self._dirty = True
        self.when_due()

    def when_due(self) -> None:
        if self._dirty and time.monotonic() - self._last >= self.every:
            self.publish()


def _main_is_newer(path: Path, snap: Path) -> bool:
    if not snap.exists():
        return True
    snap_time = snap.stat().st_mtime
    wal = path.with_name(path.name + ".wal")
    return path.stat().st_mtime > snap_time or (wal.exists() and wal.stat().st_mtime > snap_time)


def refresh_snapshot_if_idle(db_path: str | os.PathLike[str] | None = None) -> bool:
    """Copy the main file to the snapshot when no writer holds it; False if one does."""
    path = resolve_db_path(db_path)
    snap = snapshot_path(path)
    try:
        holder = duckdb.connect(str(path), read_only=True)  # a shared lock: no writer now
    except duckdb.ConnectionException:  # this process itself holds it read-write
        return False
    except duckdb.IOException as exc:
        if _is_lock_error(exc):
            return False
        raise WarehouseError(f"cannot open database {path}: {_first_line(exc)}") from None
    try:
        wal = path.with_name(path.name + ".wal")
        if not wal.exists():
            _replace_atomically(path, snap)
            return True
        # A WAL left by a crash: the file alone is not the latest state, copy the contents.
        tmp = snap.with_name(f"{snap.name}.{os.getpid()}.tmp")
        holder.close()
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH '{_quoted(path)}' AS src (READ_ONLY)")
            con.execute(f"ATTACH '{_quoted(tmp)}' AS dst")
            con.execute("COPY FROM DATABASE src TO dst")
            con.execute("DETACH dst")
            con.execute("DETACH src")
        finally:
            con.close()
        os.replace(tmp, snap)
        return True
    finally:
        holder.close()


def connect_readonly(
    db_path: str | os.PathLike[str] | None = None, *, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the latest read snapshot; never waits for a writer.

    What it sees is at most one publish interval (30 s) plus one commit group behind the
    writer. Reconnect to see newer data: an open connection keeps its snapshot. On a
    DuckLake warehouse: the lake itself, read-only, as of its latest commit.
    """
    limit = memory_limit_setting(memory_limit)
    if current_warehouse().is_lake:
        con = connect(read_only=True)
        con.execute(f"SET memory_limit = '{limit}'")
        return con
    path = resolve_db_path(db_path)
    if not path.exists():
        raise WarehouseError(f"no database at {path} yet; run a backfill first")
    snap = snapshot_path(path)
    if _main_is_newer(path, snap):
        refreshed = refresh_snapshot_if_idle(path)
        if not refreshed and not snap.exists():
            raise WarehouseError(
                f"a writer holds {path} and has not published {snap.name} yet; it does"
                f" within {publish_seconds():.0f}s of its first commit, try again then"
            )
    try:
        con = duckdb.connect(str(snap), read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot open the read snapshot {snap}: {_first_line(exc)}") from None
    con.execute(f"SET memory_limit = '{limit}'")
    return con


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
