"""The v3 cursor-paginated transaction lists and the v2 block lists, over a `HiroClient`.

These share the client's session, limiter, retries and typed errors (`HiroClient.get_json`);
what is here is the request and answer shapes (hiro-api.md §2.1):

- `/extended/v3/transactions` pages newest first; a cursor `H:M:I` is inclusive, `next` is
  the first row of the next older page. `total` is the chain's count, 0 on an empty page.
- `/extended/v3/blocks/{id}/transactions`: one block; `total` is its `tx_count`; 404 when the
  block is not canonical (`BlockNotFound`), so it doubles as a reorg probe.
- `/extended/v2/blocks`: blocks newest first with `tx_count`; here `prev_cursor` is the OLDER
  page (the reverse of v3), and `offset` is limited to +-300.
- `/extended/v2/burn-blocks` (offset paging, 30 a page): Bitcoin blocks with their Stacks
  block hashes and `total_tx_count`, the cheapest independent count (~30 tenures a request).
- `/extended/v2/blocks/{id}`: one block; `/extended/v2/blocks/by-block-time/{unix}`: the
  newest block with `block_time <= unix`.

Start a walk at the top of block H with `top_of_block(H)` (`H:2147483647:32767`), never
`H:0:0`: the server resolves that to a real row at (H,0,0) where one exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from stx_pipeline.hiro.client import HiroClient
from stx_pipeline.hiro.errors import HiroError, HiroRequestError

V3_TRANSACTIONS_PATH = "/extended/v3/transactions"
V2_BLOCKS_PATH = "/extended/v2/blocks"
V2_BURN_BLOCKS_PATH = "/extended/v2/burn-blocks"
MAX_TX_LIMIT = 50
MAX_BLOCK_LIMIT = 30
MAX_BLOCK_OFFSET = 300
ANCHORED_SEQUENCE = 2_147_483_647  # microblock_sequence of every anchored / Nakamoto tx
MAX_TX_INDEX = 32_767
_CURSOR = re.compile(r"^[0-9]+:[0-9]+:[0-9]+$")
_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")


class BlockNotFound(HiroError):
    """404: the block (or block cursor) is not on the canonical chain (reorged, or not yet)."""

    def __init__(self, block: int | str, server_message: str = "") -> None:
        self.block = block
        super().__init__(
            f"Hiro API has no canonical block {block} ({server_message or 'not found'});"
            " it was reorged away or is not indexed yet"
        )


def top_of_block(height: int) -> str:
    """The cursor that starts a walk at the newest transaction of block `height`."""
    _check_int("height", height, 0)
    return f"{height}:{ANCHORED_SEQUENCE}:{MAX_TX_INDEX}"


def summary_cursor(summary: dict[str, Any]) -> str:
    """The cursor of an anchored summary (summaries carry no microblock_sequence)."""
    block = summary["block"]
    return f"{block['height']}:{ANCHORED_SEQUENCE}:{block['tx_index']}"


def parse_cursor(cursor: str) -> tuple[int, int, int]:
    if not isinstance(cursor, str) or not _CURSOR.match(cursor):
        raise ValueError(
            f"a v3 cursor is block_height:microblock_sequence:tx_index, got {cursor!r}"
        )
    h, m, i = (int(x) for x in cursor.split(":"))
    return h, m, i


@dataclass(frozen=True)
class SummaryPage:
    """One page of transaction summaries, newest first."""

    total: int
    limit: int
    next: str | None  # first row of the next OLDER page, or None at the end
    previous: str | None  # start of the newer page
    current: str | None  # this page's first row
    results: list[dict[str, Any]]
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


@dataclass(frozen=True)
class Block:
    """What the source needs of a block: identity, times and the independent tx count."""

    height: int
    hash: str
    index_block_hash: str
    parent_index_block_hash: str
    block_time: int
    burn_block_time: int
    burn_block_height: int
    tx_count: int

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Block:
        return cls(
            height=raw["height"], hash=raw["hash"], index_block_hash=raw["index_block_hash"],
            parent_index_block_hash=raw["parent_index_block_hash"],
            block_time=raw["block_time"], burn_block_time=raw["burn_block_time"],
            burn_block_height=raw["burn_block_height"], tx_count=raw["tx_count"],
        )


@dataclass(frozen=True)
class BurnBlock:
    """A Bitcoin block that carries Stacks blocks: their hashes and their transaction count."""

    burn_block_height: int
    burn_block_hash: str
    burn_block_time: int
    stacks_blocks: tuple[str, ...]  # block hashes, newest first
    total_tx_count: int

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BurnBlock:
        return cls(
            burn_block_height=raw["burn_block_height"], burn_block_hash=raw["burn_block_hash"],
            burn_block_time=raw["burn_block_time"], stacks_blocks=tuple(raw["stacks_blocks"]),
            total_tx_count=raw["total_tx_count"],
        )


@dataclass(frozen=True)
class BlockPage:
    """Blocks newest first. `older` is the API's `prev_cursor`, `newer` its `next_cursor`."""

    total: int
    limit: int
    offset: int
    results: list[Block]
    older: str | None
    newer: str | None
    cursor: str | None
    headers: dict[str, str] = field(default_factory=dict)
    elapsed_seconds: float = 0.0


# --------------------------------------------------------------------------- requests


def list_transaction_summaries(
    client: HiroClient, *, limit: int = MAX_TX_LIMIT, cursor: str | None = None
) -> SummaryPage:
    """GET /extended/v3/transactions: every canonical tx at or below `cursor`, newest first."""
    params = _page_params(limit, cursor)
    body, headers, elapsed = client.get_json(V3_TRANSACTIONS_PATH, params, _check_summary_page)
    return _summary_page(body, headers, elapsed)


def block_transaction_summaries(
    client: HiroClient, block: int | str, *, limit: int = MAX_TX_LIMIT,
    cursor: str | None = None,
) -> SummaryPage:
    """GET /extended/v3/blocks/{block}/transactions; `block` is a height, a (index) block
    hash or 'latest'. Raises `BlockNotFound` when it is not canonical."""
    ident = _block_ident(block)
    params = _page_params(limit, cursor)
    path = f"/extended/v3/blocks/{ident}/transactions"
    try:
        body, headers, elapsed = client.get_json(path, params, _check_summary_page)
    except HiroRequestError as exc:
        if exc.status == 404:
            raise BlockNotFound(block, exc.server_message) from None
        raise
    return _summary_page(body, headers, elapsed)


def list_blocks(
    client: HiroClient, *, limit: int = MAX_BLOCK_LIMIT, offset: int = 0,
    cursor: str | None = None,
) -> BlockPage:
    """GET /extended/v2/blocks: canonical blocks newest first, from `cursor` (an
    index_block_hash; default the tip) moved `offset` blocks older."""
    _check_int("limit", limit, 1, MAX_BLOCK_LIMIT)
    _check_int("offset", offset, -MAX_BLOCK_OFFSET, MAX_BLOCK_OFFSET)
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    if cursor is not None:
        if not isinstance(cursor, str) or not _HASH.match(cursor):
            raise ValueError(f"a block cursor is an index_block_hash (0x + 64 hex), got {cursor!r}")
        params["cursor"] = cursor
    try:
        body, headers, elapsed = client.get_json(V2_BLOCKS_PATH, params, _check_block_page)
    except HiroRequestError as exc:
        if exc.status == 404:
            raise BlockNotFound(cursor or "tip", exc.server_message) from None
        raise
    return BlockPage(
        total=body["total"], limit=body["limit"], offset=body["offset"],
        results=[Block.from_json(b) for b in body["results"]],
        older=body["prev_cursor"], newer=body["next_cursor"], cursor=body["cursor"],
        headers=headers, elapsed_seconds=elapsed,
    )


def get_block(client: HiroClient, block: int | str) -> Block:
    """GET /extended/v2/blocks/{block}: one canonical block by height, (index) hash or
    'latest'; `BlockNotFound` when it is not canonical."""
    ident = _block_ident(block)
    try:
        body, _headers, _elapsed = client.get_json(f"{V2_BLOCKS_PATH}/{ident}", {}, _check_block)
    except HiroRequestError as exc:
        if exc.status == 404:
            raise BlockNotFound(block, exc.server_message) from None
        raise
    return Block.from_json(body)


def list_burn_blocks(
    client: HiroClient, *, limit: int = MAX_BLOCK_LIMIT, offset: int = 0
) -> list[BurnBlock]:
    """GET /extended/v2/burn-blocks: burn blocks with Stacks blocks, newest first, from
    `offset` (plain offset paging over a growing chain: overlap pages to never miss one)."""
    _check_int("limit", limit, 1, MAX_BLOCK_LIMIT)
    _check_int("offset", offset, 0)
    body, _headers, _elapsed = client.get_json(
        V2_BURN_BLOCKS_PATH, {"limit": limit, "offset": offset}, _check_burn_block_page
    )
    return [BurnBlock.from_json(b) for b in body["results"]]


def get_burn_block(client: HiroClient, burn_height: int | str) -> BurnBlock | None:
    """GET /extended/v2/burn-blocks/{height|hash|latest}; None when it carries no Stacks block."""
    ident = _block_ident(burn_height)
    try:
        body, _h, _e = client.get_json(f"{V2_BURN_BLOCKS_PATH}/{ident}", {}, _check_burn_block)
    except HiroRequestError as exc:
        if exc.status == 404:
            return None
        raise
    return BurnBlock.from_json(body)


def block_at_time(client: HiroClient, unix_seconds: int) -> Block | None:
    """GET /extended/v2/blocks/by-block-time/{t}: the newest block with block_time <= t,
    None when the chain starts later."""
    _check_int("unix_seconds", unix_seconds, 0)
    path = f"{V2_BLOCKS_PATH}/by-block-time/{unix_seconds}"
    try:
        body, _headers, _elapsed = client.get_json(path, {}, _check_block)
    except HiroRequestError as exc:
        if exc.status == 404:
            return None
        raise
    return Block.from_json(body)


def latest_block(client: HiroClient) -> Block:
    """The chain tip as a `Block`."""
    return get_block(client, "latest")


# --------------------------------------------------------------------------- shapes


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if not _is_int(value) or value < lo or (hi is not None and value > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")


def _page_params(limit: int, cursor: str | None) -> dict[str, Any]:
    _check_int("limit", limit, 1, MAX_TX_LIMIT)
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        parse_cursor(cursor)
        params["cursor"] = cursor
    return params


def _block_ident(block: int | str) -> str:
    if _is_int(block):
        _check_int("block height", block, 0)
        return str(block)
    if block == "latest" or (isinstance(block, str) and _HASH.match(block)):
        return str(block)
    raise ValueError(f"block must be a height, a 0x block hash or 'latest', got {block!r}")


def _summary_page(body: dict[str, Any], headers: dict[str, str], elapsed: float) -> SummaryPage:
    c = body["cursor"]
    return SummaryPage(
        total=body["total"], limit=body["limit"], next=c["next"], previous=c["previous"],
        current=c["current"], results=body["results"], headers=headers, elapsed_seconds=elapsed,
    )


def _check_summary_page(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected an object, got {type(body).__name__}"
    for key in ("total", "limit"):
        if not _is_int(body.get(key)) or body[key] < 0:
            return f"'{key}' missing or not a non-negative integer"
    cursor = body.get("cursor")
    if not isinstance(cursor, dict):
        return "'cursor' missing or not an object"
    for key in ("next", "previous", "current"):
        value = cursor.get(key, "missing")
        if value is not None and (not isinstance(value, str) or not _CURSOR.match(value)):
            return f"cursor.{key} is not null or H:M:I: {value!r:.60}"
    results = body.get("results")
    if not isinstance(results, list):
        return "'results' missing or not a list"
    if results and cursor["current"] is None:
        return "a non-empty page without cursor.current"
    return None


_BLOCK_INTS = ("height", "block_time", "burn_block_time", "burn_block_height", "tx_count")
_BLOCK_HASHES = ("hash", "index_block_hash", "parent_index_block_hash")


def _check_block(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected a block object, got {type(body).__name__}"
    for key in _BLOCK_INTS:
        if not _is_int(body.get(key)) or body[key] < 0:
            return f"block '{key}' missing or not a non-negative integer"
    for key in _BLOCK_HASHES:
        if not isinstance(body.get(key), str) or not _HASH.match(body[key]):
            return f"block '{key}' missing or not 0x + 64 hex"
    return None


def _check_burn_block(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected a burn block object, got {type(body).__name__}"
    for key in ("burn_block_height", "burn_block_time", "total_tx_count"):
        if not _is_int(body.get(key)) or body[key] < 0:
            return f"burn block '{key}' missing or not a non-negative integer"
    if not isinstance(body.get("burn_block_hash"), str):
        return "burn block 'burn_block_hash' missing"
    blocks = body.get("stacks_blocks")
    if not isinstance(blocks, list) or not all(isinstance(h, str) for h in blocks):
        return "burn block 'stacks_blocks' missing or not a list of hashes"
    return None


def _check_burn_block_page(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected an object, got {type(body).__name__}"
    results = body.get("results")
    if not isinstance(results, list):
        return "'results' missing or not a list"
    for raw in results:
        problem = _check_burn_block(raw)
        if problem:
            return problem
    return None


def _check_block_page(body: Any) -> str | None:
    if not isinstance(body, dict):
        return f"expected an object, got {type(body).__name__}"
    for key in ("total", "limit", "offset"):
        if not _is_int(body.get(key)):
            return f"'{key}' missing or not an integer"
    results = body.get("results")
    if not isinstance(results, list):
        return "'results' missing or not a list"
    for key in ("prev_cursor", "next_cursor", "cursor"):
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or not _HASH.match(value)):
            return f"'{key}' is not null or an index_block_hash"
    for raw in results:
        problem = _check_block(raw)
        if problem:
            return problem
    return None
