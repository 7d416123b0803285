"""The tenure listing (`TenureIndex`) fetches the pages a window needs at once; over real
HTTP against the simulator it still lists exactly the window's tenures, also while new
tenures push the rows down the list between those concurrent requests."""

from __future__ import annotations

import threading
import time

from stx_pipeline.backfill.height_walk import tenure_counts
from stx_pipeline.backfill.run_state import RequestBudget, RunState
from stx_pipeline.backfill.source_v3 import V3Source
from stx_pipeline.backfill.tenures import TenureIndex
from stx_pipeline.hiro import HiroClient
from stx_pipeline.sim import Simulator


def _client(sim: Simulator) -> HiroClient:
    return HiroClient(sim.url, requests_per_minute=None, backoff_initial=0.01, backoff_max=0.05)


def _listed_window(sim: Simulator, c: HiroClient, start: int, end: int,
                   grow: bool) -> tuple[set[int], int]:
    state = RunState(client=c, budget=RequestBudget(10_000))
    state.head = V3Source().probe_head(state)
    index = TenureIndex()
    done = threading.Event()

    def advance() -> None:
        while not done.is_set():
            sim.advance(900)  # about one or two new tenures each time
            time.sleep(0.005)

    grower = threading.Thread(target=advance)
    if grow:
        grower.start()
    try:
        assert index.ensure_covered(state, start, end)
    finally:
        done.set()
        if grow:
            grower.join()
    return {bb.burn_block_height for bb in index.in_window(start, end)}, state.budget.used


def test_window_far_below_the_head_is_listed_exactly(simulator: Simulator) -> None:
    tip = simulator.tip()
    with _client(simulator) as c:
        truth = tenure_counts(c, tip["burn_block_height"] - 400, tip["burn_block_height"] - 1)
        end = int(simulator.now()) - 86400
        start = end - 12 * 3600
        want = {h for h, bb in truth.items() if start <= bb.burn_block_time <= end}
        got, used = _listed_window(simulator, c, start, end, grow=False)
    assert want and got == want
    assert used < 20  # read down (or jumped), not one page per tenure


def test_window_is_listed_without_a_gap_while_the_head_grows(simulator: Simulator) -> None:
    sim = simulator
    tip = sim.tip()
    with _client(sim) as c:
        truth = tenure_counts(c, tip["burn_block_height"] - 400, tip["burn_block_height"] - 1)
        end = int(sim.now()) - 6 * 3600
        start = end - 24 * 3600
        want = {h for h, bb in truth.items() if start <= bb.burn_block_time <= end}
        got, _used = _listed_window(sim, c, start, end, grow=True)
    assert sim.tip()["burn_block_height"] > tip["burn_block_height"] + 5  # it moved meanwhile
    assert want and got == want
