"""Write the wallet-metrics dashboard: ONE self-contained HTML file.

plotly.js is inlined once, so the page opens from a file:// URL, an e-mail
attachment or a CI artifact with no network at all. Figures are serialised as JSON
and drawn by a few lines of our own script, which lets every chart div carry a stable
`data-chart` attribute for tests and links.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import plotly.offline

from stx_pipeline import settings
from stx_pipeline.backfill.quota import read as read_quota
from stx_pipeline.dashboard.charts import CHART_BUILDERS, Chart
from stx_pipeline.metrics import MetricsSummary, build_wallet_metrics, metrics_tables_exist
from stx_pipeline.metrics.build import read_summary

DEFAULT_TITLE = "Stacks wallet metrics"


def default_dashboard_path() -> Path:
    """`$STX_PIPELINE_DASHBOARD`, else `<project>/data/dashboards/wallet_metrics.html`."""
    return settings.current().dashboard_path


@dataclass(frozen=True)
class DashboardResult:
    """What was written: where, how many charts, which sections (data-chart names)."""

    path: Path
    charts: int
    sections: tuple[str, ...]
    empty: bool
    bytes: int
    metrics_built: bool
    elapsed_seconds: float
    summary: MetricsSummary

    def to_dict(self) -> dict[str, object]:
        """JSON-safe form for the CLI and Dagster metadata."""
        return {
            "path": str(self.path),
            "charts": self.charts,
            "sections": list(self.sections),
            "empty": self.empty,
            "bytes": self.bytes,
            "metrics_built": self.metrics_built,
            "elapsed_seconds": self.elapsed_seconds,
        }


CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --bg:#f3f4f6; --card:#fff;
        --partial:#f59e0b; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 14px 24px 6px; }
header h1 { margin:0; font-size: 20px; }
header p { margin: 2px 0 0; color: var(--muted); font-size: 12.5px; }
main { padding: 8px 24px 24px; max-width: 1500px; margin: 0 auto; }
.kpis { display:grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap:10px;
        margin: 8px 0 14px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:8px;
       padding:10px 12px; }
.kpi .label { color:var(--muted); font-size:12px; }
.kpi .value { font-size:22px; font-weight:650; margin-top:2px; white-space:nowrap; }
.kpi .sub { color:var(--muted); font-size:11px; }
.grid { display:grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap:14px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
        padding:6px 8px 8px; min-width:0; }
.card.wide { grid-column: 1 / -1; }
.chart { width:100%; height:340px; }
.note { color:var(--muted); font-size:12px; margin:4px 6px 0; }
.legend-partial { display:inline-block; width:12px; height:12px; vertical-align:-2px;
        background: rgba(245,158,11,.25); border:1px solid var(--partial); margin-right:4px; }
.empty { background:var(--card); border:1px dashed #9ca3af; border-radius:8px; padding:32px;
         text-align:center; color:var(--muted); font-size:15px; }
@media (max-width: 1100px) { .grid { grid-template-columns: 1fr; } }
"""

# Draws every figure; a chart that fails is replaced by a message instead of a blank box.
DRAW_JS = """
(function () {
  var figs = JSON.parse(document.getElementById('figures').textContent);
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ['lasso2d', 'select2d']};
  Object.keys(figs).forEach(function (name) {
    var el = document.querySelector('[data-chart="' + name + '"]');
    if (!el) { return; }
    try { Plotly.newPlot(el, figs[name].data, figs[name].layout, config); }
    catch (e) { el.textContent = 'chart failed to draw: ' + e; throw e; }
  });
})();
"""


def _fmt_int(v: int | None) -> str:
    return "–" if v is None else f"{v:,}"


def _quota_card(quota: dict | None) -> list[tuple[str, str, str, str]]:
    """The API's monthly quota as the last backfill saw it (only when the server announces one)."""
    if not quota or quota.get("quota_left") is None:
        return []
    limit, used = quota.get("quota_limit"), quota.get("quota_used")
    sub = f"used {used:,} of {limit:,}" if limit and used is not None else "this month"
    seen = str(quota.get("observed_at") or "")[:16].replace("T", " ")
    return [("api_quota", "API quota left (month)", f"{quota['quota_left']:,}",
             f"{sub}" + (f" · as of {seen} UTC" if seen else ""))]


def _kpis(s: MetricsSummary, quota: dict | None = None) -> str:
    day = s.latest_day.isoformat() if s.latest_day else "–"
    complete = s.last_complete_day is not None
    sub = f"on {day}" + ("" if complete else " (day not complete)")
    cards = [
        ("dau", "Active wallets (DAU)", _fmt_int(s.dau), sub),
        ("wau", "WAU (trailing 7 d)", _fmt_int(s.wau), sub),
        ("mau", "MAU (trailing 30 d)", _fmt_int(s.mau), sub),
        ("new_wallets", "New wallets (nonce 0)", _fmt_int(s.new_wallets), sub),
        ("fees_stx", "Fees", "–" if s.fees_stx is None else f"{s.fees_stx:,.2f} STX", sub),
        ("success_rate", "Success rate",
         "–" if s.success_rate is None else f"{100 * s.success_rate:.1f}%", sub),
        ("coverage_pct", "Coverage",
         "–" if s.coverage_pct is None else f"{s.coverage_pct:.1f}%",
         f"{s.partial_days} partial day{'s' if s.partial_days != 1 else ''}"
         + ("" if s.final_pct is None else f"; {s.final_pct:.1f}% final")),
        *_quota_card(quota),
    ]
    return "\n".join(
        f'<div class="kpi" data-kpi="{key}"><div class="label">{html.escape(label)}</div>'
        f'<div class="value">{html.escape(value)}</div>'
        f'<div class="sub">{html.escape(subtext)}</div></div>'
        for key, label, value, subtext in cards
    )


def _chart_html(chart: Chart) -> str:
    cls = "card wide" if chart.wide else "card"
    return (
        f'<section class="{cls}" aria-label="{html.escape(chart.title)}">'
        f'<div class="chart" data-chart="{chart.name}"></div>'
        f'<p class="note">{html.escape(chart.note)}</p></section>'
    )


def _page(title: str, header_sub: str, body: str, scripts: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{CSS}</style></head>
<body><header><h1>{html.escape(title)}</h1><p>{header_sub}</p></header>
<main>{body}</main>
{scripts}
</body></html>
"""


def build_dashboard(
    con: duckdb.DuckDBPyConnection,
    out_path: Path | str | None = None,
    *,
    title: str = DEFAULT_TITLE,
    refresh_metrics: bool = False,
) -> DashboardResult:
    """Render the dashboard from the `metrics_*` tables into one HTML file.

    The metrics are computed first when missing (or when `refresh_metrics`), which
    needs a read-write connection; otherwise only small aggregates are read.
    """
    started = time.perf_counter()
    path = Path(out_path) if out_path is not None else default_dashboard_path()
    built = False
    if refresh_metrics or not metrics_tables_exist(con):
        summary = build_wallet_metrics(con)
        built = True
    else:
        summary = read_summary(con)

    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if summary.empty:
        header = f"Generated {generated}."
        body = ('<div class="empty" data-empty="true"><strong>No data yet.</strong><br>'
                "The warehouse holds no canonical transactions: run a backfill "
                "(<code>stx-pipeline backfill</code>), then rebuild the dashboard.</div>")
        doc = _page(title, header, body)
        charts: list[Chart] = []
    else:
        charts = [builder(con) for builder in CHART_BUILDERS]
        header = (
            f"Data {summary.first_day} → {summary.last_day} (UTC days) · "
            f"latest complete day {summary.last_complete_day or 'none yet'} · "
            f"{summary.canonical_rows:,} transactions, {summary.wallets:,} wallets · "
            f'<span class="legend-partial"></span>partial day = not fully loaded · '
            f"generated {generated}"
        )
        kpis = _kpis(summary, read_quota(con))
        body = (f'<section class="kpis" aria-label="headline figures">{kpis}</section>'
                f'<div class="grid">{"".join(_chart_html(c) for c in charts)}</div>')
        figures = {c.name: json.loads(c.figure.to_json()) for c in charts}
        # "</" inside a <script> would end it early; JSON allows the escaped form.
        fig_json = json.dumps(figures, separators=(",", ":")).replace("</", "<\\/")
        scripts = (
            f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
            f'<script type="application/json" id="figures">{fig_json}</script>\n'
            f"<script>{DRAW_JS}</script>"
        )
        doc = _page(title, header, body, scripts)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)  # readers never see a half-written page
    return DashboardResult(
        path=path,
        charts=len(charts),
        sections=tuple(c.name for c in charts),
        empty=summary.empty,
        bytes=path.stat().st_size,
        metrics_built=built,
        elapsed_seconds=round(time.perf_counter() - started, 4),
        summary=summary,
    )
