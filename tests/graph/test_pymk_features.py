"""People you may know: the link-prediction features against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from feedwise.graph.pymk import FEATURES, KATZ_SHARE, KATZ_STEPS, PeopleYouMayKnow
from feedwise.interactions import Interactions

EDGES = [("a", "b"), ("a", "c"), ("b", "c"), ("c", "d"), ("d", "e"), ("b", "d"), ("e", "f")]
PLAYS = [("a", "x", 3.0), ("a", "y", 1.0), ("b", "x", 2.0), ("c", "z", 5.0),
         ("d", "x", 1.0), ("d", "z", 1.0), ("e", "y", 4.0), ("f", "z", 2.0),
         ("f", "w", 1.0)]


@pytest.fixture(scope="module")
def fitted() -> tuple[PeopleYouMayKnow, np.ndarray, np.ndarray]:
    edges = pd.DataFrame(EDGES, columns=["src_id", "dst_id"]).assign(kind="friend")
    plays = Interactions.from_frame(pd.DataFrame(PLAYS, columns=["user_id", "item_id", "w"]),
                                    weight="w")
    m = PeopleYouMayKnow(Cs=(1.0,), negatives=2, features=None).fit(edges, plays)
    rows = np.arange(len(m.user_ids_))
    f = m._features(m.adj_, rows)
    return m, f, m.adj_.toarray()


def _i(name: str) -> int:
    return FEATURES.index(name)



def test_katz_counts_damped_walks_up_to_the_longest(fitted):
    m, f, a = fitted
    beta = KATZ_SHARE / np.linalg.eigvalsh(a).max()
    walk, want = np.eye(len(a)), np.zeros_like(a)
    for _ in range(KATZ_STEPS):
        walk = beta * walk @ a
        want += walk
    want = np.log1p(1e3 * want)
    np.fill_diagonal(want, 0.0)
    np.testing.assert_allclose(f[_i("katz")], want, rtol=1e-3, atol=1e-6)
    # the truncated series is close to the closed form (I - beta A)^-1 - I
    exact = np.log1p(1e3 * (np.linalg.inv(np.eye(len(a)) - beta * a) - np.eye(len(a))))
    off = ~np.eye(len(a), dtype=bool)
    np.testing.assert_allclose(f[_i("katz")][off], exact[off], rtol=0.1)


def test_resource_allocation_along_paths_of_three(fitted):
    m, f, a = fitted
    deg = a.sum(axis=1)
    ix = m.user_index_
    u, v = ix["a"], ix["e"]
    # paths a-x-y-e: every x neighbour of a, y neighbour of x and of e
    want = sum(a[u, x] * a[x, y] * a[y, v] / (deg[x] * deg[y])
               for x in range(len(a)) for y in range(len(a)))
    assert want > 0
    assert f[_i("resource_allocation3"), u, v] == pytest.approx(100 * want)


def test_taste_features_by_hand(fitted):
    m, f, a = fitted
    ix = m.user_index_
    a_, d_, e_ = ix["a"], ix["d"], ix["e"]
    # shared items weighted by 1 / log(df + 1.5): a and d share x (engaged by a, b, d)
    assert f[_i("rare_shared"), a_, d_] == pytest.approx(1 / np.log(3 + 1.5))
    # binary IDF cosine: a {x, y}, d {x, z}; idf = log(7 / (1 + df)) + 1 over 6 users
    idf = {k: np.log(7 / (1 + df)) + 1 for k, df in {"x": 3, "y": 2, "z": 3}.items()}
    cos = idf["x"] ** 2 / (np.hypot(idf["x"], idf["y"]) * np.hypot(idf["x"], idf["z"]))
    assert f[_i("taste_binary"), a_, d_] == pytest.approx(cos)
    # the user's taste against the other user's friends: e's friends are d and f
    t = f[_i("taste")]
    assert f[_i("friends_taste_other"), a_, e_] == pytest.approx(
        (t[a_, d_] + t[a_, ix["f"]]) / 2)
    assert t[a_, d_] > 0 and f[_i("friends_taste"), a_, e_] == pytest.approx(
        (t[ix["b"], e_] + t[ix["c"], e_]) / 2)


def test_a_user_is_never_their_own_candidate_and_unused_features_are_zero(fitted):
    m, f, _ = fitted
    assert not f[:, np.arange(f.shape[1]), np.arange(f.shape[1])].any()
    m2 = PeopleYouMayKnow(Cs=(1.0,), negatives=2, features=("adamic_adar", "katz"))
    m2.fit(pd.DataFrame(EDGES, columns=["src_id", "dst_id"]))
    g = m2._features(m2.adj_, np.arange(3))
    used = [_i("adamic_adar"), _i("katz")]
    assert g[used].any() and not np.delete(g, used, axis=0).any()


def test_a_model_saved_with_other_features_is_refused(fitted, tmp_path):
    import json

    from feedwise.errors import DataError

    m, _, _ = fitted
    m.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["features"] = meta["features"][:11]  # as saved before Katz and the rest
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="fit the model again"):
        PeopleYouMayKnow.load(tmp_path / "m")
