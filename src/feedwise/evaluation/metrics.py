"""Top-k ranking metrics, vectorised over users.

Inputs are a matrix of recommended item columns (users x k, ``-1`` pads short lists) and
the relevant items as a binary CSR matrix (users x items). Conventions follow Microsoft
Recommenders' python evaluation: precision divides by k, recall by the number of relevant
items, MAP@k averages precision at each hit divided by the number of relevant items, NDCG
uses binary gains with a log2 discount and the ideal DCG of min(|relevant|, k) hits. Users
without relevant items are skipped. An item repeated in a list is a hit only once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hits_matrix(recs: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Boolean users x k: whether each recommended column is relevant."""
    truth = sp.csr_matrix(truth)
    rows = np.repeat(np.arange(recs.shape[0]), recs.shape[1])
    cols = recs.ravel()
    ok = cols >= 0
    hits = np.zeros(recs.size, dtype=bool)
    hits[ok] = np.asarray(truth[rows[ok], cols[ok]]).ravel() > 0
    hits = hits.reshape(recs.shape)
    # an item repeated in a list is relevant once: only its first position is a hit
    order = np.argsort(recs, axis=1, kind="stable")
    srt = np.take_along_axis(recs, order, axis=1)
    repeat = np.zeros(recs.shape, dtype=bool)
    np.put_along_axis(repeat, order, np.pad(srt[:, 1:] == srt[:, :-1], ((0, 0), (1, 0))),
                      axis=1)
    return hits & ~repeat


def n_relevant(truth: sp.csr_matrix) -> np.ndarray:
    """Relevant items per row: stored values above 0, as :func:`hits_matrix` counts them."""
    return np.asarray((sp.csr_matrix(truth) > 0).sum(axis=1)).ravel()


def precision(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return hits.sum(axis=1) / hits.shape[1]


def recall(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return hits.sum(axis=1) / np.maximum(n_rel, 1)


def hit_rate(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return hits.any(axis=1).astype(float)


def mrr(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    first = np.argmax(hits, axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


def average_precision(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    ranks = np.arange(1, hits.shape[1] + 1)
    prec_at = np.cumsum(hits, axis=1) / ranks
    return (prec_at * hits).sum(axis=1) / np.maximum(n_rel, 1)


def ndcg(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * disc).sum(axis=1)
    ideal = np.cumsum(disc)[np.clip(np.minimum(n_rel, k) - 1, 0, k - 1)]
    return np.where(n_rel > 0, dcg / ideal, 0.0)


ACCURACY = {"precision": precision, "recall": recall, "map": average_precision, "ndcg": ndcg,
            "hit_rate": hit_rate, "mrr": mrr}


def coverage(recs: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    return len(np.unique(recs[recs >= 0])) / n_items if n_items else 0.0


def novelty(recs: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(p(i))`` of recommended items, p = share of users
    (an item nobody engaged with counts as engaged by one user)."""
    p = np.clip(np.maximum(item_popularity, 1) / max(n_users, 1), 0.0, 1.0)
    r = recs[recs >= 0]
    return float(np.mean(-np.log2(p[r]))) if r.size else 0.0


def intra_list_diversity(recs: np.ndarray, item_vectors: sp.csr_matrix | np.ndarray) -> float:
    """Mean pairwise cosine distance within each list (item vectors: one row per item)."""
    x = sp.csr_matrix(item_vectors, dtype=np.float64)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()) + 1e-12
    vals = []
    for row in recs:
        r = row[row >= 0]
        if len(r) < 2:
            continue
        v = x[r]
        sim = (v @ v.T).toarray() / np.outer(norms[r], norms[r])
        iu = np.triu_indices(len(r), 1)
        vals.append(float(np.mean(1.0 - sim[iu])))
    return float(np.mean(vals)) if vals else 0.0
