"""Creators and influence: author measures, follower growth, segment overlap, the influence
score against the synthetic world's planted influencers, and the synthetic graph itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.datasets import synthetic_social
from feedwise.errors import DataError, NotFittedError
from feedwise.graph.creators import (
    AUTHOR_COLUMNS,
    InfluenceModel,
    audience_overlap,
    author_table,
    fit_influence,
    partners,
    recall_at,
)
from feedwise.store import EventStore

T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return synthetic_social(n_users=800, n_authors=80, n_posts=1500, n_days=8, n_campaigns=0,
                            seed=1, cascades=True)


@pytest.fixture(scope="module")
def store(world):
    s = EventStore(":memory:")
    world.load_into(s)
    return s


def test_synthetic_graph_is_planted_and_leaves_the_world_alone(world) -> None:
    plain = synthetic_social(n_users=800, n_authors=80, n_posts=1500, n_days=8,
                             n_campaigns=0, seed=1)
    organic = world.events[world.events["surface"] != "following"].reset_index(drop=True)
    pd.testing.assert_frame_equal(organic.drop(columns=["event_id", "session_id", "text"]),
                                  plain.events.drop(columns=["event_id", "session_id",
                                                             "text"]),
                                  check_dtype=False)  # position: nullable with reshares
    assert list(plain.edges.columns) == ["src_id", "dst_id", "kind", "ts"]
    assert "influencers" not in plain.truth
    fol = world.edges[world.edges["kind"] == "follow"]
    follows = world.truth["follows"]
    to_authors = fol[fol["dst_id"].str.startswith("a") & (fol["ts"] < world.truth["start"])]
    assert len(to_authors) == int(follows.sum())  # the logger's follows, dated before
    assert (world.edges["kind"] == "unfollow").any()
    assert (fol["ts"] >= world.truth["start"]).any()  # growth during the window
    shares = world.events[world.events["surface"] == "following"]
    assert (shares["kind"] == "share").all() and shares["parent_id"].notna().all()
    assert shares["ts"].between(world.truth["start"], world.truth["end"]).all()
    ids = set(shares["event_id"]) | set(world.items["item_id"])
    assert shares["parent_id"].isin(ids).all()
    assert len(world.truth["influencers"]) == 8
    assert world.events["ts"].is_monotonic_increasing


def test_author_table_measures(world, store) -> None:
    start, end = world.truth["start"], world.truth["end"]
    t = author_table(store, start, end)
    assert list(t.columns) == list(AUTHOR_COLUMNS)
    assert t["author_id"].is_unique
    r = t.dropna(subset=["engagement_rate"])
    assert ((r["engagement_rate"] >= 0) & (r["engagement_rate"] <= r["engagements"])).all()
    # follower growth equals the follow edges landed during the window, less unfollows
    e = world.edges[(world.edges["ts"] >= start) & (world.edges["ts"] < end)]
    net = (e["kind"] == "follow").astype(int) - (e["kind"] == "unfollow").astype(int)
    by_author = net.groupby(e["dst_id"]).sum()
    got = t.set_index("author_id")["follower_growth"]
    common = by_author.index.intersection(got.index)
    assert len(common) > 10
    assert (got.reindex(common) == by_author.reindex(common)).all()
    assert t["reshares"].sum() > 0
    with pytest.raises(DataError):
        author_table(store, end, start)


def test_influence_score_finds_the_planted_influencers(world, store, tmp_path) -> None:
    model, last = fit_influence(store, world.truth["start"], world.truth["end"])
    score = last.set_index("author_id")["influence_score"]
    planted = world.truth["influencers"]
    assert recall_at(score, planted) >= 0.75
    # by followers alone (no influence measured) the planted set is not found
    assert recall_at(last.set_index("author_id")["followers"], planted) < 0.5
    model.save(tmp_path / "influence")
    again = InfluenceModel.load(tmp_path / "influence")
    assert np.allclose(again.score(last), model.score(last))
    with pytest.raises(NotFittedError):
        InfluenceModel().score(last)


def _ev(eid: str, user: str, item: str, kind: str, minutes: float) -> dict:
    return {"event_id": eid, "user_id": user, "item_id": item, "kind": kind,
            "ts": (T0 + timedelta(minutes=minutes)).isoformat()}


def test_audience_overlap_and_partners_by_hand() -> None:
    s = EventStore(":memory:")
    s.upsert_items(pd.DataFrame({"item_id": ["p1", "p2"], "kind": "post",
                                 "author_id": ["ann", "ben"], "created_at": T0}))
    rows = [_ev(f"i{u}", f"u{u}", "p1" if u < 6 else "p2", "impression", u) for u in range(10)]
    rows += [_ev(f"c{u}", f"u{u}", "p1" if u < 6 else "p2", "like", 20 + u) for u in range(10)]
    s.add_events(rows)
    seg = pd.Series({f"u{u}": ("fans" if u in (0, 1, 2, 6) else "other") for u in range(10)})
    ov = audience_overlap(s, T0, T0 + timedelta(days=1), "fans", segments=seg
                          ).set_index("author_id")
    assert ov.loc["ann", "audience"] == 6 and ov.loc["ann", "in_segment"] == 3
    assert ov.loc["ann", "segment_share"] == pytest.approx(0.5)
    assert ov.loc["ann", "segment_lift"] == pytest.approx(0.5 / 0.4)
    assert ov.loc["ben", "segment_share"] == pytest.approx(0.25)
    scored = pd.DataFrame({"author_id": ["ann", "ben"], "influence_score": [1.0, 3.0]})
    p = partners(scored, ov.reset_index(), k=4)
    assert list(p["author_id"]) == ["ben", "ann"]  # 0.75 expected reshares in segment > 0.5
    assert list(partners(scored, ov.reset_index(), k=5)["author_id"]) == ["ann"]
    with pytest.raises(DataError, match="unknown segment"):
        audience_overlap(s, T0, T0 + timedelta(days=1), "nobody", segments=seg)
    with pytest.raises(DataError, match="feedwise profiles"):
        audience_overlap(s, T0, T0 + timedelta(days=1), "fans")


def test_cli_and_report_sections(world, tmp_path) -> None:
    import json

    from typer.testing import CliRunner

    from feedwise.cli import app
    from feedwise.report.graph import graph_sections, render_graph_html

    db = tmp_path / "g.duckdb"
    with EventStore(db) as s:
        world.load_into(s)
        start, end = world.truth["start"], world.truth["end"]
        seg = pd.Series({u: ("S1" if i % 3 == 0 else "S2")
                         for i, u in enumerate(world.users["user_id"])})
        g = graph_sections(s, start, end, k=5, top_n=5, segments=seg)
        assert g["partner_segment"] == "S2" and len(g["creators"]) == 5
        assert (g["creators"]["segment_reshares"].diff().dropna() <= 1e-9).all()
        viral = g["viral_posts"]
        assert len(viral) == 5 and (viral["size"] >= 5).all()
        top = viral.iloc[0]
        assert sum(int(x) for x in top["spread"].split(" → ")) == top["size"]
        page = render_graph_html(g["creators"], viral, "S2", 5)
        assert "Creators to partner with for segment S2" in page and top["item_id"] in page
    runner = CliRunner()
    res = runner.invoke(app, ["creators", "--db", str(db), "--format", "json", "--top", "3",
                              "--k", "5"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3 and rows[0]["influence_score"] >= rows[-1]["influence_score"]
    res = runner.invoke(app, ["creators", "--db", str(db), "--cascades", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)[0]["size"] >= 10
    res = runner.invoke(app, ["creators", "--db", str(db), "--segment", "nope"])
    assert res.exit_code == 2 and "error:" in res.output
