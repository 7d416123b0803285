"""The whole asset graph materialized with Dagster against the simulator and a tmp DuckDB."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from stx_pipeline.defs.metrics.assets import dashboard, wallet_metrics
from stx_pipeline.defs.resources import HiroResource, WarehouseResource
from stx_pipeline.defs.transactions import checks
from stx_pipeline.defs.transactions.assets import TransactionsConfig, transactions
from stx_pipeline.metrics.sql import METRICS_TABLES
from stx_pipeline.sim import Simulator
from stx_pipeline_tests.exactness import compare_with_truth

CHECKS = [checks.transactions_checks]
CHECK_NAMES = set(checks.CHECKS)
ALL = [transactions, wallet_metrics, dashboard, *CHECKS]
TARGET_DAYS = 2


pytestmark = pytest.mark.usefixtures("isolated_env")  # conftest.py


def only(*names: str) -> dg.AssetSelection:
    """Some of the checks of `transactions` (the multi-asset check can run a subset)."""
    return dg.AssetSelection.checks(*(dg.AssetCheckKey(checks.TRANSACTIONS, n) for n in names))


def resources(sim: Simulator, db: Path) -> dict[str, Any]:
    return {
        "hiro": HiroResource(base_url=sim.url, max_attempts=2),
        "duckdb": WarehouseResource(database=str(db)),
    }


def run_config(target_days: int = TARGET_DAYS, max_pages: int = 10_000) -> dg.RunConfig:
    config = TransactionsConfig(target_days=target_days, max_pages=max_pages)
    return dg.RunConfig(ops={"transactions": config})


def meta(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    mats = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(key)
    ]
    assert mats, f"no materialization of {key}"
    return {k: v.value for k, v in mats[-1].metadata.items()}


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_whole_graph_against_the_simulator(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator()
    db = tmp_path / "wallet_metrics.duckdb"
    result = dg.materialize(
        ALL, instance=instance, resources=resources(sim, db), run_config=run_config()
    )
    assert result.success

    tx = meta(result, "transactions")
    assert tx["complete"] is True
    assert tx["stop_reason"] == "target_reached"
    assert tx["target_days"] == TARGET_DAYS
    assert tx["missing_days"] == 0
    assert tx["coverage_percent"] == pytest.approx(100.0)
    assert tx["windows_sealed"] == tx["windows_total"] - 1 or tx["windows_sealed"] > 0
    # Exactly the simulator's canonical transactions from the target on (the core also
    # loads a small margin below the target, so rows_total counts the whole file).
    cmp = compare_with_truth(sim, db, start_time=int(tx["target_time"]))
    assert not cmp.missing and not cmp.extra and not cmp.duplicates, cmp.describe()
    with duckdb.connect(str(db), read_only=True) as con:
        rows_in_file = con.execute("SELECT count(*) FROM transactions").fetchone()[0]
    assert tx["rows_total"] == rows_in_file == tx["dagster/row_count"] >= len(cmp.expected)
    assert tx["rows_new"] == tx["rows_total"]
    assert tx["pages"] > 0 and tx["retries"] == 0 and tx["responses_429"] == 0
    assert tx["oldest_block_time"] <= tx["newest_block_time"]
    assert next(iter(tx)) == "summary"
    assert tx["summary"].startswith("**Backfill complete**: the 2-day target is covered.")
    with duckdb.connect(str(db), read_only=True) as con:
        oldest, newest = con.execute(
            "SELECT epoch(min(block_time)), epoch(max(block_time)) FROM transactions"
        ).fetchone()
    assert tx["oldest_block_time"] == pytest.approx(oldest)
    assert tx["newest_block_time"] == pytest.approx(newest)

    evals = evaluations(result)
    assert set(evals) == CHECK_NAMES
    # All six in one step: one pool slot, one connection.
    check_steps = {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_START"
    } - {"transactions", "wallet_metrics", "dashboard"}
    assert check_steps == {"transactions_checks"}, check_steps
    failed = {name: e.description for name, e in evals.items() if not e.passed}
    assert not failed, failed
    assert evals["backfill_complete"].metadata["missing_days"].value == 0

    # Each metrics table is an asset with its own row count and columns, not one sum.
    with duckdb.connect(str(db), read_only=True) as con:
        for table in METRICS_TABLES:
            table_meta = meta(result, table)
            rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            assert table_meta["dagster/row_count"] == rows, table
            columns = [c.name for c in table_meta["dagster/column_schema"].columns]
            assert columns == [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    build = meta(result, "metrics_run")
    assert build["canonical_rows"] == tx["rows_total"]
    assert next(iter(build)) == "summary" and "calendar days covered" in build["summary"]
    assert 0 < build["calendar_days_covered_percent"] < tx["coverage_percent"]
    kpis = meta(result, "metrics_daily_activity")
    assert next(iter(kpis)) == "summary" and "| DAU |" in kpis["summary"]
    for key in ("success_rate_percent", "stickiness_percent", "fees_stx"):
        assert kpis[key] == round(kpis[key], 2), (key, kpis[key])
    assert 0 < kpis["success_rate_percent"] <= 100
    dash = meta(result, "dashboard")
    path = Path(dash["path"])
    assert path == tmp_path / "dash" / "wallet_metrics.html" and path.stat().st_size > 10_000
    assert dash["open"] == path.as_uri()
    assert "| DAU |" in dash["kpis"]

    # Running again is a cheap refresh: nothing new on a frozen chain, still complete.
    again = dg.materialize(
        [transactions], instance=instance, resources=resources(sim, db), run_config=run_config()
    )
    tx2 = meta(again, "transactions")
    assert tx2["complete"] is True and tx2["rows_new"] == 0
    assert tx2["rows_total"] == tx["rows_total"]


def test_incomplete_run_warns_with_the_missing_days(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator()
    db = tmp_path / "wallet_metrics.duckdb"
    result = dg.materialize(
        [transactions, *CHECKS],
        instance=instance,
        resources=resources(sim, db),
        run_config=run_config(max_pages=60),
    )
    assert result.success, "an early stop is a successful materialization"
    tx = meta(result, "transactions")
    assert tx["stop_reason"] == "max_pages"
    assert tx["complete"] is False
    # The core counts from a small safety margin below the target, hence the slack.
    assert 0 < tx["missing_days"] < TARGET_DAYS + 0.1
    evals = evaluations(result)
    warn = evals["backfill_complete"]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN
    # The right number: [target, head) minus the sealed windows, straight from the ledger.
    target = int(tx["target_time"])
    with duckdb.connect(str(db), read_only=True) as con:
        head = con.execute(
            "SELECT epoch(max(burn_block_time))::BIGINT FROM transactions WHERE canonical"
        ).fetchone()[0]
        covered = con.execute(
            "SELECT coalesce(sum(least(epoch(window_end)::BIGINT, ?) "
            " - greatest(epoch(window_start)::BIGINT, ?) + 1), 0) FROM coverage_ledger"
            " WHERE status = 'sealed' AND window_end >= to_timestamp(?)"
            " AND window_start <= to_timestamp(?)",
            [head - 1, target, target, head - 1],
        ).fetchone()[0]
    expected_missing = (head - target - covered) / 86400
    missing = warn.metadata["missing_days"].value
    assert missing == pytest.approx(expected_missing, abs=0.002)
    assert f"{missing:.2f} of {TARGET_DAYS} days still missing" == warn.description
    # The run's own figure also counts the core's 1-hour safety margin below the target.
    assert tx["missing_days"] - 1 / 24 - 0.002 <= missing <= tx["missing_days"] + 0.002
    # What is loaded so far has no hole and no bad row.
    for name in ("no_gaps", "unique_tx_id", "valid_rows"):
        assert evals[name].passed, (name, evals[name].description)


def test_forged_duplicate_fails_unique_tx_id(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator(history_days=1.5, tx_per_day=1000)
    db = tmp_path / "wallet_metrics.duckdb"
    dg.materialize(
        [transactions],
        instance=instance,
        resources=resources(sim, db),
        run_config=run_config(target_days=1),
    )
    forged = tmp_path / "forged.duckdb"
    shutil.copy(db, forged)
    with duckdb.connect(str(forged)) as con:
        # Rebuild the table without its primary key, then duplicate one row.
        con.execute("CREATE TABLE tx_nopk AS SELECT * FROM transactions")
        con.execute("DROP TABLE transactions")
        con.execute("ALTER TABLE tx_nopk RENAME TO transactions")
        con.execute("INSERT INTO transactions SELECT * FROM transactions LIMIT 1")
    result = dg.materialize(
        [transactions, *CHECKS],
        instance=instance,
        resources=resources(sim, forged),
        selection=only("unique_tx_id", "valid_rows"),
        raise_on_error=False,
    )
    evals = evaluations(result)
    dup = evals["unique_tx_id"]
    assert not dup.passed and dup.severity == dg.AssetCheckSeverity.ERROR
    assert dup.metadata["duplicate_rows"].value == 1
    assert len(dup.metadata["duplicate_samples"].value) == 1
    assert evals["valid_rows"].passed
    assert set(evals) == {"unique_tx_id", "valid_rows"}, "a subset runs only what it selects"


def test_api_error_fails_the_run_with_the_message(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    # a server that answers no JSON (a 410 on v1 no longer fails: the run goes on on v3)
    sim = make_simulator(wrong_content_type=True)
    result = dg.materialize(
        [transactions],
        instance=instance,
        resources=resources(sim, tmp_path / "wallet_metrics.duckdb"),
        run_config=run_config(),
        raise_on_error=False,
    )
    assert not result.success
    failures = result.get_step_failure_events()
    assert failures
    data = failures[0].step_failure_data
    message = data.user_failure_data.description if data.user_failure_data else data.error.message
    assert message and "\n" not in message.strip()
    assert "not JSON" in message, message
    assert not result.asset_materializations_for_node("transactions")


def test_source_field_and_a_410_on_v1_end_on_v3(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator(gone=True, history_days=2, tx_per_day=1500)
    res = {**resources(sim, tmp_path / "wallet_metrics.duckdb"),
           "hiro": HiroResource(base_url=sim.url, max_attempts=2, source="v1")}
    result = dg.materialize([transactions], instance=instance, resources=res,
                            run_config=run_config(target_days=1))
    assert result.success
    assert meta(result, "transactions")["source"] == "v3"
    assert meta(result, "transactions")["complete"] is True
    assert sim.stats["by_route"]["v3_transactions"] > 0


def _run_checks(
    instance: dg.DagsterInstance, sim: Simulator, db: Path, *names: str
) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [transactions, *CHECKS],
        instance=instance,
        resources=resources(sim, db),
        selection=only(*names),
        raise_on_error=False,
    )
    return evaluations(result)


def test_forged_hole_or_miscount_fails_no_gaps(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator(history_days=1.5, tx_per_day=1000)
    db = tmp_path / "wallet_metrics.duckdb"
    first = dg.materialize(
        [transactions],
        instance=instance,
        resources=resources(sim, db),
        run_config=run_config(target_days=1),
    )
    assert meta(first, "transactions")["complete"] is True
    assert _run_checks(instance, sim, db, "no_gaps")["no_gaps"].passed

    holed = tmp_path / "holed.duckdb"
    shutil.copy(db, holed)
    with duckdb.connect(str(holed)) as con:
        sealed = con.execute(
            "SELECT window_start FROM coverage_ledger WHERE status = 'sealed' ORDER BY 1"
        ).fetchall()
        assert len(sealed) >= 3
        # a window inside [target, head): the oldest may lie in the hour fetched below
        # the target, where a hole is not a gap of the target window
        middle = sealed[len(sealed) // 2][0]
        con.execute("DELETE FROM coverage_ledger WHERE window_start = ?", [middle])
    hole = _run_checks(instance, sim, holed, "no_gaps")["no_gaps"]
    assert not hole.passed and hole.severity == dg.AssetCheckSeverity.ERROR
    assert hole.metadata["gaps"].value == 1 and hole.metadata["gap_seconds"].value > 0

    miscounted = tmp_path / "miscounted.duckdb"
    shutil.copy(db, miscounted)
    with duckdb.connect(str(miscounted)) as con:
        con.execute(
            "UPDATE coverage_ledger SET loaded = loaded - 1 WHERE window_start = ?",
            [middle],
        )
    bad = _run_checks(instance, sim, miscounted, "no_gaps")["no_gaps"]
    assert not bad.passed and bad.metadata["miscounted_windows"].value == 1


def test_gap_rules_in_progress_and_complete() -> None:
    def window(start: int, end: int, status: str = "sealed", expected: int = 10) -> dict:
        return {
            "start": start,
            "end": end,
            "expected": expected,
            "loaded": expected if status == "sealed" else 0,
            "rejected": 0,
            "status": status,
        }

    contiguous = [window(0, 99), window(100, 199), window(200, 299)]
    found = checks.find_ledger_gaps(contiguous, target_epoch=0)
    assert found["windows_checked"] == 3 and not found["gaps"]
    assert checks.count_gap_problems(found, claims_complete=True) == 0

    # A partial window between sealed ones and an uncarved gap: pending while in progress.
    in_progress = [window(0, 99), window(100, 149, "partial"), window(200, 299)]
    found = checks.find_ledger_gaps(in_progress, target_epoch=0)
    assert len(found["unsealed_inside"]) == 1 and found["gap_seconds"] == 100
    assert checks.count_gap_problems(found, claims_complete=False) == 0
    assert checks.count_gap_problems(found, claims_complete=True) == 2

    # Windows entirely older than the target are ignored.
    found = checks.find_ledger_gaps([window(-500, -400), window(0, 99)], target_epoch=0)
    assert found["windows_checked"] == 1 and not found["gaps"]


def test_a_chain_younger_than_the_target_is_not_called_the_target(
    make_simulator: Callable[..., Simulator],
    instance: dg.DagsterInstance,
    tmp_path: Path,
) -> None:
    sim = make_simulator(history_days=1.5, tx_per_day=1000)
    result = dg.materialize(
        [transactions, *CHECKS],
        instance=instance,
        resources=resources(sim, tmp_path / "wallet_metrics.duckdb"),
        run_config=run_config(target_days=5),
    )
    tx = meta(result, "transactions")
    assert tx["stop_reason"] == "start_of_chain" and tx["complete"] is True
    assert "start of the chain" in tx["summary"]
    assert "younger than the 5-day target" in tx["summary"]
    assert "target is covered" not in tx["summary"]
    check = evaluations(result)["backfill_complete"]
    assert check.passed
    assert check.description.startswith("complete back to the start of the chain")
    assert "covers the 5-day target" not in check.description
    assert check.metadata["reaches_start_of_chain"].value is True
