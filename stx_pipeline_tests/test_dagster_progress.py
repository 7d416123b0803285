"""A backfill run through Dagster tells the instance how far it is *while* it runs.

Real parts: a test instance on disk, the simulator over HTTP with latency, a client paced
at 240 requests/min so that the run lasts well over 20 s, and a second instance handle
that watches the event log from another thread, as the UI does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from stx_pipeline.defs.resources import HiroResource, WarehouseResource
from stx_pipeline.defs.transactions.assets import TransactionsConfig, transactions
from stx_pipeline.sim import Simulator

pytestmark = pytest.mark.slow

TRANSACTIONS = dg.AssetKey("transactions")
TARGET_DAYS = 2
RPM = 240  # 4 requests/s: ~6,000 rows = 120+ pages take 30 s or more, whatever the machine
MIN_RUN_SECONDS = 20


@pytest.fixture(autouse=True)
def frequent_progress(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """conftest's isolated environment, with a progress report every 2 s instead of 10 s."""
    monkeypatch.setenv("STX_PIPELINE_PROGRESS_SECONDS", "2")


class EventLogWatcher:
    """Polls the event log from another thread: what a UI user would have seen, and when."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._ref = instance.get_ref()
        self._stop = threading.Event()
        self.samples: list[tuple[int, bool]] = []  # (observations so far, materialized yet)
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with dg.DagsterInstance.from_ref(self._ref) as instance:
            while not self._stop.is_set():
                observed = len(instance.fetch_observations(TRANSACTIONS, limit=500).records)
                materialized = bool(instance.fetch_materializations(TRANSACTIONS, limit=1).records)
                self.samples.append((observed, materialized))
                self._stop.wait(1.0)

    def __enter__(self) -> EventLogWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _values(record: Any) -> dict[str, Any]:
    event = record.asset_observation or record.asset_materialization
    return {k: v.value for k, v in event.metadata.items()}


def test_observations_with_coverage_and_rows_are_recorded_during_the_run(
    make_simulator: Callable[..., Simulator], tmp_path: Path
) -> None:
    sim = make_simulator(history_days=3, tx_per_day=3000, latency_ms=80)
    resources = {
        "hiro": HiroResource(base_url=sim.url, requests_per_minute=RPM, max_attempts=2),
        "duckdb": WarehouseResource(database=str(tmp_path / "wallet_metrics.duckdb")),
    }
    config = dg.RunConfig(ops={"transactions": TransactionsConfig(target_days=TARGET_DAYS)})
    with dg.instance_for_test() as instance:
        with EventLogWatcher(instance) as watcher:
            result = dg.materialize(
                [transactions], instance=instance, resources=resources, run_config=config
            )
        assert result.success
        stats = instance.get_run_stats(result.run_id)
        run_seconds = stats.end_time - stats.start_time
        assert run_seconds > MIN_RUN_SECONDS, f"scenario too short: {run_seconds:.1f} s"

        # Seen from outside while the run was going: observations before any materialization.
        seen_live = [n for n, materialized in watcher.samples if n and not materialized]
        assert seen_live, f"no observation visible during the run: {watcher.samples}"

        observations = instance.fetch_observations(TRANSACTIONS, limit=500).records
        observations = sorted(observations, key=lambda r: r.storage_id)
        materialization = instance.fetch_materializations(TRANSACTIONS, limit=1).records[0]
        assert len(observations) >= 3, len(observations)
        assert all(r.run_id == result.run_id for r in observations)
        assert all(r.storage_id < materialization.storage_id for r in observations)
        assert all(
            stats.start_time <= r.timestamp <= materialization.timestamp for r in observations
        )
        log_lines = [e.user_message for e in instance.all_logs(result.run_id)]

    progress = [_values(r) for r in observations]
    for values in progress:
        assert {"progress", "coverage_percent", "rows_total", "rows_per_second", "phase",
                "rate_limit", "responses_429", "target_days"} <= set(values), values
        assert values["target_days"] == TARGET_DAYS
        assert values["rate_limit"] == f"paced at {RPM} requests/min"
        assert values["progress"].startswith("backfill ")
        assert "Progress(" not in values["progress"]
    coverage = [v["coverage_percent"] for v in progress]
    rows = [v["rows_total"] for v in progress]
    assert coverage == sorted(coverage), f"coverage went down: {coverage}"
    assert rows == sorted(rows), f"rows went down: {rows}"
    assert coverage[-1] > coverage[0] and rows[-1] > rows[0]
    assert any("eta_minutes" in v for v in progress)

    final = _values(materialization)
    assert final["complete"] is True
    assert rows[-1] <= final["rows_total"]
    assert coverage[-1] <= final["coverage_percent"]

    # The run log carries the line a person reads, not a dataclass repr.
    progress_lines = [line for line in log_lines if line.startswith("backfill ")
                      and f"% of the {TARGET_DAYS}-day target" in line]
    assert len(progress_lines) >= len(observations)
    assert not [line for line in log_lines if "Progress(" in line]


def test_rate_limit_state_and_the_line_read_as_sentences() -> None:
    """The words a person reads: pacing, backing off after 429s, a duration, no repr."""
    from stx_pipeline.backfill import Progress
    from stx_pipeline.defs.transactions.progress import (
        RateLimitState,
        format_duration,
        progress_line,
    )
    from stx_pipeline.hiro.client import HiroClient

    with HiroClient("http://127.0.0.1:9", requests_per_minute=500) as client:
        assert RateLimitState.of(client, 0).describe() == "paced at 500 requests/min"
        client.stats.add(responses_429=2)
        state = RateLimitState.of(client, 0)
        assert state.describe() == "backing off: 2 × HTTP 429 since the last report"
        assert RateLimitState.of(client, state.responses_429).new_429 == 0
    with HiroClient("http://127.0.0.1:9") as unpaced:
        assert RateLimitState.of(unpaced, 0).describe() == "no client-side limit"

    assert [format_duration(s) for s in (None, 45, 12 * 60, 3.5 * 3600)] == [
        "unknown", "45 s", "12 min", "3.5 h",
    ]
    progress = Progress(
        phase="phase 2 (history)", windows_done=1, windows_planned=9, rows_inserted=1234,
        pages=30, rows_per_second=56.7, eta_seconds=600.0, coverage_percent=12.345,
        coverage_final_percent=10.0,
    )
    line = progress_line(progress, 5234, 30, RateLimitState(500.0, 0, 0, 0.0))
    assert line == (
        "backfill 12.3 % of the 30-day target (10.0 % final) · 5,234 rows (+1,234 this run, "
        "57 rows/s) · "
        "ETA 10 min · phase 2 (history) · 1 window fetched · 30 pages · "
        "paced at 500 requests/min"
    )
