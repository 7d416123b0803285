"""Correctness of the wallet metrics on tiny hand-built histories with known answers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from stx_pipeline.metrics import METRICS_TABLES, build_wallet_metrics
from stx_pipeline.metrics import build as metrics_build
from stx_pipeline.warehouse.schema import ALL_DDL, TRANSACTION_COLUMNS

_ids = itertools.count(1)


def _db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    for ddl in ALL_DDL:
        con.execute(ddl)
    return con


def tx(
    sender: str,
    when: str,
    nonce: int,
    fee: int = 1000,
    *,
    tx_type: str = "token_transfer",
    status: str = "success",
    sponsor: str | None = None,
    canonical: bool = True,
    contract_id: str | None = None,
) -> dict[str, Any]:
    """One `transactions` row; `when` is 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    ts = datetime.fromisoformat(when if " " in when else when + " 12:00:00").replace(tzinfo=UTC)
    n = next(_ids)
    return {
        "tx_id": f"0x{n:064x}",
        "tx_type": tx_type,
        "tx_status": status,
        "sender_address": sender,
        "sponsored": sponsor is not None,
        "sponsor_address": sponsor,
        "fee_payer": sponsor or sender,
        "fee_ustx": fee,
        "nonce": nonce,
        "block_height": n,
        "block_hash": f"0xb{n:063x}",
        "tx_index": 0,
        "block_time": ts,
        "burn_block_time": ts,
        "burn_block_height": n,
        "canonical": canonical,
        "contract_id": contract_id,
        "function_name": "f" if contract_id else None,
        "token_recipient": None,
        "token_amount_ustx": None,
        "ingested_at": ts,
        "index_block_hash": None,
    }


def insert(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    cols = ", ".join(TRANSACTION_COLUMNS)
    marks = ", ".join("?" for _ in TRANSACTION_COLUMNS)
    con.executemany(
        f"INSERT INTO transactions ({cols}) VALUES ({marks})",
        [[r[c] for c in TRANSACTION_COLUMNS] for r in rows],
    )


def window(
    con: duckdb.DuckDBPyConnection,
    start: str,
    end: str,
    *,
    status: str = "sealed",
    expected: int = 10,
    loaded: int = 10,
) -> None:
    """A ledger window [start, end], both inclusive (UTC)."""
    con.execute(
        "INSERT INTO coverage_ledger (window_start, window_end, expected, loaded, status, "
        "fetched_at) VALUES (?, ?, ?, ?, ?, now())",
        [
            datetime.fromisoformat(start).replace(tzinfo=UTC),
            datetime.fromisoformat(end).replace(tzinfo=UTC),
            expected,
            loaded,
            status,
        ],
    )


def seal_days(con: duckdb.DuckDBPyConnection, first: date, last: date) -> None:
    d = first
    while d <= last:
        window(con, f"{d} 00:00:00", f"{d} 23:59:59")
        d += timedelta(days=1)


def daily(con: duckdb.DuckDBPyConnection, day: str) -> dict[str, Any]:
    cur = con.execute(
        "SELECT * FROM metrics_daily_activity WHERE day = ?", [date.fromisoformat(day)]
    )
    names = [c[0] for c in cur.description]
    row = cur.fetchone()
    assert row is not None, f"no daily row for {day}"
    return dict(zip(names, row, strict=True))


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


# --------------------------------------------------------------------------- fees


def test_fees_charged_to_payer_failed_pay_system_and_orphans_ignored(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [
        tx("alice", "2024-01-10", 0, 1000),
        tx("bob", "2024-01-10", 5, 2000, tx_type="contract_call", sponsor="spon",
           contract_id="SP1.amm"),
        tx("alice", "2024-01-10", 1, 500, status="abort_by_response"),
        tx("miner", "2024-01-10", 7, 0, tx_type="coinbase"),
        tx("miner", "2024-01-10", 8, 0, tx_type="tenure_change"),
        tx("carol", "2024-01-10", 3, 9999, canonical=False),  # orphaned by a reorg
    ])
    summary = build_wallet_metrics(con)

    d = daily(con, "2024-01-10")
    assert d["dau"] == 2  # alice, bob: not the miner, not orphaned carol
    assert d["new_wallets"] == 1  # alice's nonce 0
    assert (d["tx_total"], d["tx_success"], d["tx_failed"]) == (3, 2, 1)
    assert d["success_rate"] == pytest.approx(2 / 3)
    assert d["fees_ustx"] == 3500  # failed tx pays, orphan does not
    assert d["fees_stx"] == pytest.approx(0.0035)
    assert d["fee_per_active_wallet_stx"] == pytest.approx(0.00175)
    assert d["median_fee_ustx"] == 1000
    assert d["fee_payers"] == 2  # alice and the sponsor, not bob
    assert (d["sponsored_tx"], d["sponsored_fees_ustx"]) == (1, 2000)
    assert d["system_tx"] == 2

    assert rows(con, "SELECT fee_payer, tx_count, sponsored_tx_count, fees_ustx "
                     "FROM metrics_fee_payer_daily ORDER BY fee_payer") == [
        ("alice", 2, 0, 1500),
        ("spon", 1, 1, 2000),
    ]
    mix = rows(con, "SELECT tx_type, tx_status, is_system, tx_count, fees_ustx "
                    "FROM metrics_activity_mix ORDER BY tx_type, tx_status")
    assert mix == [
        ("coinbase", "success", True, 1, 0),
        ("contract_call", "success", False, 1, 2000),
        ("tenure_change", "success", True, 1, 0),
        ("token_transfer", "abort_by_response", False, 1, 500),
        ("token_transfer", "success", False, 1, 1000),
    ]
    assert rows(con, "SELECT contract_id, calls, distinct_callers FROM metrics_top_contracts") == [
        ("SP1.amm", 1, 1)
    ]
    # the miner is no wallet: not in cohorts, growth, or wallet counts
    assert summary.wallets == 2
    assert summary.activated_wallets == 1
    assert summary.canonical_rows == 5
    assert summary.orphaned_rows_ignored == 1
    assert rows(con, "SELECT active, new FROM metrics_monthly_growth") == [(2, 1)]


# ------------------------------------------------------------- new vs first seen


def test_new_wallets_are_nonce_zero_not_first_seen(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [
        tx("dave", "2024-03-01", 57),  # active long before the window: not new
        tx("erin", "2024-03-01", 0),
        tx("dave", "2024-03-02", 58),
        tx("erin", "2024-03-02", 1),
        tx("frank", "2024-03-02", 0),
    ])
    summary = build_wallet_metrics(con)
    d1, d2 = daily(con, "2024-03-01"), daily(con, "2024-03-02")
    assert (d1["dau"], d1["new_wallets"], d1["first_seen_wallets"]) == (2, 1, 2)
    assert (d2["dau"], d2["new_wallets"], d2["first_seen_wallets"]) == (3, 1, 1)
    # cohorts hold only wallets with a nonce-0 tx
    assert rows(con, "SELECT cohort_start, cohort_size FROM metrics_cohort_retention "
                     "WHERE cohort_grain = 'day' ORDER BY 1") == [
        (date(2024, 3, 1), 1),
        (date(2024, 3, 2), 1),
    ]
    assert summary.activated_wallets == 2
    assert summary.wallets == 3
    # first month of data: new is known, retained/resurrected/churned are not
    assert rows(con, "SELECT active, new, retained, resurrected, churned "
                     "FROM metrics_monthly_growth") == [(3, 2, None, None, None)]


# ------------------------------------------------------------ trailing WAU / MAU

ACTIVITY = {
    "w1": [("2024-01-02", 3), ("2024-01-31", 4)],
    "w2": [("2024-01-25", 9)],
    "w3": [("2024-02-01", 0), ("2024-02-05", 1)],
    "w4": [("2024-01-01", 0), ("2024-03-03", 1)],
    "w5": [("2024-01-10", 2), ("2024-02-20", 3)],
}


def test_trailing_wau_mau_across_month_end_and_growth_accounting(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [tx(w, day, nonce) for w, acts in ACTIVITY.items() for day, nonce in acts])
    build_wallet_metrics(con)

    expected = {  # day: (dau, wau, mau), counted by hand
        "2024-01-15": (0, 1, 3),  # WAU 01-09..15: w5;  MAU 12-17..01-15: w4 w1 w5
        "2024-01-30": (0, 1, 4),  # WAU 01-24..30: w2;  MAU 01-01..30: w4 w1 w5 w2
        "2024-01-31": (1, 2, 3),  # WAU 01-25..31: w2 w1; MAU 01-02..31: w1 w5 w2
        "2024-02-01": (1, 2, 4),  # WAU 01-26..02-01: w1 w3; MAU 01-03..02-01: w1 w5 w2 w3
        "2024-02-05": (1, 2, 4),  # WAU 01-30..02-05: w1 w3; MAU 01-07..02-05: w1 w5 w2 w3
        "2024-02-09": (0, 1, 3),  # WAU 02-03..09: w3;  MAU 01-11..02-09: w1 w2 w3
    }
    for day, want in expected.items():
        d = daily(con, day)
        assert (d["dau"], d["wau"], d["mau"]) == want, day
    assert daily(con, "2024-01-31")["stickiness"] == pytest.approx(1 / 3)
    # windows reaching before the data or over a partial day (01-01 and 03-03 here:
    # no ledger, so the first and last days of data) are flagged as undercounts
    completeness = {
        day: (daily(con, day)["wau_complete"], daily(con, day)["mau_complete"])
        for day in ("2024-01-07", "2024-01-08", "2024-01-30", "2024-01-31", "2024-03-03")
    }
    assert completeness == {
        "2024-01-07": (False, False),
        "2024-01-08": (True, False),
        "2024-01-30": (True, False),
        "2024-01-31": (True, True),
        "2024-03-03": (False, False),
    }

    # brute force over every calendar day: the event-based window must agree
    brute = rows(con, """
        WITH sd AS (SELECT DISTINCT sender_address s, (block_time AT TIME ZONE 'UTC')::DATE d
                    FROM transactions)
        SELECT m.day,
               (SELECT count(DISTINCT s) FROM sd WHERE d BETWEEN m.day - 6 AND m.day),
               (SELECT count(DISTINCT s) FROM sd WHERE d BETWEEN m.day - 29 AND m.day)
        FROM metrics_daily_activity m ORDER BY m.day""")
    got = rows(con, "SELECT day, wau, mau FROM metrics_daily_activity ORDER BY day")
    assert got == brute
    assert len(got) == 63  # 2024-01-01 .. 2024-03-03, zero days included

    # Jan: first month; Feb: w3 new, w5 retained, w1 w2 w4 churned;
    # Mar: w4 resurrected (active in Jan, not in Feb), w3 w5 churned.
    assert rows(con, "SELECT month, active, new, retained, resurrected, churned, partial "
                     "FROM metrics_monthly_growth ORDER BY month") == [
        (date(2024, 1, 1), 4, 1, None, None, None, True),  # 01-01 is the partial first day
        (date(2024, 2, 1), 2, 1, 1, 0, 3, False),
        (date(2024, 3, 1), 1, 0, 0, 1, 2, True),  # month not over
    ]


# -------------------------------------------------- cohorts, maturity, coverage


def test_retention_immature_cohorts_null_and_partial_days(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [
        tx("a", "2024-05-01", 0), tx("b", "2024-05-01", 0), tx("c", "2024-05-01", 0),
        tx("a", "2024-05-02", 1), tx("b", "2024-05-02", 1), tx("a", "2024-05-08", 2),
        tx("d", "2024-05-03", 0), tx("d", "2024-05-04", 1), tx("d", "2024-05-10", 2),
        tx("e", "2024-05-04", 0), tx("e", "2024-05-11", 1),
    ])
    seal_days(con, date(2024, 5, 1), date(2024, 5, 1))
    window(con, "2024-05-02 00:00:00", "2024-05-02 11:59:59")  # two touching windows
    window(con, "2024-05-02 12:00:00", "2024-05-02 23:59:59")
    seal_days(con, date(2024, 5, 3), date(2024, 5, 5))
    window(con, "2024-05-06 00:00:00", "2024-05-06 23:59:59",
           status="partial", expected=10, loaded=4)  # a hole mid-range
    seal_days(con, date(2024, 5, 7), date(2024, 5, 10))
    window(con, "2024-05-11 00:00:00", "2024-05-11 05:59:59")  # last day only partly sealed
    summary = build_wallet_metrics(con)

    assert summary.last_complete_day == date(2024, 5, 10)
    assert summary.latest_day == date(2024, 5, 10)
    assert summary.coverage_mode == "ledger"
    partial = rows(con, "SELECT day FROM metrics_daily_activity WHERE partial ORDER BY day")
    assert partial == [(date(2024, 5, 6),), (date(2024, 5, 11),)]
    # coverage: 9 full days + 6 h of the 11th over 11 days
    assert summary.coverage_pct == pytest.approx(100 * (9 * 86400 + 6 * 3600) / (11 * 86400))
    assert summary.partial_days == 2

    health = rows(con, "SELECT windows, sealed_windows, expected_rows, loaded_rows, loaded_pct, "
                       "coverage_pct, canonical_rows, partial FROM metrics_backfill_health "
                       "WHERE day IN ('2024-05-02', '2024-05-06', '2024-05-11') ORDER BY day")
    assert health == [
        (2, 2, 20, 20, 100.0, 100.0, 2, False),
        (1, 0, 10, 4, 40.0, 0.0, 0, True),
        (1, 1, 10, 10, 100.0, 25.0, 1, True),
    ]

    ret = {
        r[0]: r[1:]
        for r in rows(con, "SELECT cohort_start, cohort_size, d1_active, d1_retention, "
                           "d7_active, d7_retention, d14_retention, d90_retention "
                           "FROM metrics_cohort_retention WHERE cohort_grain = 'day'")
    }
    assert ret[date(2024, 5, 1)] == (3, 2, pytest.approx(2 / 3), 1, pytest.approx(1 / 3),
                                     None, None)
    assert ret[date(2024, 5, 3)] == (1, 1, 1.0, 1, 1.0, None, None)  # 05-10 is D7, complete
    assert ret[date(2024, 5, 4)] == (1, 0, 0.0, None, None, None, None)  # D7 = 05-11: partial
    # the ISO week of 2024-04-29 holds a b c d e; D1 matured for all, D7 not (05-05 + 7 > 05-10)
    assert rows(con, "SELECT cohort_end, cohort_size, d1_retention, d7_retention "
                     "FROM metrics_cohort_retention WHERE cohort_grain = 'week'") == [
        (date(2024, 5, 5), 5, pytest.approx(3 / 5), None)
    ]
    # value per wallet needs >= 15 complete days after the cohort: all immature here
    assert rows(con, "SELECT count(*) FROM metrics_wallet_value "
                     "WHERE waltv_15_stx IS NOT NULL") == [(0,)]


# ---------------------------------------------------- value, funnel, contracts


def test_wallet_value_funnel_and_top_contracts(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [
        tx("p", "2024-01-01", 0, 400_000),
        tx("p", "2024-01-05", 1, 400_000, tx_type="contract_call", contract_id="SP.c1"),
        tx("p", "2024-01-15", 2, 300_000, tx_type="contract_call", contract_id="SP.c1"),
        tx("p", "2024-01-20", 3, 500_000, tx_type="contract_call", contract_id="SP.c1"),
        tx("q", "2024-01-01", 0, 100_000),
        tx("q", "2024-01-03", 1, 5_000_000, tx_type="contract_call", contract_id="SP.c2",
           sponsor="r"),  # r pays: not q's value, and r (no nonce 0) has no cohort
        tx("z", "2024-02-20", 5, 1000, tx_type="contract_call", contract_id="SP.c2"),
    ])
    summary = build_wallet_metrics(con)
    # no ledger: coverage is judged from the data, first and last day are partial
    assert summary.coverage_mode == "data"
    assert summary.last_complete_day == date(2024, 2, 19)
    assert summary.coverage_pct is None

    # first 15 days = 01-01..01-15: p 1.1 STX, q 0.1 STX; first 30 days: p 1.6, q 0.1
    assert rows(con, "SELECT cohort_grain, cohort_size, waltv_15_stx, waltv_30_stx, "
                     "waltv_60_stx FROM metrics_wallet_value ORDER BY 1") == [
        ("day", 2, pytest.approx(0.6), pytest.approx(0.85), None),
        ("week", 2, pytest.approx(0.6), pytest.approx(0.85), None),
    ]
    # p: 4 txs and 1.6 STX in 30 days -> active and value; q: 2 txs -> neither
    assert rows(con, "SELECT month, activated, matured, active, value, active_rate "
                     "FROM metrics_funnel") == [(date(2024, 1, 1), 2, 2, 1, 1, 0.5)]
    assert rows(con, "SELECT contract_id, calls, distinct_callers, rank_by_calls, "
                     "rank_by_callers FROM metrics_top_contracts ORDER BY contract_id") == [
        ("SP.c1", 3, 1, 1, 2),
        ("SP.c2", 2, 2, 2, 1),
    ]


# ----------------------------------------------------- as_of, empty, atomicity


def test_as_of_cuts_history(tmp_path: Path) -> None:
    con = _db(tmp_path)
    insert(con, [tx("a", "2024-01-01", 0), tx("a", "2024-01-02", 1), tx("b", "2024-01-03", 0)])
    summary = build_wallet_metrics(con, as_of=datetime(2024, 1, 2, 23, 0))
    assert summary.last_day == date(2024, 1, 2)
    assert summary.canonical_rows == 2
    assert rows(con, "SELECT count(*) FROM metrics_daily_activity") == [(2,)]


def test_empty_warehouse_builds_empty_tables(tmp_path: Path) -> None:
    con = _db(tmp_path)
    summary = build_wallet_metrics(con)
    assert summary.empty
    assert summary.dau is None and summary.latest_day is None
    assert summary.row_counts == {t: (1 if t == "metrics_run" else 0) for t in METRICS_TABLES}
    assert "Wallet metrics" in summary.to_markdown()


def test_rebuild_is_idempotent_and_a_failed_build_keeps_the_old_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = _db(tmp_path)
    insert(con, [tx("a", "2024-01-01", 0), tx("b", "2024-01-01", 0)])
    first = build_wallet_metrics(con)
    second = build_wallet_metrics(con)
    assert first.row_counts == second.row_counts
    assert rows(con, "SELECT dau FROM metrics_daily_activity") == [(2,)]

    insert(con, [tx("c", "2024-01-01", 0)])
    good = metrics_build.metric_statements()

    def broken() -> list[tuple[str, str]]:
        return [*good[:2], ("metrics_boom", "CREATE OR REPLACE TABLE metrics_boom AS SELECT 1/")]

    monkeypatch.setattr(metrics_build, "metric_statements", broken)
    with pytest.raises(duckdb.Error):
        build_wallet_metrics(con)
    # the daily table rebuilt before the failure was rolled back with it
    assert rows(con, "SELECT dau FROM metrics_daily_activity") == [(2,)]
    assert rows(con, "SELECT count(*) FROM information_schema.tables "
                     "WHERE table_name LIKE '\\_mx\\_%' ESCAPE '\\'") == [(0,)]


def test_tables_from_another_metrics_version_count_as_missing(tmp_path: Path) -> None:
    con = _db(tmp_path)
    assert not metrics_build.metrics_tables_exist(con)
    build_wallet_metrics(con)
    assert metrics_build.metrics_tables_exist(con)
    con.execute("UPDATE metrics_run SET metrics_version = metrics_version - 1")
    assert not metrics_build.metrics_tables_exist(con)  # the dashboard will rebuild them


def test_random_history_agrees_with_brute_force_and_growth_identities(tmp_path: Path) -> None:
    """The efficient SQL (event-based windows, cohort joins) against naive recounts."""
    import random

    rng = random.Random(3)
    con = _db(tmp_path)
    nonces = {f"old{i}": rng.randrange(1, 50) for i in range(15)}
    batch = []
    for day_i in range(75):
        day = date(2024, 1, 20) + timedelta(days=day_i)
        if rng.random() < 0.5:
            nonces[f"new{day_i}"] = 0
        for w in rng.sample(list(nonces), k=rng.randrange(0, 8)):
            batch.append(tx(w, str(day), nonces[w], rng.randrange(100, 5000)))
            nonces[w] += 1
    insert(con, batch)
    build_wallet_metrics(con)

    assert rows(con, "SELECT day, dau, wau, mau FROM metrics_daily_activity ORDER BY day") == rows(
        con, """
        WITH sd AS (SELECT DISTINCT sender_address s, (block_time AT TIME ZONE 'UTC')::DATE d
                    FROM transactions)
        SELECT m.day,
               (SELECT count(DISTINCT s) FROM sd WHERE d = m.day),
               (SELECT count(DISTINCT s) FROM sd WHERE d BETWEEN m.day - 6 AND m.day),
               (SELECT count(DISTINCT s) FROM sd WHERE d BETWEEN m.day - 29 AND m.day)
        FROM metrics_daily_activity m ORDER BY m.day""")
    growth = rows(con, "SELECT month, active, new, retained, resurrected, churned "
                       "FROM metrics_monthly_growth ORDER BY month")
    assert len(growth) == 4  # 2024-01-20 .. 2024-04-03
    for (_, prev_active, *_), (_, active, new, retained, resurrected, churned) in (
        itertools.pairwise(growth)
    ):
        assert active == new + retained + resurrected
        assert prev_active == retained + churned
    # D7 retention of matured day cohorts, recounted naively
    assert rows(con, "SELECT cohort_start, d7_active FROM metrics_cohort_retention "
                     "WHERE cohort_grain = 'day' AND d7_active IS NOT NULL ORDER BY 1") == rows(
        con, """
        WITH t AS (SELECT sender_address s, nonce, (block_time AT TIME ZONE 'UTC')::DATE d
                   FROM transactions),
             a AS (SELECT s, d AS act FROM t WHERE nonce = 0)
        SELECT a.act, count(DISTINCT t.s) FILTER (WHERE t.d = a.act + 7)
        FROM a JOIN t USING (s)
        WHERE a.act + 7 <= (SELECT last_complete_day FROM metrics_run)
        GROUP BY a.act ORDER BY 1""")
