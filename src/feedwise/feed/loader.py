"""Loading a feed engine from the store: posts, users, campaigns and what the events say.

:func:`load_engine` builds an engine over the store's posts, users and campaigns, with
popularity, interest profiles, author affinity and recent hides and reports derived from
the events (before a cut-off, to keep a hold-out period out of the features). It reads the
store only through named :class:`~feedwise.store.EventStore` methods;
:meth:`FeedEngine.from_store <feedwise.feed.engine.FeedEngine.from_store>` is its usual
entry point.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.feed.campaigns import load_campaigns
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.config import FeedConfig
from feedwise.feed.social import load_graph
from feedwise.localtime import utc_offset_hours
from feedwise.store import EventStore


class Loadable(Protocol):
    """What the loader fills in after building an engine."""

    catalog: Catalog
    users: UserTable
    config: FeedConfig
    n_tags: int

    def record_feedback(self, user_id: str, item_id: str, kind: str, ts: Any) -> None: ...


E = TypeVar("E", bound=Loadable)


def load_engine(engine: Callable[..., E], store: EventStore, recommender: Any = None,
                config: FeedConfig | None = None, *, until: datetime | None = None,
                **kwargs: Any) -> E:
    """An engine over the store's posts, users and campaigns.

    Popularity, author affinity and interest profiles are derived from the events before
    ``until`` (all when ``None``), and so are the recent hides and reports that feed
    fatigue; ad state is loaded from (and persisted to) the store.

    Args:
        engine: The engine class (e.g. :class:`~feedwise.feed.engine.FeedEngine`), called
            as ``engine(recommender, posts, campaigns, config, users=..., store=...,
            popularity=..., **kwargs)``.
        store: The store.
        recommender: The personal candidate source (see the engine).
        config: The engine's configuration.
        until: Cut-off of the events the features come from.
        **kwargs: Passed on to ``engine``.
    """
    out = engine(recommender, store.posts(), load_campaigns(store), config,
                 users=store.users(), store=store,
                 popularity=store.engagement_counts(until), **kwargs)
    load_profiles(out, store, until)
    load_graph(out, store, until)  # the social graph standing at ``until``
    load_stored_profiles(out, store, until)
    load_fatigue(out, store, until)
    return out


def load_profiles(engine: Loadable, store: EventStore, until: datetime | None = None) -> None:
    """Fill interests and author affinity of the engine's known users from their
    engagement before ``until``."""
    if engine.users.n:
        engine.users.add_engagement(store.author_tag_affinity(until), engine.catalog,
                                    engine.n_tags)


def profile_segments(profiles: pd.DataFrame) -> list[list[str]]:
    """The segments a stored profile puts its user in: its behavioural ``segment`` label
    and ``lifecycle:<stage>``."""
    out = []
    for seg, life in zip(profiles.get("segment", pd.Series([None] * len(profiles))),
                         profiles.get("lifecycle", pd.Series([None] * len(profiles))),
                         strict=True):
        names = [str(seg)] if isinstance(seg, str) and seg else []
        if isinstance(life, str) and life:
            names.append(f"lifecycle:{life}")
        out.append(names)
    return out


def utc_hour_activity(profiles: pd.DataFrame, at: datetime | None = None) -> np.ndarray:
    """(n, 24) share of each profile's activity per UTC hour of day: its ``active_hours``
    (168 shares, weekday x hour on the clock named by its ``timezone`` column, UTC when
    absent) summed over weekdays and shifted by the zone's offset at ``at``."""
    n = len(profiles)
    out = np.zeros((n, 24))
    zones = (profiles["timezone"].to_numpy(dtype=object) if "timezone" in profiles.columns
             else np.full(n, None, dtype=object))
    offsets: dict[Any, int] = {}
    for r, (hours, z) in enumerate(zip(profiles["active_hours"], zones, strict=True)):
        if hours is None or isinstance(hours, float) or len(hours) != 168:
            continue
        day = np.nan_to_num(np.asarray(hours, np.float64).reshape(7, 24).sum(axis=0))
        if z not in offsets:
            offsets[z] = int(round(utc_offset_hours(z, at)))
        out[r] = np.roll(day, -offsets[z])  # local hour h is UTC hour h - offset
    return out


def load_stored_profiles(engine: Loadable, store: EventStore,
                         until: datetime | None = None) -> None:
    """Read the stored ``user_profiles`` into the engine: each known user's profile
    interests join their interest profile (tags in the engine's tag space), their profile
    segment and ``lifecycle:<stage>`` join their segments (those a campaign targets), and,
    with ``config.ads.dayparting``, each campaign paces by the hourly activity (UTC) of the
    profiled users it may reach."""
    users = engine.users
    prof = store.profiles()
    if users.n == 0 or prof.empty:
        return
    prof = prof[prof["user_id"].astype(str).isin(users.index)].reset_index(drop=True)
    if prof.empty:
        return
    rows = np.array([users.index[str(u)] for u in prof["user_id"]], np.int64)
    tix, six = engine.catalog.tag_index, users.segment_index
    ir, ic, iv, sr, sc = [], [], [], [], []
    for r, text in zip(rows, prof["interests"], strict=True):
        try:
            w = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            continue
        for t, x in (w.items() if isinstance(w, dict) else ()):
            c = tix.get(str(t))
            if c is not None and c < engine.n_tags and float(x) > 0:
                ir.append(r)
                ic.append(c)
                iv.append(float(x))
    for r, names in zip(rows, profile_segments(prof), strict=True):
        for name in names:
            c = six.get(name)
            if c is not None:
                sr.append(r)
                sc.append(c)
    shape_i = users.interests.shape
    if ir:
        add = sp.csr_matrix((iv, (ir, ic)), shape=(users.n, max(shape_i[1], engine.n_tags)))
        base = sp.csr_matrix((users.interests.data, users.interests.indices,
                              users.interests.indptr), shape=add.shape)
        users.interests = sp.csr_matrix(base + add, dtype=np.float32)
    if sr:
        width = max(users.segments.shape[1], len(six))
        old = users.segments.tocsr()
        seg = sp.csr_matrix((old.data, old.indices, old.indptr), shape=(users.n, width)) + \
            sp.csr_matrix((np.ones(len(sr), np.float32), (sr, sc)), shape=(users.n, width))
        seg.data[:] = 1.0
        users.segments = sp.csr_matrix(seg, dtype=np.float32)
    book = getattr(engine, "book", None)
    if book is not None and book.n and engine.config.ads.dayparting:
        act = np.zeros((users.n, 24))
        act[rows] = utc_hour_activity(prof, until)
        book.set_pace_curves(audience_curves(book, users, act, engine.n_tags))


def audience_curves(book: Any, users: Any, activity: np.ndarray, n_tags: int) -> np.ndarray:
    """(campaigns, 24): the summed UTC-hour activity of the users each campaign may reach
    (its tag and segment targeting; everyone for an untargeted one)."""
    n = users.n
    reach = np.ones((book.n, n), bool)
    if book.has_tag_target.any():
        inter = sp.csr_matrix(users.interests, dtype=np.float32)[:, :n_tags]
        hit = np.asarray((inter @ book.target_tag_matrix[:, :inter.shape[1]].T) > 0).T
        reach &= ~book.has_tag_target[:, None] | hit
    if book.has_seg_target.any():
        seg = sp.csr_matrix(users.segments, dtype=np.float32)
        hit = np.asarray((seg @ book.target_seg_matrix[:, :seg.shape[1]].T) > 0).T
        reach &= ~book.has_seg_target[:, None] | hit
    return reach.astype(np.float64) @ activity


def load_fatigue(engine: Loadable, store: EventStore, until: datetime | None = None) -> None:
    """Replay recent hides and reports (within the fatigue window and ramp, before
    ``until``) so fatigue survives a restart."""
    rc = engine.config.rerank
    hours = int(np.ceil(rc.fatigue_window_hours + rc.fatigue_ramp_hours)) + 1
    df = store.recent_feedback(hours, until)
    for u, i, k, t in zip(df["user_id"], df["item_id"], df["kind"], df["ts"], strict=True):
        engine.record_feedback(str(u), str(i), str(k), t)
