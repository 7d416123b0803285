"""Block-height ranges of `/extended/v3/transactions`: walked with cursors, checked against
the API's own per-block `tx_count`.

The v3 list has no filters: a range `[lo, hi]` of heights is read by starting at the top of
`hi` (`H:2147483647:32767`) and following `cursor.next` until the rows drop below `lo`.
Ranges are independent, so several shards walk at once; a shard's cursor after each page is
all it needs to resume after a crash. A walk proves nothing about itself (a reorg makes the
cursor continue silently down the new fork), so a range counts as complete only when the rows
per block match `tx_count` and `index_block_hash` of `/extended/v2/blocks`, an independent
answer of the API. The cheap form of that answer is per tenure: `/extended/v2/burn-blocks`
gives ~30 tenures' `total_tx_count` and Stacks block hashes a request (`tenure_counts`,
`check_tenures`), against 30 blocks a request for `block_counts`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.v3 import (
    MAX_BLOCK_LIMIT,
    MAX_TX_LIMIT,
    Block,
    BurnBlock,
    get_block,
    get_burn_block,
    list_blocks,
    list_burn_blocks,
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


def tenure_counts(client: HiroClient, burn_lo: int, burn_hi: int) -> dict[int, BurnBlock]:
    """Burn blocks `burn_lo..burn_hi` that carry Stacks blocks, from `/extended/v2/burn-blocks`.

    The list pages by offset from the newest, over a chain that moves. New burn blocks at
    the head push rows to larger offsets, so the next page repeats rows (keyed by height:
    harmless). Consecutive pages also overlap by one row: a page that starts below the
    previous page's last row means rows moved the other way, and it is read again from
    further up instead of leaving a gap.
    """
    if burn_lo > burn_hi:
        return {}
    latest = get_burn_block(client, "latest")
    if latest is None:
        return {}
    offset = max(0, latest.burn_block_height - burn_hi)
    found: dict[int, BurnBlock] = {}
    prev_last: int | None = None
    while True:
        page = list_burn_blocks(client, limit=MAX_BLOCK_LIMIT, offset=offset)
        if not page:
            return found
        first = page[0].burn_block_height
        if prev_last is None and first < burn_hi and offset > 0:
            # burn heights without Stacks blocks are not listed: the offset overshot
            offset = max(0, offset - (burn_hi - first))
            continue
        if prev_last is not None and first < prev_last and offset > 0:
            offset = max(0, offset - (prev_last - first))  # rows moved up: re-read, no gap
            continue
        for bb in page:
            if burn_lo <= bb.burn_block_height <= burn_hi:
                found[bb.burn_block_height] = bb
        if page[-1].burn_block_height <= burn_lo or len(page) < MAX_BLOCK_LIMIT:
            return found
        prev_last = page[-1].burn_block_height
        offset += len(page) - 1


@dataclass(frozen=True)
class TenureCheck:
    """Walked rows per tenure against the API's burn blocks."""

    burn_lo: int
    burn_hi: int
    expected: int
    seen: int
    bad_tenures: list[int] = field(default_factory=list)

    @property
    def sealed(self) -> bool:
        return not self.bad_tenures and self.seen == self.expected


def check_tenures(burn_lo: int, burn_hi: int, tenures: dict[int, BurnBlock],
                  seen: Counter[tuple[int, str | None]]) -> TenureCheck:
    """`seen[(burn_height, block_hash)]` = rows per tenure and Stacks block. A tenure is bad
    when its count differs or a row sits in a block the API does not list for it."""
    per: Counter[int] = Counter()
    bad: set[int] = set()
    for (t, block_hash), n in seen.items():
        if not burn_lo <= t <= burn_hi:
            continue
        per[t] += n
        bb = tenures.get(t)
        if bb is None or (block_hash is not None and block_hash not in bb.stacks_blocks):
            bad.add(t)
    for t, bb in tenures.items():
        if burn_lo <= t <= burn_hi and per.get(t, 0) != bb.total_tx_count:
            bad.add(t)
    expected = sum(bb.total_tx_count for t, bb in tenures.items() if burn_lo <= t <= burn_hi)
    return TenureCheck(burn_lo, burn_hi, expected, sum(per.values()), sorted(bad))


def seen_by_tenure(summaries: list[dict[str, Any]]) -> Counter[tuple[int, str | None]]:
    """Rows per `(burn height, block hash)` of a walk; malformed ones placed by neighbours."""
    out: Counter[tuple[int, str | None]] = Counter()
    burn = -1
    for s in summaries:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            burn = int(str(s["bitcoin_block"]["height"]))
        block = s.get("block") if isinstance(s, dict) else None
        bh = block.get("hash") if isinstance(block, dict) else None
        out[(burn, bh if isinstance(bh, str) else None)] += 1
    return out
