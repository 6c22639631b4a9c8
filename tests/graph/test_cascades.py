"""Reshare cascades: metrics against hand-computed values, early prediction, erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from feedwise.errors import DataError, NotFittedError
from feedwise.graph.cascades import (
    CascadeSizePredictor,
    SzaboHuberman,
    cascade_nodes,
    cascade_table,
    early_features,
    msle,
    spread_levels,
    structural_virality,
)
from feedwise.store import EventStore

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _shares(item: str, parents: dict[str, str | None], minutes: dict[str, float]
            ) -> pd.DataFrame:
    """Share events of one post: event id -> parent event id (None: the post)."""
    return pd.DataFrame({
        "event_id": list(parents), "user_id": [f"u-{e}" for e in parents],
        "item_id": item, "parent_id": [p if p is not None else item for p in parents.values()],
        "ts": [T0 + timedelta(minutes=minutes[e]) for e in parents]})


STAR = _shares("star", {"s1": None, "s2": None, "s3": None, "s4": None},
               {"s1": 10, "s2": 20, "s3": 30, "s4": 40})
CHAIN = _shares("chain", {"c1": None, "c2": "c1", "c3": "c2"}, {"c1": 5, "c2": 50, "c3": 200})
TREE = _shares("tree", {"t1": None, "t2": None, "t11": "t1", "t12": "t1", "t21": "t2",
                        "t22": "t2"},
               {"t1": 1, "t2": 2, "t11": 3, "t12": 4, "t21": 5, "t22": 6})


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    starts = {"star": T0, "chain": T0, "tree": T0}
    return cascade_table(pd.concat([STAR, CHAIN, TREE], ignore_index=True),
                         starts).set_index("item_id")


def test_star_by_hand(table: pd.DataFrame) -> None:
    r = table.loc["star"]
    # 5 nodes: 4 root-leaf pairs at 1, 6 leaf-leaf pairs at 2 -> 16 / 10
    assert (r["size"], r["depth"], r["max_breadth"]) == (4, 1, 4)
    assert r["structural_virality"] == pytest.approx(16 / 10)
    assert r["time_to_half_s"] == pytest.approx(20 * 60)  # the 2nd of 4 shares


def test_chain_by_hand(table: pd.DataFrame) -> None:
    r = table.loc["chain"]
    # a path of 4 nodes: distances 1,1,1,2,2,3 -> 10 / 6
    assert (r["size"], r["depth"], r["max_breadth"]) == (3, 3, 1)
    assert r["structural_virality"] == pytest.approx(10 / 6)
    assert r["time_to_half_s"] == pytest.approx(50 * 60)  # ceil(3/2) = 2nd share


def test_two_level_tree_by_hand(table: pd.DataFrame) -> None:
    r = table.loc["tree"]
    # root R, children A B, grandchildren a1 a2 (of A), b1 b2 (of B): 7 nodes, 21 pairs.
    # distances from R: 1+1+2*4 = 10; from A (to B, a1, a2, b1, b2): 2+1+1+3+3 = 10;
    # from B (to a1, a2, b1, b2): 3+3+1+1 = 8; a1: 2+4+4 = 10; a2: 4+4 = 8; b1: 2 -> 48
    assert (r["size"], r["depth"], r["max_breadth"]) == (6, 2, 4)
    assert r["structural_virality"] == pytest.approx(48 / 21)
    assert r["time_to_half_s"] == pytest.approx(3 * 60)  # the 3rd of 6 shares


def test_virality_matches_networkx_on_random_trees() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 5, 30):
        parents = {0: None} | {i: int(rng.integers(0, i)) for i in range(1, n)}
        g = nx.Graph([(c, p) for c, p in parents.items() if p is not None])
        ref = nx.average_shortest_path_length(g)
        assert structural_virality(parents) == pytest.approx(ref)
        shares = _shares("x", {f"e{i}": (None if p == 0 else f"e{p}")
                               for i, p in parents.items() if p is not None},
                         {f"e{i}": float(i) for i in range(1, n)})
        got = cascade_table(shares, {"x": T0}).loc[0, "structural_virality"]
        assert got == pytest.approx(ref)


def test_orphans_and_cycles_hang_from_the_root() -> None:
    df = pd.concat([_shares("p", {"a": None, "b": "gone"}, {"a": 1, "b": 2}),
                    _shares("q", {"x": "y", "y": "x"}, {"x": 1, "y": 2})], ignore_index=True)
    nodes = cascade_nodes(df).set_index("event_id")
    assert nodes.loc["b", "orphan"] and nodes.loc["b", "depth"] == 1
    assert nodes.loc[["x", "y"], "orphan"].all()
    t = cascade_table(df).set_index("item_id")
    assert t.loc["p", "orphans"] == 1 and t.loc["q", "depth"] == 1
    assert spread_levels(TREE, "tree") == [2, 4]
    with pytest.raises(DataError):
        cascade_nodes(df.drop(columns=["parent_id"]))


def test_horizon_sees_only_the_early_shares() -> None:
    early = cascade_table(CHAIN, {"chain": T0}, horizon_s=60 * 60).set_index("item_id")
    assert early.loc["chain", "size"] == 2 and early.loc["chain", "depth"] == 2


def _synthetic_cascades(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Posts of two kinds of author: the 'loud' authors' cascades keep growing after the
    first hour; everyone's first hour looks alike."""
    rng = np.random.default_rng(seed)
    rows, starts, authors = [], {}, {}
    for i in range(n):
        item, loud = f"p{i}", i % 4 == 0
        a = f"a{i % 8}"
        st = T0 + timedelta(hours=3 * i)
        starts[item], authors[item] = st, a
        k_early = int(rng.integers(1, 4))
        k_late = int(rng.poisson(25 if loud else 2))
        times = list(rng.uniform(1, 59, k_early)) + list(rng.uniform(61, 600, k_late))
        for j, m in enumerate(times):
            rows.append({"event_id": f"{item}-{j}", "user_id": f"u{j}", "item_id": item,
                         "parent_id": None, "ts": st + timedelta(minutes=float(m))})
    return pd.DataFrame(rows), pd.Series(starts), pd.Series(authors)


def test_early_prediction_learns_what_the_baseline_cannot(tmp_path) -> None:
    shares, starts, authors = _synthetic_cascades(240, 1)
    feats = early_features(shares, starts, authors, {f"a{i}": 10.0 for i in range(8)})
    final = cascade_table(shares, starts).set_index("item_id")["size"].reindex(feats.index)
    order = np.argsort(feats["start"].to_numpy())
    tr, te = order[:160], order[160:]
    model = CascadeSizePredictor(alphas=[1e-3, 1e-2, 0.1]).fit(feats.iloc[tr], final.iloc[tr])
    base = SzaboHuberman().fit(feats.iloc[tr], final.iloc[tr])
    m_err = msle(model.predict(feats.iloc[te]), final.iloc[te])
    b_err = msle(base.predict(feats.iloc[te]), final.iloc[te])
    assert m_err < 0.7 * b_err  # the author's history tells loud authors apart
    model.save(tmp_path / "size")
    again = CascadeSizePredictor.load(tmp_path / "size")
    assert np.allclose(again.predict(feats.iloc[te]), model.predict(feats.iloc[te]))
    assert not list(tmp_path.glob("*.pkl"))
    with pytest.raises(NotFittedError):
        CascadeSizePredictor().predict(feats)
    with pytest.raises(DataError):
        SzaboHuberman.load(tmp_path / "size")


def _event(eid: str, user: str, item: str, kind: str, minutes: float,
           parent: str | None = None) -> dict:
    return {"event_id": eid, "user_id": user, "item_id": item, "kind": kind,
            "ts": (T0 + timedelta(minutes=minutes)).isoformat(), "parent_id": parent}


def test_erasure_makes_parent_links_anonymous() -> None:
    store = EventStore(":memory:")
    store.add_events([
        _event("e1", "alice", "post1", "share", 1, "post1"),
        _event("e2", "bob", "post1", "share", 2, "e1"),
        _event("e3", "carol", "post1", "share", 3, "e1"),
        _event("e4", "dave", "post1", "share", 4, "e2"),
        _event("e5", "alice", "post1", "like", 5)])
    out = store.erase_user("alice")
    assert out["events.parent_id"] == 2
    ev = store.share_events().set_index("event_id")
    assert "e1" not in ev.index and "alice" not in set(ev["user_id"])
    p2, p3 = ev.loc["e2", "parent_id"], ev.loc["e3", "parent_id"]
    # the placeholder is random hex: it never names the erased event or user (a substring
    # test would flake, since hex digits can spell "e1")
    assert p2.startswith("erased:") and p2 == p3
    token = p2.removeprefix("erased:")
    assert len(token) == 32 and set(token) <= set("0123456789abcdef")
    assert ev.loc["e4", "parent_id"] == "e2"  # links between others are kept
    t = cascade_table(store.share_events()).set_index("item_id")
    assert t.loc["post1", "size"] == 3 and t.loc["post1", "orphans"] == 2
    assert t.loc["post1", "depth"] == 2  # e2 -> e4 still hangs together
    assert store.user_rows("alice")["events"] == []
