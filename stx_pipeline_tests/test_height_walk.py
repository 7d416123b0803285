"""Height ranges walked with v3 cursors in parallel shards, resumed from a cursor, and checked
against the API's per-block tx_count, over real HTTP against the simulator."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stx_pipeline.backfill.height_walk import (
    Shard,
    block_counts,
    check_range,
    fetch_shard_page,
    seen_counts,
    split,
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
