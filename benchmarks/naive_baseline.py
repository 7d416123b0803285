"""BASELINE, NOT THE PROJECT: the seed's sequential backfill, followed literally.

This is the comparison point of `bench_backfill.py`, written from the seed's "Cursor
System" and "Stop Conditions" (docs/architecture.md, "The seed algorithm"):

- newest first: the first request has no `end_time` (the latest transactions);
- one page of 50 at a time, strictly sequential;
- cursor: the next request's `end_time = MIN(burn_block_time of the page) - 1`;
- stop when `MIN(block_time) <= target` (target reached), on an empty page, when the
  cursor does not move (no progress), at `max_pages`, or at a wall-time cap (a benchmark
  addition so the whole benchmark stays short; reported as such).

It uses the same `HiroClient` (pooled session, shared limiter, retries) as the project,
so the comparison isolates the *algorithm*: the cursor skips every row of the oldest
tenure on a page that did not fit in the page's 50 rows (docs/architecture.md). Each page
is written to DuckDB as it arrives, as the seed does. Do not use this to load data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa

from stx_pipeline.backfill.writer import ARROW_SCHEMA
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.rows import map_page
from stx_pipeline.warehouse.db import open_db
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

PAGE = 50


@dataclass
class BaselineResult:
    stop_reason: str
    pages: int
    rows_inserted: int
    wall_seconds: float
    oldest_block_time: int | None
    capped: bool


def naive_backfill(
    client: HiroClient,
    db_path: str,
    target_ts: int,
    *,
    max_pages: int = 10_000,
    max_seconds: float | None = None,
) -> BaselineResult:
    """The seed's Phase 1 + Phase 2 on a fresh file: walk back from the head to the target."""
    started = time.monotonic()
    con = open_db(db_path)
    cols = ", ".join(TRANSACTION_COLUMNS)
    cursor_to: int | None = None
    pages = inserted = 0
    oldest: int | None = None
    reason = "max_pages"
    capped = False
    try:
        while pages < max_pages:
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                reason, capped = "wall_time_cap", True
                break
            params = {"limit": PAGE}
            if cursor_to is not None:
                params["end_time"] = cursor_to
            page = client.list_transactions(**params)
            pages += 1
            if not page.results:
                reason = "empty_page"
                break
            rows, _rejected = map_page(page.results, datetime.now(UTC))
            if rows:
                con.register("_page", pa.Table.from_pylist(rows, schema=ARROW_SCHEMA))
                try:
                    # the seed's cursor never returns to a page, so plain inserts suffice;
                    # skip the rare repeat at the head to keep the comparison fair
                    n = con.execute(
                        f"INSERT INTO transactions ({cols}) SELECT {cols} FROM _page AS p"
                        " WHERE NOT EXISTS (SELECT 1 FROM transactions AS t"
                        " WHERE t.tx_id = p.tx_id AND t.burn_block_time = p.burn_block_time)"
                    ).fetchone()
                    inserted += int(n[0]) if n and n[0] else 0
                finally:
                    con.unregister("_page")
            min_burn = min(int(tx["burn_block_time"]) for tx in page.results)
            min_block = min(int(tx["block_time"]) for tx in page.results)
            oldest = min_block if oldest is None else min(oldest, min_block)
            if oldest <= target_ts:
                reason = "target_reached"
                break
            nxt = min_burn - 1
            if cursor_to is not None and nxt >= cursor_to:
                reason = "no_progress"
                break
            cursor_to = nxt
    finally:
        con.close()
    return BaselineResult(
        stop_reason=reason,
        pages=pages,
        rows_inserted=int(inserted),
        wall_seconds=time.monotonic() - started,
        oldest_block_time=oldest,
        capped=capped,
    )


def as_dict(result: BaselineResult) -> dict:
    return asdict(result)
