"""Height ranges walked with v3 cursors in parallel shards, resumed from a cursor, and checked
against the API's per-block tx_count, over real HTTP against the simulator."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stx_pipeline.backfill.height_walk import (
    Shard,
    block_counts,
    check_range,
    check_tenures,
    fetch_shard_page,
    seen_by_tenure,
    seen_counts,
    split,
    tenure_counts,
    walk_shard,
)
from stx_pipeline.hiro import HiroClient
from stx_pipeline.sim import Simulator


def client(sim: Simulator) -> HiroClient:
    return HiroClient(sim.url, requests_per_minute=None, backoff_initial=0.01, backoff_max=0.05)


def truth_in(sim: Simulator, lo: int, hi: int) -> list[str]:
    gt = sim.ground_truth(include_orphaned=False)
    rows = sorted((t for t in gt if lo <= t["block_height"] <= hi),
                  key=lambda t: (t["block_height"], t["tx_index"]), reverse=True)
    return [t["tx_id"] for t in rows]


@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 12))
def test_split_covers_the_range_once_newest_first(lo: int, size: int, k: int) -> None:
    hi = lo + size
    shards = split(lo, hi, k)
    heights = [h for s in shards for h in range(s.hi, s.lo - 1, -1)]
    assert heights == list(range(hi, lo - 1, -1))
    assert len(shards) == min(k, size + 1)
    assert max(s.hi - s.lo for s in shards) - min(s.hi - s.lo for s in shards) <= 1


def test_parallel_shards_are_the_range_exactly(simulator: Simulator) -> None:
    tip = simulator.tip()["block_height"]
    lo, hi = tip - 1500, tip - 100
    with client(simulator) as c:
        shards = split(lo, hi, 4)
        with ThreadPoolExecutor(4) as pool:
            parts = list(pool.map(lambda s: walk_shard(c, s), shards))
        blocks = block_counts(c, lo, hi)
    walked = [s["tx_id"] for part in parts for s in part]
    assert walked == truth_in(simulator, lo, hi)  # no gap, no overlap, newest first
    assert sorted(blocks) == list(range(lo, hi + 1))
    check = check_range(lo, hi, blocks, seen_counts([s for p in parts for s in p]))
    assert check.sealed and check.expected == len(walked)


def test_a_crashed_shard_resumes_at_its_cursor(simulator: Simulator) -> None:
    tip = simulator.tip()["block_height"]
    lo, hi = tip - 600, tip
    with client(simulator) as c:
        shard = Shard(lo, hi)
        first = fetch_shard_page(c, shard)
        assert not first.done and first.cursor
        # the process dies here; only (lo, hi, cursor) was persisted with the page's rows
        resumed = Shard(lo, hi, cursor=first.cursor)
        rest = walk_shard(c, resumed)
    got = [s["tx_id"] for s in first.summaries + rest]
    assert got == truth_in(simulator, lo, hi)


def test_the_independent_count_catches_a_lost_row_and_a_reorg(simulator: Simulator) -> None:
    tip = simulator.tip()["block_height"]
    lo, hi = tip - 300, tip
    with client(simulator) as c:
        walked = walk_shard(c, Shard(lo, hi))
        blocks = block_counts(c, lo, hi)
        seen = seen_counts(walked)
        lost = Counter(seen)
        victim = walked[7]
        lost[(victim["block"]["height"], victim["block"]["index_hash"])] -= 1
        bad = check_range(lo, hi, blocks, lost)
        assert not bad.sealed and bad.bad_heights == [victim["block"]["height"]]
        assert bad.expected == bad.seen + 1
        simulator.reorg(4)
        after = block_counts(c, lo, hi)
    stale = check_range(lo, hi, after, seen)
    assert not stale.sealed
    assert stale.bad_heights and min(stale.bad_heights) >= tip - 3  # only the reorged blocks


@pytest.mark.parametrize("bad", [(5, 4), (-1, 3)])
def test_shard_bounds_are_checked(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        Shard(*bad)


def test_tenure_counts_seal_a_walk_and_catch_a_lost_row_and_a_reorg(
    simulator: Simulator,
) -> None:
    tip = simulator.tip()
    lo = tip["block_height"] - 2000
    with client(simulator) as c:
        walked = walk_shard(c, Shard(lo, tip["block_height"]))
        seen = seen_by_tenure(walked)
        burn_lo = min(t for t, _ in seen) + 1  # the lowest tenure is cut by `lo`
        burn_hi = tip["burn_block_height"]
        before = simulator.stats["by_route"].get("v2_burn_blocks", 0)
        tenures = tenure_counts(c, burn_lo, burn_hi)
        cost = simulator.stats["by_route"]["v2_burn_blocks"] - before
    assert sorted(tenures) == list(range(burn_lo, burn_hi + 1))  # every simulated tenure
    assert cost <= 2 + len(tenures) // 29  # ~30 tenures a request (+ the 'latest' probe)
    ok = check_tenures(burn_lo, burn_hi, tenures, seen)
    assert ok.sealed
    assert ok.expected == sum(n for (t, _), n in seen.items() if burn_lo <= t <= burn_hi)
    victim = walked[len(walked) // 2]
    lost = Counter(seen)
    lost[(victim["bitcoin_block"]["height"], victim["block"]["hash"])] -= 1
    assert check_tenures(burn_lo, burn_hi, tenures, lost).bad_tenures == [
        victim["bitcoin_block"]["height"]]
    simulator.reorg(3)
    with client(simulator) as c:
        after = tenure_counts(c, burn_lo, burn_hi)
    stale = check_tenures(burn_lo, burn_hi, after, seen)
    assert not stale.sealed and stale.bad_tenures == [burn_hi]  # the reorged head tenure


def test_tenure_counts_while_the_head_grows(simulator: Simulator) -> None:
    """Offset pages over a growing list: new tenures shift rows down, pages repeat, none is
    skipped and nothing changes below the head."""
    head = simulator.tip()["burn_block_height"]
    lo, hi = head - 300, head - 1  # the head's own tenure still grows
    with client(simulator) as c:
        first = tenure_counts(c, lo, hi)
        done = threading.Event()

        def grow() -> None:
            while not done.is_set():
                simulator.advance(900)  # about one or two new tenures each time
                time.sleep(0.005)

        grower = threading.Thread(target=grow)
        grower.start()
        try:
            during = tenure_counts(c, lo, hi)
        finally:
            done.set()
            grower.join()
    assert simulator.tip()["burn_block_height"] > head + 5  # it really moved meanwhile
    assert during == first and sorted(first) == list(range(lo, hi + 1))
