"""`evaluate`: fit-free scoring of a fitted model on a split's test part, as a tidy table."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from feedwise.evaluation import metrics as M
from feedwise.evaluation.splits import Split
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList


class Ranker(Protocol):
    """What evaluation needs of a model; every :class:`~feedwise.models.base.Recommender`
    is one (typed structurally so that evaluation does not depend on the models)."""

    item_index_: dict[str, int]

    def fit(self, data: Interactions, **kwargs: Any) -> Any:
        """Learn from ``data`` (side data such as ``items=`` as keywords)."""
        ...

    def recommend(self, user_ids: Sequence[str], n: int = 10, *,
                  exclude: Mapping[str, Sequence[str]] | None = None, batch_size: int = 512
                  ) -> list[ItemList]:
        """Top-``n`` items per user, best first, seen items (and ``exclude``) left out."""
        ...


def recommend_matrix(model: Ranker, user_ids: Sequence[str], k: int,
                     item_index: dict[str, int] | None = None, batch_size: int = 512, *,
                     exclude: Mapping[str, Sequence[str]] | None = None) -> np.ndarray:
    """Recommended item columns (users x k, -1 padded).

    Columns are in ``item_index`` (the evaluation data's, default the model's own); items
    outside it (a model whose catalogue is wider than the split's) count as misses.
    ``exclude`` maps a user to items left out of their list.
    """
    index = item_index if item_index is not None else model.item_index_
    lists = model.recommend(list(user_ids), k, exclude=exclude, batch_size=batch_size)
    out = np.full((len(lists), k), -1, dtype=np.int64)
    for r, il in enumerate(lists):
        cols = [index.get(str(i), -1) for i in il.ids]
        out[r, :len(cols)] = cols
    return out


def evaluate(model: Ranker, split: Split, k: int = 10, *, fit: bool = True,
             metrics: Sequence[str] = ("precision", "recall", "map", "ndcg", "hit_rate", "mrr"),
             beyond: bool = True, fit_kwargs: Mapping[str, Any] | None = None,
             exclude_train: bool = False) -> pd.DataFrame:
    """Fit ``model`` on ``split.train`` (unless ``fit=False``; side data such as ``items=``
    in ``fit_kwargs``) and measure it on ``split.test``.

    Only users with at least one test item are scored; seen items are excluded. With
    ``exclude_train`` each user's items in ``split.train`` are left out too (for a model
    fitted on other data, such as an older version, that has not seen them all).

    Returns:
        A tidy DataFrame with columns ``model, metric, k, value`` plus timing rows
        ``fit_seconds`` and ``recommend_seconds``.
    """
    name = getattr(model, "name", type(model).__name__) or type(model).__name__
    t0 = time.perf_counter()
    if fit:
        model.fit(split.train, **(fit_kwargs or {}))
    fit_s = time.perf_counter() - t0
    test = split.test.matrix
    n_rel = M.n_relevant(test)
    users = np.flatnonzero(n_rel > 0)
    t1 = time.perf_counter()
    exclude = None
    if exclude_train:
        tr = split.train.matrix
        exclude = {str(u): split.train.item_ids[tr.indices[tr.indptr[r]:tr.indptr[r + 1]]]
                   .tolist() for u, r in zip(split.test.user_ids[users], users, strict=True)}
    recs = recommend_matrix(model, split.test.user_ids[users], k, split.test.item_index,
                            exclude=exclude)
    rec_s = time.perf_counter() - t1
    truth = test[users]
    hits = M.hits_matrix(recs, truth)
    rows = [(m, float(np.mean(M.ACCURACY[m](hits, n_rel[users])))) for m in metrics]
    if beyond:
        rows.append(("coverage", M.coverage(recs, split.train.n_items)))
        pop = np.asarray((split.train.matrix > 0).sum(axis=0)).ravel()
        rows.append(("novelty", M.novelty(recs, pop, split.train.n_users)))
        rows.append(("diversity", M.intra_list_diversity(recs[:500],
                                                         split.train.matrix.T.tocsr())))
    rows += [("fit_seconds", fit_s), ("recommend_seconds", rec_s), ("users", float(len(users)))]
    return pd.DataFrame([{"model": name, "metric": m, "k": k, "value": v} for m, v in rows])
