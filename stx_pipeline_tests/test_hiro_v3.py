"""The client's v3 / v2-block endpoints, the summary -> row mapping and the deprecation watch,
over real HTTP against the simulator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from stx_pipeline.hiro import EndpointGone, HiroClient
from stx_pipeline.hiro.deprecation import DeprecationWatch, parse_warning
from stx_pipeline.hiro.rows import map_page
from stx_pipeline.hiro.summary_rows import (
    COLUMN_SOURCES,
    map_summary,
    map_summary_page,
    summary_index_hash,
)
from stx_pipeline.hiro.v3 import (
    BlockNotFound,
    block_at_time,
    block_transaction_summaries,
    get_block,
    latest_block,
    list_blocks,
    list_transaction_summaries,
    summary_cursor,
    top_of_block,
)
from stx_pipeline.sim import Simulator
from stx_pipeline.warehouse.schema import TRANSACTION_COLUMNS

MakeSim = Callable[..., Simulator]
NOW = datetime(2026, 12, 1, tzinfo=UTC)
WARNING = '299 - "Deprecated: See https://docs.hiro.so/stacks/api for more information"'


def client(sim: Simulator, **kw: Any) -> HiroClient:
    return HiroClient(sim.url, requests_per_minute=None, backoff_initial=0.01,
                      backoff_max=0.05, **kw)


def walk_summaries(c: HiroClient, start: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = start
    while True:
        page = list_transaction_summaries(c, limit=50, cursor=cursor)
        out.extend(page.results)
        if page.next is None:
            return out
        cursor = page.next


def test_every_column_has_a_source() -> None:
    assert tuple(COLUMN_SOURCES) == TRANSACTION_COLUMNS


def test_v3_walk_maps_to_the_same_rows_as_v1(simulator: Simulator) -> None:
    with client(simulator) as c:
        summaries = walk_summaries(c)
        v1: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = c.list_transactions(limit=50, offset=offset)
            v1.extend(page.results)
            offset += 50
            if offset >= page.total:
                break
    rows3, bad3 = map_summary_page(summaries, NOW)
    rows1, bad1 = map_page(v1, NOW)
    assert bad3 == [] and bad1 == []
    assert len(rows3) == len(simulator.ground_truth(include_orphaned=False))
    by_id = {r["tx_id"]: r for r in rows1}
    assert {r["tx_id"] for r in rows3} == set(by_id)
    for r in rows3:
        # every column, both sources; only v3 carries the fork-unique index_block_hash
        assert r["index_block_hash"] and by_id[r["tx_id"]]["index_block_hash"] is None
        assert {**r, "index_block_hash": None} == by_id[r["tx_id"]]
    assert all(summary_index_hash(s) for s in summaries)


def test_page_and_block_endpoints(simulator: Simulator) -> None:
    with client(simulator) as c:
        first = list_transaction_summaries(c, limit=5)
        assert first.limit == 5 and len(first.results) == 5 and first.previous is None
        assert first.total == len(simulator.ground_truth(include_orphaned=False))
        assert first.headers["x-api-version"] == simulator.config.api_version
        tip = latest_block(c)
        assert tip.height == simulator.tip()["block_height"]
        assert tip.index_block_hash == simulator.tip()["index_block_hash"]
        blocks = list_blocks(c, limit=30)
        older = list_blocks(c, limit=30, cursor=blocks.older)
        assert older.results[0].height == blocks.results[-1].height - 1
        assert older.newer == blocks.cursor
        busy = max(blocks.results + older.results, key=lambda b: b.tx_count)
        while busy.tx_count < 2:  # a quiet hour at the head: look further back
            older = list_blocks(c, limit=30, cursor=older.older)
            busy = max(older.results, key=lambda b: b.tx_count)
        inside = block_transaction_summaries(c, busy.height, limit=50)
        assert inside.total == busy.tx_count == len(inside.results)
        assert {s["block"]["index_hash"] for s in inside.results} == {busy.index_block_hash}
        same = block_transaction_summaries(c, busy.index_block_hash, limit=50)
        assert same.results == inside.results
        # top_of_block(H) starts exactly at H's newest tx on the whole-chain list
        at_h = list_transaction_summaries(c, limit=1, cursor=top_of_block(busy.height))
        assert at_h.results[0]["tx_id"] == inside.results[0]["tx_id"]
        assert at_h.current == summary_cursor(inside.results[0])
        assert block_at_time(c, busy.block_time) == busy
        assert get_block(c, busy.height) == busy == get_block(c, busy.index_block_hash)
        with pytest.raises(BlockNotFound):
            get_block(c, 5)
        assert block_at_time(c, 1000) is None
        with pytest.raises(BlockNotFound):
            block_transaction_summaries(c, 1)
        for bad in ({"limit": 0}, {"limit": 51}, {"cursor": "1:2"}):
            with pytest.raises(ValueError):
                list_transaction_summaries(c, **bad)
        with pytest.raises(ValueError):
            list_blocks(c, offset=301)
        with pytest.raises(ValueError):
            block_transaction_summaries(c, "nope")
    assert simulator.stats["by_status"].get("400", 0) == 0  # bad arguments never sent


def test_reorged_block_is_block_not_found(simulator: Simulator) -> None:
    with client(simulator) as c:
        tip = latest_block(c)
        simulator.reorg(2)
        with pytest.raises(BlockNotFound):
            block_transaction_summaries(c, tip.index_block_hash)
        assert latest_block(c).index_block_hash != tip.index_block_hash


def test_deprecation_is_read_from_every_answer_and_logged_once(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="stx_pipeline.hiro"), client(simulator) as c:
        list_transaction_summaries(c, limit=1)
        assert c.deprecation.to_dict()["deprecated"] == []
        assert c.deprecation.api_version == simulator.config.api_version
        for _ in range(3):
            page = c.list_transactions(limit=1)
        assert page.headers["warning"] == WARNING
    logged = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(logged) == 1
    line = logged[0].getMessage()
    assert "/extended/v1/tx" in line and "v9.0.2" in line and "/extended/v3/transactions" in line
    info = c.deprecation.to_dict()
    assert [d["path"] for d in info["deprecated"]] == ["/extended/v1/tx"]
    assert info["deprecated"][0]["message"].startswith("Deprecated: See https://docs.hiro.so")
    assert info["what_to_do"] and info["gone"] == {}


def test_410_is_recorded_and_v3_keeps_answering(make_simulator: MakeSim) -> None:
    sim = make_simulator(gone_after_requests=1)
    with client(sim) as c:
        c.list_transactions(limit=1)
        with pytest.raises(EndpointGone):
            c.list_transactions(limit=1)
        assert list(c.deprecation.gone) == ["/extended/v1/tx"]
        assert list_transaction_summaries(c, limit=1).results


def test_parse_warning() -> None:
    assert parse_warning(WARNING) == [
        (299, "Deprecated: See https://docs.hiro.so/stacks/api for more information")]
    two = '199 agent "Miscellaneous", 299 - "Deprecated: bye" "Sat, 01 Jan 2027 00:00:00 GMT"'
    assert parse_warning(two) == [(199, "Miscellaneous"), (299, "Deprecated: bye")]
    assert parse_warning("garbled") == [(0, "garbled")]
    watch = DeprecationWatch()
    watch.observe("/x", {"warning": '199 - "Miscellaneous warning"'})
    assert watch.deprecated == []  # not every warning is a deprecation


def _summary(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "tx_id": "0x" + "ab" * 32,
        "sender": {"address": "SP3FBR2AGK5H9QBDH3EEN6DF8EK8JY7RX8QJ5SVTE", "nonce": 4},
        "sponsor": None,
        "fee_rate": "3000",
        "block": {"height": 10, "hash": "0x" + "cd" * 32, "index_hash": "0x" + "ef" * 32,
                  "time": 1_700_000_100, "tx_index": 2},
        "bitcoin_block": {"height": 900, "time": 1_700_000_000},
        "status": "success",
        "type": "token_transfer",
        "token_transfer": {"recipient": "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7",
                           "amount": "5", "memo": None},
    }
    s.update(over)
    return s


def test_summary_mapping_edge_cases() -> None:
    row = map_summary(_summary(), NOW)
    assert row["fee_payer"] == row["sender_address"] and row["token_amount_ustx"] == 5
    assert row["canonical"] is True and row["nonce"] == 4
    sponsor = {"address": "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7", "nonce": 9}
    sponsored = map_summary(_summary(sponsor=sponsor), NOW)
    assert sponsored["sponsored"] and sponsored["fee_payer"] == sponsor["address"]
    old = _summary(block={**_summary()["block"], "time": 0})
    assert map_summary(old, NOW)["block_time"] == map_summary(old, NOW)["burn_block_time"]
    poison = {k: v for k, v in _summary(type="poison_microblock").items()
              if k != "token_transfer"}
    assert map_summary(poison, NOW)["contract_id"] is None
    bad = [
        (_summary(type="quantum"), "unknown type"),
        ({k: v for k, v in _summary().items() if k != "sponsor"}, "missing sponsor"),
        ({k: v for k, v in _summary().items() if k != "sender"}, "missing sender"),
        (_summary(fee_rate="-3"), "fee_rate"),
        (_summary(block={**_summary()["block"], "index_hash": "0x12"}), "index_hash"),
        (_summary(type="contract_call"), "without a contract_call"),
        (_summary(block={**_summary()["block"], "height": "10"}), "height is not an integer"),
    ]
    rows, rejected = map_summary_page([b for b, _ in bad], NOW)
    assert rows == []
    for r, (_, reason) in zip(rejected, bad, strict=True):
        assert reason in r.reason, (reason, r.reason)
        assert r.tx_id == "0x" + "ab" * 32 and r.burn_block_time is not None


def test_malformed_summaries_are_rejected_not_dropped(make_simulator: MakeSim) -> None:
    sim = make_simulator(history_days=1, tx_per_day=2000, malformed_rate=0.1)
    with client(sim) as c:
        summaries = walk_summaries(c)
    rows, rejected = map_summary_page(summaries, NOW)
    assert rejected and len(rows) + len(rejected) == len(summaries)
    assert {r.tx_id for r in rejected} == {
        s["tx_id"] for s in summaries if sim.malformed_kind(s["tx_id"])}


def test_api_notice_survives_the_backfills_status_writes(tmp_path) -> None:
    from stx_pipeline.backfill.api_notice import api_notice_line, record_api_notice
    from stx_pipeline.backfill.status import read_status_file, write_status_file

    path = tmp_path / "status.json"
    watch = DeprecationWatch()
    watch.observe("/extended/v1/tx", {"x-api-version": "v9.0.2 (x:y)", "warning": WARNING})
    record_api_notice(watch.to_dict(), path)
    write_status_file({"status": "in_progress", "rows": 5}, path)  # what a running backfill does
    data = read_status_file(path)
    assert data["rows"] == 5 and data["api"]["deprecated"][0]["path"] == "/extended/v1/tx"
    line = api_notice_line(path)
    assert line and line.startswith("Hiro v9.0.2 (x:y); deprecated: /extended/v1/tx")
