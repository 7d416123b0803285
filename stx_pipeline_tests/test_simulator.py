"""Conformance tests of the Hiro simulator: real HTTP on loopback, no mocks.

The simulator is the offline stand-in for api.hiro.so, so these tests pin the behaviour the
rest of the project relies on (hiro-api.md §1, §3, §4) and the shape of the simulated chain.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from stx_pipeline.sim import SimConfig, Simulator, run_simulator
from stx_pipeline.sim.c32 import is_valid_stacks_address
from stx_pipeline.sim.cli_args import add_simulator_arguments, config_from_args
from stx_pipeline_tests.samples import TESTNET_PAGE_2026

NOW = 1_780_000_000  # a pinned chain "now" where a test needs exact times
TX = "/extended/v1/tx"
SYSTEM = {"coinbase", "tenure_change"}

MakeSim = Callable[..., Simulator]


def get(sim: Simulator, path: str = TX, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, timeout=10)


def page_all(sim: Simulator, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Page a query with offset until total (limit 50); returns (rows, total)."""
    rows: list[dict[str, Any]] = []
    offset, total = 0, None
    with requests.Session() as s:
        while total is None or offset < total:
            r = s.get(sim.url + TX, params={**params, "limit": 50, "offset": offset}, timeout=10)
            assert r.status_code == 200, r.text
            body = r.json()
            total = body["total"] if total is None else total
            assert body["total"] == total  # a closed window / frozen chain is stable
            rows.extend(body["results"])
            offset += 50
    return rows, int(total or 0)


def tenures(gt: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    by: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in gt:
        if t["canonical"]:
            by[t["burn_block_time"]].append(t)
    return dict(sorted(by.items()))


def busy_tenure(sim: Simulator, minimum: int = 51) -> tuple[int, list[dict[str, Any]]]:
    """The first tenure with more than `minimum - 1` user txs."""
    for bbt, txs in tenures(sim.ground_truth()).items():
        if sum(t["tx_type"] not in SYSTEM for t in txs) >= minimum:
            return bbt, txs
    raise AssertionError("no busy tenure")


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------------- envelope and objects
def test_envelope_headers_and_defaults(simulator: Simulator) -> None:
    r = get(simulator)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["limit", "offset", "total", "results"]
    assert body["limit"] == 20 and body["offset"] == 0 and len(body["results"]) == 20
    assert body["total"] == len(simulator.ground_truth(include_orphaned=False))
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["x-api-version"] == "v9.0.2 (master:759c4a58)"
    assert r.headers["warning"] == (
        '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"'
    )
    assert r.headers["cache-control"] == "public, no-cache, must-revalidate"
    tip = simulator.tip()
    assert r.headers["etag"] == f'"{tip["index_block_hash"]}"'
    assert "ratelimit-limit" not in r.headers  # rate limiting is off by default
    # newest first: the first row sits in the newest block holding a transaction (the tip
    # block itself may be empty, depending on where the wall clock puts the head)
    newest = max(t["block_height"] for t in simulator.ground_truth(include_orphaned=False))
    assert body["results"][0]["block_height"] == newest <= tip["block_height"]
    # 304 when the client already holds the tip
    r304 = requests.get(simulator.url + TX, headers={"If-None-Match": r.headers["etag"]},
                        timeout=10)
    assert r304.status_code == 304 and r304.content == b""


def test_status_route(simulator: Simulator) -> None:
    for path in ("/extended", "/extended/"):
        body = get(simulator, path).json()
        assert list(body) == ["server_version", "status", "chain_tip"]
        assert body["status"] == "ready"
        assert list(body["chain_tip"]) == [
            "block_height", "block_hash", "index_block_hash", "microblock_hash",
            "microblock_sequence", "burn_block_height",
        ]
        assert body["chain_tip"] == simulator.tip()
    newest = get(simulator, limit=1).json()["results"][0]
    truth = simulator.ground_truth(include_orphaned=False)
    top = max(truth, key=lambda t: (t["block_height"], t["tx_index"]))
    assert (newest["tx_id"], newest["block_height"]) == (top["tx_id"], top["block_height"])
    # the tip may be a newer block without transactions, never an older one
    assert newest["block_height"] <= simulator.tip()["block_height"]
    assert newest["burn_block_height"] <= simulator.tip()["burn_block_height"]


def test_field_order_matches_real_sample(simulator: Simulator) -> None:
    sample = json.loads(TESTNET_PAGE_2026.read_text())["results"]
    want = {t["tx_type"]: list(t) for t in sample}  # contract_call and smart_contract
    common = want["contract_call"][:-1]
    want["token_transfer"] = [*common, "token_transfer"]
    want["coinbase"] = [*common, "coinbase_payload"]
    want["tenure_change"] = [*common, "tenure_change_payload"]
    for tx_type, keys in want.items():
        rows = get(simulator, type=tx_type, limit=50).json()["results"]
        assert rows and all(r["tx_type"] == tx_type for r in rows)
        for r in rows:
            if r["sponsored"]:
                expected = list(keys)
                expected.insert(expected.index("sponsored"), "sponsor_nonce")
                expected.insert(expected.index("sponsored") + 1, "sponsor_address")
                assert list(r) == expected
            else:
                assert list(r) == keys
    call = get(simulator, type="contract_call", limit=1).json()["results"][0]["contract_call"]
    assert list(call) == ["contract_id", "function_name", "function_signature", "function_args"]
    assert list(call["function_args"][0]) == ["hex", "repr", "name", "type"]
    no_args = get(simulator, type="contract_call", limit=1, exclude_function_args="true")
    assert list(no_args.json()["results"][0]["contract_call"]) == [
        "contract_id", "function_name", "function_signature",
    ]
    tt = get(simulator, type="token_transfer", limit=1).json()["results"][0]["token_transfer"]
    assert list(tt) == ["recipient_address", "amount", "memo"]
    assert isinstance(tt["amount"], str) and tt["amount"].isdigit()
    assert tt["memo"] == "0x" + "00" * 34


def test_field_values_are_consistent(simulator: Simulator) -> None:
    rows = get(simulator, limit=50, offset=1234).json()["results"]
    gt = {t["tx_id"]: t for t in simulator.ground_truth()}
    for r in rows:
        assert r["tx_id"].startswith("0x") and len(r["tx_id"]) == 66
        assert isinstance(r["fee_rate"], str) and int(r["fee_rate"]) >= 0
        assert r["block_time_iso"] == iso(r["block_time"])
        assert r["burn_block_time_iso"] == iso(r["burn_block_time"])
        assert r["parent_burn_block_time_iso"] == iso(r["parent_burn_block_time"])
        assert r["block_time"] >= r["burn_block_time"]
        assert r["microblock_hash"] == "0x" and r["microblock_sequence"] == 2147483647
        assert r["canonical"] is True and r["microblock_canonical"] is True
        assert r["is_unanchored"] is False and r["events"] == []
        assert r["vm_error"] is None
        t = gt[r["tx_id"]]
        assert (t["nonce"], t["fee_rate"], t["sender_address"], t["block_height"]) == (
            r["nonce"], int(r["fee_rate"]), r["sender_address"], r["block_height"]
        )
        if r["tx_type"] in SYSTEM:
            assert r["fee_rate"] == "0" and r["tx_status"] == "success"
        if r["tx_status"] == "abort_by_response":
            assert r["tx_result"] == {"hex": "0x08010000000000000000000000000000000001",
                                      "repr": "(err u1)"}


# ---------------------------------------------------------------------- parameter rules
def test_limit_rules(simulator: Simulator) -> None:
    assert get(simulator, limit=0).json()["limit"] == 20
    assert len(get(simulator, limit=0).json()["results"]) == 20
    assert len(get(simulator, limit=50).json()["results"]) == 50
    assert get(simulator, limit="10.0").json()["limit"] == 10
    r = get(simulator, limit=51)
    assert r.status_code == 400
    assert r.text == (
        '{"statusCode":400,"code":"FST_ERR_VALIDATION","error":"Bad Request",'
        '"message":"querystring/limit must be <= 50"}'
    )
    total = get(simulator).json()["total"]
    past = get(simulator, offset=total + 5).json()
    assert past == {"limit": 20, "offset": total + 5, "total": total, "results": []}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": "abc"}, "querystring/limit must be integer"),
        ({"limit": "-1"}, "querystring/limit must be >= 0"),
        ({"offset": "-1"}, "querystring/offset must be >= 0"),
        ({"offset": "1.5"}, "querystring/offset must be integer"),
        ({"type": "coinbase,foo"}, "querystring/type/1 must be equal to one of the allowed values"),
        ({"type": ["foo", "coinbase"]},
         "querystring/type/0 must be equal to one of the allowed values"),
        ({"order": "ASC"}, "querystring/order must be equal to one of the allowed values"),
        ({"sort_by": "nonce"}, "querystring/sort_by must be equal to one of the allowed values"),
        ({"start_time": "1.5"}, "querystring/start_time must be integer"),
        ({"end_time": "abc"}, "querystring/end_time must be integer"),
        ({"unanchored": "1"}, "querystring/unanchored must be boolean"),
        ({"nonce": "-3"}, "querystring/nonce must be >= 0"),
        ({"limit": "abc", "offset": "-1"}, "querystring/offset must be >= 0"),  # first only
    ],
)
def test_schema_errors(simulator: Simulator, query: dict[str, Any], message: str) -> None:
    r = get(simulator, **query)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.json() == {"statusCode": 400, "code": "FST_ERR_VALIDATION",
                        "error": "Bad Request", "message": message}


def test_handler_errors_have_no_code(simulator: Simulator) -> None:
    r = get(simulator, from_address="bad")
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": 400, "error": "Bad Request",
        "message": 'Invalid query parameter for "from_address": "bad" is not a valid STX address',
    }
    r = get(simulator, contract_id="nope")
    assert r.json()["message"] == (
        'Invalid query parameter for "contract_id": "nope" is not a valid principal'
    )


def test_trailing_slash_and_unknown_params(simulator: Simulator) -> None:
    a = get(simulator, TX, limit=5).json()
    b = get(simulator, TX + "/", limit=5, foo="bar", unanchored="false").json()
    assert a == b and len(a["results"]) == 5
    assert get(simulator, "/extended/v1/nope").status_code == 404


def test_type_filter_forms_and_totals(simulator: Simulator) -> None:
    gt = simulator.ground_truth(include_orphaned=False)
    counts = Counter(t["tx_type"] for t in gt)
    all_total = get(simulator).json()["total"]
    assert all_total == len(gt)
    for tx_type in ("token_transfer", "contract_call", "smart_contract", "coinbase"):
        body = get(simulator, type=tx_type, limit=50).json()
        assert body["total"] == counts[tx_type]
        assert {r["tx_type"] for r in body["results"]} == {tx_type}
    comma = get(simulator, type="coinbase,token_transfer", limit=50).json()
    repeated = requests.get(simulator.url + TX + "?type=coinbase&type=token_transfer&limit=50",
                            timeout=10).json()
    assert comma == repeated
    assert comma["total"] == counts["coinbase"] + counts["token_transfer"]
    assert get(simulator, type="poison_microblock").json()["total"] == 0
    assert counts["coinbase"] == counts["tenure_change"] == len(tenures(gt))
    # falsy-zero quirk: start_time=0, end_time=0 and nonce=0 are no filter at all
    assert get(simulator, start_time=0, end_time=0, nonce=0).json()["total"] == all_total


def test_inclusive_time_bounds(simulator: Simulator) -> None:
    ten = list(tenures(simulator.ground_truth()))
    t1, t3 = ten[10], ten[13]
    rows, total = page_all(simulator, start_time=t1, end_time=t3, order="asc")
    expected = [t for t in simulator.ground_truth(t1, t3) if t["canonical"]]
    assert total == len(expected) == len(rows)
    assert {r["tx_id"] for r in rows} == {t["tx_id"] for t in expected}
    times = {r["burn_block_time"] for r in rows}
    assert times == set(ten[10:14])  # rows exactly at start_time and end_time included
    just_inside = get(simulator, start_time=t1 + 1, end_time=t3 - 1).json()["total"]
    at_ends = sum(t["burn_block_time"] in (t1, t3) for t in expected)
    assert just_inside == total - at_ends
    only_start = get(simulator, start_time=t3).json()["total"]
    assert only_start == sum(t["burn_block_time"] >= t3 for t in
                             simulator.ground_truth(include_orphaned=False))


def test_ordering_and_tie_breakers(simulator: Simulator) -> None:
    ten = list(tenures(simulator.ground_truth()))
    lo, hi = ten[20], ten[40]
    gt = [t for t in simulator.ground_truth(lo, hi) if t["canonical"]]

    def pos(t: dict[str, Any]) -> tuple[int, int]:
        return (t["block_height"], t["tx_index"])

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return [r["tx_id"] for r in rows]

    by_height = sorted(gt, key=pos)
    by_burn = sorted(gt, key=lambda t: (t["burn_block_time"], *pos(t)))
    by_fee = sorted(gt, key=lambda t: (t["fee_rate"], *pos(t)))
    assert len({t["fee_rate"] for t in gt}) < len(gt)  # fee ties exist and must be broken
    cases = {
        (None, None): by_height[::-1],
        ("block_height", "desc"): by_height[::-1],
        ("block_height", "asc"): by_height,
        ("burn_block_time", "desc"): by_burn[::-1],
        ("burn_block_time", "asc"): by_burn,
        ("fee", "desc"): by_fee[::-1],
        ("fee", "asc"): by_fee,
    }
    for (sort_by, order), expected in cases.items():
        params = {"start_time": lo, "end_time": hi}
        if sort_by:
            params["sort_by"] = sort_by
        if order:
            params["order"] = order
        rows, total = page_all(simulator, **params)
        assert total == len(gt)
        assert ids(rows) == ids(expected), (sort_by, order)
    # whole-chain fee order, first page: fee non-increasing, ties by (height, tx_index) desc
    top = get(simulator, sort_by="fee", limit=50).json()["results"]
    keys = [(int(r["fee_rate"]), r["block_height"], r["tx_index"]) for r in top]
    assert keys == sorted(keys, reverse=True)


def test_other_filters(simulator: Simulator) -> None:
    gt = simulator.ground_truth(include_orphaned=False)
    sender = Counter(t["sender_address"] for t in gt if t["tx_type"] not in SYSTEM)
    addr, n = sender.most_common(1)[0]
    rows, total = page_all(simulator, from_address=addr)
    assert total == n and {r["sender_address"] for r in rows} == {addr}
    assert sorted(r["nonce"] for r in rows) == list(range(n))
    assert get(simulator, nonce=1, from_address=addr).json()["results"][0]["nonce"] == 1
    call = next(t for t in gt if t["tx_type"] == "contract_call")
    body = get(simulator, contract_id=call["contract_id"], limit=50).json()
    want = [t for t in gt if t["contract_id"] == call["contract_id"]
            and t["tx_type"] == "contract_call"]
    assert body["total"] == len(want)
    both = get(simulator, contract_id=call["contract_id"],
               function_name=call["function_name"]).json()["total"]
    assert both == sum(t["function_name"] == call["function_name"] for t in want)
    tt = next(t for t in gt if t["tx_type"] == "token_transfer")
    rec = get(simulator, to_address=tt["token_recipient"], limit=50).json()
    assert rec["total"] == sum(t["token_recipient"] == tt["token_recipient"] for t in gt)
    assert all(r["token_transfer"]["recipient_address"] == tt["token_recipient"]
               for r in rec["results"])


# ---------------------------------------------------------------------- the simulated chain
def test_chain_shape(simulator: Simulator) -> None:
    gt = simulator.ground_truth()
    by_tenure = tenures(gt)
    starts = list(by_tenure)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert 420 <= statistics.mean(gaps) <= 840  # ~10 minutes
    assert max(gaps) >= 1800  # some long Bitcoin gaps
    user_counts = []
    for bbt, txs in by_tenure.items():
        types = Counter(t["tx_type"] for t in txs)
        assert types["coinbase"] == 1 and types["tenure_change"] == 1
        system = [t for t in txs if t["tx_type"] in SYSTEM]
        assert {(t["tx_index"], t["tx_type"]) for t in system} == {
            (0, "tenure_change"), (1, "coinbase")}
        assert system[0]["sender_address"] == system[1]["sender_address"]  # the miner
        assert all(t["block_time"] >= bbt for t in txs)
        blocks = sorted({(t["block_height"], t["block_time"]) for t in txs})
        assert all(b1[1] > b0[1] for b0, b1 in itertools.pairwise(blocks))
        user_counts.append(types.total() - 2)
    assert max(user_counts) >= 200  # some tenures hold several hundred
    assert sum(c > 50 for c in user_counts) >= 10
    assert sum(c == 0 for c in user_counts) >= 3
    user = [t for t in gt if t["tx_type"] not in SYSTEM]
    share = Counter(t["tx_type"] for t in user)
    assert 0.62 <= share["contract_call"] / len(user) <= 0.78
    assert 0.20 <= share["token_transfer"] / len(user) <= 0.34
    assert 0.01 <= share["smart_contract"] / len(user) <= 0.06
    status = Counter(t["tx_status"] for t in user)
    assert 0.87 <= status["success"] / len(user) <= 0.93
    assert status["abort_by_response"] > 0 and status["abort_by_post_condition"] > 0
    assert set(status) == {"success", "abort_by_response", "abort_by_post_condition"}
    sponsored = [t for t in user if t["sponsored"]]
    assert 0.03 <= len(sponsored) / len(user) <= 0.07
    assert all(t["sponsor_address"] and t["sponsor_address"] != t["sender_address"]
               and isinstance(t["sponsor_nonce"], int) for t in sponsored)
    assert all(not t["sponsored"] and t["fee_rate"] == 0 for t in gt if t["tx_type"] in SYSTEM)
    listed = get(simulator, type="contract_call,token_transfer", limit=50, offset=0).json()
    assert any("sponsor_address" in r for r in page_all(simulator, type="token_transfer")[0])
    assert listed["total"] == share["contract_call"] + share["token_transfer"]


def test_nonces_contiguous_and_new_wallets_keep_appearing(simulator: Simulator) -> None:
    gt = sorted(simulator.ground_truth(), key=lambda t: (t["block_height"], t["tx_index"]))
    seen: dict[str, int] = {}
    first_day: dict[str, int] = {}
    for t in gt:
        s = t["sender_address"]
        assert t["nonce"] == seen.get(s, -1) + 1, t
        seen[s] = t["nonce"]
        if t["nonce"] == 0:
            first_day[s] = t["block_time"] // 86_400
    sponsor_seen: dict[str, int] = {}
    for t in gt:
        if t["sponsored"]:
            sp = t["sponsor_address"]
            assert t["sponsor_nonce"] == sponsor_seen.get(sp, -1) + 1
            sponsor_seen[sp] = t["sponsor_nonce"]
    assert set(first_day) == set(seen)  # every sender's first tx has nonce 0
    assert not set(seen) & set(sponsor_seen)  # sponsor services never send
    per_day = Counter(first_day.values())
    days = sorted(per_day)
    assert len(days) >= 3 and all(per_day[d] >= 20 for d in days[1:-1])
    assert len(seen) >= 300
    for addr in list(seen)[:200]:
        assert addr.startswith("SP") and 38 <= len(addr) <= 41
        assert is_valid_stacks_address(addr)


def test_closed_window_paging_matches_ground_truth(simulator: Simulator) -> None:
    bbt, txs = busy_tenure(simulator, 120)
    assert len(txs) > 50
    start, end = bbt - 1800, bbt + 1800
    for order in ("asc", "desc"):
        rows, total = page_all(simulator, start_time=start, end_time=end, order=order)
        truth = {t["tx_id"] for t in simulator.ground_truth(start, end) if t["canonical"]}
        assert len(rows) == total == len(truth)
        assert {r["tx_id"] for r in rows} == truth
        assert {t["tx_id"] for t in txs} <= truth
    one = get(simulator, start_time=bbt, end_time=bbt, limit=50).json()
    assert one["total"] == len(txs) and len(one["results"]) == 50  # more than one page


def test_determinism(make_simulator: MakeSim) -> None:
    a = make_simulator(seed=11, now=NOW)
    b = make_simulator(seed=11, now=NOW)
    c = make_simulator(seed=12, now=NOW)
    pa = get(a, limit=50, offset=700).json()
    assert pa == get(b, limit=50, offset=700).json()
    ids_a = [t["tx_id"] for t in a.ground_truth()]
    assert ids_a == [t["tx_id"] for t in b.ground_truth()]
    assert not set(ids_a) & {t["tx_id"] for t in c.ground_truth()}
    # the same chunks come out whether generated ahead or lazily later
    lazy = make_simulator(seed=11, now=NOW, lookahead_days=0)
    lazy.advance(86_400)
    a.advance(86_400)
    assert [t["tx_id"] for t in lazy.ground_truth()] == [t["tx_id"] for t in a.ground_truth()]


# ---------------------------------------------------------------------- live head, reorgs
def test_head_grows_after_advance(simulator: Simulator) -> None:
    before = get(simulator).json()
    time.sleep(0.2)
    assert get(simulator).json() == before  # frozen: nothing moves by itself
    tip0 = simulator.tip()
    r = requests.post(simulator.url + "/__sim__/advance?seconds=3600", timeout=10)
    assert r.json()["sim_now"] == simulator.now()
    after = get(simulator).json()
    assert after["total"] > before["total"]
    assert simulator.tip()["block_height"] > tip0["block_height"]
    # the old rows moved down by exactly the number of new rows (offset paging shifts)
    shift = after["total"] - before["total"]
    moved = get(simulator, offset=shift).json()["results"]
    assert [m["tx_id"] for m in moved] == [x["tx_id"] for x in before["results"]]
    # everything listed is visible: block_time <= sim now
    assert max(x["block_time"] for x in after["results"]) <= simulator.now()


def test_head_grows_in_real_time(make_simulator: MakeSim) -> None:
    sim = make_simulator(frozen=False, speed=3600.0)
    t0 = get(sim).json()["total"]
    time.sleep(0.6)  # ~36 sim minutes
    assert get(sim).json()["total"] > t0


def test_mid_tenure_head(simulator: Simulator) -> None:
    """The newest tenure grows block by block while a client pages it."""
    head_bbt = get(simulator, limit=1).json()["results"][0]["burn_block_time"]
    window = {"start_time": head_bbt, "end_time": head_bbt}
    counts = [get(simulator, **window).json()["total"]]
    while get(simulator, limit=1).json()["results"][0]["burn_block_time"] == head_bbt:
        simulator.advance(10)
        counts.append(get(simulator, **window).json()["total"])
    assert counts == sorted(counts)
    assert len(set(counts)) >= 2  # the same tenure gained rows before the next one began
    newest = get(simulator, limit=1).json()["results"][0]
    assert newest["burn_block_time"] > head_bbt
    opener = get(simulator, type="tenure_change", limit=1).json()["results"][0]
    assert opener["burn_block_time"] == newest["burn_block_time"] and opener["tx_index"] == 0


def test_reorg(make_simulator: MakeSim) -> None:
    simulator = make_simulator(now=NOW)
    tip0 = simulator.tip()
    before = {t["tx_id"]: t for t in simulator.ground_truth()}
    r = requests.post(simulator.url + "/__sim__/reorg?depth=12", timeout=10).json()
    assert r["depth"] == 12 and r["to_height"] == tip0["block_height"]
    assert r["dropped_txs"] >= 1 and r["remined_txs"] >= 1 and r["new_txs"] >= 1
    tip1 = simulator.tip()
    assert tip1["block_height"] == tip0["block_height"]
    assert tip1["block_hash"] != tip0["block_hash"]
    after = simulator.ground_truth()
    dropped = [t for t in after if not t["canonical"]]
    assert {t["tx_id"] for t in dropped} == set(r["dropped_tx_ids"])
    for t in dropped:
        assert t["block_hash"] == before[t["tx_id"]]["block_hash"]  # the orphaned block
    start = min(t["burn_block_time"] for t in before.values()
                if t["block_height"] >= r["from_height"])
    listed, _ = page_all(simulator, start_time=start)
    listed_ids = {x["tx_id"] for x in listed}
    assert not listed_ids & set(r["dropped_tx_ids"])
    assert listed_ids == {t["tx_id"] for t in after
                          if t["canonical"] and t["burn_block_time"] >= start}
    canon = {t["tx_id"]: t for t in after if t["canonical"]}
    remined = [i for i in canon if i in before and before[i]["block_height"] >= r["from_height"]]
    assert len(remined) == r["remined_txs"]
    moved = [i for i in remined if before[i]["block_hash"] != canon[i]["block_hash"]]
    assert len(moved) == len(remined)  # same tx_id, new block hash
    new = [i for i in canon if i not in before]
    assert len(new) == r["new_txs"] and set(new) <= listed_ids
    assert all(canon[i]["nonce"] == 0 for i in new)
    # nonces stay contiguous per sender among canonical txs
    seen: dict[str, int] = {}
    for t in sorted(canon.values(), key=lambda t: (t["block_height"], t["tx_index"])):
        assert t["nonce"] == seen.get(t["sender_address"], -1) + 1
        seen[t["sender_address"]] = t["nonce"]
    assert r["from_height"] == tip0["block_height"] - 11
    etag = get(simulator).headers["etag"]
    assert etag == f'"{tip1["index_block_hash"]}"'


# ---------------------------------------------------------------------- rate limits and faults
def test_rate_limit_headers_and_429(make_simulator: MakeSim) -> None:
    sim = make_simulator(rate_limit_rpm=3)
    sim.limiter.clock = lambda: 1_800_000_010.0  # 10 s into a minute window
    for i in range(3):
        r = get(sim, limit=1)
        assert r.status_code == 200
        assert r.headers["ratelimit-limit"] == "3"
        assert r.headers["ratelimit-remaining"] == str(2 - i)
        assert r.headers["ratelimit-reset"] == "50"
        assert r.headers["x-ratelimit-limit-stacks-minute"] == "3"
        assert r.headers["x-ratelimit-remaining-stacks-minute"] == str(2 - i)
        assert "retry-after" not in r.headers
    r = get(sim, limit=1)
    assert r.status_code == 429 and r.json() == {"error": "Too Many Requests"}
    assert r.headers["retry-after"] == "50" and r.headers["ratelimit-remaining"] == "0"
    assert get(sim, "/extended").status_code == 429  # the gateway limits every route
    assert sim.stats["responses_429"] == 2
    # a new window lets requests through again
    sim.limiter.clock = lambda: 1_800_000_065.0
    assert get(sim, limit=1).status_code == 200
    # tighter limit at run time, and the unix-timestamp form of ratelimit-reset
    sim.set_rate_limit(1, reset_form="timestamp")
    r = get(sim, limit=1)
    assert r.status_code == 429 and r.headers["ratelimit-limit"] == "1"
    assert r.headers["ratelimit-reset"] == str(1_800_000_120)
    assert r.headers["retry-after"] == "55"
    requests.post(sim.url + "/__sim__/faults", json={"rate_limit_rpm": None}, timeout=10)
    r = get(sim, limit=1)
    assert r.status_code == 200 and "ratelimit-limit" not in r.headers


def test_quota_exhausted(make_simulator: MakeSim) -> None:
    sim = make_simulator(quota_exhausted_seconds=7 * 3600)
    for _ in range(3):
        r = get(sim, limit=1)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "25200"
        assert r.headers["ratelimit-remaining"] == "0"
        assert r.json() == {"error": "Too Many Requests"}
    sim.set_faults(quota_exhausted_seconds=None)
    assert get(sim, limit=1).status_code == 200
    assert sim.stats["by_status"] == {"429": 3, "200": 1}


@pytest.mark.parametrize("kind", ["500", "502", "503", "truncated"])
def test_each_fault_kind(make_simulator: MakeSim, kind: str) -> None:
    sim = make_simulator(fault_rate=1.0, fault_kinds=(kind,))
    r = get(sim, limit=50)
    if kind == "500":
        assert r.status_code == 500
        body = r.json()
        assert list(body) == ["statusCode", "error", "message"]
        assert body["statusCode"] == 500 and body["error"] == "Internal Server Error"
    elif kind == "502":
        assert r.status_code == 502
        assert r.headers["content-type"] == "text/html"
        assert "<title>502 Bad Gateway</title>" in r.text and "nginx" in r.text
    elif kind == "503":
        assert r.status_code == 503
        assert r.json() == {"error": "The database service is unavailable"}
    else:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.text.startswith('{"limit":50,"offset":0,"total":')
        with pytest.raises(json.JSONDecodeError):
            json.loads(r.text)
    assert sim.stats["faults"] == {kind: 1}


def test_stall_gone_wrong_content_type_latency(make_simulator: MakeSim) -> None:
    sim = make_simulator(fault_rate=1.0, fault_kinds=("stall",), stall_seconds=1.2)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(sim.url + TX, timeout=(2, 0.3))
    sim.set_faults(fault_rate=0.0, gone=True)
    r = get(sim)
    assert r.status_code == 410
    assert r.json() == {
        "error": "Gone",
        "message": "This endpoint has been disabled. See https://docs.hiro.so/stacks/api for "
        "more information",
    }
    sim.set_faults(gone=False, wrong_content_type=True)
    r = get(sim)
    assert r.status_code == 200 and r.headers["content-type"] == "text/html"
    assert r.text.startswith("<!DOCTYPE html>")
    sim.set_faults(wrong_content_type=False, latency_ms=150, latency_jitter_ms=20)
    t0 = time.perf_counter()
    assert get(sim, limit=1).status_code == 200
    assert time.perf_counter() - t0 >= 0.12
    faults = sim.stats["faults"]
    assert faults == {"stall": 1, "gone": 1, "wrong_content_type": 1}


def test_faults_are_seeded_and_settable_over_http(make_simulator: MakeSim) -> None:
    def run(sim: Simulator) -> list[int]:
        return [get(sim, limit=1).status_code for _ in range(30)]

    kinds = ("500", "503")
    a = run(make_simulator(fault_rate=0.4, fault_kinds=kinds, fault_seed=3))
    b = run(make_simulator(fault_rate=0.4, fault_kinds=kinds, fault_seed=3))
    assert a == b
    assert {200, 500, 503} == set(a)
    sim = make_simulator()
    r = requests.post(sim.url + "/__sim__/faults",
                      json={"fault_rate": 1, "fault_kinds": ["503"]}, timeout=10)
    assert r.status_code == 200 and r.json()["fault_kinds"] == ["503"]
    assert get(sim).status_code == 503
    requests.post(sim.url + "/__sim__/faults", json={"fault_rate": 0}, timeout=10)
    assert get(sim).status_code == 200
    bad = requests.post(sim.url + "/__sim__/faults", json={"nope": 1}, timeout=10)
    assert bad.status_code == 400
    bad = requests.post(sim.url + "/__sim__/faults", json={"fault_kinds": ["418"]}, timeout=10)
    assert bad.status_code == 400
    stats = requests.get(sim.url + "/__sim__/stats", timeout=10).json()
    assert stats["by_status"] == {"503": 1, "200": 1} and stats["faults"] == {"503": 1}
    assert stats["requests"] == 2


# ---------------------------------------------------------------------- admin, binding, CLI
def test_ground_truth_admin_route(simulator: Simulator) -> None:
    ten = list(tenures(simulator.ground_truth()))
    body = requests.get(simulator.url + "/__sim__/ground-truth",
                        params={"start_time": ten[5], "end_time": ten[9]}, timeout=10).json()
    assert body["transactions"] == simulator.ground_truth(ten[5], ten[9])
    assert body["count"] == len(body["transactions"]) > 0
    keys = {"tx_id", "canonical", "burn_block_time", "block_time", "block_height", "tx_type",
            "tx_status", "sender_address", "sponsored", "sponsor_address", "fee_rate", "nonce",
            "contract_id", "function_name"}
    assert keys <= set(body["transactions"][0])
    info = requests.get(simulator.url + "/__sim__/info", timeout=10).json()
    assert info["sim_now"] == simulator.now() and info["chain_tip"] == simulator.tip()


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimConfig(host="0.0.0.0")
    with run_simulator(history_days=1, tx_per_day=100, frozen=True) as sim:
        assert sim.url == f"http://127.0.0.1:{sim.port}" and sim.port > 0
        assert sim._server is not None and sim._server.server_address[0] == "127.0.0.1"
        assert get(sim, limit=1).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sim.url + TX, timeout=2)


def test_cli_args() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    ns = parser.parse_args([
        "--port", "3999", "--seed", "5", "--history-days", "2", "--tx-per-day", "100",
        "--fault-rate", "0.1", "--fault-kinds", "500,stall", "--rate-limit-rpm", "50",
        "--ratelimit-reset-form", "timestamp", "--gone", "--frozen",
    ])
    cfg = config_from_args(ns)
    assert (cfg.port, cfg.seed, cfg.history_days, cfg.tx_per_day) == (3999, 5, 2.0, 100.0)
    assert cfg.fault_kinds == ("500", "stall") and cfg.fault_rate == 0.1
    assert cfg.rate_limit_rpm == 50 and cfg.ratelimit_reset_form == "timestamp"
    assert cfg.gone and cfg.frozen and cfg.quota_exhausted_seconds is None


def test_page_latency_at_a_million_txs() -> None:
    """Correctness at 10^6+ rows; the latency is printed, not asserted."""
    t0 = time.perf_counter()
    with run_simulator(seed=3, history_days=170, tx_per_day=6000, frozen=True, now=NOW) as sim:
        built = time.perf_counter() - t0
        timings: dict[str, float] = {}
        with requests.Session() as s:
            cases = {
                "head": {"limit": 50},
                "deep offset": {"limit": 50, "offset": 600_000},
                "type filter": {"limit": 50, "type": "token_transfer", "offset": 100_000},
                "time window asc": {"limit": 50, "order": "asc", "offset": 50,
                                    "start_time": NOW - 90 * 86_400,
                                    "end_time": NOW - 89 * 86_400},
            }
            for name, params in cases.items():
                s.get(sim.url + TX, params=params, timeout=30)  # warm caches
                samples = []
                for _ in range(10):
                    t = time.perf_counter()
                    r = s.get(sim.url + TX, params=params, timeout=30)
                    samples.append(time.perf_counter() - t)
                    assert r.status_code == 200
                body = r.json()
                assert len(body["results"]) == 50
                timings[name] = statistics.median(samples) * 1000
                if name == "head":
                    assert body["total"] >= 1_000_000
                    heights = [(x["block_height"], x["tx_index"]) for x in body["results"]]
                    assert heights == sorted(heights, reverse=True)
                if name == "type filter":
                    assert {x["tx_type"] for x in body["results"]} == {"token_transfer"}
    print(f"\nsimulator at {body['total'] if name == 'head' else '>=1e6'} txs: built in "
          f"{built:.2f}s; median 50-row page: "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items()))
