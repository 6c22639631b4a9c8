"""Fresh's interest signal (tag shares), its request-time validation and one-sided liveness
(issue 18: impression AUC)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from fresh_worlds import T0, catalogue_world, feed_world

from feedwise.errors import ConfigError
from feedwise.evaluation import temporal_split
from feedwise.interactions import Interactions
from feedwise.models import Fresh, Recommender
from feedwise.models.fresh import INTEREST_PRIOR, _as_requests

HOUR = 3600.0


def _tiny() -> tuple[Interactions, pd.DataFrame]:
    """u0 engaged with 3 #run posts and 1 #cook post; u1 with 2 #cook posts; u2 with none.
    Posts r9, c9 (#run, #cook) and x9 (no tags) are new."""
    items = pd.DataFrame({
        "item_id": ["r1", "r2", "r3", "c1", "c2", "r9", "c9", "x9"],
        "tags": [["#run", "#fun"], ["#run"], ["#run"], ["#cook", "#fun"], ["#cook"],
                 ["#run"], ["#cook"], []],
        "created_at": pd.to_datetime([T0 + h * HOUR for h in (0, 1, 2, 3, 4, 50, 50, 50)],
                                     unit="s", utc=True)})
    rows = [("u0", "r1", 10), ("u0", "r2", 11), ("u0", "r3", 12), ("u0", "c1", 13),
            ("u1", "c1", 14), ("u1", "c2", 15), ("u2", "r1", 16)]
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    df["ts"] = T0 + df["ts"] * HOUR
    data = Interactions.from_frame(df, weight=None, item_ids=items["item_id"].to_numpy())
    return data, items


def test_interest_is_the_smoothed_mean_tag_share() -> None:
    data, items = _tiny()
    model = Fresh(weights={"interest": 1.0}, collaborative=None).fit(data, items=items)
    cols = {i: c for c, i in enumerate(model.item_ids_)}
    x = sp.csr_matrix(([1.0] * 4, ([0] * 4, [cols[i] for i in ("r1", "r2", "r3", "c1")])),
                      shape=(1, model.n_items))
    raw = model._interest(x)[0]
    # everyone's shares: 7 engagements; #run on 4 of them (r1 twice), #cook on 3 (c1
    # twice), #fun on 4 (r1 and c1 twice each)
    prior = {"#run": 4 / 7, "#cook": 3 / 7, "#fun": 4 / 7}
    share = {t: (n + INTEREST_PRIOR * prior[t]) / (4 + INTEREST_PRIOR)
             for t, n in (("#run", 3), ("#cook", 1), ("#fun", 2))}
    assert raw[cols["r9"]] == pytest.approx(share["#run"], rel=1e-5)
    assert raw[cols["c9"]] == pytest.approx(share["#cook"], rel=1e-5)
    assert raw[cols["r1"]] == pytest.approx((share["#run"] + share["#fun"]) / 2, rel=1e-5)
    assert np.isnan(raw[cols["x9"]])  # no tags: no interest score
    # served scores put the new post of the user's topic first
    s = model.score_row("u0")
    assert s[cols["r9"]] > s[cols["c9"]]
    s = model.score_row("u1")
    assert s[cols["c9"]] > s[cols["r9"]]  # u1 engages with #cook
    rec = model.recommend("u1", n=2)[0]
    assert rec.ids[0] == "c9" and rec.reasons[0] == "on a topic you engage with"


def test_interest_state_saves_and_loads(tmp_path: Path) -> None:
    data, items = _tiny()
    model = Fresh(weights={"interest": 1.0, "trending": 0.1},
                  collaborative=None).fit(data, items=items)
    path = model.save(tmp_path / "fresh")
    back = Recommender.load(path)
    assert (back.item_tags_ != model.item_tags_).nnz == 0
    np.testing.assert_allclose(back.tag_share_, model.tag_share_)
    np.testing.assert_allclose(back.score_row("u0"), model.score_row("u0"), rtol=1e-6)


def test_posts_created_after_the_cut_are_live() -> None:
    data, items = _tiny()
    model = Fresh(weights={"content": 1.0}, collaborative=None,
                  live_window_days=0.5).fit(data, items=items)
    live = dict(zip(model.item_ids_, model.live_, strict=True))
    # the cut is the newest engagement (T0 + 16 h): r9/c9 come 34 h later, still live;
    # r1 (16 h before the cut) is older than the half-day window
    assert live["r9"] and live["c9"] and not live["r1"] and live["c2"]


def test_as_requests_by_hand() -> None:
    # user 0 engages at 10, 10.5 and 13 h; user 1 at 20 h; item 2 is created at 12 h
    t = sp.csr_matrix(([10.0, 10.5, 13.0, 20.0], ([0, 0, 0, 1], [0, 1, 2, 0])),
                      shape=(3, 3)) * HOUR
    test = Interactions(sp.csr_matrix(t > 0, dtype=np.float32), np.array(["a", "b", "c"]),
                        np.array(["i0", "i1", "i2"]), last_ts=sp.csr_matrix(t))
    item_time = np.array([np.nan, 9.0, 12.0]) * HOUR
    truth, t_req = _as_requests(test, item_time, horizon=1.0 * HOUR)
    assert t_req[0] == 10 * HOUR and t_req[1] == 20 * HOUR and np.isinf(t_req[2])
    # user 0: i0 (unknown time counts as existing) and i1 within the hour; i2 later
    assert truth[0].indices.tolist() == [0, 1]
    assert truth[1].indices.tolist() == [0] and truth[2].nnz == 0
    truth, _ = _as_requests(test, item_time, horizon=5.0 * HOUR)
    # i2 was engaged within 5 h, but created after the request: not rankable then
    assert truth[0].indices.tolist() == [0, 1]


def test_request_time_validation_runs_and_bad_horizon_is_refused() -> None:
    data, items, edges = feed_world(n_users=40, days=8)
    split = temporal_split(data, at=T0 + 6 * 24 * HOUR)
    model = Fresh().fit(split.train, items=items, edges=edges)
    v = model.validation_
    assert v is not None and v["request_horizon_hours"] == pytest.approx(1.0)
    assert v["young_share"] >= 0.5 and v["chosen"] >= v["start"]
    # a static catalogue (old items) keeps the window protocol
    data_c, items_c = catalogue_world()
    v = Fresh().fit(data_c, items=items_c).validation_
    assert v["young_share"] == 0.0 and v["request_horizon_hours"] is None
    old = Fresh(request_horizon_days=None).fit(split.train, items=items, edges=edges)
    assert old.validation_["request_horizon_hours"] is None
    with pytest.raises(ConfigError, match="request_horizon_days"):
        Fresh(request_horizon_days=0).fit(split.train, items=items, edges=edges)
