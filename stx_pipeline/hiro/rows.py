"""Map Hiro transaction objects to `transactions` rows, and reject bad ones loudly.

Why strict: every metric is computed from these rows, so a row that does not say
who paid what, when, is worse than no row. A bad row is returned as a `RejectedRow`
(reason + raw JSON) for the `rejected_rows` table: never a crash of the whole page,
never silently dropped.

Choices made here:
- `fee_payer` is the sponsor for sponsored transactions, else the sender (design §2.3).
- `block_time` falls back to `burn_block_time` when missing or 0: before Nakamoto the
  API itself reports `block_time || burn_block_time`, and pre-v7.10 answers lack it.
- `block_time < burn_block_time` is legal and kept: a Bitcoin header may be timed up to
  2 h ahead of network time, ahead of the Stacks blocks anchored to it.
- `index_block_hash` (fork-unique) is stored when the answer carries it (v3 summaries);
  v1 objects do not, so it is NULL for them and `block_hash` identifies the fork.
- `nonce` and `burn_block_height` may be absent only in answers older than the fields
  (the hand-trimmed 2020 documentation samples): stored as NULL, never invented; such a
  sender simply cannot count as a nonce-0 "new wallet".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

BIGINT_MAX = 2**63 - 1
# Far beyond any real chain time, well inside datetime's range.
MAX_UNIX_SECONDS = 7_258_118_400  # 2200-01-01

TX_TYPES = frozenset(
    {
        "token_transfer",
        "smart_contract",
        "contract_call",
        "poison_microblock",
        "coinbase",
        "tenure_change",
    }
)
TX_STATUSES = frozenset(
    {"success", "abort_by_response", "abort_by_post_condition", "problematic_skipped"}
)
# tx_type -> the payload key the API sends with it.
PAYLOAD_KEYS = {
    "token_transfer": "token_transfer",
    "smart_contract": "smart_contract",
    "contract_call": "contract_call",
    "poison_microblock": "poison_microblock",
    "coinbase": "coinbase_payload",
    "tenure_change": "tenure_change_payload",
}
_TX_ID_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_DECIMAL_RE = re.compile(r"^[0-9]+$")


class RowError(ValueError):
    """One transaction object cannot become a row; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RejectedRow:
    """A transaction object we refused, kept for the `rejected_rows` table."""

    tx_id: str | None
    burn_block_time: datetime | None
    reason: str
    raw_json: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(raw: dict[str, Any], key: str) -> Any:
    if key not in raw or raw[key] is None:
        raise RowError(f"missing {key}")
    return raw[key]


def _int_field(raw: dict[str, Any], key: str, *, minimum: int = 0) -> int:
    value = _require(raw, key)
    if not _is_int(value):
        raise RowError(f"{key} is not an integer: {value!r:.60}")
    if value < minimum:
        raise RowError(f"{key} must be >= {minimum}, got {value}")
    if value > BIGINT_MAX:
        raise RowError(f"{key} {value} does not fit in BIGINT")
    return value


def _str_field(raw: dict[str, Any], key: str, *, where: str = "") -> str:
    value = raw.get(key)
    label = f"{where}.{key}" if where else key
    if value is None:
        raise RowError(f"missing {label}")
    if not isinstance(value, str) or not value.strip():
        raise RowError(f"{label} is not a non-empty string: {value!r:.60}")
    if len(value) > 256 or any(c.isspace() for c in value):
        raise RowError(f"{label} is not a plausible identifier: {value!r:.60}")
    return value


def _ustx(value: Any, label: str) -> int:
    """µSTX amounts come as u64 decimal strings; they must fit DuckDB's BIGINT."""
    if _is_int(value):
        number = value
    elif isinstance(value, str) and _DECIMAL_RE.match(value):
        number = int(value)
    else:
        raise RowError(f"{label} is not a non-negative integer decimal string: {value!r:.60}")
    if number < 0:
        raise RowError(f"{label} is negative: {number}")
    if number > BIGINT_MAX:
        raise RowError(f"{label} {number} does not fit in BIGINT")
    return number


def _unix_time(value: Any, label: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RowError(f"{label} is not a number: {value!r:.60}")
    if value != value or not 0 < value < MAX_UNIX_SECONDS:
        raise RowError(f"{label} out of range: {value!r}")
    return datetime.fromtimestamp(value, tz=UTC)


def payload_columns(tx_type: str, payload: dict[str, Any], where: str, *, recipient_field: str
                    ) -> tuple[str | None, str | None, str | None, int | None]:
    """`contract_id, function_name, token_recipient, token_amount` from a payload object;
    v1 and v3 differ only in the recipient's field name."""
    contract_id = function_name = token_recipient = None
    token_amount: int | None = None
    if tx_type == "contract_call":
        contract_id = _str_field(payload, "contract_id", where=where)
        function_name = _str_field(payload, "function_name", where=where)
    elif tx_type == "smart_contract":
        contract_id = _str_field(payload, "contract_id", where=where)
    elif tx_type == "token_transfer":
        token_recipient = _str_field(payload, recipient_field, where=where)
        if payload.get("amount") is None:
            raise RowError(f"missing {where}.amount")
        token_amount = _ustx(payload["amount"], f"{where}.amount")
    return contract_id, function_name, token_recipient, token_amount


def identity(
    raw: Any, ingested_at: datetime, type_key: str, status_key: str
) -> tuple[str, str, str]:
    """(tx_id, type, status) of a result, checked; the v1 and v3 mappers name the keys."""
    if not isinstance(raw, dict):
        raise RowError(f"result is not an object ({type(raw).__name__})")
    if ingested_at.tzinfo is None:
        raise ValueError("ingested_at must be timezone-aware (UTC)")
    tx_id = _require(raw, "tx_id")
    if not isinstance(tx_id, str) or not _TX_ID_RE.match(tx_id):
        raise RowError(f"tx_id is not 0x + 64 hex characters: {tx_id!r:.80}")
    tx_type = _require(raw, type_key)
    if tx_type not in TX_TYPES:
        raise RowError(f"unknown {type_key} {tx_type!r:.40}")
    tx_status = _require(raw, status_key)
    if tx_status not in TX_STATUSES:
        raise RowError(f"unknown {status_key} {tx_status!r:.40}")
    return tx_id, tx_type, tx_status


def map_transaction(raw: dict[str, Any], ingested_at: datetime) -> dict[str, Any]:
    """One `/extended/v1/tx` result -> a dict with exactly `TRANSACTION_COLUMNS` keys."""
    tx_id, tx_type, tx_status = identity(raw, ingested_at, "tx_type", "tx_status")

    sender = _str_field(raw, "sender_address")
    sponsored = _require(raw, "sponsored")
    if not isinstance(sponsored, bool):
        raise RowError(f"sponsored is not a boolean: {sponsored!r:.20}")
    sponsor: str | None = None
    if sponsored:
        if raw.get("sponsor_address") is None:
            raise RowError("sponsored transaction without sponsor_address")
        sponsor = _str_field(raw, "sponsor_address")

    fee = _ustx(_require(raw, "fee_rate"), "fee_rate")
    # Absent only in answers older than the field (the trimmed 2020 docs samples): NULL,
    # never invented; such a sender simply cannot count as a nonce-0 "new wallet".
    nonce = _int_field(raw, "nonce") if raw.get("nonce") is not None else None
    block_height = _int_field(raw, "block_height")
    block_hash = _require(raw, "block_hash")
    if not isinstance(block_hash, str) or not _TX_ID_RE.match(block_hash):
        raise RowError(f"block_hash is not 0x + 64 hex characters: {block_hash!r:.80}")
    tx_index = _int_field(raw, "tx_index")
    if tx_index > 2**31 - 1:
        raise RowError(f"tx_index {tx_index} does not fit in INTEGER")

    burn_block_time = _unix_time(_require(raw, "burn_block_time"), "burn_block_time")
    raw_block_time = raw.get("block_time")
    if raw_block_time is None or (not isinstance(raw_block_time, bool) and raw_block_time == 0):
        block_time = burn_block_time  # pre-Nakamoto / pre-v7.10 answers
    else:
        block_time = _unix_time(raw_block_time, "block_time")
    index_block_hash = raw.get("index_block_hash")
    if index_block_hash is not None and (
        not isinstance(index_block_hash, str) or not _TX_ID_RE.match(index_block_hash)
    ):
        raise RowError(
            f"index_block_hash is not 0x + 64 hex characters: {index_block_hash!r:.80}"
        )
    burn_block_height = (
        _int_field(raw, "burn_block_height") if raw.get("burn_block_height") is not None else None
    )
    canonical = _require(raw, "canonical")
    if not isinstance(canonical, bool):
        raise RowError(f"canonical is not a boolean: {canonical!r:.20}")

    payload_key = PAYLOAD_KEYS[tx_type]
    payload = raw.get(payload_key)
    if not isinstance(payload, dict):
        raise RowError(f"{tx_type} transaction without a {payload_key} object")
    contract_id, function_name, token_recipient, token_amount = payload_columns(
        tx_type, payload, payload_key, recipient_field="recipient_address")

    row = {
        "tx_id": tx_id,
        "tx_type": tx_type,
        "tx_status": tx_status,
        "sender_address": sender,
        "sponsored": sponsored,
        "sponsor_address": sponsor,
        "fee_payer": sponsor if sponsored else sender,
        "fee_ustx": fee,
        "nonce": nonce,
        "block_height": block_height,
        "block_hash": block_hash,
        "index_block_hash": index_block_hash,
        "tx_index": tx_index,
        "block_time": block_time,
        "burn_block_time": burn_block_time,
        "burn_block_height": burn_block_height,
        "canonical": canonical,
        "contract_id": contract_id,
        "function_name": function_name,
        "token_recipient": token_recipient,
        "token_amount_ustx": token_amount,
        "ingested_at": ingested_at,
    }
    assert tuple(row) == TRANSACTION_COLUMNS  # the schema and the mapper move together
    return row


def _raw_json(raw: Any) -> str:
    try:
        return json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                          default=repr)
    except (TypeError, ValueError):  # e.g. non-string keys mixed with sort_keys
        return repr(raw)


def _salvage(raw: Any) -> tuple[str | None, datetime | None]:
    """Best-effort identity of a rejected row, so it can be found and re-checked."""
    if not isinstance(raw, dict):
        return None, None
    tx_id = raw.get("tx_id")
    tx_id = tx_id[:200] if isinstance(tx_id, str) else None
    try:
        bbt = _unix_time(raw.get("burn_block_time"), "burn_block_time")
    except RowError:
        bbt = None
    return tx_id, bbt


def map_results(
    results: Iterable[Any],
    ingested_at: datetime,
    mapper: Callable[[Any, datetime], dict[str, Any]],
    salvage: Callable[[Any], tuple[str | None, datetime | None]],
) -> tuple[list[dict[str, Any]], list[RejectedRow]]:
    """Map a page with `mapper`: good rows, and every bad one with its reason, the identity
    `salvage` can recover and the raw JSON. Shared by the v1 and v3 mappers."""
    rows: list[dict[str, Any]] = []
    rejected: list[RejectedRow] = []
    for raw in results:
        try:
            rows.append(mapper(raw, ingested_at))
        except RowError as exc:
            tx_id, bbt = salvage(raw)
            rejected.append(RejectedRow(tx_id, bbt, exc.reason, _raw_json(raw)))
    return rows, rejected


def map_page(
    results: Iterable[Any], ingested_at: datetime
) -> tuple[list[dict[str, Any]], list[RejectedRow]]:
    """Map a page of `/extended/v1/tx` results (see `map_results`)."""
    return map_results(results, ingested_at, map_transaction, _salvage)
