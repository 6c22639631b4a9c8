"""Social listening: what users say in comments, how they feel, and how much they say it.

The unit is a **comment**: an event of kind ``comment`` with a ``text``. Comments come from
the store through a :class:`~feedwise.analytics.scope.Scope` (:func:`comments_from_scope`:
consenting users' comments in the window, with the commented post's author, tags, campaign
and brand, and its reach) or from frames (:func:`comments_from_frame`), are scored with a
sentiment analyser (:func:`score_comments`; the default is
``feedwise.text.sentiment.default_analyser()``), and then aggregated:

- :func:`sentiment_table`: per dimension value (``keyword``, ``tag``, ``brand``,
  ``campaign``, ``author``) and period (``day`` or ``hour``, UTC): comments, distinct users,
  counts per label, the negative and positive shares with Wilson 95 % intervals, and the
  net sentiment (positive minus negative share) with a normal 95 % interval.
- :func:`share_of_voice`: each tracked keyword's share of all tracked mentions (Wilson 95 %).
- :func:`top_comments`: the most-reached positive or negative comments (reach: distinct
  users who saw the commented post in the window).

Privacy: every aggregate row computed from fewer than ``k`` distinct users is blanked and
dropped (:mod:`feedwise.analytics.suppression`); a listed comment carries no user id and only
comments on posts seen by at least ``k`` users are listed.

A **keyword** is mentioned when it appears as a whole word (case-insensitive, an optional
leading ``#``) in the comment's text. Unscorable texts (empty, binary ...) count as volume
but carry no sentiment (the analyser's ``reason`` says why).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from feedwise.analytics.scope import Scope
from feedwise.analytics.suppression import suppress
from feedwise.errors import ConfigError

Dimension = Literal["keyword", "tag", "brand", "campaign", "author"]
DIMENSIONS: tuple[str, ...] = ("keyword", "tag", "brand", "campaign", "author")
GRAINS: tuple[str, ...] = ("day", "hour")
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
#: Columns of a comments frame (before scoring).
COMMENT_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id", "ts", "text",
                                    "author_id", "tags", "campaign_id", "brand", "reach")
Z95 = 1.959963984540054
MAX_SHOWN_CHARS = 280


# ---------------------------------------------------------------------------- inputs
def _clean_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, bytes | bytearray):
        return bytes(v).decode("utf-8", "replace")
    return str(v)


def comments_from_frame(events: pd.DataFrame, items: pd.DataFrame | None = None,
                        campaigns: pd.DataFrame | None = None) -> pd.DataFrame:
    """Comments of an event frame, with the commented post's facts (see :data:`COMMENT_COLUMNS`).

    Args:
        events: Event rows (``event_id``, ``user_id``, ``item_id``, ``kind``, ``ts``, ``text``).
        items: Optional item rows (``item_id``, ``author_id``, ``tags``, ``campaign_id``).
        campaigns: Optional campaign rows (``campaign_id``, ``advertiser_id``): the brand.
    """
    ev = events
    if "text" not in ev.columns:
        return pd.DataFrame(columns=list(COMMENT_COLUMNS))
    c = ev[(ev["kind"] == "comment") & ev["text"].notna()]
    out = pd.DataFrame({
        "event_id": c["event_id"].astype(str).to_numpy() if "event_id" in c else
        np.arange(len(c)).astype(str),
        "user_id": c["user_id"].astype(str).to_numpy(),
        "item_id": c["item_id"].astype(str).to_numpy(),
        "ts": pd.to_datetime(c["ts"], utc=True).to_numpy(),
        "text": [_clean_text(t) for t in c["text"]],
    })
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    imp = ev[ev["kind"].isin(["impression", "ad_impression"])]
    reach = imp.groupby("item_id")["user_id"].nunique()
    out["reach"] = out["item_id"].map(reach).fillna(0).astype(np.int64)
    if items is not None and len(items):
        it = items.set_index(items["item_id"].astype(str))
        out["author_id"] = out["item_id"].map(it["author_id"]) if "author_id" in it else None
        out["tags"] = out["item_id"].map(it["tags"]) if "tags" in it else None
        out["campaign_id"] = (out["item_id"].map(it["campaign_id"]) if "campaign_id" in it
                              else None)
    else:
        out["author_id"] = out["tags"] = out["campaign_id"] = None
    out["brand"] = None
    if campaigns is not None and len(campaigns) and "advertiser_id" in campaigns:
        adv = campaigns.set_index("campaign_id")["advertiser_id"]
        out["brand"] = out["campaign_id"].map(adv)
    return out[list(COMMENT_COLUMNS)].sort_values("ts", kind="stable").reset_index(drop=True)


def comments_from_scope(scope: Scope) -> pd.DataFrame:
    """Consenting users' comments with text in the scope's window (see :data:`COMMENT_COLUMNS`).

    ``reach`` is the number of distinct users with an impression of the commented post in
    the window; ``brand`` the advertiser of the post's campaign (for ad creatives).
    """
    start = scope.start.isoformat()
    df = scope.query(f"""
        WITH reach AS (SELECT item_id, count(DISTINCT user_id) AS reach FROM ev
                       WHERE kind IN ('impression', 'ad_impression') GROUP BY item_id)
        SELECT e.event_id, e.user_id, e.item_id, e.ts, e.text, i.author_id, i.tags,
               i.campaign_id, c.advertiser_id AS brand, coalesce(r.reach, 0) AS reach
        FROM hist e
        LEFT JOIN items i ON i.item_id = e.item_id
        LEFT JOIN campaigns c ON c.campaign_id = i.campaign_id
        LEFT JOIN reach r ON r.item_id = e.item_id
        WHERE e.kind = 'comment' AND e.text IS NOT NULL
          AND e.ts >= TIMESTAMPTZ '{start}'
        ORDER BY e.ts, e.event_id""")
    if df.empty:
        return pd.DataFrame(columns=list(COMMENT_COLUMNS))
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    df["text"] = [_clean_text(t) for t in df["text"]]
    df["reach"] = df["reach"].astype(np.int64)
    df["tags"] = [list(t) if t is not None and not isinstance(t, float) else []
                  for t in df["tags"]]
    return df[list(COMMENT_COLUMNS)].reset_index(drop=True)


def default_analyser() -> Any:
    """The default sentiment analyser (``feedwise.text.sentiment.default_analyser()``)."""
    from feedwise.text.sentiment import default_analyser as make  # lazy: fast start-up

    return make()


def score_comments(comments: pd.DataFrame, analyser: Any = None) -> pd.DataFrame:
    """``comments`` plus ``label``, ``negative``, ``neutral``, ``positive``, ``language`` and
    ``reason`` from ``analyser.analyse(texts)`` (the default analyser when ``None``).

    Rows the analyser could not score keep ``label`` ``None`` and say why in ``reason``.
    """
    out = comments.reset_index(drop=True).copy()
    if analyser is None:
        analyser = default_analyser()
    texts = [_clean_text(t) for t in out["text"]] if len(out) else []
    res = analyser.analyse(texts) if texts else pd.DataFrame(
        columns=["label", *LABELS, "language", "reason"])
    res = res.reset_index(drop=True)
    for col in ("label", *LABELS, "language", "reason"):
        out[col] = res[col].to_numpy() if col in res else None
    bad = out["reason"].notna() if len(out) else pd.Series([], dtype=bool)
    if len(out):
        out.loc[bad, "label"] = None
    for col in LABELS:
        out[col] = pd.to_numeric(out[col], errors="coerce")
    return out


# ---------------------------------------------------------------------------- keywords
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Whole-word, case-insensitive match of ``keyword`` with an optional leading ``#``."""
    kw = str(keyword).strip().lstrip("#")
    if not kw:
        raise ConfigError("a tracked keyword must not be empty")
    return re.compile(rf"(?<![\w#])#?{re.escape(kw)}(?!\w)", re.IGNORECASE)


def mentions(texts: Sequence[str], keywords: Sequence[str]) -> pd.DataFrame:
    """A boolean frame (rows: texts, columns: keywords): the text mentions the keyword."""
    s = pd.Series([_clean_text(t) for t in texts], dtype=object)
    return pd.DataFrame({kw: s.str.contains(keyword_pattern(kw)).fillna(False).to_numpy(bool)
                         for kw in keywords}, index=s.index)


def default_keywords(comments: pd.DataFrame, n: int = 10) -> list[str]:
    """The ``n`` tags (without ``#``) of the most-commented posts: a start for tracking."""
    if comments.empty or "tags" not in comments:
        return []
    tags = comments["tags"].explode().dropna()
    tags = tags[tags.astype(str).str.len() > 1]
    return [str(t).lstrip("#") for t in tags.value_counts().head(n).index]


def _long(comments: pd.DataFrame, by: str, keywords: Sequence[str] | None) -> pd.DataFrame:
    """One row per (comment, value of ``by``)."""
    if by not in DIMENSIONS:
        raise ConfigError(f"by must be one of {', '.join(DIMENSIONS)}; got {by!r}")
    c = comments
    if by == "keyword":
        kws = list(keywords) if keywords else default_keywords(c)
        if not kws or c.empty:
            return c.iloc[0:0].assign(group=pd.Series(dtype=object))
        m = mentions(c["text"].tolist(), kws)
        rows, cols = np.nonzero(m.to_numpy())
        out = c.iloc[rows].copy()
        out["group"] = np.asarray(kws, dtype=object)[cols]
        return out
    if by == "tag":
        out = c.assign(group=c["tags"]).explode("group")
    else:
        col = {"brand": "brand", "campaign": "campaign_id", "author": "author_id"}[by]
        out = c.assign(group=c[col])
    return out[out["group"].notna()]


# ---------------------------------------------------------------------------- intervals
def wilson(x: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``x / n`` (NaN where ``n`` is 0)."""
    x = np.asarray(x, np.float64)
    n = np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        d = 1 + z * z / n
        c = (p + z * z / (2 * n)) / d
        h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
        lo = np.clip(np.minimum(c - h, p), 0.0, 1.0)  # rounding never leaves p outside
        hi = np.clip(np.maximum(c + h, p), 0.0, 1.0)
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)


def _aggregate(g: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    lab = g["label"]
    g = g.assign(_neg=(lab == "negative").astype(int), _neu=(lab == "neutral").astype(int),
                 _pos=(lab == "positive").astype(int), _scored=lab.notna().astype(int))
    gb = g.groupby(keys, dropna=False, sort=True)
    if len(g):  # one reduction per column: agg's results (whole counts), faster
        a = pd.DataFrame({"comments": gb["event_id"].count(), "users": gb["user_id"].nunique(),
                          "scored": gb["_scored"].sum(), "negative": gb["_neg"].sum(),
                          "neutral": gb["_neu"].sum(), "positive": gb["_pos"].sum()}
                         ).reset_index()
    else:
        a = gb.agg(comments=("event_id", "count"), users=("user_id", "nunique"),
                   scored=("_scored", "sum"), negative=("_neg", "sum"),
                   neutral=("_neu", "sum"), positive=("_pos", "sum")).reset_index()
    n = a["scored"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        neg_s = a["negative"] / a["scored"].where(a["scored"] > 0)
        pos_s = a["positive"] / a["scored"].where(a["scored"] > 0)
    a["negative_share"] = neg_s
    a["negative_lo"], a["negative_hi"] = wilson(a["negative"].to_numpy(), n)
    a["positive_share"] = pos_s
    net = pos_s - neg_s
    # per-comment score in {-1, 0, 1}: variance = P(pos) + P(neg) - net^2
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.maximum(pos_s + neg_s - net ** 2, 0.0) / n)
    a["net_sentiment"] = net
    a["net_lo"] = np.clip(net - Z95 * se, -1, 1)
    a["net_hi"] = np.clip(net + Z95 * se, -1, 1)
    return a


COUNT_COLUMNS: tuple[str, ...] = ("comments", "mentions", "users", "scored", "negative",
                                   "neutral", "positive", "reach")


def _counts_as_int(a: pd.DataFrame) -> pd.DataFrame:
    """Counts back to integers once suppressed rows are gone (blanking them made the
    columns float: 18.0 in a CSV)."""
    for c in COUNT_COLUMNS:
        if c in a.columns and len(a) and a[c].notna().all():
            a[c] = a[c].astype(np.int64)
    return a


def sentiment_table(comments: pd.DataFrame, by: str = "keyword", grain: str | None = "day",
                    *, keywords: Sequence[str] | None = None, k: int = 10) -> pd.DataFrame:
    """Volume and sentiment per value of ``by`` and period (see the module doc).

    Args:
        comments: Scored comments (:func:`score_comments`).
        by: ``keyword``, ``tag``, ``brand``, ``campaign`` or ``author``.
        grain: ``day``, ``hour`` (UTC) or ``None`` for the whole window.
        keywords: Tracked keywords (``by="keyword"``; default :func:`default_keywords`).
        k: Rows from fewer than ``k`` distinct users are dropped.

    Returns:
        Columns ``group`` (and ``period``), ``comments``, ``users``, ``scored``,
        ``negative``, ``neutral``, ``positive``, ``negative_share``, ``negative_lo``,
        ``negative_hi``, ``positive_share``, ``net_sentiment``, ``net_lo``, ``net_hi``.
    """
    if grain is not None and grain not in GRAINS:
        raise ConfigError(f"grain must be one of {', '.join(GRAINS)} or None; got {grain!r}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, not {k}")
    long = _long(comments, by, keywords)
    keys = ["group"]
    if grain is not None:
        long = long.assign(period=pd.to_datetime(long["ts"], utc=True).dt.floor(
            "D" if grain == "day" else "h"))
        keys.append("period")
    if long.empty:
        cols = keys + ["comments", "users", "scored", "negative", "neutral", "positive",
                       "negative_share", "negative_lo", "negative_hi", "positive_share",
                       "net_sentiment", "net_lo", "net_hi"]
        return pd.DataFrame(columns=cols)
    a = _aggregate(long, keys)
    a = suppress(a, "users", k)
    a = _counts_as_int(a[~a["suppressed"]].drop(columns=["suppressed"]))
    return a.sort_values(keys, kind="stable").reset_index(drop=True)


def share_of_voice(comments: pd.DataFrame, keywords: Sequence[str] | None = None,
                   *, k: int = 10) -> pd.DataFrame:
    """Each tracked keyword's mentions and share of all tracked mentions (Wilson 95 %), with
    its net sentiment; keywords mentioned by fewer than ``k`` users are dropped (their
    mentions still count in the total)."""
    kws = list(keywords) if keywords else default_keywords(comments)
    cols = ["keyword", "mentions", "users", "share", "share_lo", "share_hi", "net_sentiment"]
    if not kws or comments.empty:
        return pd.DataFrame(columns=cols)
    long = _long(comments, "keyword", kws)
    if long.empty:
        return pd.DataFrame(columns=cols)
    a = _aggregate(long, ["group"]).rename(columns={"group": "keyword", "comments": "mentions"})
    total = float(a["mentions"].sum())
    a["share"] = a["mentions"] / total
    a["share_lo"], a["share_hi"] = wilson(a["mentions"].to_numpy(), np.full(len(a), total))
    a = suppress(a[cols], "users", k)
    a = _counts_as_int(a[~a["suppressed"]].drop(columns=["suppressed"]))
    return a.sort_values(["mentions", "keyword"], ascending=[False, True]).reset_index(
        drop=True)


def top_comments(comments: pd.DataFrame, polarity: str = "negative", n: int = 5,
                 *, k: int = 10) -> pd.DataFrame:
    """The ``n`` comments labelled ``polarity`` with the widest reach (ties: the surer first).

    Only comments on posts seen by at least ``k`` users; no user ids; texts cut to 280
    characters.
    """
    if polarity not in ("negative", "positive"):
        raise ConfigError(f"polarity must be 'negative' or 'positive', got {polarity!r}")
    cols = ["ts", "item_id", "reach", "probability", "text"]
    if comments.empty:
        return pd.DataFrame(columns=cols)
    c = comments[(comments["label"] == polarity) & (comments["reach"] >= k)]
    c = c.assign(probability=c[polarity])
    c = c.sort_values(["reach", "probability", "ts"], ascending=[False, False, True],
                      kind="stable").head(n)
    out = c[cols].copy()
    out["text"] = [t if len(t) <= MAX_SHOWN_CHARS else t[:MAX_SHOWN_CHARS - 1] + "…"
                   for t in out["text"]]
    return _counts_as_int(out.reset_index(drop=True))


def listening_summary(comments: pd.DataFrame, keywords: Sequence[str] | None = None,
                      *, k: int = 10, n_top: int = 5) -> dict[str, pd.DataFrame]:
    """The listening tables of one window: ``keywords`` (sentiment per keyword over the
    window), ``daily`` (per keyword and day), ``share_of_voice``, ``top_negative`` and
    ``top_positive``."""
    kws = list(keywords) if keywords else default_keywords(comments)
    return {
        "keywords": sentiment_table(comments, "keyword", None, keywords=kws, k=k),
        "daily": sentiment_table(comments, "keyword", "day", keywords=kws, k=k),
        "share_of_voice": share_of_voice(comments, kws, k=k),
        "top_negative": top_comments(comments, "negative", n_top, k=k),
        "top_positive": top_comments(comments, "positive", n_top, k=k),
    }
