"""Point-in-time features of the engagement model: every feature from the past of its row."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import ConfigError
from feedwise.ranking.features import FEATURE_NAMES, label_impressions
from feedwise.ranking.pointintime import (
    PointInTimeFeatures,
    fit_point_in_time,
    rolling_rec_scores,
    seconds,
    sums_before,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _base_tables(posts: pd.DataFrame, users: pd.DataFrame):
    from feedwise.feed.engine import FeedEngine

    e = FeedEngine(None, posts, users=users)
    return e.catalog, e.users


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small synthetic social world in a store file: (path, events, posts, users,
    edges); the store is closed (tests open it when they need it)."""
    from feedwise.datasets import synthetic_social
    from feedwise.store import EventStore

    w = synthetic_social(n_users=120, n_authors=15, n_posts=300, n_days=4, n_campaigns=2,
                         seed=3)
    path = str(tmp_path_factory.mktemp("pit") / "fw.duckdb")
    with EventStore(path) as store:
        w.load_into(store)
        return path, store.impression_log(), store.posts(), store.users(), store.edge_log()


def _features(events, posts, users, imps, edges=None):
    cat, usr = _base_tables(posts, users)
    X, keep = PointInTimeFeatures(cat, usr, events, edges).transform(imps)
    assert keep.all()
    return X


def test_sums_before_by_hand():
    key = np.array([1, 1, 1, 2, 2])
    t = np.array([10.0, 20.0, 20.0, 5.0, 30.0])
    w = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    q_key = np.array([1, 1, 1, 2, 3])
    q_t = np.array([10.0, 20.0, 25.0, 30.0, 99.0])
    assert sums_before(key, t, q_key, q_t, w).tolist() == [0.0, 1.0, 7.0, 8.0, 0.0]
    assert sums_before(key, t, q_key, q_t, w, inclusive=True).tolist() == [1, 7, 7, 24, 0]


def test_hand_made_log_gives_the_features_by_hand():
    posts = pd.DataFrame({"item_id": ["p1", "p2"], "kind": ["post", "post"],
                          "author_id": ["a", "b"],
                          "created_at": [T0 - timedelta(hours=3), T0 - timedelta(hours=1)],
                          "tags": [["x", "y"], ["x"]]})
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"],
                          "consent_personalization": [True, True, False],
                          "attributes": [json.dumps({"interests": ["x"]}), None, None]})

    def at(s):
        return T0 + timedelta(seconds=s)

    ev = pd.DataFrame([
        ("u2", "p1", "click", at(0)), ("u1", "p1", "click", at(1)),
        ("u1", "p2", "like", at(10)), ("u1", "ad1", "ad_impression", at(5)),
        ("u1", "ad2", "ad_impression", at(-4000)),  # outside the hour of ad exposure
        ("u1", "p1", "impression", at(20)), ("u3", "p1", "impression", at(20)),
        ("u3", "p1", "click", at(15)),
        ("u2", "p2", "dwell", at(20)),  # at the impression's time: not before it
        ("u2", "p2", "click", at(25)),  # after it
        ("u1", "p1", "like", at(21))],  # the label's own engagement
        columns=["user_id", "item_id", "kind", "ts"])
    imps = pd.DataFrame({"user_id": ["u1", "u3", "u1"], "item_id": ["p1", "p1", "p2"],
                         "ts": [at(20)] * 3, "position": [3, 0, 1]})
    X = _features(ev, posts, users, imps)
    u1p1, u3p1, u1p2 = X
    assert u1p1[COL["log_popularity"]] == pytest.approx(np.log1p(3))  # u2, u1, u3
    assert u1p2[COL["log_popularity"]] == pytest.approx(np.log1p(1))  # u1's like only
    # u1's click on a's two-tag post counts once per tag, as the serving profile counts it
    assert u1p1[COL["author_affinity"]] == pytest.approx(np.log1p(2))
    assert u1p2[COL["author_affinity"]] == pytest.approx(np.log1p(1))
    # interests of u1: declared x (1) + click p1 (x, y) + like p2 (x) = (x 3, y 1)
    assert u1p1[COL["tag_match"]] == pytest.approx((3 + 1) / np.sqrt(2) / np.sqrt(10), 1e-5)
    assert u1p2[COL["tag_match"]] == pytest.approx(3 / np.sqrt(10), 1e-5)
    assert u3p1[COL["tag_match"]] == 0 and u3p1[COL["author_affinity"]] == 0  # no consent
    assert u1p1[COL["ad_exposure"]] == pytest.approx(np.log1p(1))
    assert u1p1[COL["log_position"]] == pytest.approx(np.log(4))
    assert u1p1[COL["log_age_hours"]] == pytest.approx(np.log1p(3 + 20 / 3600), 1e-5)


def test_changing_or_deleting_later_events_leaves_earlier_features_unchanged(world):
    _, ev, posts, users, edges = world
    imps = label_impressions(ev[ev["kind"] != "ad_impression"])
    t = seconds(imps["ts"])
    cut = float(np.quantile(t, 0.6))
    early = imps[t < cut].reset_index(drop=True)
    late = imps[t >= cut + 3600].reset_index(drop=True)
    before = _features(ev, posts, users, early, edges)
    before_late = _features(ev, posts, users, late)

    # mutate everything at or after the cut: delete half, turn the rest into other kinds,
    # and add a burst of engagement by every user on every post right at the cut
    rng = np.random.default_rng(0)
    et = seconds(ev["ts"])
    after = et >= cut
    mutated = ev[~after | (rng.random(len(ev)) < 0.5)].copy()
    m_after = seconds(mutated["ts"]) >= cut
    flip = {"click": "hide", "like": "share", "dwell": "comment", "impression": "click",
            "ad_impression": "click", "hide": "like"}
    mutated.loc[m_after, "kind"] = mutated.loc[m_after, "kind"].map(flip).fillna("save")
    burst_ts = pd.Timestamp(cut, unit="s", tz="UTC")
    burst = pd.DataFrame([(u, p, k, burst_ts) for u in users["user_id"][:40]
                          for p in posts["item_id"][:60] for k in ("click", "like")],
                         columns=["user_id", "item_id", "kind", "ts"])
    mutated = pd.concat([mutated, burst], ignore_index=True)
    follow_all = pd.DataFrame([(u, a, "follow", burst_ts) for u in users["user_id"]
                               for a in posts["author_id"].unique()],
                              columns=["src_id", "dst_id", "kind", "ts"])
    more_edges = pd.concat([edges, follow_all], ignore_index=True)
    assert _features(mutated, posts, users, early, more_edges) == pytest.approx(before, abs=0)
    # the same mutation does move the features of impressions after the cut
    moved = _features(mutated, posts, users, late)
    for name in ("log_popularity", "author_affinity", "tag_match", "ad_exposure"):
        assert not np.allclose(moved[:, COL[name]], before_late[:, COL[name]]), name


def test_the_labels_own_engagement_never_enters_its_features(world):
    _, ev, posts, users, edges = world
    imps = label_impressions(ev[ev["kind"] != "ad_impression"])
    pos = imps[imps["engage"] == 1].sample(12, random_state=1).reset_index(drop=True)
    with_label = _features(ev, posts, users, pos)
    et = seconds(ev["ts"])
    for j, row in pos.iterrows():
        t = seconds(pd.Series([row["ts"]]))[0]
        own = ((ev["user_id"] == row["user_id"]) & (ev["item_id"] == row["item_id"])
               & (et >= t) & (et <= t + 1800) & (ev["kind"] != "impression")).to_numpy()
        assert own.any()  # the response that makes the label positive
        without = _features(ev[~own], posts, users, pos.iloc[[j]])
        assert without[0] == pytest.approx(with_label[j], abs=0)


def test_training_features_equal_what_the_engine_serves_at_that_moment(world):
    from feedwise.feed.engine import FeedEngine
    from feedwise.feed.predictors import ModelEngagement
    from feedwise.feed.types import FeedRequest
    from feedwise.store import EventStore

    path, ev, posts, users, edges = world
    imps = label_impressions(ev[ev["kind"] != "ad_impression"])
    t = seconds(imps["ts"])
    later = imps[t > np.quantile(t, 0.3)].reset_index(drop=True)
    aff = np.expm1(_features(ev, posts, users, later, edges)[:, COL["author_affinity"]])
    follow = np.abs(aff - np.round(aff)) > 1e-3  # a followed author's (non-integer) bonus
    engaged = (aff >= 1) & ~follow
    sample = pd.concat([later[follow].sample(2, random_state=0),
                        later[engaged].sample(2, random_state=0)], ignore_index=True)
    X = _features(ev, posts, users, sample, edges)
    for j, (_, row) in enumerate(sample.iterrows()):
        when = pd.Timestamp(row["ts"]).to_pydatetime()
        with EventStore(path, read_only=True) as store:
            engine = FeedEngine.from_store(store, None, until=when)
        ctx = engine.context(FeedRequest(str(row["user_id"]), n=1, now=when))
        idx = engine.catalog.lookup(np.array([row["item_id"]]))
        served = ModelEngagement(None, engine.catalog, engine.users, {},
                                 position=int(row["position"])).features(
            ctx, idx, np.zeros(1, np.float32))[0]
        keep = [i for n, i in COL.items() if n != "ad_exposure"]  # served from the ad state
        assert X[j, keep] == pytest.approx(served[keep], abs=1e-5)


def test_rolling_recommender_scores_come_from_the_latest_cut_before_each_row():
    ts = pd.to_datetime([T0 + timedelta(hours=h) for h in (0, 1, 2, 3, 4, 5)], utc=True)
    imps = pd.DataFrame({"user_id": ["u"] * 6, "item_id": [f"p{i}" for i in range(6)],
                         "ts": ts})
    cuts = seconds(pd.Series(ts[[1, 3]]))
    fitted = []

    def fit(cut):
        fitted.append(cut)
        return lambda users, items: np.full(len(users), cut)

    out = rolling_rec_scores(imps, list(cuts), fit)
    t = seconds(imps["ts"])
    assert np.isnan(out[0])  # before the first cut: no recommender that is clean for it
    assert out[1:].tolist() == [cuts[0], cuts[0], cuts[1], cuts[1], cuts[1]]
    assert (out[1:] <= t[1:]).all() and fitted == list(cuts)


def test_user_table_with_engagement_is_refused(world):
    from feedwise.feed.engine import FeedEngine
    from feedwise.store import EventStore

    path, ev, posts, users, edges = world
    with EventStore(path, read_only=True) as store:
        loaded = FeedEngine.from_store(store, None)  # profiles from every event: a leak
    with pytest.raises(ConfigError, match="engagement"):
        PointInTimeFeatures(loaded.catalog, loaded.users, ev)


def test_fit_point_in_time_is_calibrated_and_ranks_on_the_small_world(world, tmp_path):
    from feedwise.ranking.engagement import MultiObjectiveModel

    _, ev, posts, users, edges = world
    cat, usr = _base_tables(posts, users)
    f = PointInTimeFeatures(cat, usr, ev, edges)
    res = fit_point_in_time(f, objectives=("click", "hide"), Cs=(0.1, 1.0))
    p = res.parts
    assert p["start"] < p["train_from"] < p["validation_from"] < p["holdout_from"] < p["end"]
    click = res.report.set_index("objective").loc["click"]
    assert click["positives"] >= 50
    assert click["log_loss"] < click["log_loss_const"]
    assert click["auc"] > 0.75
    assert abs(click["mean_pred"] / click["rate"] - 1) < 0.35  # small world: loose
    assert res.settings["click"]["C"] in (0.1, 1.0)
    back = MultiObjectiveModel.load(res.model.save(tmp_path / "eng"))
    X = np.random.default_rng(0).normal(size=(5, len(FEATURE_NAMES))).astype(np.float32)
    assert back.predict(X)["click"] == pytest.approx(res.model.predict(X)["click"], rel=1e-5)
    with pytest.raises(ConfigError):
        fit_point_in_time(f, holdout=0.5, calibration=0.3, warmup=0.3)


def test_feed_train_engagement_prints_the_hold_out_figures_and_serves(world, tmp_path):
    from typer.testing import CliRunner

    from feedwise.cli import app

    res = CliRunner().invoke(app, [
        "feed", "u000001", "-n", "5", "--db", world[0], "--model", "popularity",
        "--model-path", str(tmp_path / "m"), "--train-engagement",
        "--now", "2025-01-10T12:00:00Z", "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["objective",
                                                                          "positives"])
    assert "point-in-time" in lines[head - 1]
    cols = lines[head].split()
    assert cols == ["objective", "positives", "rate", "base_rate", "mean_pred", "log_loss",
                    "log_loss_const", "ece", "ece_over_rate", "auc"]
    rows = {ln.split()[0]: dict(zip(cols[1:], map(float, ln.split()[1:]), strict=True))
            for ln in lines[head + 1:head + 9]}
    assert {"click", "like", "hide", "long_dwell"} <= set(rows)
    click = rows["click"]
    assert click["positives"] > 50 and click["log_loss"] < click["log_loss_const"]
    assert 0.5 < click["mean_pred"] / click["rate"] < 1.5
    assert len([ln for ln in lines if ln.startswith("{")]) == 5  # then the feed


def test_equal_count_ece_by_hand():
    from feedwise.ranking.engagement import expected_calibration_error

    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    # two equal-count bins: {0.1, 0.2} rate 0 vs 0.15; {0.3, 0.4} rate 1 vs 0.35
    assert expected_calibration_error(y, p, bins=2, strategy="quantile") == pytest.approx(
        (2 * 0.15 + 2 * 0.65) / 4)
    with pytest.raises(ConfigError):
        expected_calibration_error(y, p, strategy="kmeans")


class _UntilScorer:
    """A stand-in recommender whose score of every pair is the end (unix s) of the data it
    was fitted on, so each row shows which fit scored it."""

    fits: list = []

    def get_params(self):
        return {}

    def fit(self, data, **_):
        self.until_ = data.until.timestamp()
        self.item_index_ = {str(i): k for k, i in enumerate(data.item_ids)}
        self.last_event_ = float(data.last_ts.data.max()) if data.last_ts.nnz else 0.0
        _UntilScorer.fits.append((self.until_, self.last_event_))
        return self

    def item_columns(self, items):
        return np.arange(len(items))  # every item known

    def batch_rows(self, n):
        return n

    def _scores_for(self, users, history):
        return np.full((len(users), 10_000), self.until_), np.ones(len(users), bool)


def test_the_recommender_score_of_a_row_comes_from_a_fit_on_events_before_it(world):
    from feedwise.cli.feed import point_in_time_engagement
    from feedwise.ranking import pointintime
    from feedwise.store import EventStore

    seen = {}
    real = pointintime.PointInTimeFeatures.transform

    def spy(self, imps, rec_score=None):
        seen["t"], seen["rec"] = seconds(imps["ts"]), rec_score
        return real(self, imps, rec_score)

    _UntilScorer.fits = []
    pointintime.PointInTimeFeatures.transform = spy
    try:
        with EventStore(world[0], read_only=True) as store:
            point_in_time_engagement(store, _UntilScorer(), objectives=("click",), Cs=(1.0,))
    finally:
        pointintime.PointInTimeFeatures.transform = real
    assert len(_UntilScorer.fits) >= 5
    # each fit saw only events before its cut, and each row was scored by a fit whose data
    # ended at or before the row (the latest such cut)
    assert all(last < until for until, last in _UntilScorer.fits)
    cuts = np.array(sorted(u for u, _ in _UntilScorer.fits))
    rec, t = seen["rec"], seen["t"]
    assert (rec <= t + 1e-6).all()
    assert rec == pytest.approx(cuts[np.searchsorted(cuts, t + 1e-6, side="right") - 1],
                                abs=1e-3)
