"""SIGKILL the backfill process anywhere; the next run must still end exact.

The backfill runs as a real `stx-pipeline backfill` subprocess against the simulator
(in this process, frozen so the ground truth is fixed). Kills land at seeded random
moments across Phase 1, Phase 2 and the writer's commits, plus exact kills between a
window's row insert and its COMMIT through the `writer.before_commit` failpoint. Both
sources: the killed runs and the finishing run read the `source` the fixture pins.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stx_pipeline.backfill import ensure_transaction_history
from stx_pipeline.hiro.client import HiroClient
from stx_pipeline_tests.cli_env import cli_env
from stx_pipeline_tests.exactness import assert_exact, assert_ledger_consistent

DAYS = "2"


def _backfill_cmd(sim, db: Path) -> list[str]:
    return [sys.executable, "-m", "stx_pipeline.cli", "backfill", "--days", DAYS,
            "--db", str(db), "--api-url", sim.url, "--workers", "2"]


def _env(tmp_path: Path, source: str, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, STX_PIPELINE_LOCK_TIMEOUT="20", HIRO_SOURCE=source, **extra)


def _finish(sim, db: Path, source: str) -> None:
    with HiroClient(sim.url, backoff_initial=0.01, backoff_max=0.05) as client:
        result = ensure_transaction_history(max_days=float(DAYS), db_path=str(db), client=client,
                                            status_path=str(db.parent / "final.json"))
    assert result.complete, result.to_dict()
    assert result.source == source
    assert_exact(sim, db, int(result.target_time.timestamp()))
    assert_ledger_consistent(db)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_exact(make_simulator, tmp_path, source):
    # ~30k rows at ~40 pages/s: about 15 s of work, spread over 20 killed runs
    sim = make_simulator(seed=21, history_days=3, tx_per_day=10000, frozen=True,
                         latency_ms=40)
    db = tmp_path / "w.duckdb"
    rng = random.Random(20261128)
    kills = 0
    finished_early = 0
    for _ in range(20):
        proc = subprocess.Popen(_backfill_cmd(sim, db), env=_env(tmp_path, source),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.3))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        else:
            finished_early += 1
        proc.wait(timeout=30)
    assert kills >= 18, f"only {kills} kills landed ({finished_early} runs finished first)"
    _finish(sim, db, source)


@pytest.mark.slow
@pytest.mark.parametrize("nth_commit", [1, 3, 7])
def test_sigkill_between_insert_and_commit(make_simulator, tmp_path, nth_commit, source):
    sim = make_simulator(seed=22, history_days=3, tx_per_day=6000, frozen=True)
    db = tmp_path / "w.duckdb"
    env = _env(tmp_path, source, STX_PIPELINE_FAILPOINT=f"writer.before_commit:{nth_commit}")
    proc = subprocess.run(_backfill_cmd(sim, db), env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-500:]
    _finish(sim, db, source)
