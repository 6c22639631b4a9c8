"""The stored graph in the feed, the CLI and the service."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.evaluation import evaluate, random_split
from feedwise.feed.engine import FeedEngine
from feedwise.feed.social import NetworkSource, ResharedSource
from feedwise.feed.types import FeedRequest
from feedwise.models import Social
from feedwise.store import EventStore

runner = CliRunner()
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _feed_store() -> EventStore:
    s = EventStore(":memory:")
    posts = [{"item_id": f"p{a}{i}", "kind": "post", "author_id": f"auth{a}",
              "created_at": T0 - timedelta(hours=i + 1), "title": f"post {a}{i}", "tags": []}
             for a in range(4) for i in range(3)]
    s.upsert_items(pd.DataFrame(posts))
    s.upsert_users(pd.DataFrame({"user_id": ["me", "f1", "f2", "f3"]}))
    s.ingest(pd.DataFrame({"user_id": ["f1"], "item_id": ["p00"], "kind": ["like"],
                           "ts": [T0 - timedelta(minutes=30)]}))
    s.add_edges([{"src_id": "me", "dst_id": f, "kind": "follow", "ts": T0 - timedelta(days=5)}
                 for f in ("f1", "f2", "f3")]
                + [{"src_id": f, "dst_id": "auth1", "kind": "follow",
                    "ts": T0 - timedelta(days=3)} for f in ("f1", "f2", "f3")]
                # made after the request time: must not be used at T0
                + [{"src_id": f, "dst_id": "auth2", "kind": "follow",
                    "ts": T0 + timedelta(days=1)} for f in ("f1", "f2", "f3")])
    return s


def _network(engine: FeedEngine) -> NetworkSource:
    return next(s for s in engine.sources if isinstance(s, NetworkSource))


def test_network_source_reads_the_graph_as_of_the_engine_time_with_reasons():
    with _feed_store() as s:
        engine = FeedEngine.from_store(s, until=T0)
        ctx = engine.context(FeedRequest(user_id="me", n=5, now=T0))
        lst = _network(engine).candidates(ctx, 10)
        items = set(lst.ids if lst.ids is not None else
                    engine.catalog.item_ids[lst.index])
        assert items == {"p10", "p11"}  # auth1's two newest; auth2's follows came later
        assert set(lst.reasons) == {"followed by 3 of your friends"}
        feed = engine.compose(FeedRequest(user_id="me", n=12, now=T0), record=False)
        why = {sl.item_id: sl.reasons for sl in feed.slots}
        assert any("followed by 3 of your friends" in r for r in why.get("p10", ()))
        later = FeedEngine.from_store(s, until=T0 + timedelta(days=2))
        ctx = later.context(FeedRequest(user_id="me", n=5, now=T0 + timedelta(days=2)))
        lst = _network(later).candidates(ctx, 10)
        assert {later.catalog.item_ids[i][:2] for i in lst.index} == {"p1", "p2"}


def test_an_objectors_relations_do_not_reach_the_feed_and_erasure_forgets_them():
    with _feed_store() as s:
        s.upsert_users(pd.DataFrame({"user_id": ["f1", "f2"],
                                     "consent_personalization": [False, False]}))
        engine = FeedEngine.from_store(s, until=T0)
        ctx = engine.context(FeedRequest(user_id="me", n=5, now=T0))
        assert set(_network(engine).candidates(ctx, 10).reasons) == {
            "followed by f3, whom you follow"}
        assert engine.forget_user("f3")
        assert len(_network(engine).candidates(ctx, 10).index) == 0


def _share_store() -> EventStore:
    """me follows f1, f2, f3 and obj; f1 and f2 shared p00 an hour before T0, f3 shared p10
    five hours before, f1 shared p01 thirty hours before (outside the window) and p20 an
    hour after T0; obj (who will object) shared p30, and x (not followed) p31."""
    s = _feed_store()
    s.upsert_users(pd.DataFrame({"user_id": ["obj", "x"]}))
    s.add_edges([{"src_id": "me", "dst_id": "obj", "kind": "follow",
                  "ts": T0 - timedelta(days=5)}])
    h = timedelta(hours=1)
    rows = [("f1", "p00", T0 - h), ("f2", "p00", T0 - 2 * h), ("f3", "p10", T0 - 5 * h),
            ("f1", "p01", T0 - 30 * h), ("f1", "p20", T0 + h), ("obj", "p30", T0 - h),
            ("x", "p31", T0 - h)]
    s.ingest(pd.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                           "kind": "share", "ts": [r[2] for r in rows]}))
    return s


def _reshared(engine: FeedEngine) -> ResharedSource:
    return next(s for s in engine.sources if isinstance(s, ResharedSource))


def _listed(engine: FeedEngine, lst) -> list[str]:
    return [str(engine.catalog.item_ids[i]) for i in lst.index]


def test_reshared_source_proposes_what_followees_shared_before_now_with_reasons():
    with _share_store() as s:
        engine = FeedEngine.from_store(s, until=T0)
        ctx = engine.context(FeedRequest(user_id="me", n=5, now=T0))
        lst = _reshared(engine).candidates(ctx, 10)
        # p00 (two followees, recent) first, then p30 (one, 1 h ago), p10 (one, 5 h ago);
        # not p01 (outside the 24 h window), p20 (shared after now), p31 (shared by
        # someone me does not follow)
        assert _listed(engine, lst) == ["p00", "p30", "p10"]
        assert list(lst.reasons) == ["shared by 2 people you follow",
                                     "shared by obj, whom you follow",
                                     "shared by f3, whom you follow"]
        # score: how many and how recently (half-life 3 h)
        assert lst.scores[0] == pytest.approx(0.5 ** (1 / 3) + 0.5 ** (2 / 3))
        assert lst.scores[2] == pytest.approx(0.5 ** (5 / 3))
        # the ranking counts it too, and the slot says why
        feed = engine.compose(FeedRequest(user_id="me", n=12, now=T0), record=False)
        why = {sl.item_id: sl.reasons for sl in feed.slots}
        assert feed.slots[0].item_id == "p00"
        assert "shared by 2 people you follow" in why["p00"]
        # a later engine (the share of p20 loaded) serving a request at T0: still unused
        later = FeedEngine.from_store(s, until=T0 + timedelta(hours=6))
        lst = _reshared(later).candidates(later.context(
            FeedRequest(user_id="me", n=5, now=T0)), 10)
        assert "p20" not in _listed(later, lst)
        lst = _reshared(later).candidates(later.context(
            FeedRequest(user_id="me", n=5, now=T0 + timedelta(hours=6))), 10)
        assert "p20" in _listed(later, lst)


def test_reshared_source_leaves_out_objectors_and_forgets_users():
    with _share_store() as s:
        s.upsert_users(pd.DataFrame({"user_id": ["obj"], "consent_personalization": [False]}))
        engine = FeedEngine.from_store(s, until=T0)
        src = _reshared(engine)
        ctx = engine.context(FeedRequest(user_id="me", n=5, now=T0))
        assert _listed(engine, src.candidates(ctx, 10)) == ["p00", "p10"]
        # the objector gets no such candidates either (the source is personal)
        octx = engine.context(FeedRequest(user_id="obj", n=5, now=T0))
        assert not octx.consent_personalization
        assert engine.forget_user("f3")
        assert _listed(engine, src.candidates(ctx, 10)) == ["p00"]
        assert engine.forget_user("f1")
        lst = src.candidates(ctx, 10)
        assert list(lst.reasons) == ["shared by f2, whom you follow"]
        # the user's own shares are not proposed back to them
        f2 = engine.context(FeedRequest(user_id="f2", n=5, now=T0))
        assert len(src.candidates(f2, 10).index) == 0


def _lastfm_subset(shared_data, tmp_path, n_users: int = 250):
    folder = shared_data / "lastfm-hetrec2011-2k"
    plays = pd.read_csv(folder / "user_artists.dat", sep="\t", dtype=str)
    friends = pd.read_csv(folder / "user_friends.dat", sep="\t", dtype=str)
    keep = set(sorted(plays["userID"].unique(), key=int)[:n_users])
    plays = plays[plays["userID"].isin(keep)]
    friends = friends[friends["userID"].isin(keep) & friends["friendID"].isin(keep)]
    pf, ff = tmp_path / "plays.tsv", tmp_path / "friends.tsv"
    plays.to_csv(pf, sep="\t", index=False)
    friends.to_csv(ff, sep="\t", index=False)
    return pf, ff, plays, friends


def test_cli_evaluate_social_equals_the_python_path_and_beats_popularity(shared_data,
                                                                         tmp_path):
    pf, ff, plays, friends = _lastfm_subset(shared_data, tmp_path)
    db = str(tmp_path / "lf.duckdb")
    mapping = "user_id=userID,item_id=artistID,kind==click,value=weight,ts==2011-05-01"
    assert runner.invoke(app, ["ingest", str(pf), "--mapping", mapping, "--db", db]
                         ).exit_code == 0
    res = runner.invoke(app, ["ingest", "--edges", str(ff), "--mapping", "lastfm-friends",
                              "--db", db, "-f", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["accepted"] == len(friends)

    def cli(model: str) -> float:
        r = runner.invoke(app, ["evaluate", "--model", model, "--split", "random",
                                "--db", db, "-f", "json"])
        assert r.exit_code == 0, r.output
        rows = json.loads(r.stdout)
        return next(x["value"] for x in rows if x["metric"] == "ndcg")

    social, pop = cli("social"), cli("popularity")
    with EventStore(db, read_only=True) as s:
        data = s.interactions()
    edges = pd.DataFrame({"src": friends["userID"], "dst": friends["friendID"]})
    py = evaluate(Social(), random_split(data, seed=42), 10, fit_kwargs={"edges": edges})
    # the CLI prints 10 decimals (JSON)
    assert social == pytest.approx(py.set_index("metric").loc["ndcg", "value"], abs=1e-9)
    assert social > pop
    # without the stored graph the model has no friends: what the issue saw (0.0)
    bare = evaluate(Social(), random_split(data, seed=42), 10)
    assert bare.set_index("metric").loc["ndcg", "value"] < social


def test_cli_friends_and_the_service_routes(tmp_path):
    from fastapi.testclient import TestClient

    from feedwise.privacy.settings import PrivacySettings  # noqa: F401 (env defaults)
    from feedwise.server.app import create_app
    from feedwise.server.auth import create_key
    from feedwise.server.settings import Settings

    rng = np.random.default_rng(0)
    rows = [{"src_id": f"u{a}", "dst_id": f"u{b}", "kind": "friend"}
            for a in range(40) for b in range(a + 1, 40)
            if rng.random() < (0.4 if a % 3 == b % 3 else 0.02)]
    db = tmp_path / "g.duckdb"
    with EventStore(db) as s:
        s.add_edges(rows)
        s.ingest(pd.DataFrame({"user_id": [f"u{i}" for i in range(40)],
                               "item_id": [f"i{i % 3}" for i in range(40)],
                               "kind": "like", "ts": T0}))
    res = runner.invoke(app, ["friends", "u0", "-n", "3", "--db", str(db), "-f", "json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert len(got) == 3 and all(int(g["suggested_id"][1:]) % 3 == 0 for g in got)

    keys = tmp_path / "keys.json"
    ingest, _ = create_key(keys, ["ingest"])
    read, _ = create_key(keys, ["read"])
    settings = Settings(db=str(db), registry=str(tmp_path / "reg"), keys_file=str(keys),
                        reload_interval_s=0)
    with TestClient(create_app(settings)) as c:
        h = {"Authorization": f"Bearer {ingest}"}
        r = c.post("/v1/edges", headers=h, json={"edges": [
            {"src_id": "u0", "dst_id": got[0]["suggested_id"], "kind": "follow"},
            {"src_id": "u1", "dst_id": "u1", "kind": "follow"}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted"], body["rejected"]) == (1, 1)
        assert body["rejects"][0]["row"] == 2 and body["rejects"][0]["field"] == "dst_id"
        r = c.get("/v1/users/u0/suggested?n=3", headers={"Authorization": f"Bearer {read}"})
        assert r.status_code == 200, r.text
        ids = [x["user_id"] for x in r.json()["suggestions"]]
        assert len(ids) == 3 and got[0]["suggested_id"] not in ids  # now followed
        assert c.post("/v1/edges", headers={"Authorization": f"Bearer {read}"},
                      json={"edges": [{"src_id": "a", "dst_id": "b", "kind": "follow"}]}
                      ).status_code == 403
