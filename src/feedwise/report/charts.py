"""Plotly figures of the insight report (also the HTTP dashboard's charts).

Every function takes the already-suppressed tables of
:class:`~feedwise.report.builder.InsightReport` and returns a ``plotly`` ``Figure``;
suppressed cells are drawn empty and labelled ``<k``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from feedwise.analytics.suppression import SUPPRESSED

PALETTE = ["#2563eb", "#f97316", "#10b981", "#a855f7", "#ef4444", "#0ea5e9", "#eab308",
           "#64748b"]
FONT = "Inter, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"


def _layout(fig: go.Figure, title: str, height: int = 340, **kw) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 45}, template="plotly_white",
                      font={"family": FONT, "size": 12}, colorway=PALETTE,
                      legend={"orientation": "h", "y": -0.18}, **kw)
    return fig


def _empty(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14, "color": "#64748b"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=220)


def trend_lines(series: pd.DataFrame) -> go.Figure:
    """Active users and sessions (left) and engagement rates (right) per period."""
    if series.empty:
        return _empty("Engagement trend", "no activity in this window")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09,
                        subplot_titles=("Active users and sessions", "Engagement rates"))
    x = series["period"]
    fig.add_trace(go.Scatter(x=x, y=series["active_users"], name="Active users",
                             mode="lines+markers", line={"width": 2.5}), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=series["sessions"], name="Sessions",
                             mode="lines+markers", line={"width": 2.5}), 1, 1)
    for col, name in (("ctr", "CTR"), ("engagement_rate", "Engagement rate"),
                      ("hide_rate", "Hide rate"), ("ad_ctr", "Ad CTR")):
        fig.add_trace(go.Scatter(x=x, y=series[col], name=name, mode="lines+markers"), 1, 2)
    if series[["ctr", "engagement_rate", "hide_rate", "ad_ctr"]].isna().all().all():
        fig.add_annotation(text="no impressions logged: rates undefined", showarrow=False,
                           xref="x2 domain", yref="y2 domain", x=0.5, y=0.5,
                           font={"color": "#64748b"})
    fig.update_yaxes(tickformat=".1%", row=1, col=2)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Engagement trend", height=380)


def revenue_lines(series: pd.DataFrame) -> go.Figure:
    """Revenue (bars) and eCPM (line) per period."""
    if series.empty or not series["ad_impressions"].fillna(0).any():
        return _empty("Ad revenue", "no ad impressions in this window")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=series["period"], y=series["revenue"], name="Revenue",
                         marker_color=PALETTE[0], opacity=0.75), secondary_y=False)
    fig.add_trace(go.Scatter(x=series["period"], y=series["ecpm"], name="eCPM",
                             mode="lines+markers", line={"color": PALETTE[1], "width": 2.5}),
                  secondary_y=True)
    fig.update_yaxes(title_text="revenue", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="eCPM", secondary_y=True, rangemode="tozero", showgrid=False)
    return _layout(fig, "Ad revenue and eCPM")


def _marks(z: np.ndarray, suppressed: np.ndarray, fmt: str) -> np.ndarray:
    text = np.full(z.shape, "", dtype=object)
    ok = ~np.isnan(z)
    text[ok] = [fmt.format(v) for v in z[ok]]
    text[suppressed] = SUPPRESSED
    return text


def retention_heatmap(retention: pd.DataFrame) -> go.Figure:
    """Week-N return rate per weekly cohort."""
    weeks = [c for c in retention.columns if c.startswith("week")]
    if retention.empty or not weeks:
        return _empty("Retention by weekly cohort", "no new users in this window")
    if retention["suppressed"].all():
        return _empty("Retention by weekly cohort",
                      "every cohort of new users is smaller than k: suppressed")
    z = retention[weeks].to_numpy(dtype=float)
    sup = np.zeros(z.shape, dtype=bool)
    sup[retention["suppressed"].to_numpy()] = True
    labels = [f"{pd.Timestamp(c):%Y-%m-%d} ({'<k' if s else int(n)} users)"
              for c, n, s in zip(retention["cohort"], retention["users"],
                                 retention["suppressed"], strict=True)]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"W{w.removeprefix('week')}" for w in weeks], y=labels,
        text=_marks(z, sup, "{:.0%}"), texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1, colorbar={"tickformat": ".0%", "title": "return"},
        hovertemplate="cohort %{y}<br>%{x}: %{z:.1%}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Retention by weekly cohort (share of cohort active in week N)",
                   height=max(260, 60 + 32 * len(labels)))


def weekday_hour_heatmap(mat: pd.DataFrame, title: str, fmt: str, colorscale: str,
                         ztitle: str) -> go.Figure:
    """A 7 × 24 weekday × hour heatmap (UTC); NaN cells are shown empty."""
    z = mat.to_numpy(dtype=float)
    if np.isnan(z).all():
        return _empty(title, "no cells with enough users to show")
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{h:02d}" for h in mat.columns], y=list(mat.index), colorscale=colorscale,
        colorbar={"title": ztitle, "tickformat": fmt}, xgap=1, ygap=1,
        hovertemplate="%{y} %{x}:00 UTC<br>%{z:" + fmt + "}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="hour of day (UTC)")
    return _layout(fig, title, height=320)


def funnel_chart(funnel: pd.DataFrame, max_surfaces: int = 4) -> go.Figure:
    """Impression → click → engage → purchase, one funnel per surface (biggest first)."""
    if funnel.empty:
        return _empty("Funnel", "no impressions in this window")
    first = funnel[funnel["step_no"] == 0].sort_values("pairs", ascending=False)
    surfaces = list(first["surface"].head(max_surfaces))
    fig = make_subplots(rows=1, cols=len(surfaces), shared_yaxes=True,
                        horizontal_spacing=0.04, subplot_titles=[str(s) for s in surfaces])
    for i, surface in enumerate(surfaces):
        g = funnel[funnel["surface"] == surface].sort_values("step_no")
        fig.add_trace(go.Funnel(
            name=str(surface), y=g["step"], x=g["pairs"].fillna(0), showlegend=False,
            text=[SUPPRESSED if s else f"{p:,.0f} ({r:.1%})"
                  for p, r, s in zip(g["pairs"], g["rate_from_start"], g["suppressed"],
                                     strict=True)],
            textinfo="text", textposition=["inside"] + ["outside"] * (len(g) - 1),
            cliponaxis=False,
            marker={"color": PALETTE[i % len(PALETTE)]},
            connector={"fillcolor": "#e2e8f0"}), 1, i + 1)
    return _layout(fig, "Funnel per surface: (user, post) pairs reaching each step "
                        "(share of impressions)", height=340)


def segments_chart(segments: pd.DataFrame) -> go.Figure:
    """Users per behavioural and lifecycle segment."""
    if segments.empty:
        return _empty("Segments", "no users")
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("Behavioural segments", "Lifecycle"))
    for col, kind in ((1, "behaviour"), (2, "lifecycle")):
        g = segments[segments["kind"] == kind]
        if g.empty:
            continue
        fig.add_trace(go.Bar(
            x=g["users"].fillna(0), y=g["segment"], orientation="h", showlegend=False,
            text=[SUPPRESSED if s else f"{u:,.0f}" for u, s in
                  zip(g["users"], g["suppressed"], strict=True)], textposition="outside",
            cliponaxis=False,
            hovertext=g["description"], hovertemplate="%{y}: %{x:,}<br>%{hovertext}"
                                                        "<extra></extra>",
            marker_color=PALETTE[0] if kind == "behaviour" else PALETTE[2]), 1, col)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Segment sizes (users)", height=320)


def campaign_chart(campaigns: pd.DataFrame, top: int = 12) -> go.Figure:
    """Spend against planned spend (pacing) and ROAS per campaign (biggest spenders)."""
    if campaigns.empty:
        return _empty("Campaigns", "no campaign delivery in this window")
    c = campaigns.head(top)
    label = c["name"].fillna(c["campaign_id"]).astype(str)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("Spend vs plan", "ROAS"))
    fig.add_trace(go.Bar(y=label, x=c["spend"], name="spend", orientation="h",
                         marker_color=PALETTE[0]), 1, 1)
    fig.add_trace(go.Bar(y=label, x=c["planned"], name="planned", orientation="h",
                         marker_color="#cbd5e1"), 1, 1)
    fig.add_trace(go.Bar(y=label, x=c["roas"], name="ROAS", orientation="h",
                         marker_color=PALETTE[2], showlegend=False), 1, 2)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return _layout(fig, "Campaign pacing and return", height=max(300, 110 + 30 * len(c)),
                   barmode="group")


def frequency_chart(freq: pd.DataFrame, names: dict[str, str] | None = None) -> go.Figure:
    """Users by number of ads seen per campaign (stacked buckets)."""
    if freq.empty:
        return _empty("Ad frequency", "no ad impressions in this window")
    names = names or {}
    order = [c for c in names if c in freq.index] + [c for c in freq.index if c not in names]
    freq = freq.reindex(order)
    y = [names.get(str(c), str(c)) for c in freq.index]
    fig = go.Figure()
    for i, b in enumerate(freq.columns):
        fig.add_trace(go.Bar(y=y, x=freq[b], name=f"{b}×", orientation="h",
                             marker_color=PALETTE[i % len(PALETTE)]))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="users")
    fig.update_layout(legend_traceorder="normal")
    return _layout(fig, "Frequency: users by ads seen per campaign", barmode="stack",
                   height=max(300, 110 + 30 * len(y)))
