"""New posts join the live catalogue without an engine rebuild: a post created through the
API reaches an eligible user's feed within 5 s, and never a feed at an earlier ``now``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from feedwise.feed.catalog import Catalog
from feedwise.feed.types import FeedRequest
from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.server import deps
from feedwise.server.app import create_app
from feedwise.server.auth import create_key
from feedwise.server.settings import Settings
from feedwise.store import EventStore

NOW = datetime.now(UTC).replace(microsecond=0)
N_USERS, N_ITEMS = 80, 90


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [f"i{k}" for k in range(N_ITEMS)], "kind": "post",
        "author_id": [f"a{k % 7}" for k in range(N_ITEMS)],
        "created_at": [NOW - timedelta(hours=2 * k + 1) for k in range(N_ITEMS)],
        "title": [f"post {k}" for k in range(N_ITEMS)],
        "tags": [[f"t{k % 3}"] for k in range(N_ITEMS)]})


def test_catalog_append_matches_a_rebuild_and_refuses_what_needs_one() -> None:
    items = _items()
    cat = Catalog.from_frame(items)
    new = pd.DataFrame({"item_id": ["n1", "n2"], "kind": "post", "author_id": ["a3", "zz"],
                        "created_at": [NOW, NOW - timedelta(days=30)], "title": ["x", "y"],
                        "tags": [["t1"], ["t0", "t2"]]})
    assert cat.append(items.iloc[:1]) is None  # a replaced post: rebuild
    assert cat.append(new.assign(item_id="n3", tags=[["brand-new"]] * 2)) is None  # new tag
    assert cat.n == N_ITEMS
    idx = cat.append(new)
    assert idx.tolist() == [N_ITEMS, N_ITEMS + 1] and cat.n == N_ITEMS + 2
    ref = Catalog.from_frame(pd.concat([items, new], ignore_index=True))
    for k in range(cat.n):  # the same post, author, time, tags and author index
        j = ref.index[cat.item_ids[k]]
        assert cat.authors[cat.author[k]] == ref.authors[ref.author[j]]
        assert cat.created_s[k] == ref.created_s[j]
        assert sorted(cat.tags[k].indices) == sorted(ref.tags[j].indices)
        np.testing.assert_allclose(cat.tag_rows(np.array([k])), ref.tag_rows(np.array([j])))
    for a, code in cat.author_index.items():  # newest first per author
        posts = cat.by_author[cat.author_start[code]:cat.author_start[code + 1]]
        assert {str(p) for p in cat.item_ids[posts]} == set(
            ref.item_ids[ref.by_author[ref.author_start[ref.author_index[a]]:
                                       ref.author_start[ref.author_index[a] + 1]]])
        assert np.all(np.diff(cat.created_s[posts]) <= 0)


def test_posts_appended_one_at_a_time_past_the_spare_room_equal_a_rebuild() -> None:
    """Appends write into each array's spare rows (no copy of the catalogue per post) until
    the room runs out; arrays a reader took before never change, titles never alias ids."""
    items = _items()
    cat = Catalog.from_frame(items)
    held = {k: getattr(cat, k).copy() for k in ("item_ids", "titles", "created_s", "author",
                                                 "popularity", "topic", "dense_tags")}
    views = {k: getattr(cat, k) for k in held}
    room = len(cat.item_ids.base)
    assert room > N_ITEMS
    n_new = room - N_ITEMS + 40  # past the first buffer's end
    new = pd.DataFrame({"item_id": [f"n{k}" for k in range(n_new)], "kind": "post",
                        "author_id": [f"a{k % 9}" for k in range(n_new)],
                        "created_at": [NOW - timedelta(minutes=k) for k in range(n_new)],
                        "title": [f"new {k}" for k in range(n_new)],
                        "tags": [[f"t{k % 3}"] for k in range(n_new)]})
    bases = set()
    for k in range(n_new):
        assert cat.append(new.iloc[k:k + 1]).tolist() == [N_ITEMS + k]
        bases.add(id(cat.item_ids.base))
    assert len(bases) == 2  # in place, then one move to a bigger buffer
    for k, v in views.items():
        assert np.array_equal(v, held[k])  # what a reader held is unchanged
    ref = Catalog.from_frame(pd.concat([items, new], ignore_index=True))
    assert cat.n == ref.n and list(cat.item_ids) == list(ref.item_ids)
    assert list(cat.titles) == list(ref.titles) and cat.index == ref.index
    for k in ("created_s", "popularity", "log_popularity", "topic", "dense_tags"):
        assert np.array_equal(getattr(cat, k), getattr(ref, k)), k
        assert len(getattr(cat, k)) == cat.n
    assert list(cat.authors[cat.author]) == list(ref.authors[ref.author])


def test_appended_posts_are_merged_into_the_author_order_as_a_full_sort_would() -> None:
    from feedwise.feed.catalog import _merge_by_author

    rng = np.random.default_rng(0)
    for _ in range(500):  # ties in time, new authors, authors without posts
        n0, k = int(rng.integers(10, 60)), int(rng.integers(1, 4))
        known = int(rng.integers(1, 8))
        n_authors = known + int(rng.integers(0, 3))
        author = np.concatenate([rng.integers(0, known, n0), rng.integers(0, n_authors, k)])
        created = rng.integers(0, 10, n0 + k).astype(float)
        old = np.lexsort((-created[:n0], author[:n0]))
        start = np.searchsorted(author[:n0][old], np.arange(known + 1))
        order, first = _merge_by_author(old, start, author, created, n0, n_authors)
        want = np.lexsort((-created, author))
        assert np.array_equal(order, want)
        assert np.array_equal(first, np.searchsorted(author[want], np.arange(n_authors + 1)))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("fresh_posts")
    db = root / "db.duckdb"
    rng = np.random.default_rng(1)
    rows = [{"event_id": f"e{u}-{j}", "user_id": f"u{u}", "item_id": f"i{i}", "kind": "click",
             "ts": NOW - timedelta(days=float(rng.uniform(1, 20)))}
            for u in range(N_USERS)
            for j, i in enumerate(rng.choice(range(u % 3, N_ITEMS, 3), 6, replace=False))]
    with EventStore(db) as store:
        store.upsert_items(_items())
        store.ingest(pd.DataFrame(rows))
        # a user following author a1 (and interested in nothing else)
        store.upsert_users([{"user_id": "fan", "attributes": {"follows": ["a1"]}}])
        data = store.interactions()
    reg = ModelRegistry(root / "registry")
    reg.promote(reg.register(get_model("itemknn", k=15).fit(data)).version)
    keys = root / "keys.json"
    read, _ = create_key(keys, ["read"])
    admin, _ = create_key(keys, ["admin"])
    # reload_interval_s=0: a catalogue change that needs a rebuild rebuilds at once, so an
    # unchanged engine below means the post was appended, not rebuilt in
    settings = Settings(db=str(db), registry=str(reg.root), keys_file=str(keys),
                        reload_interval_s=0, writer_linger_s=0.0)
    with TestClient(create_app(settings)) as c:
        yield c, {"Authorization": f"Bearer {read}"}, {"Authorization": f"Bearer {admin}"}


def test_api_post_reaches_followers_and_tag_users_within_5s_without_rebuild(service) -> None:  # noqa: ANN001
    c, rh, ah = service
    state = c.app.state.feedwise
    engine = state.served.policy
    seq, n0 = state.catalogue_seq, engine.catalog.n
    created = datetime.now(UTC)
    t0 = time.monotonic()
    settled: list[int] = []
    with pytest.MonkeyPatch.context() as mp:  # no heap walk per post
        mp.setattr(deps, "settle_heap", lambda: settled.append(1))
        r = c.put("/v1/items/hot-post", headers=ah, json={
            "author_id": "a1", "title": "hot", "tags": ["t0"],
            "created_at": created.isoformat()})
    assert r.status_code == 200, r.text
    assert settled == []
    # appended to the live engine: no new engine, no rebuild requested
    assert state.served.policy is engine and state.catalogue_seq == seq
    assert engine.catalog.n == n0 + 1 and state.posts_added == 1
    # in the pool at once; where a cold post ranks is the engagement model's business, so
    # the feed asked is the whole pool (n=100 > the 91 posts), as benchmarks/serve.py's probe
    seen: dict[str, float] = {}
    while time.monotonic() - t0 < 5.0 and len(seen) < 2:
        for user in {"fan", "u0"} - set(seen):  # follows a1; engaged with #t0 posts
            if b"hot-post" in c.get(f"/v1/users/{user}/feed?n=100", headers=rh).content:
                seen[user] = time.monotonic() - t0
    assert set(seen) == {"fan", "u0"}, f"not in every eligible feed within 5 s: {seen}"
    # replay safety: a feed at a time before the post's creation never holds it
    for user in ("fan", "u0", "u1"):
        for back in (timedelta(seconds=1), timedelta(hours=3)):
            feed = engine.compose(FeedRequest(user_id=user, n=200, now=created - back),
                                  record=False)
            assert "hot-post" not in {s.item_id for s in feed.slots}
    feed = engine.compose(FeedRequest(user_id="fan", n=100,
                                      now=created + timedelta(seconds=1)), record=False)
    assert "hot-post" in {s.item_id for s in feed.slots}


def test_replaced_post_or_new_tag_still_rebuilds(service) -> None:  # noqa: ANN001
    c, rh, ah = service
    state = c.app.state.feedwise
    engine = state.served.policy
    r = c.put("/v1/items/i4", headers=ah, json={"author_id": "a4", "title": "edited",
                                                "tags": ["t1"]})
    assert r.status_code == 200
    assert state.served.policy is not engine  # rebuilt (reload_interval_s=0: at once)
    engine = state.served.policy
    r = c.put("/v1/items/odd-post", headers=ah, json={
        "author_id": "a2", "tags": ["never-seen"], "created_at": NOW.isoformat()})
    assert r.status_code == 200
    assert state.served.policy is not engine and "odd-post" in state.served.policy.catalog.index
    body = json.loads(c.get("/v1/users/u2/feed?n=10", headers=rh).content)
    assert len(body["slots"]) == 10


def test_many_appended_posts_schedule_a_rebuild(service) -> None:  # noqa: ANN001
    c, _, ah = service
    state = c.app.state.feedwise
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(deps, "REBUILD_AFTER_POSTS", 1)
        mp.setattr(deps, "REBUILD_AFTER_FRACTION", 0.0)
        engine = state.served.policy
        for k in range(2):
            body = {"author_id": "a3", "tags": ["t2"], "created_at": NOW.isoformat()}
            assert c.put(f"/v1/items/burst-{k}", headers=ah, json=body).status_code == 200
        assert state.served.policy is engine and state._dirty  # past the threshold
        state.tick()  # the watcher's round: rebuilt from the store, with both posts
        assert state.served.policy is not engine and not state._dirty
        assert {"burst-0", "burst-1"} <= set(state.served.policy.catalog.index)
