"""Report section "Best time to post (audience-adjusted)": the publish-hour effect once the
audience online is accounted for, on a named clock, with a plain-words recommendation. It
complements the flat heatmap of engagement per impression (which mixes the two)."""

from __future__ import annotations

import html

import pandas as pd

from feedwise.analytics.besttime import best_time
from feedwise.analytics.scope import Scope
from feedwise.errors import DataError


def timing_section(scope: Scope) -> dict:
    """``{"recommendation", "clock", "hours" (DataFrame), "note"}``; a note instead of
    numbers when the window has too few posts."""
    try:
        bt = best_time(scope)
    except DataError as e:
        return {"recommendation": None, "clock": None, "hours": pd.DataFrame(),
                "note": f"best time to post not estimated: {e}"}
    return {"recommendation": bt.recommendation, "clock": bt.clock, "hours": bt.hours,
            "n_posts": bt.n_posts, "note": None}


def render_timing_html(section: dict | None) -> str:
    """The section as HTML (an empty string when it was not computed)."""
    if not section:
        return ""
    if section.get("note"):
        return ("<h2>Best time to post (audience-adjusted)</h2>"
                f"<p>{html.escape(section['note'])}</p>")
    rows = "".join(
        f"<tr><td>{int(r.hour):02d}</td><td>{r.effect:.2f}</td>"
        f"<td>{r.lo:.2f} – {r.hi:.2f}</td><td>{r.online:,.0f}</td></tr>"
        for r in section["hours"].itertuples(index=False))
    return (f"<h2>Best time to post (audience-adjusted)</h2>"
            f"<p><strong>{html.escape(section['recommendation'])}</strong> "
            f"({section['n_posts']:,} posts; hours on the {html.escape(section['clock'])} "
            "clock). Effect: engagement of posts published in that hour relative to the "
            "average hour, after accounting for how many of the audience were online.</p>"
            "<table><tr><th>Hour</th><th>Effect</th><th>95% interval</th>"
            f"<th>Audience exposure</th></tr>{rows}</table>")
