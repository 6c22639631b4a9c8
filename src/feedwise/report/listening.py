"""The report's listening section: sentiment and volume per keyword, share of voice and the
most-reached negative and positive comments (see :mod:`feedwise.analytics.listening`)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from feedwise.analytics.listening import comments_from_scope, listening_summary, score_comments
from feedwise.analytics.scope import Scope


def listening_section(scope: Scope, analyser: Any = None, n_top: int = 3) -> dict[str, Any]:
    """The listening tables of the scope's window (empty tables when there are no comments
    with text; the analyser is loaded only when there are)."""
    comments = comments_from_scope(scope)
    if comments.empty:
        return {"comments": 0}
    scored = score_comments(comments, analyser)
    out: dict[str, Any] = {"comments": len(scored)}
    out.update(listening_summary(scored, k=scope.k, n_top=n_top))
    return out


def _table(df: pd.DataFrame, cols: list[str]) -> str:
    if df is None or df.empty:
        return "<p>No group reaches the privacy threshold.</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for r in df[cols].itertuples(index=False):
        cells = []
        for v in r:
            s = f"{v:.2f}" if isinstance(v, float) else str(v)
            cells.append(f"<td>{html.escape(s)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def render_listening_html(section: dict[str, Any] | None) -> str:
    """HTML of :func:`listening_section` (nothing when the window has no comment text)."""
    if not section or not section.get("comments"):
        return ""
    parts = [f"<h2>Listening</h2><p>{section['comments']:,} comments with text, scored "
             "offline; groups of fewer than k users suppressed.</p>",
             "<h3>Sentiment by keyword</h3>",
             _table(section["keywords"], ["group", "comments", "users", "negative_share",
                                          "net_sentiment", "net_lo", "net_hi"]),
             "<h3>Share of voice</h3>",
             _table(section["share_of_voice"], ["keyword", "mentions", "share",
                                                "net_sentiment"]),
             "<h3>Most-reached negative comments</h3>",
             _table(section["top_negative"], ["reach", "probability", "text"]),
             "<h3>Most-reached positive comments</h3>",
             _table(section["top_positive"], ["reach", "probability", "text"])]
    return "".join(parts)
