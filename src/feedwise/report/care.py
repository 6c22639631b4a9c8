"""The report's customer-care section: response and resolution times, automation,
escalation and satisfaction, in total and per channel and intent (``feedwise.care.kpis``).

Users without analytics consent are left out (``care_kpis`` drops them); a group with
messages from fewer than ``k`` customers is not listed, and the total is blanked below ``k``.
"""

from __future__ import annotations

import html
from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.care.kpis import care_frame, care_kpis
from feedwise.store import EventStore

VIEW = {"messages": "Messages", "first_response_s_median": "First response (median, s)",
        "resolution_s_median": "Resolution (median, s)", "auto_share": "Auto-answered",
        "escalated_share": "Escalated", "satisfaction": "Satisfaction (1-5)",
        "rated": "Rated"}


def care_tables(store: EventStore, start: datetime, end: datetime, *, k: int = 10
                ) -> dict[str, pd.DataFrame]:
    """``{"all", "channel", "intent"}``: the care KPIs of messages in ``[start, end)``,
    groups of fewer than ``k`` customers left out (empty tables when there are none)."""
    frame = care_frame(store, start, end)
    out: dict[str, pd.DataFrame] = {}
    if frame.empty:
        return {"all": pd.DataFrame(), "channel": pd.DataFrame(), "intent": pd.DataFrame()}
    users_all = frame["user_id"].nunique()
    out["all"] = (care_kpis(store, since=start, until=end) if users_all >= k
                  else pd.DataFrame())
    for by in ("channel", "intent"):
        t = care_kpis(store, since=start, until=end, by=by)
        users = frame.groupby(frame[by].fillna("(none)").astype(str))["user_id"].nunique()
        out[by] = t[t.index.isin(users[users >= k].index)]
    return out


def render_care_html(tables: dict[str, pd.DataFrame] | None, k: int) -> str:
    """The section as HTML (escaped)."""
    parts = ["<h2>Customer care</h2>",
             '<p class="note">Messages to the brand (comments and direct messages): time to '
             "the first reply and to resolution, the share answered automatically, the share "
             "routed to a person, and the follow-up rating. Groups with fewer than "
             f"{k} customers are not listed.</p>"]
    if not tables or all(t.empty for t in tables.values()):
        parts.append('<p class="note">no customer-care messages from enough customers in '
                     "this window</p>")
        return "".join(parts)
    for name, title in (("all", "All messages"), ("channel", "Per channel"),
                        ("intent", "Per intent")):
        t = tables.get(name)
        if t is None or t.empty:
            continue
        parts.append(f"<b>{title}</b>" + _table(t))
    return "".join(parts)


def _table(df: pd.DataFrame) -> str:
    df = df[[c for c in VIEW if c in df.columns]]
    head = "<th></th>" + "".join(f"<th>{html.escape(VIEW[c])}</th>" for c in df.columns)
    rows = []
    for idx, r in df.iterrows():
        cells = [f"<td>{html.escape(str(idx))}</td>"]
        for c, v in r.items():
            if v is None or (isinstance(v, float | np.floating) and np.isnan(v)):
                text = "–"
            elif c in ("auto_share", "escalated_share"):
                text = f"{v:.1%}"
            elif c in ("messages", "rated"):
                text = f"{int(v):,}"
            else:
                text = f"{v:,.3g}"
            cells.append(f'<td class="num">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
