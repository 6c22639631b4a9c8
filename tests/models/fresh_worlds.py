"""Tiny hand-made worlds for the Fresh and Auto tests: a feed of new posts and a static
catalogue."""

from __future__ import annotations

import numpy as np
import pandas as pd

from feedwise.interactions import Interactions

T0 = 1_700_000_000
HOUR = 3600.0


def feed_world(n_users: int = 60, n_authors: int = 10, days: int = 10, per_day: int = 3,
               seed: int = 0) -> tuple[Interactions, pd.DataFrame, pd.DataFrame]:
    """A feed: every author posts ``per_day`` posts a day; each user follows two authors and
    engages, within hours of posting, with most of their new posts (and one random new post
    a day). Nobody engages with a post older than a day and a half. Returns (interactions,
    posts, follow edges)."""
    rng = np.random.default_rng(seed)
    posts = []
    for d in range(days):
        for a in range(n_authors):
            for j in range(per_day):
                posts.append((f"p{d}_{a}_{j}", f"a{a}",
                              T0 + d * 24 * HOUR + rng.uniform(0, 20) * HOUR,
                              f"post {j} by author {a}", [f"topic{a % 5}"]))
    items = pd.DataFrame(posts, columns=["item_id", "author_id", "created", "title", "tags"])
    items["created_at"] = pd.to_datetime(items.pop("created"), unit="s", utc=True)
    fav = {u: rng.choice(n_authors, 2, replace=False) for u in range(n_users)}
    rows = []
    for d in range(days):
        today = items[items["item_id"].str.startswith(f"p{d}_")]
        born = today["created_at"].astype("int64").to_numpy() / 1e9
        for u in range(n_users):
            mine = today["author_id"].isin([f"a{a}" for a in fav[u]]).to_numpy()
            pick = np.flatnonzero(mine & (rng.random(len(today)) < 0.8))
            pick = np.r_[pick, rng.integers(len(today))]
            for i in pick:
                rows.append((f"u{u}", today["item_id"].iloc[i],
                             float(born[i] + rng.uniform(0.2, 16) * HOUR)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).drop_duplicates(
        ["user_id", "item_id"])
    data = Interactions.from_frame(df, weight=None, item_ids=items["item_id"].to_numpy())
    edges = pd.DataFrame([(f"u{u}", f"a{a}", "follow") for u in range(n_users)
                          for a in fav[u]], columns=["src_id", "dst_id", "kind"])
    return data, items, edges


def catalogue_world(n_users: int = 80, n_items: int = 40, seed: int = 0
                    ) -> tuple[Interactions, pd.DataFrame]:
    """A static catalogue: four taste groups over old items (all released before the log
    starts), engagements spread evenly over 60 days."""
    rng = np.random.default_rng(seed)
    block = n_items // 4
    rows = []
    for u in range(n_users):
        g = u % 4
        own = rng.choice(np.arange(g * block, (g + 1) * block), size=block - 2, replace=False)
        for i in np.r_[own, rng.choice(n_items, 2, replace=False)]:
            rows.append((f"u{u}", f"i{i}", float(T0 + rng.uniform(0, 60) * 24 * HOUR)))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).drop_duplicates(
        ["user_id", "item_id"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)],
                          "title": [f"film {i}" for i in range(n_items)],
                          "tags": [[f"genre{i // block}"] for i in range(n_items)],
                          "created_at": pd.to_datetime(T0 - 400 * 24 * HOUR, unit="s",
                                                       utc=True)})
    data = Interactions.from_frame(df, weight=None,
                                   item_ids=np.array([f"i{i}" for i in range(n_items)]))
    return data, items


def ndcg_at_10(model, split) -> float:  # noqa: ANN001 - any fitted Recommender, Split
    from feedwise.evaluation import metrics
    from feedwise.evaluation.evaluate import recommend_matrix

    seen, truth = split.train.matrix, split.test.matrix
    users = np.flatnonzero((np.diff(seen.indptr) > 0) & (np.diff(truth.indptr) > 0))
    recs = recommend_matrix(model, split.test.user_ids[users], 10, split.test.item_index)
    t = truth[users]
    return float(metrics.ndcg(metrics.hits_matrix(recs, t), metrics.n_relevant(t)).mean())
