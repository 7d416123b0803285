"""Row mapping against the real Hiro samples, and one concrete reason per validation rule."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from stx_pipeline.hiro.rows import RejectedRow, RowError, map_page, map_transaction
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS
from stx_pipeline_tests.samples import SAMPLES

NOW = datetime(2026, 8, 1, 12, 0, tzinfo=UTC)


def _load(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


def _results(name: str) -> list[dict[str, Any]]:
    body = _load(name)
    if "results" in body:
        # v2 address results wrap the transaction as {"tx": ..., "stx_sent": ...}.
        return [r.get("tx", r) for r in body["results"]]
    return [body]


# The 2020-21 documentation samples were trimmed by hand (see data/README.md) and
# lack fields every current answer carries (hiro-api.md §3): `nonce` and, in the v2
# sample, `burn_block_height`. They still map cleanly, with NULL for what is absent —
# never an invented value.
TRIMMED = {
    "transaction-0-token-transfer.example.json": "nonce",
    "transaction-1-smart-contract.example.json": "nonce",
    "transaction-2-contract-call.example.json": "nonce",
    "transaction-4-coinbase.example.json": "nonce",
    "get-address-transactions.example.json": "nonce",
    "get-v2-address-transactions.example.json": "burn_block_height",
}
COMPLETE = ["get-transactions.example.json", "testnet-contract-principal-transactions-2026-02.json"]


def _check_row(row: dict[str, Any], raw: dict[str, Any]) -> None:
    assert tuple(row) == TRANSACTION_COLUMNS
    assert row["tx_id"] == raw["tx_id"]
    assert row["fee_ustx"] == int(raw["fee_rate"])
    assert row["fee_payer"] == raw["sender_address"]  # no sponsored tx in the samples
    for col in ("block_time", "burn_block_time", "ingested_at"):
        assert row[col].tzinfo is not None and row[col].utcoffset().total_seconds() == 0
    assert row["burn_block_time"] == datetime.fromtimestamp(raw["burn_block_time"], UTC)
    assert row["block_time"] >= row["burn_block_time"]


@pytest.mark.parametrize("name", COMPLETE)
def test_complete_samples_map_cleanly(name: str) -> None:
    raws = _results(name)
    rows, rejected = map_page(raws, NOW)
    assert rejected == []
    assert len(rows) == len(raws)
    for row, raw in zip(rows, raws, strict=True):
        _check_row(row, raw)


def test_2026_testnet_page_maps_all_eight_rows() -> None:
    raws = _results("testnet-contract-principal-transactions-2026-02.json")
    rows, rejected = map_page(raws, NOW)
    assert (len(rows), rejected) == (8, [])
    types = sorted(r["tx_type"] for r in rows)
    assert types == ["contract_call"] * 7 + ["smart_contract"]
    contract = "ST3AW560S3EET4NNSC3NG9N6CPNMPGASTMKWX11KG.api-registry"
    assert {r["contract_id"] for r in rows} == {contract}
    first = rows[0]
    assert first["function_name"] == "update-api"
    assert first["block_time"] == datetime(2026, 2, 15, 5, 45, 15, tzinfo=UTC)
    assert first["burn_block_time"] == datetime(2026, 2, 15, 5, 42, 35, tzinfo=UTC)
    assert (first["nonce"], first["fee_ustx"], first["burn_block_height"]) == (26, 3000, 145591)
    assert first["ingested_at"] == NOW


def test_pre_nakamoto_block_time_falls_back_to_burn_block_time() -> None:
    (raw,) = _results("get-transactions.example.json")
    assert "block_time" not in raw
    row = map_transaction(raw, NOW)
    assert row["block_time"] == row["burn_block_time"] == datetime(
        2021, 7, 14, 18, 13, 56, tzinfo=UTC
    )
    raw = {**raw, "block_time": 0}  # the API's own "unknown" value
    assert map_transaction(raw, NOW)["block_time"] == row["burn_block_time"]


@pytest.mark.parametrize("name", sorted(TRIMMED))
def test_trimmed_samples_map_cleanly_with_null_for_the_missing_field(name: str) -> None:
    raws = _results(name)
    rows, rejected = map_page(raws, NOW)
    assert rejected == []
    assert len(rows) == len(raws)
    for row, raw in zip(rows, raws, strict=True):
        assert TRIMMED[name] not in raw
        assert row[TRIMMED[name]] is None
        assert row["tx_id"] == raw["tx_id"]
        assert row["fee_ustx"] == int(raw["fee_rate"])
        assert row["tx_type"] == raw["tx_type"]


def test_payload_columns_from_samples() -> None:
    def patched(name: str) -> dict[str, Any]:
        return {"nonce": 0, "burn_block_height": 1, **_results(name)[0]}

    tt = map_transaction(patched("transaction-0-token-transfer.example.json"), NOW)
    assert tt["token_recipient"] == "ST1RZG804V6Y0N4XHQD3ZE2GE3XSCV3VHRKMA3GB0"
    assert tt["token_amount_ustx"] == 10000 and tt["contract_id"] is None
    sc = map_transaction(patched("transaction-1-smart-contract.example.json"), NOW)
    assert sc["contract_id"] and sc["function_name"] is None
    cc = map_transaction(patched("transaction-2-contract-call.example.json"), NOW)
    assert cc["contract_id"] == "STJTXEJPJPPVDNA9B052NSRRBGQCFNKVS178VGH1.hello_world"
    assert cc["function_name"] == "set-value"
    cb = map_transaction(patched("transaction-4-coinbase.example.json"), NOW)
    assert (cb["fee_ustx"], cb["contract_id"], cb["token_amount_ustx"]) == (0, None, None)


# ---- one rule, one concrete reason ----------------------------------------------------

BASE: dict[str, Any] = _results("testnet-contract-principal-transactions-2026-02.json")[0]
_DROP = object()  # marks a key to delete


def _mutate(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is _DROP:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def _token_transfer(**changes: Any) -> dict[str, Any]:
    raw = _mutate(tx_type="token_transfer", contract_call=_DROP)
    raw["token_transfer"] = {"recipient_address": "ST1RZG804V6Y0N4XHQD3ZE2GE3XSCV3VHRKMA3GB0",
                             "amount": "2500", "memo": "0x00"}
    raw.update(changes)
    return raw


CASES: list[tuple[str, dict[str, Any], str]] = [
    ("tx_id missing", _mutate(tx_id=_DROP), "missing tx_id"),
    ("tx_id short", _mutate(tx_id="0xabc"), "tx_id is not 0x + 64 hex"),
    ("tx_id no prefix", _mutate(tx_id="a" * 64), "tx_id is not 0x + 64 hex"),
    ("tx_id not hex", _mutate(tx_id="0x" + "g" * 64), "tx_id is not 0x + 64 hex"),
    ("unknown type", _mutate(tx_type="versioned_smart_contract"), "unknown tx_type"),
    ("unknown status", _mutate(tx_status="pending"), "unknown tx_status"),
    ("status missing", _mutate(tx_status=_DROP), "missing tx_status"),
    ("sender missing", _mutate(sender_address=_DROP), "missing sender_address"),
    ("sender empty", _mutate(sender_address=""), "sender_address is not a non-empty string"),
    ("sponsored not bool", _mutate(sponsored="false"), "sponsored is not a boolean"),
    ("sponsor missing", _mutate(sponsored=True), "sponsored transaction without sponsor_address"),
    ("fee missing", _mutate(fee_rate=_DROP), "missing fee_rate"),
    ("fee negative", _mutate(fee_rate="-5"), "fee_rate is not a non-negative integer"),
    ("fee decimal point", _mutate(fee_rate="1.5"), "fee_rate is not a non-negative integer"),
    ("fee float", _mutate(fee_rate=1.5), "fee_rate is not a non-negative integer"),
    ("fee beyond bigint", _mutate(fee_rate=str(2**64 - 1)), "does not fit in BIGINT"),
    ("nonce string", _mutate(nonce="26"), "nonce is not an integer"),
    ("nonce negative", _mutate(nonce=-1), "nonce must be >= 0"),
    ("nonce bool", _mutate(nonce=True), "nonce is not an integer"),
    ("height float", _mutate(block_height=3791722.0), "block_height is not an integer"),
    ("block hash bad", _mutate(block_hash="0x"), "block_hash is not 0x + 64 hex"),
    ("tx_index missing", _mutate(tx_index=_DROP), "missing tx_index"),
    ("tx_index too big", _mutate(tx_index=2**31), "tx_index 2147483648 does not fit in INTEGER"),
    ("burn time missing", _mutate(burn_block_time=_DROP), "missing burn_block_time"),
    ("burn time zero", _mutate(burn_block_time=0), "burn_block_time out of range"),
    ("burn time negative", _mutate(burn_block_time=-1), "burn_block_time out of range"),
    ("burn time string", _mutate(burn_block_time="1771134155"), "burn_block_time is not a number"),
    ("block time far future", _mutate(block_time=10**12), "block_time out of range"),
    ("index hash bad", _mutate(index_block_hash="0xzz"), "index_block_hash is not 0x + 64"),
    ("canonical not bool", _mutate(canonical=1), "canonical is not a boolean"),
    ("payload missing", _mutate(contract_call=_DROP), "without a contract_call object"),
    ("payload not object", _mutate(contract_call="x"), "without a contract_call object"),
    ("contract id missing", _mutate(contract_call={"function_name": "f"}),
     "missing contract_call.contract_id"),
    ("coinbase payload missing", _mutate(tx_type="coinbase"), "without a coinbase_payload"),
    ("tenure payload missing", _mutate(tx_type="tenure_change"),
     "without a tenure_change_payload"),
    ("transfer amount missing", _token_transfer(token_transfer={"recipient_address": "ST1"}),
     "missing token_transfer.amount"),
    ("transfer amount bad", _token_transfer(
        token_transfer={"recipient_address": "ST1", "amount": "ten"}),
     "token_transfer.amount is not a non-negative integer"),
    ("transfer recipient missing", _token_transfer(token_transfer={"amount": "1"}),
     "missing token_transfer.recipient_address"),
]


@pytest.mark.parametrize(("raw", "reason"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_validation_rule_gives_concrete_reason(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(RowError) as info:
        map_transaction(raw, NOW)
    assert reason in info.value.reason
    assert "\n" not in info.value.reason


def test_block_time_before_burn_block_time_is_kept() -> None:
    """A Bitcoin header may run up to 2 h ahead of the Stacks blocks anchored to it."""
    raw = _mutate(block_time=1771134155 - 600)
    row = map_transaction(raw, NOW)
    assert row["block_time"] < row["burn_block_time"]
    assert row["index_block_hash"] is None  # v1 objects carry no index_block_hash


def test_not_an_object_is_rejected() -> None:
    rows, rejected = map_page([["not", "a", "dict"], None, "0xabc"], NOW)
    assert rows == []
    assert [r.tx_id for r in rejected] == [None, None, None]
    assert all(r.reason.startswith("result is not an object") for r in rejected)
    assert rejected[0].raw_json == '["not","a","dict"]'


def test_sponsored_fee_is_charged_to_sponsor() -> None:
    raw = _mutate(sponsored=True, sponsor_address="SP000000000000000000002Q6VF78", sponsor_nonce=3)
    row = map_transaction(raw, NOW)
    assert row["sponsor_address"] == row["fee_payer"] == "SP000000000000000000002Q6VF78"
    assert row["sender_address"] == BASE["sender_address"]


def test_failed_and_new_statuses_are_kept() -> None:
    for status in ("abort_by_response", "abort_by_post_condition", "problematic_skipped"):
        row = map_transaction(_mutate(tx_status=status), NOW)
        assert row["tx_status"] == status and row["fee_ustx"] == 3000


def test_token_transfer_amount_and_zero_fee() -> None:
    row = map_transaction(_token_transfer(fee_rate="0"), NOW)
    assert (row["token_amount_ustx"], row["fee_ustx"]) == (2500, 0)
    assert row["token_recipient"] == "ST1RZG804V6Y0N4XHQD3ZE2GE3XSCV3VHRKMA3GB0"
    assert map_transaction(_mutate(fee_rate=str(2**63 - 1)), NOW)["fee_ustx"] == 2**63 - 1


def test_page_with_bad_rows_keeps_good_ones_and_reports_the_rest() -> None:
    good = _results("testnet-contract-principal-transactions-2026-02.json")
    bad_fee = {**good[1], "fee_rate": "lots"}
    bad_id = {**good[2], "tx_id": "nope"}
    page = [good[0], bad_fee, good[3], bad_id, 42]
    rows, rejected = map_page(page, NOW)
    assert [r["tx_id"] for r in rows] == [good[0]["tx_id"], good[3]["tx_id"]]
    assert len(rows) + len(rejected) == len(page)  # never silently dropped
    assert isinstance(rejected[0], RejectedRow)
    assert rejected[0].tx_id == good[1]["tx_id"]
    assert rejected[0].burn_block_time == datetime.fromtimestamp(good[1]["burn_block_time"], UTC)
    assert "fee_rate" in rejected[0].reason
    assert json.loads(rejected[0].raw_json) == bad_fee
    assert rejected[1].tx_id == "nope" and "tx_id" in rejected[1].reason
    assert rejected[2].raw_json == "42"


def test_naive_ingested_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        map_transaction(BASE, datetime(2026, 1, 1))


def test_absent_nonce_and_burn_height_are_null_not_invented() -> None:
    (raw,) = _results("testnet-contract-principal-transactions-2026-02.json")[:1]
    trimmed = {k: v for k, v in raw.items() if k not in ("nonce", "burn_block_height")}
    row = map_transaction(trimmed, NOW)
    assert row["nonce"] is None and row["burn_block_height"] is None
    assert map_transaction(raw, NOW)["nonce"] == 26
