"""Screenshots of the Dagster UI during and after a backfill, in headless Chromium.

    make setup browser
    .venv/bin/python docs/screenshots/take_screenshots.py [--out docs/screenshots]

Runs what `stx-pipeline ui` runs (simulator, `dg dev` from a Dagster home, the dashboard
server) on free loopback ports in a temporary folder, with a simulator slow enough (latency,
a paced client) that the backfill lasts a couple of minutes. It photographs the
`transactions` asset page while the sensor's run goes (overview, events, metadata
plots), then,
once everything is green, the same pages and the metrics tables in the catalog.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from stx_pipeline.devserver import (  # noqa: E402 - after the path set-up
    dagster_dev_command,
    pipeline_environment,
    prepare_home,
    serve_dashboard,
    stop_process_group,
)
from stx_pipeline.sim import run_simulator  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TARGET_DAYS = 8
STATE_QUERY = """
{
  assetNodes(assetKeys: [{path: ["transactions"]}, {path: ["dashboard"]}]) {
    assetKey { path }
    assetObservations(limit: 1) { timestamp }
    assetMaterializations(limit: 1) {
      timestamp
      metadataEntries { label ... on BoolMetadataEntry { boolValue } }
    }
  }
  runsOrError(filter: {statuses: [STARTED]}) { ... on Runs { results { runId jobName } } }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(url: str, query: str) -> dict[str, Any]:
    resp = requests.post(f"{url}/graphql", json={"query": query}, timeout=30)
    resp.raise_for_status()
    return resp.json()["data"]


def wait_for(what: str, test: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, KeyError, TypeError):
            if test():
                return
        time.sleep(2.0)
    raise SystemExit(f"timed out waiting for {what}")


def state(url: str) -> dict[str, Any]:
    data = graphql(url, STATE_QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    tx = nodes["transactions"]
    mats = tx["assetMaterializations"]
    complete = bool(mats) and any(
        e["label"] == "complete" and e.get("boolValue") for e in mats[0]["metadataEntries"]
    )
    return {
        "observed": bool(tx["assetObservations"]),
        "running": [r["jobName"] for r in data["runsOrError"]["results"]],
        "complete": complete,
        "dashboard": bool(nodes["dashboard"]["assetMaterializations"]),
    }


def shoot(page: Any, url: str, path: Path, settle: float = 4.0) -> None:
    page.goto(url, wait_until="networkidle")
    time.sleep(settle)  # charts and live data render after the network settles
    page.screenshot(path=str(path), full_page=False)
    print(f"  {path}")


def shoot_plots(page: Any, url: str, path: Path, settle: float = 4.0) -> None:
    """The Overview's Metadata section switched to Plots (Dagster 1.13 has no Plots tab):
    one chart per numeric label, materializations and observations on one time axis."""
    page.goto(url, wait_until="networkidle")
    time.sleep(settle)
    page.get_by_role("button", name="Plots").click()
    time.sleep(settle)
    page.get_by_text("Metadata", exact=True).first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 420)
    time.sleep(1.0)
    page.screenshot(path=str(path), full_page=False)
    print(f"  {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    port = free_port()
    ui = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="stx-ui-shots-") as tmp, contextlib.ExitStack() as st:
        tmp_path = Path(tmp)
        home = prepare_home(tmp_path / "dagster")
        base = {
            **os.environ,
            "STX_PIPELINE_DB": str(tmp_path / "wallet_metrics.duckdb"),
            "STX_PIPELINE_DASHBOARD": str(tmp_path / "dashboards" / "wallet_metrics.html"),
            "STX_PIPELINE_STATUS_FILE": str(tmp_path / "backfill_status.json"),
            "STX_PIPELINE_TARGET_DAYS": str(TARGET_DAYS),
            "STX_PIPELINE_SENSOR_INTERVAL": "5",
            "HIRO_RPM": "600",  # 10 requests/s: ~1,000 pages take close to two minutes
        }
        base.pop("HIRO_API_KEY", None)
        env = pipeline_environment(base, home, TARGET_DAYS)
        sim = st.enter_context(
            run_simulator(history_days=TARGET_DAYS + 2, tx_per_day=6000, latency_ms=60)
        )
        env["HIRO_API_URL"] = str(sim.url)
        env["STX_PIPELINE_DASHBOARD_URL"] = st.enter_context(
            serve_dashboard(Path(env["STX_PIPELINE_DASHBOARD"]), free_port())
        )
        log = open(tmp_path / "dg_dev.log", "wb")  # noqa: SIM115 - closed by the stack
        st.callback(log.close)
        proc = subprocess.Popen(
            dagster_dev_command(port, home), cwd=home, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        st.callback(stop_process_group, proc)
        print(f"dg dev on {ui}, simulator {sim.url}, target {TARGET_DAYS} days")
        wait_for("the UI", lambda: bool(graphql(ui, "{ version }")["version"]), 180)

        browser = st.enter_context(sync_playwright()).chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        st.callback(browser.close)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})

        wait_for("progress observations of a running backfill",
                 lambda: state(ui)["observed"] and bool(state(ui)["running"]), 240)
        time.sleep(35)  # a few more observations, so that the plots have a line
        if not state(ui)["running"]:
            print("warning: the run finished before the 'during' screenshots")
        print("during the run:")
        asset = f"{ui}/assets/transactions"
        shoot(page, asset, args.out / "during_overview.png")
        shoot(page, f"{asset}?view=events", args.out / "during_events.png")
        shoot_plots(page, asset, args.out / "during_plots.png")

        wait_for("a complete backfill and the dashboard",
                 lambda: state(ui)["complete"] and state(ui)["dashboard"], 600)
        time.sleep(5)
        print("after the run:")
        shoot(page, asset, args.out / "after_overview.png")
        shoot_plots(page, asset, args.out / "after_plots.png")
        shoot(page, f"{asset}?view=checks", args.out / "after_checks.png")
        shoot(page, f"{ui}/assets/metrics_daily_activity", args.out / "after_metrics_table.png")
        shoot(page, f"{ui}/assets/dashboard", args.out / "after_dashboard_asset.png")
        shoot(page, f"{ui}/assets", args.out / "after_catalog.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
