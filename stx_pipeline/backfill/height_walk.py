"""Block-height ranges of `/extended/v3/transactions`: walked with cursors, checked against
the API's own per-block `tx_count`.

The v3 list has no filters: a range `[lo, hi]` of heights is read by starting at the top of
`hi` (`H:2147483647:32767`) and following `cursor.next` until the rows drop below `lo`.
Ranges are independent, so several shards walk at once; a shard's cursor after each page is
all it needs to resume after a crash. A walk proves nothing about itself (a reorg makes the
cursor continue silently down the new fork), so a range counts as complete only when the rows
per block match `tx_count` and `index_block_hash` of `/extended/v2/blocks`, an independent
answer of the API.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.v3 import (
    MAX_BLOCK_LIMIT,
    MAX_TX_LIMIT,
    Block,
    get_block,
    list_blocks,
    list_transaction_summaries,
    parse_cursor,
    top_of_block,
)


@dataclass
class Shard:
    """Heights `lo..hi` (inclusive), walked newest first; `cursor` None = not started."""

    lo: int
    hi: int
    cursor: str | None = None
    done: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"a shard needs 0 <= lo <= hi, got {self.lo}..{self.hi}")

    @property
    def start(self) -> str:
        return self.cursor or top_of_block(self.hi)


@dataclass(frozen=True)
class ShardPage:
    """The summaries of one page that lie inside the shard, and where the shard goes on."""

    summaries: list[dict[str, Any]]
    cursor: str | None  # the resume position, None once the shard is done
    done: bool
    total: int  # the chain's tx count as the server saw it (0 on an empty page)


def split(lo: int, hi: int, shards: int) -> list[Shard]:
    """`[lo, hi]` cut into up to `shards` contiguous shards, newest first."""
    if shards < 1:
        raise ValueError("shards must be >= 1")
    n = hi - lo + 1
    if n <= 0:
        return []
    k = min(shards, n)
    out = []
    top = hi
    for i in range(k):
        size = n // k + (1 if i < n % k else 0)
        out.append(Shard(top - size + 1, top))
        top -= size
    return out


def summary_height(summary: Any, default: int) -> int:
    """A summary's block height, tolerating a malformed one (then `default`: the rows are
    ordered, so a neighbour's height places it)."""
    try:
        return int(str(summary["block"]["height"]))
    except (KeyError, TypeError, ValueError):
        return default


def fetch_shard_page(client: HiroClient, shard: Shard, limit: int = MAX_TX_LIMIT) -> ShardPage:
    """One page of the shard from its cursor; rows below `lo` are left to the older shard."""
    page = list_transaction_summaries(client, limit=limit, cursor=shard.start)
    inside: list[dict[str, Any]] = []
    height = shard.hi
    below = False
    for s in page.results:
        height = summary_height(s, height)
        if height < shard.lo:
            below = True
            break
        if height <= shard.hi:
            inside.append(s)
    nxt = page.next
    done = below or nxt is None or parse_cursor(nxt)[0] < shard.lo
    return ShardPage(inside, None if done else nxt, done, page.total)


def walk_shard(client: HiroClient, shard: Shard, limit: int = MAX_TX_LIMIT
               ) -> list[dict[str, Any]]:
    """Every summary of the shard (for tests and small ranges; the runner commits per page)."""
    out: list[dict[str, Any]] = []
    while not shard.done:
        page = fetch_shard_page(client, shard, limit)
        out.extend(page.summaries)
        shard.cursor, shard.done = page.cursor, page.done
    return out


def block_counts(client: HiroClient, lo: int, hi: int) -> dict[int, Block]:
    """The canonical blocks `lo..hi` with their `tx_count`, from `/extended/v2/blocks`
    (30 a request, following the list's older-page cursor from block `hi`)."""
    if lo > hi:
        return {}
    cursor = get_block(client, hi).index_block_hash
    found: dict[int, Block] = {}
    while True:
        page = list_blocks(client, limit=MAX_BLOCK_LIMIT, cursor=cursor)
        for b in page.results:
            if lo <= b.height <= hi:
                found[b.height] = b
        if not page.results or page.results[-1].height <= lo or page.older is None:
            return found
        cursor = page.older


@dataclass(frozen=True)
class RangeCheck:
    """A walked range against the API's blocks: sealed only if every block agrees."""

    lo: int
    hi: int
    expected: int  # sum of tx_count
    seen: int
    bad_heights: list[int] = field(default_factory=list)  # count or index hash disagrees
    missing_blocks: list[int] = field(default_factory=list)  # heights the block list lacks

    @property
    def sealed(self) -> bool:
        return not self.bad_heights and not self.missing_blocks and self.seen == self.expected


def check_range(lo: int, hi: int, blocks: dict[int, Block],
                seen: Counter[tuple[int, str | None]]) -> RangeCheck:
    """`seen[(height, index_hash)]` = rows (loaded or rejected) the walk got per block."""
    bad: list[int] = []
    per_height: Counter[int] = Counter()
    for (h, ih), n in seen.items():
        if not lo <= h <= hi:
            continue
        per_height[h] += n
        b = blocks.get(h)
        if b is not None and ih is not None and ih != b.index_block_hash:
            bad.append(h)  # rows of another fork
    missing = [h for h in range(lo, hi + 1) if h not in blocks]
    for h, b in blocks.items():
        if lo <= h <= hi and per_height.get(h, 0) != b.tx_count:
            bad.append(h)
    expected = sum(b.tx_count for h, b in blocks.items() if lo <= h <= hi)
    return RangeCheck(lo, hi, expected, sum(per_height.values()), sorted(set(bad)), missing)


def seen_counts(summaries: list[dict[str, Any]]) -> Counter[tuple[int, str | None]]:
    """Rows per `(height, index_hash)` of a walk, malformed ones placed by their neighbours."""
    out: Counter[tuple[int, str | None]] = Counter()
    height = -1
    for s in summaries:
        height = summary_height(s, height)
        block = s.get("block") if isinstance(s, dict) else None
        ih = block.get("index_hash") if isinstance(block, dict) else None
        out[(height, ih if isinstance(ih, str) else None)] += 1
    return out
