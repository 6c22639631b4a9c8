"""Render an :class:`~feedwise.report.builder.InsightReport` as one self-contained HTML file.

The file carries its own copy of plotly.js (no CDN, no network), its CSS, and every
chart, so it opens offline in any browser and can be mailed around as is.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from feedwise.analytics.kpis import KPI_LABELS
from feedwise.analytics.suppression import SUPPRESSED
from feedwise.report import charts
from feedwise.report.builder import InsightReport
from feedwise.report.care import render_care_html
from feedwise.report.graph import render_graph_html
from feedwise.report.listening import render_listening_html
from feedwise.report.timing import render_timing_html

SUP = html.escape(SUPPRESSED)

CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f8fafc; --up:#059669;
        --down:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 Inter,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
header { background:#0f172a; color:#fff; padding:22px 32px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:650; }
header p { margin:0; color:#cbd5e1; }
main { max-width:1280px; margin:0 auto; padding:20px 32px 40px; }
h2 { font-size:17px; margin:30px 0 10px; padding-bottom:6px; border-bottom:1px solid var(--line); }
.tiles { display:grid; grid-template-columns:repeat(auto-fill,minmax(170px,1fr)); gap:12px; }
.tile { background:#fff; border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.tile .label { color:var(--muted); font-size:12px; }
.tile .value { font-size:22px; font-weight:650; margin:2px 0; }
.tile .chg { font-size:12px; color:var(--muted); }
.tile .chg.good { color:var(--up); } .tile .chg.bad { color:var(--down); }
.card { background:#fff; border:1px solid var(--line); border-radius:10px; padding:8px;
        margin-bottom:14px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
@media (max-width: 900px) { .grid2 { grid-template-columns:1fr; } }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:6px 9px; border-bottom:1px solid var(--line); text-align:left; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
td.sup { color:var(--muted); font-style:italic; }
.note { color:var(--muted); font-size:12px; margin:6px 2px; }
.desc { color:#334155; }
footer { color:var(--muted); font-size:12px; margin-top:30px; }
"""


def _fmt(v: float, kind: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.2%}" if abs(v) < 0.1 else f"{v:.1%}"
    if kind == "dur":
        return f"{v:.1f} s" if v < 120 else f"{v / 60:.1f} min"
    if kind == "money":
        return f"{v:,.2f}"
    if kind == "x":
        return f"{v:,.2f}×"
    return f"{v:,.2f}"


def _tiles(rep: InsightReport) -> str:
    out = []
    for key, (label, kind, up_good) in KPI_LABELS.items():
        v = rep.summary.get(key, float("nan"))
        ch = rep.change.get(key, float("nan"))
        if math.isnan(v):  # every KPI is blanked together when the scope is under k users
            value = SUP if math.isnan(rep.summary.get("users", float("nan"))) else "–"
        else:
            value = _fmt(v, kind)
        prev = rep.previous.get(key, float("nan"))
        if math.isnan(ch) and prev == 0 and not math.isnan(v):
            chg, cls = ("■ unchanged (0)", "") if v == 0 else ("▲ up from 0", "")
        elif math.isnan(ch):
            chg, cls = "no previous period", ""
        else:
            good = (ch > 0) == up_good
            cls = "good" if good and ch != 0 else ("bad" if ch != 0 else "")
            chg = f"{'▲' if ch > 0 else ('▼' if ch < 0 else '■')} {abs(ch):.1%} vs previous"
        out.append(f'<div class="tile"><div class="label">{html.escape(label)}</div>'
                   f'<div class="value">{value}</div><div class="chg {cls}">{chg}</div></div>')
    return '<div class="tiles">' + "".join(out) + "</div>"


def _table(df: pd.DataFrame, cols: dict[str, tuple[str, str]], empty: str) -> str:
    if df.empty:
        return f'<p class="note">{html.escape(empty)}</p>'
    head = "".join(f'<th class="{"num" if k != "text" else ""}">{html.escape(label)}</th>'
                   for label, k in cols.values())
    rows = []
    sup = df["suppressed"] if "suppressed" in df else pd.Series(False, index=df.index)
    for idx, r in df.iterrows():
        cells = []
        for col, (_, kind) in cols.items():
            v = r.get(col)
            if kind == "text":
                cells.append(f"<td>{html.escape('' if v is None or v is pd.NA else str(v))}"
                             "</td>")
            elif bool(sup.loc[idx]) and (v is None or (isinstance(v, float) and math.isnan(v))):
                cells.append(f'<td class="num sup">{SUP}</td>')
            else:
                cells.append(f'<td class="num">{_fmt(v, kind)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


class _Figs:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, fig: go.Figure) -> str:
        self.n += 1
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{self.n}",
                          config={"displaylogo": False, "responsive": True},
                          default_height=f"{fig.layout.height or 340}px")
        return f'<div class="card">{div}</div>'


def render_html(rep: InsightReport, title: str = "Behaviour insight") -> str:
    """The whole report as one HTML string (plotly.js inlined)."""
    fig = _Figs()
    k = rep.config.k
    day = "%Y-%m-%d %H:%M"
    period = f"{rep.start:{day}} → {rep.end:{day}} UTC"
    s = rep.series
    days = (rep.end - rep.start).total_seconds() / 86400  # the previous period's length
    parts = [f"<header><h1>{html.escape(title)}</h1><p>{period} · previous period for "
             f"comparison: the {days:g} days before · groups of "
             f"fewer than {k} users suppressed ({SUP}) · users without analytics "
             "consent excluded</p></header><main>"]
    parts.append("<h2>Key figures</h2>" + _tiles(rep))
    parts.append("<h2>Engagement over time</h2>" + fig(charts.trend_lines(s))
                 + fig(charts.revenue_lines(s)))
    d = rep.day_retention
    parts.append("<h2>Retention</h2>" + fig(charts.retention_heatmap(rep.retention))
                 + _table(d.assign(cohort=d["cohort"].astype(str)) if not d.empty else d, {
                     "cohort": ("Cohort (first-seen week)", "text"), "users": ("Users", "int"),
                     "d1": ("D1", "pct"), "d7": ("D7", "pct"), "d30": ("D30", "pct")},
                     "no new users in this window"))
    parts.append('<h2>When people are active</h2><div class="grid2">'
                 + fig(charts.weekday_hour_heatmap(rep.activity, "Active users by weekday × "
                                                   "hour (UTC)", ",.0f", "Purples", "users"))
                 + fig(charts.weekday_hour_heatmap(rep.best_time, "Best time to post: "
                                                   "engagement per impression by publish time",
                                                   ".1%", "Greens", "eng./imp."))
                 + "</div>")
    parts.append(render_timing_html(rep.timing))
    parts.append(render_listening_html(rep.listening))
    parts.append("<h2>Funnel</h2>" + fig(charts.funnel_chart(rep.funnel)))
    parts.append("<h2>Segments</h2>" + fig(charts.segments_chart(rep.segments))
                 + _table(rep.segments, {"kind": ("Kind", "text"), "segment": ("Segment", "text"),
                                         "users": ("Users", "int"), "share": ("Share", "pct"),
                                         "description": ("Who they are", "text")},
                          "no users"))
    for n in rep.notes:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
    eng = {"impressions": ("Impressions", "int"), "engagements": ("Engagements", "int"),
           "engagement_rate": ("Eng./imp.", "pct"), "users": ("Users", "int")}
    parts.append("<h2>Top content</h2>"
                 + f'<p class="note">Rows engaged by fewer than {k} users are not listed.</p>'
                 + '<div class="grid2"><div class="card"><b>Top posts</b>'
                 + _table(rep.top_posts, {"title": ("Post", "text"),
                                          "author_id": ("Author", "text"), **eng},
                          "no posts with enough users")
                 + '</div><div class="card"><b>Top tags</b>'
                 + _table(rep.top_tags, {"tag": ("Tag", "text"), **eng}, "no tags")
                 + '</div><div class="card"><b>Top authors</b>'
                 + _table(rep.top_authors, {"author_id": ("Author", "text"),
                                            "posts": ("Posts", "int"), **eng}, "no authors")
                 + '</div><div class="card"><b>Trending tags</b> '
                   f'<span class="note">(last {rep.config.trending_days:g} day(s) vs before)'
                   '</span>'
                 + _table(rep.trending, {"tag": ("Tag", "text"),
                                         "recent_per_day": ("Recent / day", "num"),
                                         "baseline_per_day": ("Baseline / day", "num"),
                                         "lift": ("Lift", "x")}, "nothing trending")
                 + "</div></div>")
    c = rep.campaigns
    names = ({} if c.empty else
             dict(zip(c["campaign_id"], c["name"].fillna(c["campaign_id"]), strict=True)))
    parts.append("<h2>Campaigns</h2>"
                 + _table(rep.campaigns, {
                     "name": ("Campaign", "text"), "impressions": ("Impr.", "int"),
                     "reach": ("Reach", "int"), "frequency": ("Freq.", "num"),
                     "clicks": ("Clicks", "int"), "ctr": ("CTR", "pct"),
                     "spend": ("Spend", "money"), "cpm": ("CPM", "money"),
                     "cpc": ("CPC", "money"), "conversions": ("Conv.", "int"),
                     "cvr": ("CVR", "pct"), "roas": ("ROAS", "x"),
                     "pacing": ("Pacing", "pct")}, "no campaign delivery in this window")
                 + '<div class="grid2">' + fig(charts.campaign_chart(rep.campaigns))
                 + fig(charts.frequency_chart(rep.frequency, names)) + "</div>")
    parts.append(render_graph_html(rep.creators, rep.viral_posts, rep.partner_segment, k))
    parts.append(render_care_html(rep.care, k))
    timing = " · ".join(f"{n} {t:.2f} s" for n, t in rep.timings.items())
    parts.append(f"<footer>Generated by feedwise. Sessions end after "
                 f"{rep.config.session_gap_minutes:g} min of inactivity. All times UTC. "
                 f"Computed in: {timing}.</footer></main>")
    js = plotly.offline.get_plotlyjs()
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} · {period}</title><style>{CSS}</style>"
            f"<script type=\"text/javascript\">{js}</script></head><body>"
            + "".join(parts) + "</body></html>")


def write_html(rep: InsightReport, path: str | Path, title: str = "Behaviour insight") -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8) and return the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(rep, title), encoding="utf-8")
    return p
