"""Report sections of the social graph: "creators to partner with for segment X" and "the
most viral posts and how they spread" (also behind ``feedwise creators``).

Users without analytics consent are left out (their shares too: a reshare of one of their
shares then hangs from the post, see :mod:`feedwise.graph.cascades`); authors engaged by
fewer than ``k`` users and cascades of fewer than ``k`` shares are not listed.
"""

from __future__ import annotations

import html
from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.graph.cascades import cascade_nodes, cascade_table
from feedwise.graph.creators import audience_overlap, fit_influence, partners
from feedwise.store import EventStore

CREATOR_VIEW = ["author_id", "influence_score", "reshares_per_post", "reach",
                "engagement_rate", "followers", "follower_growth", "posts_created"]


def _from_first_share(store: EventStore, start: datetime, end: datetime) -> datetime:
    """``start``, or the day of the window's first share when later: the influence score
    is fit on the window's two halves, so both should hold data."""
    first = store.share_events(start, end)["ts"].min()
    if pd.isna(first):
        return start
    return max(start, pd.Timestamp(first).floor("D").to_pydatetime())


def top_creators(store: EventStore, start: datetime, end: datetime, *, k: int = 10,
                 top_n: int = 20) -> pd.DataFrame:
    """Authors by influence score (fit on the two halves of ``[start, end)``, the start
    moved up to the first share's day when later), engaged by at least ``k`` users."""
    return rank_creators(scored_creators(store, start, end), k=k, top_n=top_n)


def scored_creators(store: EventStore, start: datetime, end: datetime) -> pd.DataFrame:
    """The influence fit of :func:`top_creators` (every author of the window's later half
    with its ``influence_score``): it does not depend on ``k``, so it can be kept for the
    window."""
    start = _from_first_share(store, start, end)
    _, scored = fit_influence(store, start, end, exclude_objectors=True)
    return scored


def rank_creators(scored: pd.DataFrame, *, k: int = 10, top_n: int = 20) -> pd.DataFrame:
    """:func:`top_creators` of a :func:`scored_creators` fit."""
    df = scored[scored["engaged_users"] >= k]
    return (df.sort_values(["influence_score", "author_id"], ascending=[False, True],
                           kind="stable").head(top_n)[CREATOR_VIEW]
            .round(4).reset_index(drop=True))


def creators_to_partner(store: EventStore, start: datetime, end: datetime, segment: str, *,
                        k: int = 10, top_n: int = 10,
                        segments: pd.Series | None = None) -> pd.DataFrame:
    """The creators to partner with for ``segment``: influence score x the share of their
    engaged audience in the segment (:func:`~feedwise.graph.creators.partners`)."""
    start = _from_first_share(store, start, end)
    _, scored = fit_influence(store, start, end, exclude_objectors=True)
    half = start + (end - start) / 2
    ov = audience_overlap(store, half, end, str(segment), segments=segments)
    out = partners(scored, ov, k=k, top_n=top_n)
    return out[["author_id", "segment_reshares", "influence_score", "segment_share",
                "segment_lift", "audience", "reach", "followers"]].round(4)


def viral_posts(store: EventStore, start: datetime, end: datetime, *, k: int = 10,
                top_n: int = 10) -> pd.DataFrame:
    """The largest reshare cascades of posts with shares in ``[start, end)``: size, depth,
    breadth, structural virality, time to half size, and how they spread (shares per
    depth, ``spread``: ``"12 → 5 → 1"``)."""
    shares = store.share_events(start, end, exclude_objectors=True)
    if shares.empty:
        return pd.DataFrame(columns=["item_id", "author_id", "size", "depth", "max_breadth",
                                     "structural_virality", "hours_to_half", "spread"])
    posts = store.posts()
    starts = pd.Series(posts["created_at"].to_numpy(), index=posts["item_id"].astype(str))
    tab = cascade_table(shares, starts)
    tab = tab[tab["size"] >= k].head(top_n)
    nodes = cascade_nodes(shares[shares["item_id"].isin(tab["item_id"])])
    levels = nodes.groupby(["item_id", "depth"]).size()
    spread = {i: " → ".join(str(int(n)) for n in levels.loc[i].to_numpy())
              for i in tab["item_id"]}
    authors = pd.Series(posts["author_id"].to_numpy(), index=posts["item_id"].astype(str))
    return pd.DataFrame({
        "item_id": tab["item_id"].to_numpy(),
        "author_id": authors.reindex(tab["item_id"].astype(str)).to_numpy(),
        "size": tab["size"].to_numpy(), "depth": tab["depth"].to_numpy(),
        "max_breadth": tab["max_breadth"].to_numpy(),
        "structural_virality": tab["structural_virality"].round(3).to_numpy(),
        "hours_to_half": (tab["time_to_half_s"] / 3600.0).round(2).to_numpy(),
        "spread": [spread[i] for i in tab["item_id"]]})


def graph_sections(store: EventStore, start: datetime, end: datetime, *, k: int = 10,
                   top_n: int = 10, segments: pd.Series | None = None,
                   segment: str | None = None) -> dict[str, object]:
    """Both sections' tables for the report: ``creators`` (to partner with for
    ``segment``, default the largest segment of ``segments``; plain top creators without
    segments), ``partner_segment`` and ``viral_posts``. A section that cannot be computed
    (too little data) comes back empty with its reason in ``notes``."""
    out: dict[str, object] = {"creators": pd.DataFrame(), "viral_posts": pd.DataFrame(),
                              "partner_segment": None, "notes": []}
    notes: list[str] = out["notes"]  # type: ignore[assignment]
    seg = segments.dropna().astype(str) if segments is not None else None
    if segment is None and seg is not None and not seg.empty:
        segment = str(seg.value_counts().index[0])
    try:
        if segment is not None and seg is not None and not seg.empty:
            out["creators"] = creators_to_partner(store, start, end, segment, k=k,
                                                  top_n=top_n, segments=seg)
            out["partner_segment"] = segment
        else:
            out["creators"] = top_creators(store, start, end, k=k, top_n=top_n)
    except DataError as e:
        notes.append(f"creators: {e}")
    out["viral_posts"] = viral_posts(store, start, end, k=k, top_n=top_n)
    return out


def render_graph_html(creators: pd.DataFrame, viral: pd.DataFrame, segment: str | None,
                      k: int, notes: list[str] | None = None) -> str:
    """The two sections as HTML (tables; escaped)."""

    def table(df: pd.DataFrame, empty: str) -> str:
        if df is None or df.empty:
            return f'<p class="note">{html.escape(empty)}</p>'
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
        body = []
        for _, r in df.iterrows():
            cells = []
            for v in r.to_numpy():
                if isinstance(v, float | np.floating):
                    text = "–" if np.isnan(v) else f"{v:,.3g}"
                    cells.append(f'<td class="num">{text}</td>')
                else:
                    cells.append(f"<td>{html.escape(str(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    title = (f"Creators to partner with for segment {html.escape(str(segment))}"
             if segment is not None else "Creators by influence")
    parts = [f"<h2>{title}</h2>",
             '<p class="note">Influence score: the reshares per post an author\'s next posts '
             "are predicted to get (fit on the window's first half, applied to its second)"
             + ("; segment_reshares = influence score × the share of the author's engaged "
                "audience in the segment" if segment is not None else "")
             + f". Authors engaged by fewer than {k} users are not listed.</p>",
             table(creators, "no creators with enough data"),
             "<h2>The most viral posts and how they spread</h2>",
             '<p class="note">Reshare cascades: size (shares), depth, the widest level, '
             "structural virality (mean distance between two nodes of the cascade tree: 2 "
             "for a broadcast, higher for person-to-person spread), hours to half the size "
             f"and shares per level of the tree. Cascades of fewer than {k} shares are not "
             "listed.</p>",
             table(viral, "no cascades with enough shares")]
    for n in notes or []:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
    return "".join(parts)
