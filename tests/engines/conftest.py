"""Fixtures of the engine tests: the synthetic world, its store, its Parquet export and the
Spark session come from engine_world.py (shared with tests/cli); here, small hand-made
stores."""

from __future__ import annotations

import pandas as pd
import pytest
from engine_world import exported, spark, world, world_store  # noqa: F401 - shared fixtures


@pytest.fixture()
def priced(store):
    """Ad events priced by their campaign's bid model (no logged price), one ad tied to its
    campaign only through ``context``, and a conversion of a cpa campaign."""
    ev = [("e1", "u1", "a1", "ad_impression", "2024-01-01T08:00:00Z", None, None),
          ("e2", "u1", "a1", "ad_impression", "2024-01-01T08:01:00Z", None, None),
          ("e3", "u1", "a1", "ad_click", "2024-01-01T08:02:00Z", None, None),
          ("e4", "u2", "b1", "ad_click", "2024-01-01T09:00:00Z", None, None),
          ("e5", "u2", "b1", "ad_click", "2024-01-01T09:01:00Z", 0.3, None),
          ("e6", "u3", "x9", "ad_impression", "2024-01-01T10:00:00Z", None,
           '{"campaign_id": "m"}'),
          ("e7", "u3", "c1", "conversion", "2024-01-01T11:00:00Z", 40.0, None)]
    store.ingest(pd.DataFrame(ev, columns=["event_id", "user_id", "item_id", "kind", "ts",
                                           "value", "context"]))
    store.upsert_items(pd.DataFrame({"item_id": ["a1", "b1", "c1"], "kind": "ad",
                                     "campaign_id": ["m", "c", "a"]}))
    store.upsert_campaigns(pd.DataFrame({"campaign_id": ["m", "c", "a"],
                                         "bid_model": ["cpm", "cpc", "cpa"],
                                         "bid": [2.0, 0.5, 5.0]}))
    return store


@pytest.fixture()
def private(store):
    """A store for the KPI privacy rules (all users' analytics consent as noted):

    * 2024-01-01: ``u00``..``u11`` (12 users, no ``users`` row) and ``v0``..``v2`` (NULL /
      true / no row) view a post and an ad; the ``u`` users see campaign ``big`` (reach 12),
      the ``v`` users campaign ``small`` (reach 3); ``v0``..``v2`` also click.
    * 2024-01-15: ``w0``, ``w1`` (a cohort of 2) view a post.
    * ``nc`` (consent_analytics false) views a post, likes it and sees campaign ``nc_only``
      on 2024-01-01, and is the only one active on 2024-01-20.
    """
    ev = []
    for i in range(12):
        u = f"u{i:02d}"
        ev += [(f"{u}a", u, "p1", "impression", "2024-01-01T08:00:00Z"),
               (f"{u}b", u, "ad_big", "ad_impression", "2024-01-01T08:01:00Z")]
    for i in range(3):
        u = f"v{i}"
        ev += [(f"{u}a", u, "p1", "impression", "2024-01-01T09:00:00Z"),
               (f"{u}b", u, "ad_small", "ad_impression", "2024-01-01T09:01:00Z"),
               (f"{u}c", u, "p1", "click", "2024-01-01T09:02:00Z")]
    for u in ("w0", "w1"):
        ev += [(f"{u}a", u, "p2", "impression", "2024-01-15T10:00:00Z")]
    ev += [("nca", "nc", "p1", "impression", "2024-01-01T11:00:00Z"),
           ("ncb", "nc", "p1", "like", "2024-01-01T11:01:00Z"),
           ("ncc", "nc", "ad_nc", "ad_impression", "2024-01-01T11:02:00Z"),
           ("ncd", "nc", "p2", "impression", "2024-01-20T12:00:00Z")]
    store.ingest(pd.DataFrame(ev, columns=["event_id", "user_id", "item_id", "kind", "ts"]))
    store.upsert_items(pd.DataFrame({"item_id": ["p1", "p2", "ad_big", "ad_small", "ad_nc"],
                                     "kind": ["post", "post", "ad", "ad", "ad"],
                                     "campaign_id": [None, None, "big", "small", "nc_only"]}))
    store.upsert_users(pd.DataFrame({"user_id": ["v0", "v1", "nc"],
                                     "consent_analytics": [None, True, False]}))
    return store
