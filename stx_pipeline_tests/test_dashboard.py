"""The dashboard in a real headless Chromium: what a person opening the file would see."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from stx_pipeline.dashboard import build_dashboard
from stx_pipeline.warehouse.schema import ALL_DDL, TRANSACTION_COLUMNS

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
FIRST_DAY = date(2024, 3, 1)
DAYS = 120
HOLE_DAY = FIRST_DAY + timedelta(days=60)  # a window the backfill could not complete
LAST_DAY = FIRST_DAY + timedelta(days=DAYS - 1)  # the open head: never sealed

EXPECTED_TITLES = {
    "new_vs_active": "Daily new vs active wallets",
    "dau_wau_mau": "Active wallets: DAU, WAU, MAU",
    "retention_heatmap": "Retention by weekly activation cohort",
    "growth_accounting": "Monthly growth accounting",
    "fees": "Fees per day and per active wallet",
    "wallet_value": "Value per wallet (WALTV) by weekly cohort",
    "activity_by_type": "Transactions per day by type",
    "activity_by_status": "Wallet transactions per day by status",
    "top_contracts": "Top 12 contracts by calls",
    "funnel": "Activation funnel by month",
    "backfill_health": "Backfill health: expected vs loaded rows per day",
}


def synthetic_history(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~120 days of plausible chain activity and its hourly coverage ledger.

    Old wallets (nonce far from 0) mix with wallets activating over time; some
    transactions fail, some are sponsored, a few pay whole STX; every day has system
    transactions. One hour mid-range and the head day are left unsealed.
    """
    rng = random.Random(seed)
    contracts = [f"SP{rng.randrange(16**30):030X}.{name}" for name in (
        "amm-swap-pool-v1-1", "stackingdao-core", "token-alex", "bns-v2", "zest-pool",
        "velar-router", "arkadiko-vault", "sbtc-deposit", "nft-marketplace", "pox-4",
        "usda-token", "lending-core-v2", "bitflow-stableswap", "charisma-dex")]
    weights = [30, 22, 15, 10, 8, 7, 6, 5, 4, 3, 2, 2, 1, 1]
    nonces: dict[str, int] = {f"SPOLD{i:04d}": rng.randrange(5, 400) for i in range(160)}
    rows: list[dict[str, Any]] = []
    height = 150_000
    for day_i in range(DAYS):
        day = FIRST_DAY + timedelta(days=day_i)
        for _ in range(rng.randrange(2, 6) + day_i // 20):  # wallets activating today
            nonces[f"SPNEW{len(nonces):05d}"] = 0
        pool = list(nonces)
        active = rng.sample(pool, k=min(len(pool), rng.randrange(18, 32) + day_i // 6))
        txs = [w for w in active for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        txs += [None] * 6  # system transactions (a few tenures a day)
        for sender in txs:
            height += 1
            ts = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
                seconds=rng.randrange(86_400))
            if sender is None:
                kind, sender_addr, nonce, fee, status = (
                    rng.choice(("coinbase", "tenure_change")), "SPMINER", height, 0, "success")
                sponsor = contract = None
            else:
                sender_addr, nonce = sender, nonces[sender]
                nonces[sender] += 1
                kind = rng.choices(("token_transfer", "contract_call", "smart_contract"),
                                   (35, 62, 3))[0]
                contract = rng.choices(contracts, weights)[0] if kind == "contract_call" else None
                status = rng.choices(
                    ("success", "abort_by_response", "abort_by_post_condition"), (92, 5, 3))[0]
                fee = rng.randrange(180, 30_000) if rng.random() > 0.03 else rng.randrange(
                    1_000_000, 3_000_000)
                sponsor = "SPSPONSOR" if rng.random() < 0.05 else None
            rows.append({
                "tx_id": f"0x{len(rows):064x}", "tx_type": kind, "tx_status": status,
                "sender_address": sender_addr, "sponsored": sponsor is not None,
                "sponsor_address": sponsor, "fee_payer": sponsor or sender_addr,
                "fee_ustx": fee, "nonce": nonce, "block_height": height,
                "block_hash": f"0x{height:064x}", "tx_index": 0, "block_time": ts,
                "burn_block_time": ts, "burn_block_height": height // 40, "canonical": True,
                "contract_id": contract, "function_name": "call" if contract else None,
                "token_recipient": None, "token_amount_ustx": None, "ingested_at": ts,
            })
    rows[5]["canonical"] = False  # an orphan left behind by a reorg
    txs_df = pd.DataFrame(rows, columns=list(TRANSACTION_COLUMNS))

    hours = txs_df["burn_block_time"].dt.floor("h").value_counts()
    ledger = []
    for h in range(DAYS * 24):
        start = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC) + timedelta(
            hours=h)
        expected = int(hours.get(pd.Timestamp(start), 0))
        sealed = not (start.date() == LAST_DAY or (start.date() == HOLE_DAY and start.hour == 9))
        ledger.append({
            "window_start": start, "window_end": start + timedelta(seconds=3599),
            "expected": expected, "loaded": expected if sealed else expected // 2,
            "status": "sealed" if sealed else "partial", "fetched_at": start,
        })
    return txs_df, pd.DataFrame(ledger)


def make_warehouse(path: Path, *, empty: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    for ddl in ALL_DDL:
        con.execute(ddl)
    if not empty:
        txs_df, ledger_df = synthetic_history()
        con.register("txs_df", txs_df)
        con.register("ledger_df", ledger_df)
        con.execute(f"INSERT INTO transactions SELECT {', '.join(TRANSACTION_COLUMNS)} "
                    "FROM txs_df")
        con.execute("INSERT INTO coverage_ledger (window_start, window_end, expected, loaded, "
                    "status, fetched_at) SELECT window_start, window_end, expected, loaded, "
                    "status, fetched_at FROM ledger_df")
    return con


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        reason = f"{CHROMIUM} not installed (run `make browser`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def open_page(browser: Any, html_path: Path) -> tuple[Any, list[str]]:
    """Open the file at laptop size, collecting console errors and uncaught exceptions."""
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:"))
            else errors.append(f"network request: {r.url}"))
    page.goto(html_path.resolve().as_uri(), wait_until="load")
    return page, errors


# Per chart: its title and whether some trace holds at least one real (non-null) value.
CHART_STATE_JS = """
() => Array.from(document.querySelectorAll('[data-chart]')).map(el => {
  const nonEmpty = arr => Array.isArray(arr) && arr.some(v =>
      Array.isArray(v) ? v.some(w => w !== null && w !== undefined)
                       : v !== null && v !== undefined);
  const data = el.data || [];
  const box = el.getBoundingClientRect();
  return {
    name: el.dataset.chart,
    plotted: el.classList.contains('js-plotly-plot'),
    title: el.layout && el.layout.title ? el.layout.title.text : null,
    hasData: data.some(t => (nonEmpty(t.x) && nonEmpty(t.y)) || nonEmpty(t.z)),
    svgTitle: (el.querySelector('.gtitle') || {}).textContent || null,
    traces: data.map(t => t.name),
    shapes: (el.layout.shapes || []).length,
    width: box.width, height: box.height,
  };
})
"""


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("dashboard")
    con = make_warehouse(out / "wh.duckdb")
    result = build_dashboard(con, out / "wallet_metrics.html", title="Stacks wallet metrics")
    con.close()
    return result


def test_dashboard_renders_every_chart_with_data(
    browser: Any, dashboard: Any, tmp_path: Path
) -> None:
    assert dashboard.charts == len(EXPECTED_TITLES)
    assert not dashboard.empty and dashboard.metrics_built
    page, errors = open_page(browser, dashboard.path)
    page.wait_for_function(
        f"document.querySelectorAll('.js-plotly-plot').length >= {len(EXPECTED_TITLES)}",
        timeout=20_000,
    )
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    page.screenshot(path=str(tmp_path / "dashboard_fold.png"))  # what fits on a laptop screen
    states = page.evaluate(CHART_STATE_JS)

    assert errors == []
    assert page.locator(".js-plotly-plot").count() == len(EXPECTED_TITLES)
    assert {s["name"]: s["svgTitle"] for s in states} == EXPECTED_TITLES  # drawn titles
    for s in states:
        assert s["plotted"] and s["hasData"], s
        # a clean two-column grid at 1366 px: no giant charts
        assert 450 < s["width"] < 700 or s["name"] == "backfill_health", s
        assert 300 <= s["height"] <= 400, s
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    assert page.title() == "Stacks wallet metrics"
    assert shot.stat().st_size > 50_000

    kpis = {k: page.locator(f'[data-kpi="{k}"] .value').inner_text() for k in (
        "dau", "wau", "mau", "new_wallets", "fees_stx", "success_rate", "coverage_pct")}
    assert all(v not in ("", "–") for v in kpis.values()), kpis
    assert kpis["fees_stx"].endswith(" STX")
    assert kpis["success_rate"].endswith("%") and kpis["coverage_pct"].endswith("%")
    page.close()


def test_partial_days_are_marked_where_people_look(browser: Any, dashboard: Any) -> None:
    page, errors = open_page(browser, dashboard.path)
    page.wait_for_selector('[data-chart="backfill_health"].js-plotly-plot')
    partial_x = page.evaluate("""() => {
        const el = document.querySelector('[data-chart="backfill_health"]');
        const t = el.data.find(t => t.name === 'loaded rows (partial day)');
        return t ? t.x : null; }""")
    assert partial_x == [HOLE_DAY.isoformat(), LAST_DAY.isoformat()]
    states = {s["name"]: s for s in page.evaluate(CHART_STATE_JS)}
    for name in ("new_vs_active", "dau_wau_mau", "fees", "backfill_health"):
        assert states[name]["shapes"] == 2, name  # one shaded band per partial day
        assert "partial day (not fully loaded)" in states[name]["traces"], name
    # the legend item is really drawn, not only present in the data
    legend = page.locator('[data-chart="backfill_health"] .legendtext').all_text_contents()
    assert "loaded rows (partial day)" in legend
    # headline figures come from the last complete day, not the half-loaded head
    dau_sub = page.locator('[data-kpi="dau"] .sub').inner_text()
    assert f"on {LAST_DAY - timedelta(days=1)}" in dau_sub
    assert errors == []
    page.close()


def test_empty_warehouse_says_no_data_yet(browser: Any, tmp_path: Path) -> None:
    con = make_warehouse(tmp_path / "empty.duckdb", empty=True)
    result = build_dashboard(con, tmp_path / "empty.html")
    con.close()
    assert result.empty and result.charts == 0
    page, errors = open_page(browser, result.path)
    assert page.locator("[data-empty]").is_visible()
    assert "No data yet" in page.locator("[data-empty]").inner_text()
    assert page.locator(".js-plotly-plot").count() == 0
    page.screenshot(path=str(tmp_path / "empty.png"))
    assert errors == []
    page.close()
