"""Shared pytest fixtures. Keep this file small: one fixture per shared need."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stx_pipeline.sim import SimConfig, Simulator
from stx_pipeline_tests.cli_env import pipeline_env_names

# Unexpected skips fail (see skip_guard.py): conftest hooks are found by name here.
from stx_pipeline_tests.skip_guard import (  # noqa: F401
    pytest_make_collect_report,
    pytest_runtest_makereport,
)

if TYPE_CHECKING:
    import dagster as dg

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


# The two transaction sources every exactness suite runs on (issue 12).
SOURCES = ("v1", "v3")


@pytest.fixture(params=SOURCES)
def source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """`v1` or `v3`, pinned through `HIRO_SOURCE` for the test's in-process runs (a
    subprocess gets it through `cli_env(..., HIRO_SOURCE=source)`). A test ends by checking
    `result.source == source`: a runner that ignored the pin would otherwise pass twice."""
    monkeypatch.setenv("HIRO_SOURCE", request.param)
    return str(request.param)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every `HIRO_*` / `STX_PIPELINE_*` variable for the test (see cli_env.py):
    a developer's real key, webhook or database path must never reach a test."""
    for name in pipeline_env_names():
        monkeypatch.delenv(name)


@pytest.fixture
def status_file(clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The status JSON (alerts and progress) at `tmp_path/data/`, not the repository's."""
    path = tmp_path / "data" / "backfill_status.json"
    monkeypatch.setenv("STX_PIPELINE_STATUS_FILE", str(path))
    return path


@pytest.fixture
def isolated_env(status_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything a materialization writes besides its DuckDB file lands in `tmp_path`:
    the status JSON (`status_file`) and the dashboard (`tmp_path/dash/`)."""
    monkeypatch.setenv("STX_PIPELINE_DASHBOARD", str(tmp_path / "dash" / "wallet_metrics.html"))


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance (temporary storage), disposed after the test."""
    import dagster as dg  # here, so tests of the Dagster-free core never import it

    with dg.instance_for_test() as inst:
        yield inst
