"""Shared pytest fixtures. Keep this file small: one fixture per shared need."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stx_pipeline.sim import SimConfig, Simulator

# The default simulated chain: small, frozen (the head moves only via advance()), seeded.
DEFAULT_SIM = {"seed": 7, "history_days": 3, "tx_per_day": 3000, "frozen": True}


@pytest.fixture
def make_simulator() -> Iterator[Callable[..., Simulator]]:
    """Factory: `make_simulator(**SimConfig fields)` starts a simulator, stopped at teardown."""
    started: list[Simulator] = []

    def make(**kw: Any) -> Simulator:
        sim = Simulator(SimConfig(**{**DEFAULT_SIM, **kw})).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def simulator(make_simulator: Callable[..., Simulator]) -> Simulator:
    """A started default simulator (seed 7, 3 history days, 3000 tx/day, frozen)."""
    return make_simulator()
