"""Map v3 `TransactionSummary` objects to `transactions` rows, as strictly as `rows.py` maps v1.

The same row must come out of either source for the same transaction, so the checks and
the fallbacks are the v1 mapper's (shared helpers), and `COLUMN_SOURCES` says where every
column of `transactions` comes from; a column added to the schema without a source here fails
`test_summary_rows.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from stx_pipeline.hiro.rows import (
    _TX_ID_RE,
    RejectedRow,
    RowError,
    _int_field,
    _require,
    _str_field,
    _unix_time,
    _ustx,
    identity,
    map_results,
    payload_columns,
)
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

# Column -> where a summary carries it (or why it is constant).
COLUMN_SOURCES: dict[str, str] = {
    "tx_id": "tx_id",
    "tx_type": "type",
    "tx_status": "status",
    "sender_address": "sender.address",
    "sponsored": "sponsor is not null",
    "sponsor_address": "sponsor.address (NULL when sponsor is null)",
    "fee_payer": "sponsor.address if sponsored else sender.address (design §2.3)",
    "fee_ustx": "fee_rate",
    "nonce": "sender.nonce",
    "block_height": "block.height",
    "block_hash": "block.hash",
    "index_block_hash": "block.index_hash",
    "tx_index": "block.tx_index",
    "block_time": "block.time (bitcoin_block.time when 0, as v1's block_time || burn_time)",
    "burn_block_time": "bitcoin_block.time",
    "burn_block_height": "bitcoin_block.height",
    "canonical": "always true: the v3 lists select canonical AND microblock_canonical rows only",
    "contract_id": "contract_call.contract_id or smart_contract.contract_id (else NULL)",
    "function_name": "contract_call.function_name (else NULL)",
    "token_recipient": "token_transfer.recipient (else NULL)",
    "token_amount_ustx": "token_transfer.amount (else NULL)",
    "ingested_at": "the fetch time (ours)",
}

# type -> payload key of the summary (poison_microblock has none).
SUMMARY_PAYLOAD_KEYS = {
    "token_transfer": "token_transfer",
    "smart_contract": "smart_contract",
    "contract_call": "contract_call",
    "coinbase": "coinbase",
    "tenure_change": "tenure_change",
}


def _object(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = _require(raw, key)
    if not isinstance(value, dict):
        raise RowError(f"{key} is not an object: {value!r:.60}")
    return value


def map_summary(raw: dict[str, Any], ingested_at: datetime) -> dict[str, Any]:
    """One v3 summary -> a dict with exactly `TRANSACTION_COLUMNS` keys, or `RowError`."""
    tx_id, tx_type, tx_status = identity(raw, ingested_at, "type", "status")

    sender_obj = _object(raw, "sender")
    sender = _str_field(sender_obj, "address", where="sender")
    nonce = _int_field(sender_obj, "nonce")
    if "sponsor" not in raw:
        raise RowError("missing sponsor (null when not sponsored)")
    sponsor_obj = raw["sponsor"]
    sponsor: str | None = None
    if sponsor_obj is not None:
        if not isinstance(sponsor_obj, dict):
            raise RowError(f"sponsor is not an object or null: {sponsor_obj!r:.60}")
        sponsor = _str_field(sponsor_obj, "address", where="sponsor")
    fee = _ustx(_require(raw, "fee_rate"), "fee_rate")

    block = _object(raw, "block")
    block_height = _int_field(block, "height")
    block_hash = _require(block, "hash")
    if not isinstance(block_hash, str) or not _TX_ID_RE.match(block_hash):
        raise RowError(f"block.hash is not 0x + 64 hex characters: {block_hash!r:.80}")
    tx_index = _int_field(block, "tx_index")
    if tx_index > 2**31 - 1:
        raise RowError(f"block.tx_index {tx_index} does not fit in INTEGER")
    bitcoin = _object(raw, "bitcoin_block")
    burn_block_time = _unix_time(_require(bitcoin, "time"), "bitcoin_block.time")
    burn_block_height = _int_field(bitcoin, "height")
    raw_time = block.get("time")
    if raw_time is None or (not isinstance(raw_time, bool) and raw_time == 0):
        block_time = burn_block_time  # very old indexes: no Stacks block time
    else:
        block_time = _unix_time(raw_time, "block.time")
    # block.time < bitcoin_block.time is legal (a Bitcoin header up to 2 h ahead), kept
    index_hash = block.get("index_hash")
    if index_hash is not None and (
        not isinstance(index_hash, str) or not _TX_ID_RE.match(index_hash)
    ):
        raise RowError(f"block.index_hash is not 0x + 64 hex characters: {index_hash!r:.80}")

    contract_id = function_name = token_recipient = None
    token_amount: int | None = None
    key = SUMMARY_PAYLOAD_KEYS.get(tx_type)
    if key is not None:
        payload = raw.get(key)
        if not isinstance(payload, dict):
            raise RowError(f"{tx_type} summary without a {key} object")
        contract_id, function_name, token_recipient, token_amount = payload_columns(
            tx_type, payload, key, recipient_field="recipient")

    row = {
        "tx_id": tx_id,
        "tx_type": tx_type,
        "tx_status": tx_status,
        "sender_address": sender,
        "sponsored": sponsor is not None,
        "sponsor_address": sponsor,
        "fee_payer": sponsor if sponsor is not None else sender,
        "fee_ustx": fee,
        "nonce": nonce,
        "block_height": block_height,
        "block_hash": block_hash,
        "index_block_hash": index_hash,
        "tx_index": tx_index,
        "block_time": block_time,
        "burn_block_time": burn_block_time,
        "burn_block_height": burn_block_height,
        "canonical": True,
        "contract_id": contract_id,
        "function_name": function_name,
        "token_recipient": token_recipient,
        "token_amount_ustx": token_amount,
        "ingested_at": ingested_at,
    }
    assert tuple(row) == TRANSACTION_COLUMNS  # the schema and the mapper move together
    return row


def summary_index_hash(raw: Any) -> str | None:
    """`block.index_hash` of a summary (what identifies its fork), None if absent."""
    if isinstance(raw, dict) and isinstance(raw.get("block"), dict):
        value = raw["block"].get("index_hash")
        return value if isinstance(value, str) else None
    return None


def _salvage(raw: Any) -> tuple[str | None, datetime | None]:
    if not isinstance(raw, dict):
        return None, None
    tx_id = raw.get("tx_id")
    tx_id = tx_id[:200] if isinstance(tx_id, str) else None
    bitcoin = raw.get("bitcoin_block")
    try:
        bbt = _unix_time(bitcoin.get("time") if isinstance(bitcoin, dict) else None, "time")
    except RowError:
        bbt = None
    return tx_id, bbt


def map_summary_page(
    results: Iterable[Any], ingested_at: datetime
) -> tuple[list[dict[str, Any]], list[RejectedRow]]:
    """Map a page of v3 summaries (see `rows.map_results`)."""
    return map_results(results, ingested_at, map_summary, _salvage)

