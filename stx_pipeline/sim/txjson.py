"""Render one `TxRow` as a Hiro v1 Transaction object, with the real field set and order.

Cosmetic details (post conditions, execution costs, function args, payload hashes) are derived
from a hash of (seed, tx key), so a row renders identically on every request and after a
reorg re-mines it; only the block fields change.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from stx_pipeline.sim.chain import TxRow

EMPTY_MEMO = "0x" + "00" * 34  # the raw 34-byte memo, all zero
_OK_TRUE = {"hex": "0x0703", "repr": "(ok true)"}
_ERR_U1 = {"hex": "0x08010000000000000000000000000000000001", "repr": "(err u1)"}


def iso(t: int) -> str:
    """`new Date(t*1000).toISOString()`; Hiro sends '' for a zero time."""
    if t <= 0:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _bytes(row: TxRow, tag: str, n: int = 32) -> bytes:
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.blake2b(f"{row.seed}:{tag}:{row.tx_key}:{i}".encode()).digest()
        i += 1
    return out[:n]


def _uint_arg(value: int, name: str) -> dict[str, str]:
    return {
        "hex": "0x01" + value.to_bytes(16, "big").hex(),
        "repr": f"u{value}",
        "name": name,
        "type": "uint",
    }


def _principal_arg(address: str, name: str, seed_bytes: bytes) -> dict[str, str]:
    return {
        "hex": "0x0516" + seed_bytes[:20].hex(),
        "repr": f"'{address}",
        "name": name,
        "type": "principal",
    }


def clarity_version(row: TxRow) -> int | None:
    """A deploy's Clarity version (None: unversioned), the same in v1 objects and v3 summaries."""
    rnd = _bytes(row, "cosmetic", 64)
    return None if rnd[30] < 40 else 2 + rnd[31] % 2


def build_tx(row: TxRow, *, exclude_function_args: bool = False) -> dict[str, Any]:
    """The transaction object exactly as `/extended/v1/tx` lists it (events always [])."""
    rnd = _bytes(row, "cosmetic", 64)
    success = row.tx_status == "success"
    system = row.tx_type in ("coinbase", "tenure_change")
    tx: dict[str, Any] = {
        "tx_id": row.tx_id,
        "nonce": row.nonce,
        "fee_rate": str(row.fee_rate),
        "sender_address": row.sender_address,
    }
    if row.sponsor_address is not None:
        tx["sponsor_nonce"] = row.sponsor_nonce
    tx["sponsored"] = row.sponsor_address is not None
    if row.sponsor_address is not None:
        tx["sponsor_address"] = row.sponsor_address
    post_conditions: list[dict[str, Any]] = []
    if row.tx_type == "token_transfer" and rnd[0] < 64:
        post_conditions.append(
            {
                "type": "stx",
                "condition_code": "sent_equal_to",
                "amount": str(row.amount),
                "principal": {"type_id": "principal_origin"},
            }
        )
    tx.update(
        {
            "post_condition_mode": "deny" if system or rnd[1] < 96 else "allow",
            "post_conditions": post_conditions,
            "anchor_mode": "on_chain_only" if system or rnd[2] < 128 else "any",
            "block_hash": row.block_hash,
            "block_height": row.block_height,
            "block_time": row.block_time,
            "block_time_iso": iso(row.block_time),
            "burn_block_time": row.burn_block_time,
            "burn_block_height": row.burn_block_height,
            "burn_block_time_iso": iso(row.burn_block_time),
            "parent_burn_block_time": row.parent_burn_block_time,
            "parent_burn_block_time_iso": iso(row.parent_burn_block_time),
            "canonical": row.canonical,
            "tx_index": row.tx_index,
            "tx_status": row.tx_status,
            "tx_result": _OK_TRUE if row.tx_status != "abort_by_response" else _ERR_U1,
            "event_count": (
                0 if not success or system
                else 1 if row.tx_type == "token_transfer"
                else 1 + rnd[3] % 6
            ),
            "parent_block_hash": row.parent_block_hash,
            "is_unanchored": False,
            "microblock_hash": "0x",
            "microblock_sequence": 2147483647,
            "microblock_canonical": True,
            "execution_cost_read_count": 0 if system else 1 + rnd[4] % 40,
            "execution_cost_read_length": 0 if system else 1 + int.from_bytes(rnd[5:7]) % 60000,
            "execution_cost_runtime": 0 if system else 1 + int.from_bytes(rnd[7:10]) % 900000,
            "execution_cost_write_count": 0 if system else rnd[10] % 12,
            "execution_cost_write_length": 0 if system else int.from_bytes(rnd[11:13]) % 8000,
            "vm_error": None,
            "events": [],
            "tx_type": row.tx_type,
        }
    )
    tx.update(_payload(row, rnd, exclude_function_args))
    return tx


def _payload(row: TxRow, rnd: bytes, exclude_function_args: bool) -> dict[str, Any]:
    if row.tx_type == "token_transfer":
        return {
            "token_transfer": {
                "recipient_address": row.recipient_address,
                "amount": str(row.amount),
                "memo": EMPTY_MEMO,
            }
        }
    if row.tx_type == "contract_call":
        n_args = 1 + rnd[20] % 3
        args = [_uint_arg(int.from_bytes(rnd[21 + 4 * i : 25 + 4 * i]) % 10**9, f"amount-{i}")
                for i in range(n_args - 1)]
        args.append(_principal_arg(row.sender_address, "recipient", rnd[40:]))
        sig = " ".join(f"({a['name']} {a['type']})" for a in args)
        call: dict[str, Any] = {
            "contract_id": row.contract_id,
            "function_name": row.function_name,
            "function_signature": f"(define-public ({row.function_name} {sig}))",
        }
        if not exclude_function_args:
            call["function_args"] = args
        return {"contract_call": call}
    if row.tx_type == "smart_contract":
        name = (row.contract_id or "").rpartition(".")[2]
        return {
            "smart_contract": {
                "clarity_version": clarity_version(row),
                "contract_id": row.contract_id,
                "source_code": (
                    f";; {name}\n(define-data-var owner principal tx-sender)\n"
                    "(define-public (ping) (ok true))\n"
                ),
            }
        }
    if row.tx_type == "coinbase":
        return {
            "coinbase_payload": {
                "data": "0x" + _bytes(row, "coinbase").hex(),
                "alt_recipient": None,
                "vrf_proof": "0x" + _bytes(row, "vrf", 80).hex(),
            }
        }
    if row.tx_type == "tenure_change":
        h = _bytes(row, "tenure", 100)
        return {
            "tenure_change_payload": {
                "tenure_consensus_hash": "0x" + h[:20].hex(),
                "prev_tenure_consensus_hash": "0x" + h[20:40].hex(),
                "burn_view_consensus_hash": "0x" + h[:20].hex(),
                "previous_tenure_end": row.parent_block_hash,
                "previous_tenure_blocks": 1 + h[60] % 40,
                "cause": "block_found",
                "pubkey_hash": "0x" + h[70:90].hex(),
            }
        }
    return {"poison_microblock": {"microblock_header_1": "0x", "microblock_header_2": "0x"}}
