"""Content's reasons: the batched "similar to" equals the per-post definition."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from feedwise.models import Content
from feedwise.testing import contract_data


def per_post(model: Content, history: sp.csr_matrix, items: np.ndarray) -> list[str]:
    """The definition, one post at a time: the tags it shares with the liked posts (most
    shared first), else the liked post whose vector is most similar (the first of equals),
    else the fallback."""
    liked = history.indices[history.indptr[0]:history.indptr[1]]
    counts = Counter(t for j in liked for t in model.item_tags(j))
    out = []
    for i in items:
        match = sorted((t for t in model.item_tags(i) if t in counts),
                       key=lambda t: (-counts[t], t))[:3]
        if match:
            out.append("matches your interests: " + ", ".join(match))
            continue
        sims = model._rows(liked) @ model._rows([i]).T
        sims = np.asarray(sims.toarray() if sp.issparse(sims) else sims).ravel()
        out.append(f"similar to {model.item_labels_[liked[int(np.argmax(sims))]]}"
                   if len(liked) and sims.max() > 0 else model.fallback_reason)
    return out


@pytest.mark.parametrize("dense", [False, True], ids=["tfidf", "dense vectors"])
def test_batched_reasons_equal_the_per_post_definition(dense: bool) -> None:
    rng = np.random.default_rng(3)
    n = 40
    # few tags (many posts share none with a user's likes) and titles of overlapping words
    words = [f"w{k}" for k in range(12)]
    items = pd.DataFrame({
        "item_id": [f"i{i}" for i in range(n)],
        "title": [" ".join(rng.choice(words, 3, replace=False)) for _ in range(n)],
        "tags": [[f"t{rng.integers(8)}"] if rng.random() < 0.5 else [] for _ in range(n)]})
    model = Content().fit(contract_data(n_items=n), items=items)
    if dense:
        model.vectors_ = model.vectors_.toarray().astype(np.float32)
    checked = similar = 0
    for u in [*(f"u{k}" for k in range(0, 60, 7)), "nobody"]:
        hist = model.history_matrix(None, [u])
        cols = rng.permutation(n)[:25]
        got = model._explain(hist, [cols])[0]
        assert got == per_post(model, hist, cols)
        checked += len(cols)
        similar += sum(r.startswith("similar to") for r in got)
    assert checked == 10 * 25 and similar >= 20  # the batched product was exercised
