"""Plotly figures of the dashboard, one function per chart, fed by `metrics_*` aggregates.

Every query here reads a small metrics table (one row per day, month, cohort or
contract), so the page costs the same on 10 thousand or 100 million transactions.
Amounts are shown in STX, never µSTX. Days the ledger does not fully cover are shaded
so that a half-loaded day never reads as a real drop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import duckdb
import plotly.graph_objects as go

from stx_pipeline.metrics.sql import FUNNEL_ACTIVE_MIN_TXS, RETENTION_DAYS, WALTV_DAYS

PARTIAL_FILL = "rgba(245, 158, 11, 0.18)"
# Bars on a date axis sized to 80 % of a day: plotly would otherwise size them from the
# gap between a trace's own points (two partial days 60 days apart = giant bars).
DAY_BAR_WIDTH_MS = 0.8 * 86_400_000
PARTIAL_LEGEND = "partial day (not fully loaded)"
COLORS = {
    "dau": "#2563eb",
    "wau": "#7c3aed",
    "mau": "#0891b2",
    "new": "#16a34a",
    "first_seen": "#9ca3af",
    "fees": "#0f766e",
    "per_wallet": "#b45309",
    "median": "#6b7280",
    "success": "#16a34a",
    "retained": "#94a3b8",
    "resurrected": "#2563eb",
    "churned": "#dc2626",
    "partial": "#f59e0b",
    "complete": "#0f766e",
    "expected": "#111827",
}
STATUS_COLORS = {
    "success": "#16a34a",
    "abort_by_response": "#f59e0b",
    "abort_by_post_condition": "#dc2626",
}
TYPE_COLORS = ["#2563eb", "#0891b2", "#7c3aed", "#16a34a", "#db2777", "#9ca3af", "#6b7280",
               "#f59e0b"]


@dataclass(frozen=True)
class Chart:
    """One rendered chart: a stable name (the `data-chart` attribute), its figure and a note."""

    name: str
    title: str
    figure: go.Figure
    note: str = ""
    wide: bool = False


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _iso(d: date) -> str:
    return d.isoformat()


def _layout(fig: go.Figure, title: str, *, y_title: str = "", y2_title: str | None = None,
            x_title: str = "") -> go.Figure:
    """Shared look: compact margins, legend under the plot, readable at 1366x768."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        height=340,
        margin={"l": 60, "r": 60 if y2_title else 20, "t": 44, "b": 40},
        legend={"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 11}},
        hovermode="x unified",
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        bargap=0.15,
    )
    fig.update_yaxes(title_text=y_title, rangemode="tozero")
    if x_title:
        fig.update_xaxes(title_text=x_title)
    if y2_title is not None:
        fig.update_layout(
            # tickmode auto: plotly.js would otherwise sync y2 ticks to y's grid (89.6 %).
            yaxis2={"title": {"text": y2_title}, "overlaying": "y", "side": "right",
                    "showgrid": False, "rangemode": "tozero", "tickmode": "auto"}
        )
    return fig


def _partial_ranges(days: list[date], partial: list[bool]) -> list[tuple[date, date]]:
    """Consecutive partial days merged into [first, last] runs."""
    runs: list[tuple[date, date]] = []
    for d, p in zip(days, partial, strict=True):
        if not p:
            continue
        if runs and runs[-1][1] + timedelta(days=1) == d:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    return runs


def _shade_partial(fig: go.Figure, days: list[date], partial: list[bool]) -> None:
    """Shade partial days (half a day either side of the bar centre) and add a legend key."""
    runs = _partial_ranges(days, partial)
    for first, last in runs:
        fig.add_vrect(
            x0=f"{first - timedelta(days=1)} 12:00", x1=f"{last} 12:00",
            fillcolor=PARTIAL_FILL, line_width=0, layer="below",
        )
    if runs:
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", name=PARTIAL_LEGEND, hoverinfo="skip",
            marker={"symbol": "square", "size": 12, "color": PARTIAL_FILL,
                    "line": {"color": COLORS["partial"], "width": 1}},
        ))


def _day_bars(fig: go.Figure) -> None:
    fig.update_traces(width=DAY_BAR_WIDTH_MS, selector={"type": "bar"})


def _solid_and_dotted(
    fig: go.Figure, x: list[str], y: list[Any], complete: list[bool], *, name: str,
    color: str, yaxis: str = "y", width: float = 2, hovertemplate: str | None = None,
) -> None:
    """A solid line where the value is complete, the same colour dotted where it is not.

    Dotted points include their complete neighbours so the line stays connected.
    """
    n = len(x)
    solid = [v if complete[i] else None for i, v in enumerate(y)]
    near = [not complete[i] or (i > 0 and not complete[i - 1]) or
            (i + 1 < n and not complete[i + 1]) for i in range(n)]
    dotted = [v if near[i] else None for i, v in enumerate(y)]
    fig.add_trace(go.Scatter(x=x, y=solid, name=name, mode="lines", yaxis=yaxis,
                             legendgroup=name, line={"color": color, "width": width},
                             hovertemplate=hovertemplate))
    if any(not c for c in complete):
        fig.add_trace(go.Scatter(x=x, y=dotted, name=f"{name} (window not fully loaded)",
                                 mode="lines", yaxis=yaxis, legendgroup=name,
                                 showlegend=False, hoverinfo="skip",
                                 line={"color": color, "width": width, "dash": "dot"}))


def _daily(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _rows(con, "SELECT * FROM metrics_daily_activity ORDER BY day")


def chart_new_vs_active(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _daily(con)
    x = [_iso(r["day"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=[r["new_wallets"] for r in rows], name="new wallets (nonce 0)",
                         marker_color=COLORS["new"]))
    fig.add_trace(go.Scatter(x=x, y=[r["dau"] for r in rows], name="active wallets (DAU)",
                             mode="lines", line={"color": COLORS["dau"], "width": 2}))
    fig.add_trace(go.Scatter(x=x, y=[r["first_seen_wallets"] for r in rows],
                             name="first seen in data (comparison)", mode="lines",
                             line={"color": COLORS["first_seen"], "width": 1.5, "dash": "dot"}))
    _shade_partial(fig, [r["day"] for r in rows], [r["partial"] for r in rows])
    _day_bars(fig)
    title = "Daily new vs active wallets"
    return Chart("new_vs_active", title, _layout(fig, title, y_title="wallets"),
                 note="New = sent its nonce-0 (first ever) transaction that day. "
                      "First seen = first appearance in the loaded data, which overcounts.")


def chart_dau_wau_mau(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _daily(con)
    x = [_iso(r["day"]) for r in rows]
    fig = go.Figure()
    dau_ok = [not r["partial"] for r in rows]
    wau_ok = [bool(r["wau_complete"]) for r in rows]
    mau_ok = [bool(r["mau_complete"]) for r in rows]
    _solid_and_dotted(fig, x, [r["dau"] for r in rows], dau_ok, name="DAU",
                      color=COLORS["dau"])
    _solid_and_dotted(fig, x, [r["wau"] for r in rows], wau_ok, name="WAU (trailing 7 d)",
                      color=COLORS["wau"])
    _solid_and_dotted(fig, x, [r["mau"] for r in rows], mau_ok, name="MAU (trailing 30 d)",
                      color=COLORS["mau"])
    _solid_and_dotted(
        fig, x, [None if r["stickiness"] is None else 100 * r["stickiness"] for r in rows],
        mau_ok, name="stickiness DAU/MAU (%)", color=COLORS["median"], yaxis="y2", width=1,
        hovertemplate="%{y:.1f}%",
    )
    _shade_partial(fig, [r["day"] for r in rows], [r["partial"] for r in rows])
    title = "Active wallets: DAU, WAU, MAU"
    fig = _layout(fig, title, y_title="distinct wallets", y2_title="stickiness %")
    fig.update_layout(yaxis2={"range": [0, 100], "ticksuffix": "%"})
    return Chart("dau_wau_mau", title, fig,
                 note="WAU/MAU count distinct senders over the trailing 7/30 calendar days. "
                      "Dotted = the window reaches before the data or over a partial day, "
                      "so it undercounts.")


def chart_retention(con: duckdb.DuckDBPyConnection) -> Chart:
    cols = [f"d{d}_retention" for d in RETENTION_DAYS]
    rows = _rows(con, f"""
        SELECT cohort_start, cohort_size, {", ".join(cols)}
        FROM metrics_cohort_retention WHERE cohort_grain = 'week' ORDER BY cohort_start""")
    y = [f"{r['cohort_start']:%Y-%m-%d} (n={r['cohort_size']:,})" for r in rows]
    z = [[None if r[c] is None else round(100 * r[c], 1) for c in cols] for r in rows]
    text = [["" if v is None else f"{v:.0f}%" for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        x=[f"D{d}" for d in RETENTION_DAYS], y=y, z=z, text=text, texttemplate="%{text}",
        textfont={"size": 10}, colorscale="Blues", zmin=0, hoverongaps=False,
        colorbar={"title": {"text": "%"}, "thickness": 12},
        hovertemplate="cohort %{y}<br>%{x}: %{z:.1f}% active<extra></extra>",
    ))
    title = "Retention by weekly activation cohort"
    fig = _layout(fig, title, y_title="cohort week (Monday)", x_title="days after activation")
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(autorange="reversed", rangemode="normal", tickfont={"size": 10})
    return Chart("retention_heatmap", title, fig,
                 note="Share of the cohort active exactly on day D after activation (nonce-0 "
                      "transaction). Blank = cohort not yet matured for that D.")


def chart_growth(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _rows(con, "SELECT * FROM metrics_monthly_growth ORDER BY month")
    x = [f"{r['month']:%b %Y}{' *' if r['partial'] else ''}" for r in rows]
    fig = go.Figure()
    series = (("new", "new", 1), ("resurrected", "resurrected", 1),
              ("retained", "retained", 1), ("churned", "churned", -1))
    for key, label, sign in series:
        fig.add_trace(go.Bar(
            x=x, y=[None if r[key] is None else sign * r[key] for r in rows], name=label,
            marker_color=COLORS[key], hovertemplate="%{y:,}",
        ))
    title = "Monthly growth accounting"
    fig = _layout(fig, title, y_title="wallets")
    fig.update_layout(barmode="relative", hovermode="x")
    fig.update_yaxes(rangemode="normal", zeroline=True, zerolinecolor="#374151")
    return Chart("growth_accounting", title, fig,
                 note="New = activated (nonce 0) that month; retained = also active the month "
                      "before; resurrected = back after a gap; churned (below 0) = active the "
                      "month before, not this one. * month not fully covered.")


def chart_fees(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _daily(con)
    x = [_iso(r["day"]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=x, y=[r["fees_stx"] for r in rows], name="fees paid (STX)",
                         marker_color=COLORS["fees"], hovertemplate="%{y:,.4f} STX"))
    fig.add_trace(go.Scatter(
        x=x, y=[r["fee_per_active_wallet_stx"] for r in rows], name="fee per active wallet",
        mode="lines", yaxis="y2", line={"color": COLORS["per_wallet"], "width": 2},
        hovertemplate="%{y:,.6f} STX",
    ))
    fig.add_trace(go.Scatter(
        x=x, y=[None if r["median_fee_ustx"] is None else r["median_fee_ustx"] / 1e6
                for r in rows],
        name="median fee per tx", mode="lines", yaxis="y2",
        line={"color": COLORS["median"], "width": 1.5, "dash": "dot"},
        hovertemplate="%{y:,.6f} STX",
    ))
    _shade_partial(fig, [r["day"] for r in rows], [r["partial"] for r in rows])
    _day_bars(fig)
    title = "Fees per day and per active wallet"
    fig = _layout(fig, title, y_title="STX per day", y2_title="STX per wallet / per tx")
    fig.update_layout(yaxis2={"tickformat": ",.3~f"})
    return Chart("fees", title, fig,
                 note="All fees of wallet transactions, failed ones included, in STX.")


def chart_wallet_value(con: duckdb.DuckDBPyConnection) -> Chart:
    cols = [f"waltv_{n}_stx" for n in WALTV_DAYS]
    rows = _rows(con, f"""
        SELECT cohort_start, cohort_size, {", ".join(cols)}
        FROM metrics_wallet_value WHERE cohort_grain = 'week' ORDER BY cohort_start""")
    x = [_iso(r["cohort_start"]) for r in rows]
    fig = go.Figure()
    palette = ["#2563eb", "#0891b2", "#16a34a", "#b45309", "#7c3aed"]
    immature = []
    for n, col, color in zip(WALTV_DAYS, cols, palette, strict=False):
        y = [r[col] for r in rows]
        if all(v is None for v in y):
            immature.append(f"WALTV-{n}")
            continue
        fig.add_trace(go.Scatter(
            x=x, y=y, name=f"first {n} days", mode="lines+markers",
            line={"color": color, "width": 2}, marker={"size": 5},
            hovertemplate="%{y:,.4f} STX",
        ))
    title = "Value per wallet (WALTV) by weekly cohort"
    if not fig.data:  # say why the chart is empty instead of drawing bare axes
        fig.add_annotation(
            text="No weekly cohort has matured yet:<br>WALTV-15 needs 15 complete days"
            " after a cohort's last activation day.",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
            font={"size": 13, "color": "#475569"},
        )
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    fig = _layout(fig, title, y_title="STX of fees per wallet", x_title="cohort week")
    note = "Average fees a wallet paid as fee payer in its first N days, matured cohorts only."
    if immature:
        note += f" Not matured yet: {', '.join(immature)}."
    return Chart("wallet_value", title, fig, note=note)


def chart_activity_type(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _rows(con, """
        SELECT day, tx_type, bool_or(is_system) AS is_system, sum(tx_count) AS n
        FROM metrics_activity_mix GROUP BY day, tx_type ORDER BY day, tx_type""")
    types = sorted({r["tx_type"] for r in rows}, key=lambda t: (t in ("coinbase", "tenure_change"),
                                                                t))
    fig = go.Figure()
    for i, t in enumerate(types):
        sel = [r for r in rows if r["tx_type"] == t]
        label = f"{t} (system)" if sel and sel[0]["is_system"] else t
        fig.add_trace(go.Bar(x=[_iso(r["day"]) for r in sel], y=[r["n"] for r in sel],
                             name=label, marker_color=TYPE_COLORS[i % len(TYPE_COLORS)],
                             hovertemplate="%{y:,}"))
    _day_bars(fig)
    title = "Transactions per day by type"
    fig = _layout(fig, title, y_title="transactions")
    fig.update_layout(barmode="stack")
    return Chart("activity_by_type", title, fig,
                 note="System transactions (coinbase, tenure_change) are shown here only; "
                      "they never count as wallet activity.")


def chart_activity_status(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _rows(con, """
        SELECT day, tx_status, sum(tx_count) AS n FROM metrics_activity_mix
        WHERE NOT is_system GROUP BY day, tx_status ORDER BY day, tx_status""")
    statuses = sorted({r["tx_status"] for r in rows}, key=lambda s: (s != "success", s))
    fig = go.Figure()
    for s in statuses:
        sel = [r for r in rows if r["tx_status"] == s]
        fig.add_trace(go.Bar(x=[_iso(r["day"]) for r in sel], y=[r["n"] for r in sel], name=s,
                             marker_color=STATUS_COLORS.get(s, "#6b7280"),
                             hovertemplate="%{y:,}"))
    daily = _daily(con)
    fig.add_trace(go.Scatter(
        x=[_iso(r["day"]) for r in daily],
        y=[None if r["success_rate"] is None else 100 * r["success_rate"] for r in daily],
        name="success rate (%)", mode="lines", yaxis="y2",
        line={"color": "#111827", "width": 1.5}, hovertemplate="%{y:.1f}%",
    ))
    _day_bars(fig)
    title = "Wallet transactions per day by status"
    fig = _layout(fig, title, y_title="transactions", y2_title="success rate %")
    fig.update_layout(barmode="stack", yaxis2={"range": [0, 100]})
    return Chart("activity_by_status", title, fig,
                 note="Failed transactions (abort_*) are mined and pay their fee.")


def _short_contract(contract_id: str) -> str:
    addr, _, name = contract_id.partition(".")
    short = f"{addr[:4]}…{addr[-4:]}" if len(addr) > 12 else addr
    label = f"{short}.{name}" if name else short
    return label if len(label) <= 34 else label[:33] + "…"


def chart_top_contracts(con: duckdb.DuckDBPyConnection, top: int = 12) -> Chart:
    rows = _rows(con, f"""
        SELECT contract_id, calls, distinct_callers FROM metrics_top_contracts
        WHERE rank_by_calls <= {int(top)} ORDER BY rank_by_calls DESC""")
    y = [_short_contract(r["contract_id"]) for r in rows]
    ids = [r["contract_id"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=y, x=[r["calls"] for r in rows], orientation="h", name="calls",
                         marker_color="#2563eb", customdata=ids,
                         hovertemplate="%{customdata}<br>%{x:,} calls<extra></extra>"))
    fig.add_trace(go.Bar(y=y, x=[r["distinct_callers"] for r in rows], orientation="h",
                         name="distinct callers", marker_color="#93c5fd", customdata=ids,
                         hovertemplate="%{customdata}<br>%{x:,} callers<extra></extra>"))
    title = f"Top {len(rows)} contracts by calls"
    fig = _layout(fig, title, x_title="contract calls / distinct callers")
    fig.update_layout(barmode="group", hovermode="closest", margin={"l": 200})
    fig.update_yaxes(tickfont={"size": 10}, rangemode="normal")
    return Chart("top_contracts", title, fig,
                 note="contract_call transactions over the whole loaded range.")


def chart_funnel(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _rows(con, "SELECT * FROM metrics_funnel ORDER BY month")
    x = [f"{r['month']:%b %Y}" for r in rows]
    fig = go.Figure()
    stages = (("activated", "activated (nonce 0)", "#93c5fd"),
              ("matured", "30 days observed", "#60a5fa"),
              ("active", f"active (≥ {FUNNEL_ACTIVE_MIN_TXS} txs in 30 d)", "#2563eb"),
              ("value", "value (≥ 1 STX fees in 30 d)", "#1e3a8a"))
    for key, label, color in stages:
        fig.add_trace(go.Bar(x=x, y=[r[key] for r in rows], name=label, marker_color=color,
                             hovertemplate="%{y:,}"))
    title = "Activation funnel by month"
    fig = _layout(fig, title, y_title="wallets", x_title="activation month")
    fig.update_layout(barmode="group", hovermode="x")
    return Chart("funnel", title, fig,
                 note="Wallets activated in the month; active and value are judged on each "
                      "wallet's first 30 days, so only wallets with 30 complete days count.")


def chart_backfill_health(con: duckdb.DuckDBPyConnection) -> Chart:
    rows = _rows(con, "SELECT * FROM metrics_backfill_health ORDER BY day")
    fig = go.Figure()
    for partial, name, color in ((False, "loaded rows (complete day)", COLORS["complete"]),
                                 (True, "loaded rows (partial day)", COLORS["partial"])):
        sel = [r for r in rows if r["partial"] == partial]
        fig.add_trace(go.Bar(
            x=[_iso(r["day"]) for r in sel], y=[r["loaded_rows"] for r in sel], name=name,
            marker={"color": color,
                    "pattern": {"shape": "/" if partial else "", "fgcolor": "#92400e"}},
            hovertemplate="%{y:,} loaded",
        ))
    fig.add_trace(go.Scatter(
        x=[_iso(r["day"]) for r in rows], y=[r["expected_rows"] for r in rows],
        name="expected rows (API total)", mode="markers",
        marker={"symbol": "line-ew-open", "size": 10, "color": COLORS["expected"],
                "line": {"width": 2}},
        hovertemplate="%{y:,} expected",
    ))
    fig.add_trace(go.Scatter(
        x=[_iso(r["day"]) for r in rows], y=[r["coverage_pct"] for r in rows],
        name="coverage % of day", mode="lines", yaxis="y2",
        line={"color": "#7c3aed", "width": 1.5}, hovertemplate="%{y:.1f}%",
    ))
    fig.add_trace(go.Scatter(
        x=[_iso(r["day"]) for r in rows], y=[r.get("final_pct") for r in rows],
        name="final % of day", mode="lines", yaxis="y2",
        line={"color": "#0f766e", "width": 1.5, "dash": "dot"}, hovertemplate="%{y:.1f}%",
    ))
    _shade_partial(fig, [r["day"] for r in rows], [r["partial"] for r in rows])
    _day_bars(fig)
    title = "Backfill health: expected vs loaded rows per day"
    fig = _layout(fig, title, y_title="rows", y2_title="coverage %")
    fig.update_layout(barmode="overlay", yaxis2={"range": [0, 105]})
    return Chart("backfill_health", title, fig,
                 note="From the coverage ledger (per window start day). Partial = the day is "
                      "not entirely covered by sealed windows; its numbers are incomplete. "
                      "Final = sealed and beyond the reach of reorgs and late Bitcoin "
                      "timestamps; the newest hours stay provisional (re-verified each run).",
                 wide=True)


CHART_BUILDERS: tuple[Callable[[duckdb.DuckDBPyConnection], Chart], ...] = (
    chart_new_vs_active,
    chart_dau_wau_mau,
    chart_retention,
    chart_growth,
    chart_fees,
    chart_wallet_value,
    chart_activity_type,
    chart_activity_status,
    chart_top_contracts,
    chart_funnel,
    chart_backfill_health,
)
