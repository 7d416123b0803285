"""Conformance of the simulator's v3 cursor lists, v2 block lists and the v1 deprecation switch.

The paging algorithm is checked first against the API's own test fixtures
(`tests/api/v3/transactions.test.ts`: microblock transactions at sequence 0, which the
generated Nakamoto chain never has), then everything over real HTTP against the generated
chain and its ground truth (hiro-api.md §2.1, §4.1).
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from stx_pipeline.sim import Simulator
from stx_pipeline.sim.cli_args import add_simulator_arguments, config_from_args
from stx_pipeline.sim.cursor import I32_MAX, ListPositions, cursor_page

MakeSim = Callable[..., Simulator]
V3 = "/extended/v3/transactions"
V1 = "/extended/v1/tx"
TOP = f"{I32_MAX}:32767"
GONE = {
    "error": "Gone",
    "message": "This endpoint has been disabled. See https://docs.hiro.so/stacks/api for more "
    "information",
}


def get(sim: Simulator, path: str, headers: dict[str, str] | None = None,
        **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers=headers, timeout=10)


def cursors(page: Any) -> dict[str, str | None]:
    return {"next": page.next, "previous": page.previous, "current": page.current}


def canonical_desc(sim: Simulator) -> list[dict[str, Any]]:
    """Ground truth in v3 order: height, tx_index descending (every tx is anchored)."""
    gt = [t for t in sim.ground_truth(include_orphaned=False)]
    return sorted(gt, key=lambda t: (t["block_height"], t["tx_index"]), reverse=True)


def walk(sim: Simulator, path: str = V3, limit: int = 50) -> list[dict[str, Any]]:
    """Follow `cursor.next` from the top; checks the cursors of every page on the way."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    prev_current: str | None = None
    with requests.Session() as s:
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            body = s.get(sim.url + path, params=params, timeout=10).json()
            res = body["results"]
            first = res[0]["block"]
            assert body["cursor"]["current"] == f"{first['height']}:{I32_MAX}:{first['tx_index']}"
            if cursor is not None:
                assert body["cursor"]["current"] == cursor  # next = first row of the older page
                assert body["cursor"]["previous"] == prev_current  # full pages: the newer start
            out.extend(res)
            prev_current, cursor = body["cursor"]["current"], body["cursor"]["next"]
            if cursor is None:
                return out


def busy_block(sim: Simulator, min_txs: int = 4) -> dict[str, Any]:
    """The newest block with at least `min_txs` transactions (v2 list, older pages)."""
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 30} | ({"cursor": cursor} if cursor else {})
        page = get(sim, "/extended/v2/blocks", **params).json()
        for b in page["results"]:
            if b["tx_count"] >= min_txs:
                return b
        cursor = page["prev_cursor"]
        assert cursor, "no busy block in the whole chain"


# --------------------------------------------------------------------------- the algorithm


def test_pages_of_five_over_blocks_ten_to_one() -> None:
    """The API's 'should allow cursor pagination' test: 5 txs per block, sequence 0."""
    rows = ListPositions([(h, 0, i) for h in range(1, 11) for i in range(5)])
    p1 = cursor_page(rows, 5, None)
    assert cursors(p1) == {"next": "9:0:4", "previous": None, "current": "10:0:4"}
    p2 = cursor_page(rows, 5, p1.next)
    assert cursors(p2) == {"next": "8:0:4", "previous": "10:0:4", "current": "9:0:4"}
    seen, page = [], p1
    while True:
        seen.extend(page.indices)
        if page.next is None:
            break
        page = cursor_page(rows, 5, page.next)
    assert seen == list(range(49, -1, -1))  # every row once, newest first: no gap, no overlap
    assert cursors(page) == {"next": None, "previous": "2:0:4", "current": "1:0:4"}


def test_h00_means_top_of_block_unless_a_row_sits_there() -> None:
    anchored = ListPositions([(1, I32_MAX, 0)])
    p = cursor_page(anchored, 1, "1:0:0")
    assert p.indices == [0]
    assert cursors(p) == {"next": None, "previous": None, "current": f"1:{I32_MAX}:0"}
    exact = ListPositions([(1, 0, 0), (1, I32_MAX, 1)])
    p = cursor_page(exact, 1, "1:0:0")
    assert p.indices == [0]  # the microblock tx at (1,0,0): the anchored one is skipped
    assert cursors(p) == {"next": None, "previous": f"1:{I32_MAX}:1", "current": "1:0:0"}
    assert cursor_page(exact, 1, f"1:{TOP}").indices == [1]


def test_empty_list_and_cursor_below_everything() -> None:
    assert cursors(cursor_page(ListPositions([]), 20, None)) == dict.fromkeys(
        ("next", "previous", "current"))
    rows = ListPositions([(5, I32_MAX, 0), (6, I32_MAX, 0)])
    p = cursor_page(rows, 20, f"4:{TOP}")
    assert p.indices == [] and p.previous is None and p.current is None


# --------------------------------------------------------------------------- over HTTP


def test_v3_first_page_envelope_and_summary_fields(simulator: Simulator) -> None:
    r = get(simulator, V3)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["x-api-version"] == simulator.config.api_version
    assert "warning" not in r.headers  # v3 is not deprecated
    body = r.json()
    assert list(body) == ["total", "limit", "cursor", "results"]
    assert list(body["cursor"]) == ["next", "previous", "current"]
    assert body["limit"] == 20 and len(body["results"]) == 20
    truth = canonical_desc(simulator)
    assert body["total"] == len(truth)
    assert body["cursor"]["previous"] is None
    assert [s["tx_id"] for s in body["results"]] == [t["tx_id"] for t in truth[:20]]
    assert body["cursor"]["next"] == (
        f"{truth[20]['block_height']}:{I32_MAX}:{truth[20]['tx_index']}")
    base = ["tx_id", "sender", "sponsor", "fee_rate", "block", "bitcoin_block", "status", "type"]
    for s in body["results"]:
        assert list(s)[:8] == base
        assert list(s["block"]) == ["height", "hash", "index_hash", "time", "tx_index"]
        assert list(s["bitcoin_block"]) == ["height", "time"]
        assert isinstance(s["fee_rate"], str)


def test_summaries_carry_what_v1_carries(make_simulator: MakeSim) -> None:
    """Same tx, both renderings: every field a `transactions` row needs agrees."""
    sim = make_simulator(seed=11, history_days=1, tx_per_day=4000, now=1_780_000_000)
    v1 = {t["tx_id"]: t for off in range(0, 200, 50)
          for t in get(sim, V1, limit=50, offset=off).json()["results"]}
    v3 = {s["tx_id"]: s for s in walk(sim)[:200]}
    assert v1.keys() == v3.keys()
    kinds = Counter()
    for tx_id, s in v3.items():
        t = v1[tx_id]
        kinds[s["type"]] += 1
        assert (s["sender"]["address"], s["sender"]["nonce"]) == (t["sender_address"], t["nonce"])
        assert s["fee_rate"] == t["fee_rate"] and s["status"] == t["tx_status"]
        assert s["type"] == t["tx_type"]
        assert s["block"] == {"height": t["block_height"], "hash": t["block_hash"],
                              "index_hash": s["block"]["index_hash"], "time": t["block_time"],
                              "tx_index": t["tx_index"]}
        assert s["bitcoin_block"] == {"height": t["burn_block_height"],
                                      "time": t["burn_block_time"]}
        if t["sponsored"]:
            assert s["sponsor"] == {"address": t["sponsor_address"], "nonce": t["sponsor_nonce"]}
        else:
            assert s["sponsor"] is None
        if s["type"] == "token_transfer":
            assert s["token_transfer"]["recipient"] == t["token_transfer"]["recipient_address"]
            assert s["token_transfer"]["amount"] == t["token_transfer"]["amount"]
            assert s["token_transfer"]["memo"]["hex"] == t["token_transfer"]["memo"]
        elif s["type"] == "contract_call":
            assert s["contract_call"] == {
                k: t["contract_call"][k] for k in ("contract_id", "function_name")}
        elif s["type"] == "smart_contract":
            assert s["smart_contract"] == {
                k: t["smart_contract"][k] for k in ("clarity_version", "contract_id")}
        elif s["type"] == "coinbase":
            assert s["coinbase"] == {"alt_recipient": None}
        elif s["type"] == "tenure_change":
            assert s["tenure_change"] == {"cause": "block_found"}
    assert {"contract_call", "token_transfer", "coinbase", "tenure_change"} <= set(kinds)


def test_walk_is_the_ground_truth_without_gap_or_overlap(simulator: Simulator) -> None:
    seen = walk(simulator)
    assert [s["tx_id"] for s in seen] == [t["tx_id"] for t in canonical_desc(simulator)]


def test_limits_and_validation_errors(simulator: Simulator) -> None:
    def err(**params: Any) -> dict[str, Any]:
        r = get(simulator, V3, **params)
        assert r.status_code == 400
        return r.json()

    assert err(limit=0) == {"statusCode": 400, "code": "FST_ERR_VALIDATION",
                            "error": "Bad Request", "message": "querystring/limit must be >= 1"}
    assert err(limit=51)["message"] == "querystring/limit must be <= 50"
    assert err(limit="abc")["message"] == "querystring/limit must be integer"
    assert err(cursor="10:0")["message"] == (
        'querystring/cursor must match pattern "^[0-9]+:[0-9]+:[0-9]+$"')
    assert err(cursor="-1:0:0")["message"].startswith("querystring/cursor must match pattern")
    body = get(simulator, V3, limit=50).json()
    assert body["limit"] == 50 and len(body["results"]) == 50
    # no order, offset or filters: unknown parameters are ignored
    same = get(simulator, V3, limit=50, order="asc", offset=100, type="coinbase").json()
    assert same == body


def test_cursor_is_inclusive_and_h00_is_the_top_of_h(simulator: Simulator) -> None:
    truth = canonical_desc(simulator)
    t = truth[37]
    pos = f"{t['block_height']}:{I32_MAX}:{t['tx_index']}"
    body = get(simulator, V3, limit=5, cursor=pos).json()
    assert body["results"][0]["tx_id"] == t["tx_id"] and body["cursor"]["current"] == pos
    assert body["total"] == len(truth)  # the whole chain, whatever the cursor
    h = t["block_height"]
    top = get(simulator, V3, limit=5, cursor=f"{h}:{TOP}").json()
    assert get(simulator, V3, limit=5, cursor=f"{h}:0:0").json() == top
    first_in_h = next(x for x in truth if x["block_height"] <= h)
    assert top["results"][0]["tx_id"] == first_in_h["tx_id"]
    # below every row: an empty page, total 0, no cursors
    empty = get(simulator, V3, cursor=f"1:{TOP}").json()
    assert empty == {"total": 0, "limit": 20,
                     "cursor": {"next": None, "previous": None, "current": None}, "results": []}
    # above the tip: the first page
    assert get(simulator, V3, cursor=f"99999999999:{TOP}").json() == get(simulator, V3).json()


def test_etag_304_and_cursor_stability_while_the_chain_grows(simulator: Simulator) -> None:
    r = get(simulator, V3)
    etag = r.headers["etag"]
    assert etag == f'"{simulator.tip()["index_block_hash"]}"'
    assert r.headers["cache-control"] == "public, no-cache, must-revalidate"
    cached = get(simulator, V3, headers={"if-none-match": etag})
    assert cached.status_code == 304 and cached.content == b""
    deep = r.json()["cursor"]["next"]
    before = get(simulator, V3, limit=50, cursor=deep).json()
    simulator.advance(3 * 3600)
    grown = get(simulator, V3, headers={"if-none-match": etag})
    assert grown.status_code == 200 and grown.headers["etag"] != etag
    after = get(simulator, V3, limit=50, cursor=deep).json()
    assert after["results"] == before["results"] and after["cursor"]["next"] == \
        before["cursor"]["next"]
    assert after["total"] > before["total"]


def test_block_transactions_route(simulator: Simulator) -> None:
    truth = canonical_desc(simulator)
    busy = busy_block(simulator)
    h = busy["height"]
    in_h = [t["tx_id"] for t in truth if t["block_height"] == h]
    assert busy["tx_count"] == len(in_h) > 2
    for ident in (h, busy["hash"], busy["index_block_hash"], busy["hash"][2:]):
        body = get(simulator, f"/extended/v3/blocks/{ident}/transactions", limit=50).json()
        assert body["total"] == len(in_h)
        assert [s["tx_id"] for s in body["results"]] == in_h
    # paging inside the block: total stays the block's count, next stays inside it
    p1 = get(simulator, f"/extended/v3/blocks/{h}/transactions", limit=2).json()
    assert p1["total"] == len(in_h) and len(p1["results"]) == 2
    p2 = get(simulator, f"/extended/v3/blocks/{h}/transactions", limit=2,
             cursor=p1["cursor"]["next"]).json()
    assert [s["tx_id"] for s in p1["results"] + p2["results"]] == in_h[:4]
    assert p2["cursor"]["previous"] == p1["cursor"]["current"]
    latest = get(simulator, "/extended/v3/blocks/latest/transactions")
    tip_height = simulator.tip()["block_height"]
    in_tip = [t["tx_id"] for t in truth if t["block_height"] == tip_height]
    # the tip block may hold no transaction, depending on where the wall clock puts the head
    assert [s["tx_id"] for s in latest.json()["results"]] == in_tip[:20]
    assert all(s["block"]["height"] == tip_height for s in latest.json()["results"])
    assert latest.headers["etag"] == f'"{simulator.tip()["index_block_hash"]}:true"'
    missing = get(simulator, "/extended/v3/blocks/1/transactions")
    assert missing.status_code == 404
    assert missing.json() == {"statusCode": 404, "error": "Not Found", "message": "Block not found"}
    bad = get(simulator, "/extended/v3/blocks/nope/transactions")
    assert bad.status_code == 400 and bad.json()["message"].startswith("params/height_or_hash")


def test_orphaned_block_is_404_and_a_walk_follows_the_new_fork(simulator: Simulator) -> None:
    tip = simulator.tip()
    assert get(simulator, f"/extended/v3/blocks/{tip['block_hash']}/transactions").status_code \
        == 200
    simulator.reorg(3)
    gone = get(simulator, f"/extended/v3/blocks/{tip['block_hash']}/transactions")
    assert gone.status_code == 404
    new_tip = simulator.tip()
    assert new_tip["block_height"] == tip["block_height"]
    ok = get(simulator, f"/extended/v3/blocks/{tip['block_height']}/transactions")
    assert ok.headers["etag"] == f'"{new_tip["index_block_hash"]}:true"'
    assert all(s["block"]["index_hash"] == new_tip["index_block_hash"]
               for s in ok.json()["results"])
    assert [s["tx_id"] for s in walk(simulator)] == [t["tx_id"] for t in canonical_desc(simulator)]


def test_v2_block_list_counts_and_cursors(simulator: Simulator) -> None:
    truth = canonical_desc(simulator)
    first = get(simulator, "/extended/v2/blocks").json()
    assert list(first) == ["limit", "offset", "total", "next_cursor", "prev_cursor", "cursor",
                           "results"]
    assert first["limit"] == 20 and first["offset"] == 0 and first["next_cursor"] is None
    assert first["results"][0]["height"] == simulator.tip()["block_height"]
    assert first["cursor"] == first["results"][0]["index_block_hash"]
    # walk the whole chain through prev_cursor (the OLDER page here, unlike v3)
    heights, total_txs, cursor = [], 0, None
    while True:
        params: dict[str, Any] = {"limit": 30} | ({"cursor": cursor} if cursor else {})
        page = get(simulator, "/extended/v2/blocks", **params).json()
        heights += [b["height"] for b in page["results"]]
        total_txs += sum(b["tx_count"] for b in page["results"])
        cursor = page["prev_cursor"]
        if cursor is None:
            break
    assert heights == list(range(heights[0], heights[0] - len(heights), -1))
    assert page["total"] == len(heights) and total_txs == len(truth)
    off = get(simulator, "/extended/v2/blocks", limit=5, offset=7).json()
    assert [b["height"] for b in off["results"]] == list(range(heights[7], heights[12], -1))
    assert get(simulator, "/extended/v2/blocks", limit=31).json()["message"] == \
        "querystring/limit must be <= 30"
    assert get(simulator, "/extended/v2/blocks", offset=301).json()["message"] == \
        "querystring/offset must be <= 300"
    nf = get(simulator, "/extended/v2/blocks", cursor="0x" + "ab" * 32)
    assert nf.status_code == 404 and nf.json()["message"] == "Cursor not found"


def test_v2_burn_blocks_count_tenures(simulator: Simulator) -> None:
    page = get(simulator, "/extended/v2/burn-blocks", limit=30).json()
    assert list(page) == ["limit", "offset", "total", "results"]
    tip = simulator.tip()
    assert page["total"] == get(simulator, "/extended/v2/blocks").json()["total"]  # block_count
    first = page["results"][0]
    assert list(first) == ["burn_block_time", "burn_block_time_iso", "burn_block_hash",
                           "burn_block_height", "stacks_blocks", "avg_block_time",
                           "total_tx_count"]
    assert first["burn_block_height"] == tip["burn_block_height"]
    assert first["stacks_blocks"][0] == tip["block_hash"]
    heights = [b["burn_block_height"] for b in page["results"]]
    assert heights == sorted(heights, reverse=True) and len(heights) == 30
    truth = canonical_desc(simulator)
    for bb in page["results"][1:4]:
        rows = [t for t in truth if t["burn_block_height"] == bb["burn_block_height"]]
        assert bb["total_tx_count"] == len(rows) > 0
        assert {t["block_hash"] for t in rows} <= set(bb["stacks_blocks"])
        assert bb["burn_block_time"] == rows[0]["burn_block_time"]
    nxt = get(simulator, "/extended/v2/burn-blocks", limit=30, offset=29).json()["results"]
    assert nxt[0] == page["results"][29]
    one = page["results"][2]
    assert get(simulator, f"/extended/v2/burn-blocks/{one['burn_block_height']}").json() == one
    assert get(simulator, f"/extended/v2/burn-blocks/{one['burn_block_hash']}").json() == one
    assert get(simulator, "/extended/v2/burn-blocks/latest").json() == first
    assert get(simulator, "/extended/v2/burn-blocks/12").json() == {
        "statusCode": 404, "error": "Not Found", "message": "Not found"}
    assert get(simulator, "/extended/v2/burn-blocks", limit=31).json()["message"] == \
        "querystring/limit must be <= 30"
    assert get(simulator, "/extended/v2/burn-blocks", limit=0).json()["results"] == []


def test_v2_single_block(simulator: Simulator) -> None:
    listed = get(simulator, "/extended/v2/blocks", limit=3).json()["results"]
    for ident in ("latest", listed[0]["height"], listed[0]["index_block_hash"]):
        assert get(simulator, f"/extended/v2/blocks/{ident}").json() == listed[0]
    assert get(simulator, f"/extended/v2/blocks/{listed[2]['hash']}").json() == listed[2]
    assert get(simulator, "/extended/v2/blocks/7").json()["message"] == "Block not found"
    assert get(simulator, "/extended/v2/blocks/average-times").status_code == 404


def test_v2_block_by_time(simulator: Simulator) -> None:
    blocks = get(simulator, "/extended/v2/blocks", limit=5).json()["results"]
    b = blocks[2]
    for ts in (b["block_time"], blocks[1]["block_time"] - 1):
        got = get(simulator, f"/extended/v2/blocks/by-block-time/{ts}")
        assert got.status_code == 200 and got.json() == b
    assert get(simulator, "/extended/v2/blocks/by-block-time/1000").json() == {
        "statusCode": 404, "error": "Not Found",
        "message": "No block found at or before the given timestamp"}
    bad = get(simulator, "/extended/v2/blocks/by-block-time/abc")
    assert bad.status_code == 400 and bad.json()["message"] == "params/timestamp must be integer"


def test_v1_deprecation_headers_and_the_410_switches(make_simulator: MakeSim) -> None:
    sim = make_simulator(gone_after_requests=2)
    for _ in range(2):
        r = get(sim, V1, limit=1)
        assert r.status_code == 200
        assert r.headers["warning"] == (
            '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"')
        assert r.headers["x-api-version"] == "v9.0.2 (master:759c4a58)"
    r = get(sim, V1, limit=1)
    assert r.status_code == 410 and r.json() == GONE
    assert "warning" in r.headers and "x-api-version" not in r.headers
    assert get(sim, V3, limit=1).status_code == 200  # only deprecated routes are switched off
    assert get(sim, "/extended").status_code == 200
    assert sim.stats["by_route"] == {"v1_tx": 3, "v3_transactions": 1, "status": 1}
    timed = make_simulator(gone_at=None)
    assert get(timed, V1, limit=1).status_code == 200
    timed.set_faults(gone_at=timed.now() + 600)
    assert get(timed, V1, limit=1).status_code == 200
    timed.advance(601)
    assert get(timed, V1, limit=1).status_code == 410


def test_faults_and_malformed_summaries_reach_v3(make_simulator: MakeSim) -> None:
    sim = make_simulator(malformed_rate=0.2)
    res = get(sim, V3, limit=50).json()["results"]
    broken = [s for s in res if sim.malformed_kind(s["tx_id"])]
    assert broken and len(broken) < len(res)
    for s in broken:
        kind = sim.malformed_kind(s["tx_id"])
        if kind == "missing_field":
            assert "sender" not in s
        elif kind == "unknown_type":
            assert s["type"] == "quantum_transfer"
    sim.set_faults(malformed_rate=0.0, fault_rate=1.0, fault_kinds=("503",))
    r = get(sim, V3)
    assert r.status_code == 503 and r.json() == {"error": "The database service is unavailable"}


@pytest.mark.parametrize("path", ["/extended/v2/blocks", "/extended/v2/blocks/by-block-time/0"])
def test_block_routes_send_no_warning(simulator: Simulator, path: str) -> None:
    r = get(simulator, path)
    assert "warning" not in r.headers and "x-api-version" in r.headers


def test_cli_flags_for_the_delayed_410() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--gone-after-requests", "5", "--gone-at", "123"]))
    assert (cfg.gone, cfg.gone_after_requests, cfg.gone_at) == (False, 5, 123.0)
    assert cfg.fault_settings().gone_after_requests == 5


# --------------------------------------------------------------------------- the v1 oddities
# Every oddity the v1 suites exercise exists on the v3 / v2 routes too, behind the same flag.

BLOCKS = "/extended/v2/blocks"
NOW = 1_780_000_000  # a fixed head: the chain near it is the same whenever the suite runs
BURN_BLOCKS = "/extended/v2/burn-blocks"


@pytest.mark.parametrize("kind", ["500", "502", "503", "truncated", "stall"])
def test_every_fault_kind_hits_v1_and_v3_alike(make_simulator: MakeSim, kind: str) -> None:
    sim = make_simulator(fault_rate=1.0, fault_kinds=(kind,), stall_seconds=0.05)
    answers = {path: get(sim, path, limit=5) for path in (V1, V3, BLOCKS, BURN_BLOCKS)}
    shapes = {(r.status_code, r.headers["content-type"]) for r in answers.values()}
    assert len(shapes) == 1, shapes  # the same fault, whatever the route
    status = answers[V3].status_code
    if kind in ("500", "502", "503"):
        assert status == int(kind)
        assert answers[V3].content == answers[V1].content
    else:
        assert status == 200
        text = answers[V3].text
        if kind == "truncated":
            with pytest.raises(ValueError):
                answers[V3].json()
            assert text.startswith('{"total":')
        else:
            assert answers[V3].json()["limit"] == 5  # a stall answers late, but whole
    assert sim.stats["faults"] == {kind: 4}


def test_wrong_content_type_hits_v3(make_simulator: MakeSim) -> None:
    sim = make_simulator(wrong_content_type=True)
    for path in (V1, V3, f"{BLOCKS}/latest"):
        r = get(sim, path)
        assert r.status_code == 200 and r.headers["content-type"] == "text/html"
        assert r.text.startswith("<!DOCTYPE html>")


def test_gateway_rate_limit_counts_every_route(make_simulator: MakeSim) -> None:
    sim = make_simulator(rate_limit_rpm=3)
    ok = [get(sim, path, limit=1) for path in (V1, V3, BLOCKS)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-stacks-minute"] for r in ok] == ["2", "1", "0"]
    for path in (V3, "/extended/v3/blocks/latest/transactions", BURN_BLOCKS, V1):
        r = get(sim, path, limit=1)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-limit"] == "3" and r.headers["ratelimit-remaining"] == "0"
    assert sim.stats["responses_429"] == 4


def test_malformed_rows_are_the_same_tx_ids_on_v1_and_v3(make_simulator: MakeSim) -> None:
    sim = make_simulator(malformed_rate=0.1)
    v1 = [t for off in range(0, 300, 50)
          for t in get(sim, V1, limit=50, offset=off).json()["results"]]
    v3: list[dict[str, Any]] = []
    cursor = None
    while len(v3) < 300:
        body = get(sim, V3, limit=50, **({"cursor": cursor} if cursor else {})).json()
        v3 += body["results"]
        cursor = body["cursor"]["next"]
    truth = canonical_desc(sim)[:300]
    kinds = {t["tx_id"]: sim.malformed_kind(t["tx_id"]) for t in truth}
    assert len({k for k in kinds.values() if k}) >= 4
    broken_v1 = {t["tx_id"] for t, want in zip(v1, truth, strict=True)
                 if t.get("sender_address") is None or t["tx_type"] == "quantum_transfer"
                 or not isinstance(t["block_height"], int) or t["block_hash"] == "0x"
                 or not t["fee_rate"].isdigit()}
    broken_v3 = {s["tx_id"] for s in v3
                 if "sender" not in s or s["type"] == "quantum_transfer"
                 or not isinstance(s["block"]["height"], int) or s["block"]["hash"] == "0x"
                 or not s["fee_rate"].isdigit()}
    assert broken_v1 == broken_v3 == {tx for tx, k in kinds.items() if k}
    assert [s["tx_id"] for s in v3] == [t["tx_id"] for t in truth]  # ids stay intact


def _walk_pages(sim: Simulator, limit: int, between: Callable[[int], None] | None = None,
                cursors: list[str] | None = None) -> list[dict[str, Any]]:
    """Follow `cursor.next` from the top; `between(n)` runs after the n-th page, and each
    page's `next` is appended to `cursors`."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    n = 0
    while True:
        r = get(sim, V3, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["results"]
        cursor = body["cursor"]["next"]
        n += 1
        if cursor is None:
            return out
        if cursors is not None:
            cursors.append(cursor)
        if between is not None:
            between(n)


def _position(s: dict[str, Any]) -> tuple[int, int]:
    return s["block"]["height"], s["block"]["tx_index"]


def test_scheduled_reorg_mid_walk_and_the_cursor_goes_down_the_new_fork(
    make_simulator: MakeSim,
) -> None:
    """`reorg_after_requests` fires on v3 requests too. The walk gets no error: rows it
    read from the orphaned fork stay read, the rest come from the new fork, and only
    `block.index_hash` (against the v2 block list) tells them apart."""
    sim = make_simulator(seed=31, history_days=1, tx_per_day=6000,
                         reorg_after_requests=4, reorg_depth=40, now=NOW)
    old_tip = sim.tip()
    nexts: list[str] = []
    seen = _walk_pages(sim, limit=10, cursors=nexts)
    assert len(sim.reorgs) == 1 and sim.reorgs[0]["depth"] == 40
    info = sim.reorgs[0]
    assert sim.tip()["index_block_hash"] != old_tip["index_block_hash"]
    positions = [_position(s) for s in seen]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(seen)
    before, after = seen[:40], seen[40:]  # four pages were served before the reorg fired
    truth = canonical_desc(sim)
    # from the fourth page's (old-fork) cursor on, the walk is exactly the new chain
    h, _, i = (int(x) for x in nexts[3].split(":"))
    assert [s["tx_id"] for s in after] == [
        t["tx_id"] for t in truth if (t["block_height"], t["tx_index"]) <= (h, i)]
    assert {t["tx_id"] for t in before} - {t["tx_id"] for t in truth}  # orphans were read
    lo = min(info["from_height"], before[-1]["block"]["height"])
    blocks = {b["height"]: b for b in _v2_blocks(sim, lo, info["to_height"])}
    assert all(b["canonical"] for b in blocks.values())
    stale = [s for s in before if s["block"]["index_hash"] != blocks[s["block"]["height"]][
        "index_block_hash"]]
    assert stale and all(s["block"]["height"] >= info["from_height"] for s in stale)
    assert all(s["block"]["index_hash"] == blocks[s["block"]["height"]]["index_block_hash"]
               for s in after if s["block"]["height"] in blocks)
    # the orphaned block is gone from the per-block route
    assert get(sim, f"/extended/v3/blocks/{stale[0]['block']['index_hash']}/transactions"
               ).status_code == 404


def _v2_blocks(sim: Simulator, lo: int, hi: int) -> list[dict[str, Any]]:
    """Blocks lo..hi from the v2 list (older pages through prev_cursor)."""
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = get(sim, BLOCKS, limit=30, **({"cursor": cursor} if cursor else {})).json()
        out += [b for b in page["results"] if lo <= b["height"] <= hi]
        cursor = page["prev_cursor"]
        if cursor is None or page["results"][-1]["height"] <= lo:
            return out


def test_bitcoin_fork_changes_v2_blocks_and_burn_blocks(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=32, history_days=1, tx_per_day=6000, now=NOW)
    before_bb = {b["burn_block_height"]: b
                 for b in get(sim, BURN_BLOCKS, limit=10).json()["results"]}
    info = sim.reorg(burn_blocks=3)
    after_bb = {b["burn_block_height"]: b
                for b in get(sim, BURN_BLOCKS, limit=10).json()["results"]}
    assert before_bb.keys() == after_bb.keys()
    forked = sorted(before_bb)[-3:]
    for h in sorted(before_bb):
        old, new = before_bb[h], after_bb[h]
        if h in forked:  # a replaced burn block: new hash, new header time, new blocks
            assert new["burn_block_hash"] != old["burn_block_hash"]
            assert set(new["stacks_blocks"]).isdisjoint(old["stacks_blocks"])
        else:
            assert new == old
    assert any(after_bb[h]["burn_block_time"] != before_bb[h]["burn_block_time"]
               for h in forked)
    truth = canonical_desc(sim)
    for h in forked:
        rows = [t for t in truth if t["burn_block_height"] == h]
        assert after_bb[h]["total_tx_count"] == len(rows)
        assert {t["burn_block_time"] for t in rows} <= {after_bb[h]["burn_block_time"]}
        one = get(sim, f"{BURN_BLOCKS}/{after_bb[h]['burn_block_hash']}").json()
        assert one == after_bb[h]
        assert get(sim, f"{BURN_BLOCKS}/{before_bb[h]['burn_block_hash']}").status_code == 404
    blocks = _v2_blocks(sim, info["from_height"], info["to_height"])
    assert len(blocks) == info["depth"]
    for b in blocks:
        rows = [t for t in truth if t["block_height"] == b["height"]]
        assert b["tx_count"] == len(rows)
        assert b["burn_block_hash"] == after_bb[b["burn_block_height"]]["burn_block_hash"]
        assert all(t["burn_block_time"] == b["burn_block_time"] for t in rows)
    # the summaries agree with the block list
    top = get(sim, V3, limit=50).json()["results"]
    by_height = {b["height"]: b for b in blocks}
    forked_rows = [s for s in top if s["block"]["height"] in by_height]
    assert forked_rows
    for s in forked_rows:
        b = by_height[s["block"]["height"]]
        assert s["block"]["index_hash"] == b["index_block_hash"]
        assert s["bitcoin_block"] == {"height": b["burn_block_height"],
                                      "time": b["burn_block_time"]}


def test_burn_time_flags_reach_summaries_and_block_lists(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=33, history_days=1, tx_per_day=3000,
                         burn_time_disorder=0.15, burn_time_ahead=0.1, now=NOW)
    truth = {t["tx_id"]: t for t in canonical_desc(sim)}
    seen = walk(sim)
    assert len(seen) == len(truth)
    for s in seen:
        t = truth[s["tx_id"]]
        assert s["bitcoin_block"] == {"height": t["burn_block_height"],
                                      "time": t["burn_block_time"]}
    assert any(s["block"]["time"] < s["bitcoin_block"]["time"] for s in seen)  # ahead
    bbs = [b for off in range(0, 120, 30)
           for b in get(sim, BURN_BLOCKS, limit=30, offset=off).json()["results"]]
    times = [b["burn_block_time"] for b in bbs]  # newest first
    assert any(older > newer for newer, older in itertools.pairwise(times))
    header = {t["burn_block_height"]: t["burn_block_time"] for t in truth.values()}
    assert all(b["burn_block_time"] == header[b["burn_block_height"]] for b in bbs)
    for b in get(sim, BLOCKS, limit=30).json()["results"]:
        assert b["burn_block_time"] == header[b["burn_block_height"]]


def test_busy_tenures_and_blocks_page_exactly(make_simulator: MakeSim) -> None:
    """Hundreds of transactions under one burn time, blocks above one page."""
    sim = make_simulator(seed=34, history_days=0.5, tx_per_day=40000, now=NOW)
    truth = canonical_desc(sim)
    per_burn = Counter(t["burn_block_time"] for t in truth)
    busy, count = per_burn.most_common(1)[0]
    assert count > 300
    tenure = [t for t in truth if t["burn_block_time"] == busy]
    lo, hi = tenure[-1]["block_height"], tenure[0]["block_height"]
    seen: list[dict[str, Any]] = []
    cursor: str | None = f"{hi}:{TOP}"  # a shard's walk: from the top of hi down to lo
    while cursor is not None and int(cursor.split(":")[0]) >= lo:
        body = get(sim, V3, limit=50, cursor=cursor).json()
        seen += [s for s in body["results"] if s["block"]["height"] >= lo]
        cursor = body["cursor"]["next"]
    assert [s["tx_id"] for s in seen] == [t["tx_id"] for t in tenure]
    assert {s["bitcoin_block"]["time"] for s in seen} == {busy}
    per_block = Counter(t["block_height"] for t in truth)
    h, n = per_block.most_common(1)[0]
    assert n > 50
    got: list[str] = []
    cursor = None
    while True:
        body = get(sim, f"/extended/v3/blocks/{h}/transactions", limit=20,
                   **({"cursor": cursor} if cursor else {})).json()
        assert body["total"] == n
        got += [s["tx_id"] for s in body["results"]]
        cursor = body["cursor"]["next"]
        if cursor is None:
            break
    assert got == [t["tx_id"] for t in truth if t["block_height"] == h]


def test_empty_blocks_and_quiet_tenures(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=35, history_days=1, tx_per_day=300, now=NOW)
    truth = canonical_desc(sim)
    blocks = _v2_blocks(sim, 0, 10**9)
    empty = [b for b in blocks if b["tx_count"] == 0]
    assert empty, "no empty block in the chain"
    e = empty[0]
    body = get(sim, f"/extended/v3/blocks/{e['height']}/transactions").json()
    assert body == {"total": 0, "limit": 20,
                    "cursor": {"next": None, "previous": None, "current": None}, "results": []}
    # a cursor at the top of an empty block starts at the next lower block's newest row
    below = next(t for t in truth if t["block_height"] < e["height"])
    first = get(sim, V3, limit=1, cursor=f"{e['height']}:{TOP}").json()["results"]
    assert first[0]["tx_id"] == below["tx_id"]
    # quiet tenures: only their tenure change and coinbase
    per_tenure = Counter(t["burn_block_height"] for t in truth)
    quiet = [h for h, n in per_tenure.items() if n == 2]
    assert quiet
    bb = get(sim, f"{BURN_BLOCKS}/{quiet[0]}").json()
    assert bb["total_tx_count"] == 2
    assert [s["tx_id"] for s in walk(sim)] == [t["tx_id"] for t in truth]


def test_head_growing_during_a_walk_changes_nothing_below_it(make_simulator: MakeSim) -> None:
    sim = make_simulator(seed=36, history_days=1, tx_per_day=3000, now=NOW)
    truth = canonical_desc(sim)
    totals: list[int] = []

    def grow(_n: int) -> None:
        sim.advance(900)
        totals.append(get(sim, V3, limit=1).json()["total"])

    seen = _walk_pages(sim, limit=50, between=grow)
    assert [s["tx_id"] for s in seen] == [t["tx_id"] for t in truth]
    assert totals == sorted(totals) and totals[-1] > len(truth)


def test_request_log_is_off_by_default(make_simulator: MakeSim) -> None:
    plain = make_simulator()
    get(plain, V3, limit=1)
    assert plain.request_log == []
    sim = make_simulator(record_requests=True)
    get(sim, V3, limit=3, cursor=f"3800100:{TOP}")
    get(sim, V1, limit=2)
    assert sim.request_log == [("v3_transactions", {"limit": ["3"], "cursor": [f"3800100:{TOP}"]}),
                               ("v1_tx", {"limit": ["2"]})]
