"""Issue 20, item 10: ``recommend --all`` with ItemKNN on 1M items died with ``MemoryError``
(7.63 GiB for one 2048 x 1M block). Every catalogue-wide block of fit and recommend must fit
the memory budget (``FEEDWISE_MEMORY_BUDGET`` / ``model.memory_budget``), whatever the
catalogue size: neighbourhood models keep a sparse top-k and score through sparse
products; dense-scoring models take fewer users per block; EASE's dense solve fails fast
with a ConfigError naming its budget instead of a MemoryError.

Measured with tracemalloc (numpy and scipy report their buffers to it), never with timing.
The catalogue is modest (6,000 items) and the budget tiny (4 MiB), so the blocks of before
(2048 x 6000 similarities, 512 x 6000 scores: 50-300 MB) exceed it many times over.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models import EASE, GFCF, ItemKNN, RP3beta

MiB = 2**20
BUDGET = 4 * MiB
#: Allowance beyond the budget for what is not a working block: the learned state (a few
#: 10k similarities), the copies of the training matrix fit makes, ids, lists of results.
SLACK = 6 * MiB


def long_tail(n_users: int = 3000, n_items: int = 6000, n_events: int = 40_000,
              seed: int = 0) -> Interactions:
    """Users x items with long-tail popularity and activity (Zipf-like), every item in the
    catalogue (most with few events, some with none)."""
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    user_p = 1.0 / np.arange(1, n_users + 1) ** 0.6
    items = rng.choice(n_items, n_events, p=item_p / item_p.sum())
    users = rng.choice(n_users, n_events, p=user_p / user_p.sum())
    m = sp.csr_matrix((np.ones(n_events, np.float32), (users, items)),
                      shape=(n_users, n_items))
    m.data[:] = 1.0
    return Interactions(m, np.array([f"u{i}" for i in range(n_users)]),
                        np.array([f"i{i}" for i in range(n_items)]))


@pytest.fixture(scope="module")
def data() -> Interactions:
    return long_tail()


@pytest.fixture()
def tiny_budget(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("FEEDWISE_MEMORY_BUDGET", "4MiB")
    return BUDGET


def peak_of(fn):
    """``fn()``'s result and the peak traced bytes above what was allocated before it."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return out, peak


def recommend_all(model, users: list[str], n: int = 10) -> int:
    """``feedwise recommend --all``'s loop (chunks of 1024 users, results streamed out):
    how many lists came back."""
    count = 0
    for start in range(0, len(users), 1024):
        count += len(model.recommend(users[start:start + 1024], n))
    return count


@pytest.mark.parametrize("make", [lambda: ItemKNN(k=10), lambda: RP3beta(k=10)],
                         ids=["itemknn", "rp3beta"])
def test_neighbourhood_fit_stays_within_the_budget(make, data: Interactions,
                                                   tiny_budget: int) -> None:
    model, peak = peak_of(lambda: make().fit(data))
    assert peak <= tiny_budget + SLACK, f"fit peaked at {peak / MiB:.1f} MiB"
    state = model.sim_ if isinstance(model, ItemKNN) else model.weights_
    assert state.nnz <= data.n_items * 10  # a sparse top-k, never a dense item x item matrix


@pytest.mark.parametrize(("make", "n_users"), [(lambda: ItemKNN(k=10), 1100),
                                               (lambda: RP3beta(k=10), 500)],
                         ids=["itemknn", "rp3beta"])  # RP3beta's reasons cost more time
def test_neighbourhood_recommend_all_stays_within_the_budget(make, n_users: int,
                                                             data: Interactions,
                                                             tiny_budget: int) -> None:
    model = make().fit(data)
    users = list(data.user_ids[:n_users])  # the heaviest users (in CLI chunks of 1024)
    count, peak = peak_of(lambda: recommend_all(model, users))
    assert count == len(users)
    assert peak <= tiny_budget + SLACK, f"recommend --all peaked at {peak / MiB:.1f} MiB"
    assert model.uses_sparse_path()  # a dense 512 x 6000 block does not fit 4 MiB


def test_dense_scoring_model_takes_fewer_users_per_block(data: Interactions,
                                                         tiny_budget: int) -> None:
    model = GFCF(factors=8, linear=0.0, ideal=1.0).fit(data)
    users = list(data.user_ids[:600])
    count, peak = peak_of(lambda: recommend_all(model, users))
    assert count == len(users)
    assert peak <= tiny_budget + SLACK, f"recommend peaked at {peak / MiB:.1f} MiB"
    rows = model.batch_rows(512)
    assert 1 <= rows < 512
    assert rows * data.n_items * model.score_cell_bytes <= tiny_budget


def test_sparse_path_serves_what_the_dense_path_serves(data: Interactions) -> None:
    """Same similarities and the same lists (scores, reasons) as the dense path, up to the
    order of equal scores; exclusions, candidates and unknown users behave alike."""
    dense = ItemKNN(k=10).fit(data)
    sparse = ItemKNN(k=10)
    sparse.memory_budget = "4MiB"  # this model only (the environment sets every model's)
    sparse.fit(data)
    assert sparse.uses_sparse_path() and not dense.uses_sparse_path()
    sums = np.asarray(dense.sim_.sum(axis=1)).ravel(), np.asarray(sparse.sim_.sum(axis=1)).ravel()
    counts = np.diff(dense.sim_.indptr), np.diff(sparse.sim_.indptr)
    np.testing.assert_array_equal(counts[0], counts[1])
    # each item's top-10 values are the same (which of equal-valued neighbours is kept
    # may differ): compare the sorted values row by row
    for i in range(0, data.n_items, 97):
        a = np.sort(dense.sim_[i].data)
        b = np.sort(sparse.sim_[i].data)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(sums[0], sums[1], rtol=1e-5)
    users = [*data.user_ids[:200], "nobody"]
    ex = {str(u): [str(data.item_ids[0])] for u in users}
    for kwargs in ({}, {"exclude": ex}, {"candidates": [str(i) for i in data.item_ids[:50]]}):
        a = sparse.recommend(users, 10, **kwargs)
        b = sparse.recommend(users, 10, batch_size=7, **kwargs)
        assert [list(x.ids) for x in a] == [list(x.ids) for x in b]
        for x, u in zip(a, users, strict=True):
            assert len(x) == 10
            assert np.all(np.diff(x.scores) <= 0)
            np.testing.assert_allclose(dense.score(u, list(x.ids)), x.scores, rtol=1e-6)
            if "candidates" in kwargs:
                assert set(x.ids) <= set(kwargs["candidates"])
            if "exclude" in kwargs:
                assert str(data.item_ids[0]) not in set(x.ids)


def test_budget_is_parsed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedwise.models.memory import memory_budget, parse_bytes

    assert memory_budget() == 2**30
    monkeypatch.setenv("FEEDWISE_MEMORY_BUDGET", "512MiB")
    assert memory_budget() == 512 * MiB
    assert memory_budget("2G") == 2 * 10**9
    assert parse_bytes(1024) == 1024
    model = ItemKNN()
    model.memory_budget = "64MiB"
    assert model.budget() == 64 * MiB
    monkeypatch.setenv("FEEDWISE_MEMORY_BUDGET", "lots")
    with pytest.raises(ConfigError, match="FEEDWISE_MEMORY_BUDGET"):
        memory_budget()
    with pytest.raises(ConfigError):
        parse_bytes("-5MiB")


def test_ease_fails_fast_naming_its_budget(data: Interactions,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """EASE is dense by nature (a Gram matrix of modelled items squared): a solve that the
    machine cannot hold is refused before anything is allocated, naming max_memory_mb."""
    import feedwise.models.ease as ease

    monkeypatch.setattr(ease, "available_memory", lambda: 64 * MiB)
    model = EASE(min_support=1, max_memory_mb=1024)  # ~4,900 items modelled: ~290 MB
    with pytest.raises(ConfigError, match="max_memory_mb") as err:
        model.fit(data)
    assert "available" in str(err.value)
    # within what the machine has, the guard lets the solve through
    monkeypatch.setattr(ease, "available_memory", lambda: 64 * 2**30)
    EASE(min_support=1, max_memory_mb=16).fit(data)


def test_recommend_all_command_takes_a_budget(data: Interactions, tmp_path) -> None:
    """``feedwise recommend --all --memory-budget`` serves every user under the budget it is
    given (here the sparse path of a 6,000-item ItemKNN), and refuses a budget it cannot
    read with an error naming the option."""
    import json

    from typer.testing import CliRunner

    from feedwise.cli import app

    ItemKNN(k=10).fit(data).save(tmp_path / "knn")
    runner = CliRunner()
    res = runner.invoke(app, ["recommend", "--all", "-n", "3", "--model-path",
                              str(tmp_path / "knn"), "-f", "jsonl", "--memory-budget", "4MiB"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == data.n_users * 3
    assert len({x["user_id"] for x in lines}) == data.n_users
    res = runner.invoke(app, ["recommend", "--all", "--model-path", str(tmp_path / "knn"),
                              "--memory-budget", "plenty"])
    assert res.exit_code == 2
    assert "--memory-budget" in res.output
