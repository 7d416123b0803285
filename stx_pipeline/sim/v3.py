"""Hiro's cursor-paginated v3 transaction lists and the v2 block lists, over the simulated chain.

Routes (API v9.0.2, read from `src/api/routes/v3/*.ts`, `src/api/routes/v2/blocks.ts` and
`src/datastore/v3/pg-store-v3.ts`):

- `GET /extended/v3/transactions?limit=1..50&cursor=H:M:I`: every canonical transaction,
  newest first, as summaries; `total` is the chain's transaction count (0 on an empty page).
- `GET /extended/v3/blocks/{latest|height|hash}/transactions`: the same paging inside one
  block; `total` is that block's `tx_count`; 404 for a block that is not canonical.
- `GET /extended/v2/blocks?limit=0..30&offset=-300..300&cursor=<index_block_hash>`,
  `GET /extended/v2/blocks/{latest|height|hash}` and `GET /extended/v2/blocks/by-block-time/
  {unix}`: blocks with `tx_count`, hashes and times. None is deprecated (only
  `/extended/v2/blocks/{id}/transactions` is).
- `GET /extended/v2/burn-blocks?limit=0..30&offset>=0` and `/extended/v2/burn-blocks/{id}`:
  Bitcoin blocks that carry Stacks blocks, each with its `stacks_blocks` (block hashes, newest
  first) and `total_tx_count`: one request counts ~30 tenures of transactions.

The server wraps these answers with the same gateway, fault and header handling as v1.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from stx_pipeline.sim.chain import GENESIS_BURN_HEIGHT, GENESIS_HEIGHT, Chain, TxRow
from stx_pipeline.sim.cursor import I32_MAX, CursorPage, Position, cursor_page
from stx_pipeline.sim.faults import malformation
from stx_pipeline.sim.params import ParamError, _integer, _schema_error
from stx_pipeline.sim.txjson import EMPTY_MEMO, clarity_version, iso

if TYPE_CHECKING:
    from stx_pipeline.sim.server import Simulator

V3_TRANSACTIONS = "/extended/v3/transactions"
V2_BLOCKS = "/extended/v2/blocks"
V2_BURN_BLOCKS = "/extended/v2/burn-blocks"
_V2_BURN_BLOCK = re.compile(r"^/extended/v2/burn-blocks/([^/]+)$")
_V3_BLOCK_TXS = re.compile(r"^/extended/v3/blocks/([^/]+)/transactions$")
_V2_BY_TIME = re.compile(r"^/extended/v2/blocks/by-block-time/([^/]+)$")
_V2_BLOCK = re.compile(r"^/extended/v2/blocks/(?!average-times$|by-block-time$)([^/]+)$")
TX_CURSOR_PATTERN = "^[0-9]+:[0-9]+:[0-9]+$"
BLOCK_CURSOR_PATTERN = "^0x[a-fA-F0-9]{64}$"
_TX_CURSOR = re.compile(TX_CURSOR_PATTERN)
_BLOCK_CURSOR = re.compile(BLOCK_CURSOR_PATTERN)
_HASH = re.compile(r"^(0x)?[a-fA-F0-9]{64}$")
TX_MAX_LIMIT, TX_DEFAULT_LIMIT = 50, 20
BLOCK_MAX_LIMIT, BLOCK_DEFAULT_LIMIT = 30, 20
BLOCK_MAX_OFFSET = BLOCK_MAX_LIMIT * 10  # CursorOffsetParam: maxLimit x 10 pages
TENURE_HEIGHT_BASE = 180_000  # tenure (coinbase) height of the simulated chain's first tenure
MUST_REVALIDATE = "public, no-cache, must-revalidate"


def serves(path: str) -> bool:
    """True for the v3 / v2 routes this module answers."""
    return (
        path in (V3_TRANSACTIONS, V2_BLOCKS, V2_BURN_BLOCKS)
        or _V2_BURN_BLOCK.match(path) is not None
        or _V3_BLOCK_TXS.match(path) is not None
        or _V2_BY_TIME.match(path) is not None
        or _V2_BLOCK.match(path) is not None
    )


@dataclass
class Answer:
    """A JSON answer (`body` None: an empty 304) before the server adds common headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _not_found(message: str) -> Answer:
    return Answer(404, {"statusCode": 404, "error": "Not Found", "message": message})


# --------------------------------------------------------------------------- positions


class ChainPositions:
    """Visible canonical rows `start..stop` of the chain as v3 positions.

    Every generated transaction is anchored (Nakamoto: no microblocks), so its position is
    `(height, 2147483647, tx_index)` and row order is position order.
    """

    def __init__(self, chain: Chain, start: int, stop: int) -> None:
        self._block = chain.rows["block"]
        self._tx_index = chain.rows["tx_index"]
        self.start = start
        self.stop = stop

    def position(self, k: int) -> Position:
        return GENESIS_HEIGHT + int(self._block[k]), I32_MAX, int(self._tx_index[k])

    def count_le(self, pos: Position) -> int:
        h, m, i = pos
        b = h - GENESIS_HEIGHT
        if self.stop <= self.start or b < int(self._block[self.start]):
            return self.start
        if b > int(self._block[self.stop - 1]):  # also keeps huge heights out of numpy
            return self.stop
        a = int(np.searchsorted(self._block, b, "left"))
        if m < I32_MAX:  # below every anchored transaction of block b
            k = a
        elif m > I32_MAX:
            k = int(np.searchsorted(self._block, b, "right"))
        else:
            z = int(np.searchsorted(self._block, b, "right"))
            k = a + int(np.searchsorted(self._tx_index[a:z], min(i, 2**31 - 1), "right"))
        return max(self.start, min(k, self.stop))


# --------------------------------------------------------------------------- JSON shapes


def summary(row: TxRow) -> dict[str, Any]:
    """A `TransactionSummary` (serializeDbTransactionSummary), in the schema's key order."""
    out: dict[str, Any] = {
        "tx_id": row.tx_id,
        "sender": {"address": row.sender_address, "nonce": row.nonce},
        "sponsor": (
            {"address": row.sponsor_address, "nonce": row.sponsor_nonce}
            if row.sponsor_address is not None and row.sponsor_nonce is not None else None
        ),
        "fee_rate": str(row.fee_rate),
        "block": {
            "height": row.block_height,
            "hash": row.block_hash,
            "index_hash": row.index_block_hash,
            "time": row.block_time,
            "tx_index": row.tx_index,
        },
        "bitcoin_block": {"height": row.burn_block_height, "time": row.burn_block_time},
        "status": row.tx_status,
        "type": row.tx_type,
    }
    if row.tx_type == "token_transfer":
        # memoToString of an all-zero memo: the NUL bytes are stripped, nothing is left.
        out["token_transfer"] = {
            "recipient": row.recipient_address,
            "amount": str(row.amount),
            "memo": {"hex": EMPTY_MEMO, "repr": ""},
        }
    elif row.tx_type == "smart_contract":
        out["smart_contract"] = {
            "clarity_version": clarity_version(row), "contract_id": row.contract_id,
        }
    elif row.tx_type == "contract_call":
        out["contract_call"] = {
            "contract_id": row.contract_id, "function_name": row.function_name,
        }
    elif row.tx_type == "coinbase":
        out["coinbase"] = {"alt_recipient": None}
    elif row.tx_type == "tenure_change":
        out["tenure_change"] = {"cause": "block_found"}
    return out


def malform_summary(s: dict[str, Any], kind: str) -> dict[str, Any]:
    """A copy of summary `s` broken like `faults.malform` breaks a v1 object."""
    bad = {k: (dict(v) if isinstance(v, dict) else v) for k, v in s.items()}
    if kind == "missing_field":
        bad.pop("sender", None)
    elif kind == "wrong_type":
        bad["block"]["height"] = str(bad["block"]["height"])
    elif kind == "negative_fee":
        bad["fee_rate"] = "-" + str(bad.get("fee_rate", "1"))
    elif kind == "non_numeric_fee":
        bad["fee_rate"] = "lots"
    elif kind == "unknown_type":
        bad["type"] = "quantum_transfer"
    elif kind == "bad_block_hash":
        bad["block"]["hash"] = "0x"  # (block.time before bitcoin time is legal)
    return bad


def block_rows(chain: Chain, b: int) -> tuple[int, int]:
    """Row indices [a, z) of block b (every row of a visible block is visible)."""
    blocks = chain.rows["block"]
    return int(np.searchsorted(blocks, b, "left")), int(np.searchsorted(blocks, b, "right"))


def block_json(chain: Chain, b: int) -> dict[str, Any]:
    """A `NakamotoBlock` as `/extended/v2/blocks` lists it."""
    ten = int(chain.b_tenure[b])
    a, z = block_rows(chain, b)
    # burn_block_time is the burn block's header time, as on the block's transactions
    bt, burn = int(chain.b_time[b]), int(chain.t_header[ten])
    return {
        "canonical": True,
        "height": GENESIS_HEIGHT + b,
        "hash": chain.block_hash(b),
        "block_time": bt,
        "block_time_iso": iso(bt),
        "tenure_height": TENURE_HEIGHT_BASE + ten,
        "index_block_hash": chain.index_block_hash(b),
        "parent_block_hash": chain.block_hash(b - 1),
        "parent_index_block_hash": chain.index_block_hash(b - 1),
        "burn_block_time": burn,
        "burn_block_time_iso": iso(burn),
        "burn_block_hash": chain.burn_block_hash(ten),
        "burn_block_height": GENESIS_BURN_HEIGHT + ten,
        "miner_txid": chain.burn_block_hash(ten, "miner"),
        "tx_count": z - a,
        "execution_cost_read_count": 3 * (z - a),
        "execution_cost_read_length": 900 * (z - a),
        "execution_cost_runtime": 12_000 * (z - a),
        "execution_cost_write_count": z - a,
        "execution_cost_write_length": 150 * (z - a),
    }


def burn_block_json(chain: Chain, t: int, tip: int) -> dict[str, Any]:
    """A `BurnBlock`: tenure t's visible Stacks blocks (hashes, newest first) and tx count."""
    first = int(np.searchsorted(chain.b_tenure, t, "left"))
    last = min(int(np.searchsorted(chain.b_tenure, t, "right")) - 1, tip)
    blocks = range(last, first - 1, -1)
    a, _ = block_rows(chain, first)
    _, z = block_rows(chain, last)
    times = [int(chain.b_time[b]) for b in range(first, last + 1)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    burn = int(chain.t_header[t])
    return {
        "burn_block_time": burn,
        "burn_block_time_iso": iso(burn),
        "burn_block_hash": chain.burn_block_hash(t),
        "burn_block_height": GENESIS_BURN_HEIGHT + t,
        "stacks_blocks": [chain.block_hash(b) for b in blocks],
        "avg_block_time": round(sum(gaps) / len(gaps), 2) if gaps else 0,
        "total_tx_count": z - a,
    }


# --------------------------------------------------------------------------- validation


def _tx_page_query(params: dict[str, list[str]]) -> tuple[int, str | None]:
    limit = TX_DEFAULT_LIMIT
    if "limit" in params:
        limit = _integer("limit", params["limit"], 1, TX_MAX_LIMIT)
    cursor = None
    if "cursor" in params:
        values = params["cursor"]
        if len(values) != 1:
            raise _schema_error("querystring/cursor must be string")
        if not _TX_CURSOR.match(values[0]):
            raise _schema_error(f'querystring/cursor must match pattern "{TX_CURSOR_PATTERN}"')
        cursor = values[0]
    return limit, cursor


def _path_integer(name: str, value: str, minimum: int | None) -> int:
    try:
        return _integer(name, [value], minimum, None)
    except ParamError as e:
        raise _schema_error(str(e.body["message"]).replace("querystring/", "params/", 1)) from None


# --------------------------------------------------------------------------- routes


class V3Routes:
    """Answers the v3/v2 routes for one simulator; block-hash lookups cached per chain state."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._hash_index: tuple[tuple[int, int], dict[str, int]] | None = None

    def answer(self, path: str, params: dict[str, list[str]], if_none_match: str | None) -> Answer:
        sim = self.sim
        now = sim.now()
        sim.chain.ensure_generated(now + 3600)
        sim._maybe_scheduled_reorg()  # `reorg_after_requests` counts every route, as on v1
        try:
            with sim.chain.lock:
                if path == V3_TRANSACTIONS:
                    return self._transactions(params, now, if_none_match)
                if path == V2_BLOCKS:
                    return self._blocks(params, now, if_none_match)
                if path == V2_BURN_BLOCKS:
                    return self._burn_blocks(params, now, if_none_match)
                m = _V2_BURN_BLOCK.match(path)
                if m:
                    return self._burn_block(m.group(1), now, if_none_match)
                m = _V3_BLOCK_TXS.match(path)
                if m:
                    return self._block_transactions(m.group(1), params, now, if_none_match)
                m = _V2_BY_TIME.match(path)
                if m:
                    return self._block_by_time(m.group(1), now, if_none_match)
                m = _V2_BLOCK.match(path)
                if m:
                    return self._block(m.group(1), now, if_none_match)
        except ParamError as e:
            return Answer(400, e.body)
        return _not_found(f"Route GET:{path} not found")

    # -- helpers
    def _tip_cache(self, now: int, if_none_match: str | None) -> tuple[dict[str, str], bool]:
        tip = self.sim.chain.tip_block(now)
        if tip < 0:
            return {"cache-control": "no-store"}, False
        etag = f'"{self.sim.chain.index_block_hash(tip)}"'
        return {"cache-control": MUST_REVALIDATE, "etag": etag}, _matches(if_none_match, etag)

    def _block_cache(self, b: int, if_none_match: str | None) -> tuple[dict[str, str], bool]:
        etag = f'"{self.sim.chain.index_block_hash(b)}:true"'
        return {"cache-control": MUST_REVALIDATE, "etag": etag}, _matches(if_none_match, etag)

    def _summaries(self, indices: list[int]) -> list[dict[str, Any]]:
        chain = self.sim.chain
        out = [summary(chain.row(k)) for k in indices]
        s = self.sim.faults.settings
        if s.malformed_rate > 0:
            out = [_maybe_malform(x, s.malformed_rate, s.fault_seed) for x in out]
        return out

    def _find_block(self, ident: str, now: int) -> int | None:
        """Canonical visible block of `latest`, a height or a (index) block hash, else None."""
        chain = self.sim.chain
        tip = chain.tip_block(now)
        if ident == "latest":
            return tip if tip >= 0 else None
        if _HASH.match(ident):
            h = ident.lower() if ident.startswith("0x") else "0x" + ident.lower()
            return self._hashes(tip).get(h)
        b = int(ident) - GENESIS_HEIGHT
        return b if 0 <= b <= tip else None

    def _hashes(self, tip: int) -> dict[str, int]:
        chain = self.sim.chain
        key = (chain.version, tip)
        if self._hash_index is None or self._hash_index[0] != key:
            index: dict[str, int] = {}
            for b in range(tip + 1):
                index[chain.block_hash(b)] = b
                index[chain.index_block_hash(b)] = b
            self._hash_index = (key, index)
        return self._hash_index[1]

    def _page_body(self, page: CursorPage, limit: int, total: int) -> dict[str, Any]:
        return {
            "total": total,
            "limit": limit,
            "cursor": {"next": page.next, "previous": page.previous, "current": page.current},
            "results": self._summaries(page.indices),
        }

    # -- routes
    def _transactions(
        self, params: dict[str, list[str]], now: int, if_none_match: str | None
    ) -> Answer:
        limit, cursor = _tx_page_query(params)
        headers, hit = self._tip_cache(now, if_none_match)
        if hit:
            return Answer(304, None, headers)
        chain = self.sim.chain
        n = chain.visible_rows(now)
        page = cursor_page(ChainPositions(chain, 0, n), limit, cursor)
        return Answer(200, self._page_body(page, limit, n if page.indices else 0), headers)

    def _block_transactions(
        self, ident: str, params: dict[str, list[str]], now: int, if_none_match: str | None
    ) -> Answer:
        _check_block_ident(ident)
        limit, cursor = _tx_page_query(params)
        b = self._find_block(ident, now)
        if b is None:
            return _not_found("Block not found")
        headers, hit = self._block_cache(b, if_none_match)
        if hit:
            return Answer(304, None, headers)
        a, z = block_rows(self.sim.chain, b)
        page = cursor_page(ChainPositions(self.sim.chain, a, z), limit, cursor)
        return Answer(200, self._page_body(page, limit, z - a), headers)

    def _blocks(self, params: dict[str, list[str]], now: int, if_none_match: str | None) -> Answer:
        limit = BLOCK_DEFAULT_LIMIT
        if "limit" in params:
            limit = _integer("limit", params["limit"], 0, BLOCK_MAX_LIMIT) or BLOCK_DEFAULT_LIMIT
        offset = 0
        if "offset" in params:
            offset = _integer("offset", params["offset"], -BLOCK_MAX_OFFSET, BLOCK_MAX_OFFSET)
        cursor = None
        if "cursor" in params:
            values = params["cursor"]
            if len(values) != 1 or not _BLOCK_CURSOR.match(values[0]):
                raise _schema_error(
                    f'querystring/cursor must match pattern "{BLOCK_CURSOR_PATTERN}"'
                )
            cursor = values[0]
        headers, hit = self._tip_cache(now, if_none_match)
        if hit:
            return Answer(304, None, headers)
        chain = self.sim.chain
        tip = chain.tip_block(now)
        anchor: int | None = tip if tip >= 0 else None
        if cursor is not None:
            b = self._hashes(tip).get(cursor.lower())
            # only an index_block_hash is a cursor (WHERE index_block_hash = cursor)
            anchor = b if b is not None and chain.index_block_hash(b) == cursor.lower() else None
        first = anchor - offset if anchor is not None else None
        if first is None or not 0 <= first <= tip:
            if cursor is not None:
                return _not_found("Cursor not found")
            body = {"limit": limit, "offset": offset, "total": 0, "next_cursor": None,
                    "prev_cursor": None, "cursor": None, "results": []}
            return Answer(200, body, headers)
        results = [block_json(chain, b) for b in range(first, max(first - limit, -1), -1)]
        body = {
            "limit": limit,
            "offset": offset,
            "total": tip + 1,
            "next_cursor": chain.index_block_hash(first + limit) if first + limit <= tip else None,
            "prev_cursor": chain.index_block_hash(first - limit) if first - limit >= 0 else None,
            "cursor": chain.index_block_hash(first),
            "results": results,
        }
        return Answer(200, body, headers)

    def _burn_blocks(
        self, params: dict[str, list[str]], now: int, if_none_match: str | None
    ) -> Answer:
        limit = BLOCK_DEFAULT_LIMIT
        if "limit" in params:  # `args.limit ?? default`: an explicit 0 selects nothing
            limit = _integer("limit", params["limit"], 0, BLOCK_MAX_LIMIT)
        offset = _integer("offset", params["offset"], 0, None) if "offset" in params else 0
        headers, hit = self._tip_cache(now, if_none_match)
        if hit:
            return Answer(304, None, headers)
        chain = self.sim.chain
        tip = chain.tip_block(now)
        top = int(chain.b_tenure[tip]) - offset if tip >= 0 else -1
        tenures = range(top, max(top - limit, -1), -1) if top >= 0 else range(0)
        results = [burn_block_json(chain, t, tip) for t in tenures]
        # `total` is chain_tip.block_count (Stacks blocks), as the API's query selects it
        body = {"limit": limit, "offset": offset, "total": tip + 1 if results else 0,
                "results": results}
        return Answer(200, body, headers)

    def _burn_block(self, ident: str, now: int, if_none_match: str | None) -> Answer:
        if not (ident == "latest" or _HASH.match(ident) or ident.isdigit()):
            raise _schema_error(
                "params/height_or_hash must be equal to constant, params/height_or_hash must "
                'match pattern "^(0x)?[a-fA-F0-9]{64}$", params/height_or_hash must be integer,'
                " params/height_or_hash must match a schema in anyOf"
            )
        headers, hit = self._tip_cache(now, if_none_match)
        if hit:
            return Answer(304, None, headers)
        chain = self.sim.chain
        tip = chain.tip_block(now)
        top = int(chain.b_tenure[tip]) if tip >= 0 else -1
        t: int | None = None
        if ident == "latest":
            t = top if top >= 0 else None
        elif _HASH.match(ident):
            h = ident.lower() if ident.startswith("0x") else "0x" + ident.lower()
            t = next((x for x in range(top, -1, -1) if chain.burn_block_hash(x) == h), None)
        else:
            x = int(ident) - GENESIS_BURN_HEIGHT
            t = x if 0 <= x <= top else None
        if t is None:
            return _not_found("Not found")
        return Answer(200, burn_block_json(chain, t, tip), headers)

    def _block(self, ident: str, now: int, if_none_match: str | None) -> Answer:
        _check_block_ident(ident)
        b = self._find_block(ident, now)
        if b is None:
            return _not_found("Block not found")
        headers, hit = self._block_cache(b, if_none_match)
        if hit:
            return Answer(304, None, headers)
        return Answer(200, block_json(self.sim.chain, b), headers)

    def _block_by_time(self, raw: str, now: int, if_none_match: str | None) -> Answer:
        ts = _path_integer("timestamp", raw, 0)
        chain = self.sim.chain
        tip = chain.tip_block(now)
        b = int(np.searchsorted(chain.b_time[: tip + 1], ts, "right")) - 1
        if b < 0:
            return _not_found("No block found at or before the given timestamp")
        headers, hit = self._block_cache(b, if_none_match)
        if hit:
            return Answer(304, None, headers)
        return Answer(200, block_json(chain, b), headers)


def _check_block_ident(ident: str) -> None:
    """BlockHeightOrHashSchema: 'latest', a hash or an integer (Fastify joins anyOf errors)."""
    if ident == "latest" or _HASH.match(ident) or ident.isdigit():
        return
    raise _schema_error(
        "params/height_or_hash must be equal to constant, params/height_or_hash must "
        'match pattern "^(0x)?[a-fA-F0-9]{64}$", params/height_or_hash must be integer, '
        "params/height_or_hash must match a schema in anyOf"
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    """`ifNoneMatch.includes(etag)` over the parsed list, as the cache controller does."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return etag in tags or etag.strip('"') in (t.strip('"') for t in tags)


def _maybe_malform(s: dict[str, Any], rate: float, seed: int) -> dict[str, Any]:
    kind = malformation(s["tx_id"], rate, seed)
    return malform_summary(s, kind) if kind else s
