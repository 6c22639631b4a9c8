"""Loading a feed engine from the store: posts, users, campaigns and what the events say.

:func:`load_engine` builds an engine over the store's posts, users and campaigns, with
popularity, interest profiles, author affinity and recent hides and reports derived from
the events (before a cut-off, to keep a hold-out period out of the features). It reads the
store only through named :class:`~feedwise.store.EventStore` methods;
:meth:`FeedEngine.from_store <feedwise.feed.engine.FeedEngine.from_store>` is its usual
entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np

from feedwise.feed.campaigns import load_campaigns
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.config import FeedConfig
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
    load_fatigue(out, store, until)
    return out


def load_profiles(engine: Loadable, store: EventStore, until: datetime | None = None) -> None:
    """Fill interests and author affinity of the engine's known users from their
    engagement before ``until``."""
    if engine.users.n:
        engine.users.add_engagement(store.author_tag_affinity(until), engine.catalog,
                                    engine.n_tags)


def load_fatigue(engine: Loadable, store: EventStore, until: datetime | None = None) -> None:
    """Replay recent hides and reports (within the fatigue window and ramp, before
    ``until``) so fatigue survives a restart."""
    rc = engine.config.rerank
    hours = int(np.ceil(rc.fatigue_window_hours + rc.fatigue_ramp_hours)) + 1
    df = store.recent_feedback(hours, until)
    for u, i, k, t in zip(df["user_id"], df["item_id"], df["kind"], df["ts"], strict=True):
        engine.record_feedback(str(u), str(i), str(k), t)
