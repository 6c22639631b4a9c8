"""A seeded, vectorised generator of realistic social-feed logs with known ground truth.

:func:`synthetic_social` plays a small social network for ``n_days``: users with latent topic
interests and a daily rhythm open the app, a *stochastic logging policy* composes each feed
and logs the exact probability of every slot, and users respond the way real feeds see it —
clicks, likes, comments, shares, saves, dwell, hides, the odd report, and ads with clicks and
conversions. Everything the analysis would want to recover is returned in ``truth``.

The world, step by step:

* **Topics** (``n_topics``) each with hashtags (``#running``, ``#marathon`` …); posts also
  carry generic noise tags (``#tbt``).
* **Users** have interests ``user_topic ~ Dirichlet(0.3)``, an activity level (log-normal),
  a click propensity, a planted daily rhythm — ``morning`` (peak 08:00), ``midday`` (12:30),
  ``evening`` (20:30) or ``night`` (00:30), in shares 25/25/30/20 % — and follow a few
  authors. Consent flags are mostly granted (about 3 % / 5 % / 2 % refuse personalisation /
  ads / analytics); ``attributes`` carries declared ``interests`` (tags, noisy), ``follows``
  (author ids), an age band and a country.
* **Authors** have a main topic, a popularity (Pareto) and a quality; **posts** pick an author
  (by popularity), the author's topic (80 %) or another, a quality, tags, a title and a
  ``created_at`` uniform over the window (plus three warm-up days before ``start``).
* **Sessions**: per user and day ``Poisson(sessions_per_day x activity x weekday)``; the
  time of day is drawn from the user's rhythm (80 % around the peak, sd 1.3 h, else uniform
  06–24 h). 80 % are on ``home``, 20 % on ``explore``.
* **The logging policy** samples ``5 x feed_len`` candidates among the posts created in the
  last three days (at least ``2 x feed_len`` of the newest), scores them
  ``a * log(affinity estimate + 0.05) + 0.6 * log(popularity) + 0.8 * follows - age_h / 36``
  (``a`` = 2 on home, 1 on explore, 0 without personalisation consent; follows count only
  with consent) and draws the feed *without replacement* from the softmax (Plackett–Luce,
  via Gumbel top-k). The logged ``propensity`` of an organic slot is the exact probability
  of that item given the session's candidate pool and the items already placed above it:
  ``exp(l_i) / sum of exp(l_j)`` over the candidates not yet placed.
* **Ads** may fill positions 2, 8, 14, … (every six from 2): with probability 0.85, for users
  who consented to ads, a campaign in flight is drawn from the softmax of
  ``log(eCPM) + 2 x affinity to its topic``, then one of its creatives uniformly. Its
  ``propensity`` is ``0.85 x P(campaign) / n_creatives``. A proposal that would break the
  campaign's frequency caps is dropped and the slot goes to the next organic post (the cap
  check is a deterministic function of the policy's state, so the propensity stays exact).
  ``value`` is the price charged: ``bid / 1000`` on the impression for CPM campaigns,
  ``bid`` on the click for CPC. Budgets are set above the spend in the log (1.2–2x the
  busiest day), so the log never breaks them.
* **Responses**: an item at position ``k`` is examined with probability
  ``(1 + k) ** -0.6``; an organic click has probability ``examine x clip(0.01 + 0.3 x
  aff ** 1.5 x (0.5 + quality) x user_ctr)`` (``aff`` = interest in the post's topic divided
  by the user's top interest); like, comment, share and save follow a click with
  probabilities rising with affinity and quality; a click always yields a ``dwell`` event
  with log-normal ``dwell_ms`` growing with affinity x quality; unclicked examined items are
  hidden more often at low affinity and low quality; a hidden low-quality (spam) post is
  sometimes reported. Ad clicks follow the user's affinity to the campaign's topic and the
  creative's quality; conversions follow ad clicks (``value`` = order value).

Times: impressions are logged as the feed renders (``t0 + position x scroll``, scroll
1.5–4 s per item); responses follow their impression by seconds (dwell by ``dwell_ms``,
conversions by minutes). Response events repeat the slot's ``position``; only impressions
and ad impressions carry a ``propensity``. Event and session ids are deterministic: the
world tag (a hash of the arguments), the session number, the position and the kind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feedwise.datasets.synthetic_graph import EDGE_COLUMNS, attach_graph
from feedwise.datasets.synthetic_text import comment_texts, post_hooks, topic_sentiment
from feedwise.datasets.synthetic_time import Timing, plan_timing
from feedwise.errors import ConfigError
from feedwise.schema import CAMPAIGN_COLUMNS, EVENT_COLUMNS, utc

if TYPE_CHECKING:
    from feedwise.store import EventStore

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday

RHYTHMS: tuple[str, ...] = ("morning", "midday", "evening", "night")
RHYTHM_SHARES = np.array([0.25, 0.25, 0.30, 0.20])
RHYTHM_PEAK_HOUR = np.array([8.0, 12.5, 20.5, 24.5])  # night peaks at 00:30
RHYTHM_SD_HOURS = 1.3
RHYTHM_FOCUS = 0.8  # share of a user's sessions drawn around the peak

KINDS: tuple[str, ...] = ("impression", "click", "like", "comment", "share", "save", "dwell",
                          "hide", "report", "ad_impression", "ad_click", "conversion")
_K = {k: i for i, k in enumerate(KINDS)}
_KIND_CODE = "iclmsvdhrAKC"  # one letter per kind, for event ids

TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("running", ("#running", "#marathon", "#5k", "#trailrunning")),
    ("cooking", ("#cooking", "#recipe", "#foodie", "#baking")),
    ("travel", ("#travel", "#wanderlust", "#roadtrip", "#backpacking")),
    ("photography", ("#photography", "#streetphotography", "#35mm", "#portrait")),
    ("gaming", ("#gaming", "#esports", "#indiegames", "#speedrun")),
    ("music", ("#music", "#vinyl", "#livemusic", "#newmusic")),
    ("fitness", ("#fitness", "#gym", "#yoga", "#hiit")),
    ("fashion", ("#fashion", "#ootd", "#streetstyle", "#thrift")),
    ("tech", ("#tech", "#ai", "#gadgets", "#coding")),
    ("books", ("#books", "#booktok", "#reading", "#scifi")),
    ("movies", ("#movies", "#cinema", "#horror", "#oscars")),
    ("gardening", ("#gardening", "#plants", "#houseplants", "#compost")),
    ("football", ("#football", "#premierleague", "#matchday", "#worldcup")),
    ("art", ("#art", "#illustration", "#painting", "#sketchbook")),
    ("science", ("#science", "#space", "#physics", "#biology")),
    ("pets", ("#pets", "#dogsofinstagram", "#catsofinstagram", "#adoptdontshop")),
    ("finance", ("#finance", "#investing", "#budgeting", "#crypto")),
    ("diy", ("#diy", "#woodworking", "#homedecor", "#upcycling")),
    ("parenting", ("#parenting", "#momlife", "#dadlife", "#toddler")),
    ("climate", ("#climate", "#sustainability", "#zerowaste", "#cycling")),
)
NOISE_TAGS: tuple[str, ...] = ("#love", "#instagood", "#photooftheday", "#tbt", "#weekend",
                               "#mood", "#happy", "#fun", "#friends", "#life")
TITLE_TEMPLATES: tuple[str, ...] = (
    "{n} {topic} tips that actually work", "My {topic} week in pictures",
    "Why everyone is talking about {tag}", "A beginner's guide to {topic}",
    "Hot take: {topic} is underrated", "What a month of {topic} taught me",
    "{Topic} update from today", "The {topic} thread you didn't know you needed",
    "Ask me anything about {topic}", "{n} mistakes I made with {topic}")
ADVERTISERS: tuple[str, ...] = ("Acme", "Northwind", "Globex", "Initech", "Umbrella", "Hooli",
                                "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Wonka")
OFFERS: tuple[str, ...] = ("20% off this week", "free shipping today", "new collection",
                           "try it free for 30 days", "limited edition", "join 1M fans")
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "FR", "BR", "IN", "JP", "NG", "ES", "CA")
AGE_BANDS: tuple[str, ...] = ("13-17", "18-24", "25-34", "35-44", "45-54", "55+")

AD_FILL = 0.85
AD_FIRST, AD_EVERY = 2, 6
FRESH_DAYS = 3.0
POSITION_BIAS_EXP = 0.6


@dataclass
class SocialWorld:
    """A generated social-feed world.

    Attributes:
        events: The store's event columns (``event_id``, ``user_id``, ``item_id``, ``kind``,
            ``ts`` (UTC), ``dwell_ms``, ``value``, ``position``, ``surface``, ``session_id``,
            ``propensity``, ``context``), sorted by time.
        items: Posts then ad creatives: ``item_id``, ``kind`` (post | ad), ``author_id``,
            ``created_at``, ``title``, ``text``, ``tags`` (list), ``campaign_id``.
        users: ``user_id``, consent flags, ``consent_updated_at``, ``consent_source`` and
            ``attributes`` (JSON: ``interests``, ``follows``, ``age_band``, ``country``).
        campaigns: The store's campaign columns; ``spec`` is the full campaign as JSON
            (creatives, caps, …) in the shape of ``feedwise.feed.campaigns.Campaign``.
        truth: What generated the log (see :func:`synthetic_social`).
        name: The world tag (a hash of the arguments) used in session and event ids.
    """

    events: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    campaigns: pd.DataFrame
    truth: dict[str, Any] = field(repr=False)
    name: str = ""
    #: The follow graph (``src_id``, ``dst_id``, ``kind``, ``ts``), see
    #: :mod:`~feedwise.datasets.synthetic_graph`.
    edges: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(EDGE_COLUMNS)), repr=False)

    def load_into(self, store: EventStore) -> dict[str, Any]:
        """Upsert items, users and campaigns and ingest the events into ``store``.

        Returns:
            Counts: ``items``, ``users``, ``campaigns``, ``edges`` (accepted),
            ``events`` (accepted),
            ``duplicates``, ``rejected``, ``seconds`` and the ``report``
            (:class:`~feedwise.store.IngestReport`).
        """
        n_items = store.upsert_items(self.items)
        n_users = store.upsert_users(self.users)
        n_campaigns = store.upsert_campaigns(self.campaigns)
        report = store.ingest(self.events, source_name=f"synthetic:{self.name}")
        n_edges = 0
        if len(self.edges):  # the follow graph lands as edges (docs/graph.md)
            n_edges = store.add_edges(self.edges, source_name=f"synthetic:{self.name}:edges"
                                      ).accepted
        return {"items": n_items, "users": n_users, "campaigns": n_campaigns,
                "edges": n_edges,
                "events": report.accepted, "duplicates": report.duplicates,
                "rejected": report.rejected, "seconds": round(report.seconds, 3),
                "report": report}

    def __repr__(self) -> str:
        return (f"SocialWorld({self.name}: {len(self.events):,} events, {len(self.users):,} "
                f"users, {len(self.items):,} items, {len(self.campaigns)} campaigns)")


def _check(**kw: float) -> None:
    for k, v in kw.items():
        if v < (0 if k in ("n_campaigns", "sessions_per_day") else 1):
            raise ConfigError(f"synthetic_social: {k}={v} must be "
                              f"{'>= 0' if k in ('n_campaigns', 'sessions_per_day') else '>= 1'}")


def _topics(n_topics: int) -> tuple[list[str], list[tuple[str, ...]]]:
    names, tags = [], []
    for k in range(n_topics):
        if k < len(TOPICS):
            names.append(TOPICS[k][0])
            tags.append(TOPICS[k][1])
        else:
            names.append(f"topic{k}")
            tags.append(tuple(f"#topic{k}{s}" for s in ("", "a", "b", "c")))
    return names, tags


def _to_ts(secs: np.ndarray) -> pd.DatetimeIndex:
    """Unix seconds (float) -> tz-aware UTC times at microsecond resolution."""
    return pd.to_datetime(np.round(np.asarray(secs, np.float64) * 1e6).astype(np.int64),
                          unit="us", utc=True)


def _take(names: np.ndarray, codes: np.ndarray) -> pa.Array:
    """``names[codes]`` as an Arrow string array (dictionary decode in C++)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                          pa.array(list(names), pa.string())).cast(pa.string())


def _gumbel_topk(rng: np.random.Generator, logits: np.ndarray, k: int) -> np.ndarray:
    """Column indices of a Plackett-Luce sample of ``k`` items per row, in drawn order."""
    keys = logits + rng.gumbel(size=logits.shape)
    k = min(k, logits.shape[1])
    part = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _pl_propensities(logits: np.ndarray, pick: np.ndarray) -> np.ndarray:
    """Per-rank probability of each pick of a Plackett-Luce draw without replacement.

    ``out[r, k] = exp(l[pick[r, k]]) / sum of exp(l[j]) over the items j not picked before
    rank k`` (0 for a pick of probability 0, i.e. a ``-inf`` logit).
    """
    w = np.exp(logits - np.max(np.where(np.isfinite(logits), logits, -1e300), axis=1,
                               keepdims=True))
    wk = np.take_along_axis(w, pick, axis=1)
    denom = w.sum(axis=1, keepdims=True) - np.cumsum(wk, axis=1) + wk
    return np.divide(wk, denom, out=np.zeros_like(wk), where=denom > 0)


def _window_counts(group: np.ndarray, ts: np.ndarray, window: float) -> np.ndarray:
    """For each row, how many earlier rows of the same group fall in ``(ts - window, ts]``."""
    order = np.lexsort((np.arange(len(ts)), ts, group))
    g, t = group[order], ts[order]
    start = np.searchsorted(g, g, side="left")  # first row of the group (g sorted)
    # rows of the same group with time > t - window: binary search inside the group
    span = t.max() - t.min() + window + 1.0 if len(t) else 1.0
    key = g.astype(np.float64) * span + (t - (t.min() if len(t) else 0.0))
    first_in = np.searchsorted(key, key - window, side="right")
    prior = np.arange(len(t)) - np.maximum(first_in, start)
    out = np.empty(len(t), np.int64)
    out[order] = prior
    return out


def synthetic_social(n_users: int = 2000, n_authors: int = 200, n_posts: int = 5000,
                     n_days: int = 14, n_topics: int = 12, n_campaigns: int = 10,
                     feed_len: int = 20, sessions_per_day: float = 1.0,
                     start: datetime | None = None, seed: int = 0, *,
                     text_effect: float | None = None, cascades: bool = False,
                     timing: Timing | None = None) -> SocialWorld:
    """Generate a social-feed world: users, authors, posts, ad campaigns and their event log.

    Args:
        n_users: Users.
        n_authors: Authors of posts.
        n_posts: Organic posts (created over the window plus three warm-up days).
        n_days: Days of activity.
        n_topics: Latent topics (the first 20 have real names and hashtags).
        n_campaigns: Ad campaigns (0 for an ad-free world).
        feed_len: Slots per feed (organic posts and ads together).
        sessions_per_day: Mean sessions per user per day.
        start: Start of the window (UTC; naive is taken as UTC). Default 2025-01-06.
        seed: Seed of the generator; the same arguments give the same world.
        text_effect: ``None`` (default): post text is title and tags. A number ``x``: each
            post's text also carries 0-3 style words (:mod:`~feedwise.datasets.synthetic_text`)
            and its click probability is multiplied by ``exp(x * h)`` (``h``: the summed
            word values, ``truth['post_hook']``); ``0.0`` plants the words without effect.
            Comment events always carry text with sentiment planted by topic.
        timing: ``None`` (default): every user lives on UTC. A
            :class:`~feedwise.datasets.synthetic_time.Timing`: users get time zones (their
            rhythm is on their local clock, some zones hidden from ``users.timezone``)
            and each topic a planted publish-hour effect (``synthetic_time``).
        cascades: Plant influencers (``truth['influencers']``), follower growth and reshare
            cascades (share events with ``parent_id``, surface ``following``) through the
            follow graph (:mod:`~feedwise.datasets.synthetic_graph`). ``world.edges`` holds
            the follow graph either way.

    Returns:
        A :class:`SocialWorld`. ``truth`` holds ``user_topic`` (users x topics),
        ``post_topic``, ``post_quality``, ``post_author`` (aligned with the first
        ``n_posts`` items), ``author_topic``, ``author_popularity``, ``user_rhythm`` (labels
        aligned with ``users``), ``user_activity``, ``user_ctr``, ``follows`` (users x
        authors, bool), ``topic_names``, ``topic_tags``, ``rhythms``, ``campaign_topic``,
        ``creative_quality``, ``position_bias`` (examination probability per position),
        ``ad_positions``, ``start``, ``end`` and ``params``.

    Example:
        >>> w = synthetic_social(n_users=200, n_posts=500, n_days=3, seed=1)
        >>> set(w.events["kind"]) >= {"impression", "click", "ad_impression"}
        True
    """
    _check(n_users=n_users, n_authors=n_authors, n_posts=n_posts, n_days=n_days,
           n_topics=n_topics, n_campaigns=n_campaigns, feed_len=feed_len,
           sessions_per_day=sessions_per_day)
    start = utc(start) if start is not None else DEFAULT_START
    params = {"n_users": n_users, "n_authors": n_authors, "n_posts": n_posts, "n_days": n_days,
              "n_topics": n_topics, "n_campaigns": n_campaigns, "feed_len": feed_len,
              "sessions_per_day": sessions_per_day, "start": start.isoformat(), "seed": seed}
    if cascades:  # only then: the default world keeps its tag and event ids
        params["cascades"] = True
    if text_effect is not None:  # only then: the default world keeps its tag and event ids
        params["text_effect"] = float(text_effect)
    if timing is not None:  # likewise: the UTC world keeps its tag
        params["timing"] = timing.as_dict()
    tplan = plan_timing(timing, n_users, n_topics, seed) if timing is not None else None
    hook_words, hook_h = post_hooks(n_posts, seed) if text_effect is not None else ([], None)
    tag = "w" + hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    rng = np.random.default_rng(seed)
    t_start = start.timestamp()
    t_end = t_start + n_days * 86400.0
    topic_names, topic_tags = _topics(n_topics)
    T = n_topics

    # ------------------------------------------------------------------ users
    user_topic = rng.dirichlet(np.full(T, 0.3), size=n_users)
    aff = user_topic / user_topic.max(axis=1, keepdims=True)  # 1 for the top interest
    rhythm = rng.choice(len(RHYTHMS), size=n_users, p=RHYTHM_SHARES)
    activity = rng.lognormal(0.0, 0.6, n_users)
    activity /= activity.mean()
    user_ctr = rng.lognormal(0.0, 0.3, n_users)
    consent_pers = rng.random(n_users) >= 0.03
    consent_ads = rng.random(n_users) >= 0.05
    consent_analytics = rng.random(n_users) >= 0.02
    # what the logging policy believes about interests: a blurred estimate
    est_aff = 0.7 * user_topic + 0.3 / T

    # ------------------------------------------------------------------ authors and posts
    author_topic = rng.integers(0, T, n_authors)
    author_pop = rng.pareto(1.5, n_authors) + 1.0
    author_quality = rng.beta(5, 3, n_authors)
    p_author = np.sqrt(author_pop) / np.sqrt(author_pop).sum()
    post_author = rng.choice(n_authors, size=n_posts, p=p_author)
    other = rng.integers(0, T, n_posts)
    post_topic = np.where(rng.random(n_posts) < 0.8, author_topic[post_author], other)
    post_quality = np.clip(0.6 * author_quality[post_author] + 0.4 * rng.beta(2, 2, n_posts),
                           0.02, 1.0)
    spam = rng.random(n_posts) < 0.03
    post_quality[spam] = 0.03
    warmup = FRESH_DAYS * 86400.0
    created = np.sort(rng.uniform(t_start - warmup, t_end, n_posts))
    # popularity the logger sees: author following and post quality
    log_pop = 0.5 * np.log(author_pop[post_author]) + 1.5 * post_quality
    pub_mult = tplan.publish_multiplier(created, post_topic) if tplan is not None else None

    # follows: each user follows ~8 authors, drawn by popularity x topical interest
    n_follow = np.minimum(rng.poisson(8, n_users), n_authors)
    follows = np.zeros((n_users, n_authors), bool)
    for lo in range(0, n_users, 4096):
        hi = min(lo + 4096, n_users)
        w = np.log(author_pop)[None, :] + np.log(aff[lo:hi][:, author_topic] + 0.05)
        keys = w + rng.gumbel(size=w.shape)
        rank = np.argsort(np.argsort(-keys, axis=1), axis=1)
        follows[lo:hi] = rank < n_follow[lo:hi, None]

    # ------------------------------------------------------------------ campaigns and ads
    C = n_campaigns
    camp_topic = rng.integers(0, T, C)
    cpc = rng.random(C) < 0.5
    bid = np.where(cpc, rng.uniform(0.3, 2.5, C), rng.uniform(2.0, 12.0, C)).round(2)
    base_ctr = 0.02
    ecpm = np.where(cpc, bid * base_ctr * 1000.0, bid)
    camp_start = t_start + np.where(rng.random(C) < 0.7, 0, rng.integers(0, max(n_days // 2, 1),
                                                                          C)) * 86400.0
    camp_end = np.minimum(t_end, camp_start + rng.integers(max(n_days // 2, 1), n_days + 1, C)
                          * 86400.0)
    n_creatives = rng.integers(1, 4, C)
    creative_camp = np.repeat(np.arange(C), n_creatives)
    creative_first = np.r_[0, np.cumsum(n_creatives)[:-1]].astype(np.int64)
    creative_quality = rng.beta(3, 4, len(creative_camp))
    cap_options = ([[3, 86400]], [[2, 86400]], [[1, 3600], [4, 86400]], [[3, 86400], [10, 604800]])
    camp_caps = [cap_options[i] for i in rng.integers(0, len(cap_options), C)]

    # ------------------------------------------------------------------ sessions
    weekday = np.array([(start + timedelta(days=d)).weekday() for d in range(n_days)])
    day_mult = np.where(weekday >= 5, 1.25, 0.9)
    counts = rng.poisson(sessions_per_day * activity[:, None] * day_mult[None, :])
    s_user = np.repeat(np.repeat(np.arange(n_users), n_days), counts.ravel())
    s_day = np.repeat(np.tile(np.arange(n_days), n_users), counts.ravel())
    S = len(s_user)
    focus = rng.random(S) < RHYTHM_FOCUS
    hour = np.where(focus, rng.normal(RHYTHM_PEAK_HOUR[rhythm[s_user]], RHYTHM_SD_HOURS),
                    rng.uniform(6.0, 24.0, S)) % 24.0
    s_t0 = t_start + s_day * 86400.0 + hour * 3600.0
    if tplan is not None:  # the rhythm is on the user's local clock (synthetic_time)
        s_t0 = tplan.session_starts(start, s_day, hour, s_user)
        inside = (s_t0 >= t_start) & (s_t0 < t_end)
        s_user, s_t0, S = s_user[inside], s_t0[inside], int(inside.sum())
    order = np.argsort(s_t0, kind="stable")
    s_user, s_t0 = s_user[order], s_t0[order]
    s_surface = (rng.random(S) < 0.2).astype(np.int8)  # 0 home, 1 explore
    s_scroll = rng.uniform(1.5, 4.0, S)
    F = feed_len
    pos = np.arange(F)
    examine = (1.0 + pos) ** -POSITION_BIAS_EXP
    slot_ts = s_t0[:, None] + pos[None, :] * s_scroll[:, None]  # impression times

    ev: dict[str, list[np.ndarray]] = {k: [] for k in ("sess", "pos", "item", "kind", "ts",
                                                      "value", "dwell", "prop")}

    def emit(sess: np.ndarray, p: np.ndarray, item: np.ndarray, kind: str, ts: np.ndarray,
             value: np.ndarray | None = None, dwell: np.ndarray | None = None,
             prop: np.ndarray | None = None) -> None:
        n = len(sess)
        ev["sess"].append(sess.astype(np.int64))
        ev["pos"].append(p.astype(np.int64))
        ev["item"].append(item.astype(np.int64))
        ev["kind"].append(np.full(n, _K[kind], np.int8))
        ev["ts"].append(ts.astype(np.float64))
        ev["value"].append(np.full(n, np.nan) if value is None else value.astype(np.float64))
        ev["dwell"].append(np.full(n, -1, np.int64) if dwell is None else dwell.astype(np.int64))
        ev["prop"].append(np.full(n, np.nan) if prop is None else prop.astype(np.float64))

    # ------------------------------------------------------------------ ad slots (all sessions)
    ad_pos = np.arange(AD_FIRST, F, AD_EVERY) if C > 0 else np.array([], np.int64)
    is_ad = np.zeros((S, F), bool)
    ad_creative = np.full((S, F), -1, np.int64)
    ad_prop = np.zeros((S, F))
    if len(ad_pos) and S:
        # in flight for the whole feed (first to last slot)
        in_flight = ((s_t0[:, None] >= camp_start[None, :])
                     & (slot_ts[:, -1][:, None] < camp_end[None, :]))
        score = np.log(ecpm)[None, :] + 2.0 * aff[s_user][:, camp_topic]
        score = np.where(in_flight, score, -np.inf)
        has = in_flight.any(axis=1) & consent_ads[s_user]
        score[~has] = 0.0
        score -= score.max(axis=1, keepdims=True)
        p_camp = np.exp(score)
        p_camp /= p_camp.sum(axis=1, keepdims=True)
        cum = np.cumsum(p_camp, axis=1)
        u = rng.random((S, len(ad_pos)))
        camp = np.minimum((cum[:, None, :] < u[:, :, None]).sum(axis=2), C - 1)  # (S, A)
        fill = (rng.random((S, len(ad_pos))) < AD_FILL) & has[:, None]
        which = rng.integers(0, 1 << 30, (S, len(ad_pos))) % n_creatives[camp]
        creative = creative_first[camp] + which
        prop = AD_FILL * np.take_along_axis(p_camp, camp, axis=1) / n_creatives[camp]
        # frequency caps: drop proposals that would exceed any cap of their campaign
        si, ai = np.nonzero(fill)
        c_of, t_of, u_of = camp[si, ai], slot_ts[si, ad_pos[ai]], s_user[si]
        keep = np.ones(len(si), bool)
        for c in range(C):
            m = c_of == c
            if not m.any():
                continue
            for max_n, window in camp_caps[c]:
                prior = _window_counts(u_of[m], t_of[m], float(window))
                keep[np.flatnonzero(m)[prior >= max_n]] = False
        si, ai = si[keep], ai[keep]
        is_ad[si, ad_pos[ai]] = True
        ad_creative[si, ad_pos[ai]] = creative[si, ai]
        ad_prop[si, ad_pos[ai]] = prop[si, ai]

    # ------------------------------------------------------------------ organic feeds (chunks)
    n_cand = 5 * F
    chunk = max(1, 2_000_000 // (n_cand * 8))
    for lo in range(0, S, chunk):
        hi = min(lo + chunk, S)
        sess = np.arange(lo, hi)
        n = hi - lo
        u = s_user[sess]
        t0 = s_t0[sess]
        top = np.searchsorted(created, t0, side="right")
        bottom = np.searchsorted(created, t0 - FRESH_DAYS * 86400.0, side="left")
        bottom = np.minimum(bottom, np.maximum(top - 2 * F, 0))
        width = top - bottom
        cand = bottom[:, None] + (rng.random((n, n_cand)) * width[:, None]).astype(np.int64)
        cand = np.sort(np.minimum(cand, np.maximum(top - 1, 0)[:, None]), axis=1)
        dup = np.zeros_like(cand, dtype=bool)
        dup[:, 1:] = cand[:, 1:] == cand[:, :-1]
        dup |= (width == 0)[:, None]
        personal = np.where(s_surface[sess] == 0, 2.0, 1.0) * consent_pers[u]
        topic_c = post_topic[cand]
        logits = (personal[:, None] * np.log(est_aff[u[:, None], topic_c] + 0.05)
                  + 0.6 * log_pop[cand]
                  + 0.8 * consent_pers[u][:, None] * follows[u[:, None], post_author[cand]]
                  - (t0[:, None] - created[cand]) / 3600.0 / 36.0)
        logits = np.where(dup, -np.inf, logits)
        pick = _gumbel_topk(rng, logits, F)  # (n, K) candidate columns, in drawn order
        rank_prop = _pl_propensities(logits, pick)
        rank_ok = rank_prop > 0
        rank_item = np.take_along_axis(cand, pick, axis=1)
        # organic positions take ranks 0, 1, 2 ... around the filled ad slots
        ad_here = is_ad[sess]
        rank_at = np.cumsum(~ad_here, axis=1) - 1
        org = ~ad_here & (rank_at < rank_item.shape[1])
        rank_at = np.clip(rank_at, 0, rank_item.shape[1] - 1)
        org &= np.take_along_axis(rank_ok, rank_at, axis=1)
        r_s, r_p = np.nonzero(org)
        rk = rank_at[r_s, r_p]
        item = rank_item[r_s, rk]
        g_sess = sess[r_s]
        uu = s_user[g_sess]
        ts = slot_ts[g_sess, r_p]
        emit(g_sess, r_p, item, "impression", ts, prop=np.clip(rank_prop[r_s, rk], 1e-12, 1.0))

        a = aff[uu, post_topic[item]]
        q = post_quality[item]
        ex = examine[r_p]
        base = 0.01 + 0.30 * a ** 1.5 * (0.5 + q) * user_ctr[uu]
        if hook_h is not None:  # the planted text effect (synthetic_text.HOOK_WORDS)
            base = base * np.exp(float(text_effect) * hook_h[item])
        if tplan is not None:  # the planted publish-hour effect (synthetic_time)
            base = base * pub_mult[item]
        p_click = ex * np.clip(base, 0.0, 0.95)
        click = rng.random(len(item)) < p_click
        c_idx = np.flatnonzero(click)
        t_click = ts[c_idx] + rng.uniform(0.5, 2.0, len(c_idx))
        emit(g_sess[c_idx], r_p[c_idx], item[c_idx], "click", t_click)
        ac, qc = a[c_idx], q[c_idx]
        dwell = np.maximum(500, rng.lognormal(np.log(4000 + 45000 * ac * qc), 0.6)).astype(
            np.int64)
        emit(g_sess[c_idx], r_p[c_idx], item[c_idx], "dwell", t_click + dwell / 1000.0,
             dwell=dwell)
        for kind, p in (("like", 0.15 + 0.45 * ac * qc), ("comment", 0.04 + 0.10 * ac * qc),
                        ("share", 0.02 + 0.08 * qc ** 2), ("save", 0.03 + 0.07 * ac)):
            m = rng.random(len(c_idx)) < p
            t_k = t_click[m] + dwell[m] / 1000.0 * rng.uniform(0.2, 0.9, int(m.sum()))
            emit(g_sess[c_idx[m]], r_p[c_idx[m]], item[c_idx[m]], kind, t_k)
        p_hide = ex * (0.003 + 0.05 * (1.0 - a) ** 3 * (1.2 - q))
        hide = ~click & (rng.random(len(item)) < p_hide)
        h_idx = np.flatnonzero(hide)
        t_hide = ts[h_idx] + rng.uniform(1.0, 3.0, len(h_idx))
        emit(g_sess[h_idx], r_p[h_idx], item[h_idx], "hide", t_hide)
        rep = rng.random(len(h_idx)) < np.where(q[h_idx] < 0.1, 0.35, 0.01)
        emit(g_sess[h_idx[rep]], r_p[h_idx[rep]], item[h_idx[rep]], "report",
             t_hide[rep] + rng.uniform(1.0, 5.0, int(rep.sum())))

    # ------------------------------------------------------------------ ad events
    a_s, a_p = np.nonzero(is_ad)
    cr = ad_creative[a_s, a_p]
    cc = creative_camp[cr]
    a_item = n_posts + cr
    a_ts = slot_ts[a_s, a_p]
    a_cpc = cpc[cc]
    emit(a_s, a_p, a_item, "ad_impression", a_ts,
         value=np.where(a_cpc, np.nan, bid[cc] / 1000.0), prop=np.clip(ad_prop[a_s, a_p],
                                                                       1e-12, 1.0))
    a_aff = aff[s_user[a_s], camp_topic[cc]]
    p_ad_click = examine[a_p] * np.clip(0.004 + 0.08 * a_aff * creative_quality[cr], 0, 0.9)
    k = np.flatnonzero(rng.random(len(a_s)) < p_ad_click)
    t_ac = a_ts[k] + rng.uniform(0.5, 2.0, len(k))
    emit(a_s[k], a_p[k], a_item[k], "ad_click", t_ac,
         value=np.where(a_cpc[k], bid[cc[k]], np.nan))
    conv = rng.random(len(k)) < 0.04 + 0.15 * a_aff[k]
    kc = k[conv]
    emit(a_s[kc], a_p[kc], a_item[kc], "conversion",
         t_ac[conv] + np.exp(rng.uniform(np.log(30), np.log(3600), len(kc))),
         value=rng.lognormal(np.log(40.0), 0.6, len(kc)).round(2))
    no_click = np.ones(len(a_s), bool)
    no_click[k] = False
    ah = np.flatnonzero(no_click & (rng.random(len(a_s)) < examine[a_p] * (
        0.01 + 0.05 * (1 - a_aff) * (1 - creative_quality[cr]))))
    emit(a_s[ah], a_p[ah], a_item[ah], "hide", a_ts[ah] + rng.uniform(1.0, 3.0, len(ah)))

    # ------------------------------------------------------------------ assemble frames
    cat = {k: np.concatenate(v) if v else np.array([]) for k, v in ev.items()}
    order = np.lexsort((cat["kind"], cat["pos"], cat["sess"], cat["ts"]))
    cat = {k: v[order] for k, v in cat.items()}
    user_names = np.array([f"u{i:06d}" for i in range(n_users)], dtype=object)
    author_names = np.array([f"a{i:05d}" for i in range(n_authors)], dtype=object)
    post_names = [f"p{i:07d}" for i in range(n_posts)]
    creative_names = [f"ad{i:05d}" for i in range(len(creative_camp))]
    item_names = np.array(post_names + creative_names, dtype=object)
    camp_names = np.array([f"c{i:04d}" for i in range(C)], dtype=object)
    adv_of = np.arange(C) % max(1, (2 * C) // 3)
    adv_names = np.array([f"adv{i:03d}" for i in range(max(1, (2 * C) // 3))], dtype=object)
    sess_names = np.array([f"{tag}-s{i:07d}" for i in range(S)], dtype=object)
    suffix = np.array([f"-{p:03d}{code}" for p in range(F) for code in _KIND_CODE],
                      dtype=object)
    es, ep, ek = cat["sess"], cat["pos"], cat["kind"].astype(np.int64)
    dwell = cat["dwell"]
    n_ev = len(es)
    # string columns are built in Arrow from (codes, names): no per-row Python strings
    sess_col = _take(sess_names, es)
    strings = pa.table({
        "event_id": pc.binary_join_element_wise(sess_col, _take(suffix, ep * len(KINDS) + ek),
                                                ""),
        "user_id": _take(user_names, s_user[es]),
        "item_id": _take(item_names, cat["item"]),
        "kind": _take(np.array(KINDS, dtype=object), ek),
        "surface": _take(np.array(["home", "explore"], dtype=object), s_surface[es]),
        "session_id": sess_col,
    }).to_pandas()
    events = pd.DataFrame({
        "ts": _to_ts(cat["ts"]),
        "dwell_ms": pd.arrays.IntegerArray(np.where(dwell >= 0, dwell, 0), dwell < 0),
        "value": cat["value"],
        "position": ep.astype(np.int32),
        "propensity": cat["prop"],
        "context": np.full(n_ev, None, dtype=object),
        "text": np.full(n_ev, None, dtype=object),
        "parent_id": np.full(n_ev, None, dtype=object),
    })
    for col in strings.columns:
        events[col] = strings[col].to_numpy() if strings[col].dtype == object else strings[col]
    events = events[list(EVENT_COLUMNS)]
    # comment text with sentiment planted by topic (datasets/synthetic_text.py)
    brands = sorted({ADVERTISERS[int(a) % len(ADVERTISERS)] for a in adv_of[:C]})
    is_comment = ek == _K["comment"]
    c_texts, c_planted = comment_texts(post_topic[cat["item"][is_comment]], topic_names,
                                       topic_tags, brands, seed)
    text_col = np.full(n_ev, None, dtype=object)
    text_col[is_comment] = np.array(c_texts, dtype=object)
    events["text"] = text_col

    # items
    tpl = rng.integers(0, len(TITLE_TEMPLATES), n_posts)
    sub = rng.integers(1, 4, n_posts)
    has_sub = rng.random(n_posts) < 0.7
    noise = rng.integers(0, len(NOISE_TAGS), n_posts)
    has_noise = rng.random(n_posts) < 0.35
    num = rng.integers(3, 11, n_posts)
    titles, texts, tags = [], [], []
    for i in range(n_posts):
        t = int(post_topic[i])
        tt = topic_tags[t]
        tg = [tt[0]]
        if has_sub[i]:
            tg.append(tt[int(sub[i])])
        if has_noise[i]:
            tg.append(NOISE_TAGS[int(noise[i])])
        name = topic_names[t]
        title = TITLE_TEMPLATES[int(tpl[i])].format(n=int(num[i]), topic=name,
                                                     Topic=name.capitalize(), tag=tt[0])
        titles.append(title)
        texts.append(f"{title} {' '.join(tg)}" + "".join(f" {h}" for h in (
            hook_words[i] if hook_words else ())))
        tags.append(tg)
    c_titles, c_texts, c_tags = [], [], []
    for j, c in enumerate(creative_camp):
        name = topic_names[int(camp_topic[c])]
        title = (f"{ADVERTISERS[int(adv_of[c]) % len(ADVERTISERS)]} {name.capitalize()}: "
                 f"{OFFERS[(j + int(c)) % len(OFFERS)]}")
        c_titles.append(title)
        c_texts.append(f"Sponsored. {title}")
        c_tags.append([topic_tags[int(camp_topic[c])][0]])
    n_cr = len(creative_camp)
    items = pd.DataFrame({
        "item_id": item_names,
        "kind": np.array(["post"] * n_posts + ["ad"] * n_cr, dtype=object),
        "author_id": np.concatenate([author_names[post_author], adv_names[adv_of[creative_camp]]
                                     ]).astype(object),
        "created_at": _to_ts(np.concatenate([created, camp_start[creative_camp]])),
        "title": np.array(titles + c_titles, dtype=object),
        "text": np.array(texts + c_texts, dtype=object),
        "tags": pd.Series(tags + c_tags, dtype=object).to_numpy(),
        "campaign_id": np.concatenate([np.full(n_posts, None, dtype=object),
                                       camp_names[creative_camp]]).astype(object),
    })

    # users
    top2 = np.argsort(-user_topic, axis=1)[:, :2]
    declare = rng.random((n_users, 2)) < np.array([0.8, 0.5])
    stray = rng.integers(0, T, n_users)
    has_stray = rng.random(n_users) < 0.1
    age = rng.choice(len(AGE_BANDS), n_users, p=[0.06, 0.24, 0.30, 0.20, 0.12, 0.08])
    country = rng.integers(0, len(COUNTRIES), n_users)
    attrs = []
    for i in range(n_users):
        ints = [topic_tags[int(top2[i, j])][0] for j in range(2) if declare[i, j]]
        if has_stray[i] and topic_tags[int(stray[i])][0] not in ints:
            ints.append(topic_tags[int(stray[i])][0])
        attrs.append(json.dumps({"interests": ints,
                                 "follows": list(author_names[np.flatnonzero(follows[i])]),
                                 "age_band": AGE_BANDS[int(age[i])],
                                 "country": COUNTRIES[int(country[i])]}))
    users = pd.DataFrame({
        "user_id": user_names,
        "consent_personalization": consent_pers,
        "consent_ads": consent_ads,
        "consent_analytics": consent_analytics,
        "consent_updated_at": _to_ts(t_start - rng.uniform(1, 365, n_users) * 86400.0),
        "consent_source": rng.choice(np.array(["signup", "settings", "banner"], dtype=object),
                                     n_users, p=[0.7, 0.1, 0.2]),
        "attributes": np.array(attrs, dtype=object),
        "timezone": (tplan.users_timezone() if tplan is not None
                     else np.full(n_users, None, dtype=object)),
    })

    # campaigns: budgets sit above the spend the log shows
    spend = events["value"].where(events["kind"].isin(["ad_impression", "ad_click"]), 0.0)
    ev_camp = np.full(n_ev, -1, np.int64)
    is_ad_item = cat["item"] >= n_posts
    ev_camp[is_ad_item] = creative_camp[cat["item"][is_ad_item] - n_posts]
    ev_day = ((cat["ts"] - t_start) // 86400).astype(np.int64)
    sp_df = pd.DataFrame({"c": ev_camp, "d": ev_day, "v": spend.fillna(0.0).to_numpy()})
    sp_df = sp_df[sp_df["c"] >= 0]
    daily = sp_df.groupby(["c", "d"])["v"].sum().groupby("c").max().reindex(range(C),
                                                                              fill_value=0.0)
    total = sp_df.groupby("c")["v"].sum().reindex(range(C), fill_value=0.0)
    daily_budget = np.maximum(1.0, daily.to_numpy() * rng.uniform(1.2, 2.0, C)).round(2)
    total_budget = np.maximum(daily_budget, total.to_numpy() * rng.uniform(1.1, 1.6, C)).round(2)
    start_ts, end_ts = _to_ts(camp_start), _to_ts(camp_end)
    rows = []
    for c in range(C):
        crs = np.flatnonzero(creative_camp == c)
        name = f"{ADVERTISERS[int(adv_of[c]) % len(ADVERTISERS)]} {topic_names[camp_topic[c]]}"
        caps = camp_caps[c]
        # every fifth campaign is a brand-awareness campaign bought for reach (no tag
        # targeting), as advertisers run beside their targeted ones
        target = [] if c % 5 == 4 else [topic_tags[int(camp_topic[c])][0]]
        spec = {"campaign_id": str(camp_names[c]), "advertiser_id": str(adv_names[adv_of[c]]),
                "name": name,
                "creatives": [{"item_id": str(item_names[n_posts + j]), "title": c_titles[j],
                               "text": c_texts[j], "tags": c_tags[j],
                               "quality": round(float(creative_quality[j]), 4)} for j in crs],
                "bid_model": "cpc" if cpc[c] else "cpm", "bid": float(bid[c]),
                "daily_budget": float(daily_budget[c]), "total_budget": float(total_budget[c]),
                "start_at": start_ts[c].isoformat(), "end_at": end_ts[c].isoformat(),
                "target_tags": target, "target_segments": [],
                "frequency_caps": [{"max_impressions": m, "window_s": float(w)}
                                   for m, w in caps],
                "base_ctr": base_ctr, "status": "active"}
        rows.append({"campaign_id": spec["campaign_id"], "advertiser_id": spec["advertiser_id"],
                     "name": name, "bid_model": spec["bid_model"], "bid": spec["bid"],
                     "daily_budget": spec["daily_budget"], "total_budget": spec["total_budget"],
                     "start_at": start_ts[c], "end_at": end_ts[c], "target_tags": target,
                     "target_segments": [], "frequency_caps": json.dumps(caps),
                     "status": "active", "spec": json.dumps(spec)})
    campaigns = pd.DataFrame(rows, columns=list(CAMPAIGN_COLUMNS))

    truth = {
        "user_topic": user_topic, "post_topic": post_topic, "post_quality": post_quality,
        "post_author": post_author, "post_spam": spam, "author_topic": author_topic,
        "author_popularity": author_pop, "user_rhythm": np.array(RHYTHMS, dtype=object)[rhythm],
        "user_activity": activity, "user_ctr": user_ctr, "follows": follows,
        "topic_names": topic_names, "topic_tags": [list(t) for t in topic_tags],
        "rhythms": list(RHYTHMS), "campaign_topic": camp_topic, "creative_campaign":
            creative_camp, "creative_quality": creative_quality, "position_bias": examine,
        "ad_positions": ad_pos, "ad_fill": AD_FILL, "start": start,
        "end": start + timedelta(days=n_days), "params": params,
        "brands": brands, "topic_sentiment": topic_sentiment(T, seed),
        "comment_sentiment": c_planted, "post_hook": hook_h, "text_effect": text_effect,
    }
    if tplan is not None:
        truth.update(tplan.truth(RHYTHM_PEAK_HOUR[rhythm]))
    world = SocialWorld(events.reset_index(drop=True), items, users, campaigns, truth, tag)
    attach_graph(world, seed=seed, cascades=cascades)  # the follow graph (world.edges)
    return world


def engagement_probability(world: SocialWorld, user_ids: Any, item_ids: Any,
                           positions: Any = None) -> np.ndarray:
    """The generator's TRUE probability that ``user_ids[i]`` engages with the organic post
    ``item_ids[i]`` when the feed shows it at slot ``positions[i]``.

    Engagement is the click: in the organic feed every like, comment, share and save follows
    a click. The probability is ``examine(position) x clip(0.01 + 0.3 x aff ** 1.5 x
    (0.5 + quality) x user_ctr [x text effect] [x publish-hour effect], 0, 0.95)``, read
    from ``world.truth``; it does not depend on the time of the request. ``positions=None``
    leaves the examination factor out (the post's appeal to the user, as a position-blind
    ranker would see it at best). Unknown users or posts (ads included) get NaN. Reshares
    planted by ``cascades=True`` happen outside the feed and are not covered.

    Example:
        >>> w = synthetic_social(n_users=50, n_posts=100, n_days=2, seed=1)
        >>> p = engagement_probability(w, ["u000001", "u000001"], ["p0000003", "x"], [0, 0])
        >>> bool(0 < p[0] < 1) and bool(np.isnan(p[1]))
        True
    """
    tr = world.truth
    user_topic = np.asarray(tr["user_topic"], np.float64)
    aff = user_topic / user_topic.max(axis=1, keepdims=True)
    n_posts = len(tr["post_topic"])
    u = pd.Index(world.users["user_id"].astype(str)).get_indexer(
        pd.Index(np.asarray(user_ids, dtype=object).astype(str)))
    i = pd.Index(world.items["item_id"].astype(str)[:n_posts]).get_indexer(
        pd.Index(np.asarray(item_ids, dtype=object).astype(str)))
    ok = (u >= 0) & (i >= 0)
    uu, ii = np.where(ok, u, 0), np.where(ok, i, 0)
    q = np.asarray(tr["post_quality"], np.float64)[ii]
    base = 0.01 + 0.30 * aff[uu, np.asarray(tr["post_topic"])[ii]] ** 1.5 * (0.5 + q) * \
        np.asarray(tr["user_ctr"], np.float64)[uu]
    if tr.get("post_hook") is not None and tr.get("text_effect") is not None:
        base = base * np.exp(float(tr["text_effect"]) * np.asarray(tr["post_hook"])[ii])
    if tr.get("timing") is not None and float(tr["timing"].get("publish_effect", 0)) != 0:
        created = pd.to_datetime(world.items["created_at"].iloc[ii], utc=True)
        local = pd.DatetimeIndex(created).tz_convert(tr["publish_clock"])
        h = np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0)
        good = np.asarray(tr["topic_good_hour"])[np.asarray(tr["post_topic"])[ii]]
        base = base * np.exp(float(tr["timing"]["publish_effect"])
                             * np.cos(2 * np.pi * (h - good) / 24.0))
    p = np.clip(base, 0.0, 0.95)
    if positions is not None:
        bias = np.asarray(tr["position_bias"], np.float64)
        pos = np.clip(np.asarray(positions, np.int64), 0, len(bias) - 1)
        p = p * bias[pos]
    return np.where(ok, p, np.nan)
