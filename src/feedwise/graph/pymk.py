"""People you may know: graph proximity blended with taste similarity.

:class:`PeopleYouMayKnow` scores every pair (user, other user) with a logistic regression
on link-prediction features of the social graph and of what both engaged with:

* graph proximity: common neighbours, Adamic–Adar, resource allocation, Jaccard, paths
  of length three, resource allocation along paths of three, Katz (walks of up to
  :data:`KATZ_STEPS` steps), and both users' degrees (preferential attachment);
* taste: cosine similarity of the two users' engagement (items weighted by ``log1p`` of
  the interaction weight, IDF-scaled; and binary, IDF-scaled), the number of items both
  engaged with (co-engagement) and the same with rare items weighing more, the other
  user's taste against the user's friends' and the user's against the other's friends'.

The blend is learned at :meth:`fit` on edges held out from the graph it is given (a
fraction ``holdout`` of them at random, never a user's last edge): the features are
computed on the rest; for each user a held-out edge is paired with a non-edge drawn from
the user's candidate pool and the logistic regression learns which of the two is the edge
(``objective="pairwise"``); ``C`` is chosen among ``Cs`` by recall@10 on a second
carve. Nothing of a test set is seen: a benchmark that holds out its own test edges gives
:meth:`fit` only the training graph.

Suggestions exclude the user, everyone they already follow, befriend or trust, anyone
either of them blocked, and users in ``exclude`` (the callers pass those who withdrew
personalisation consent: their relations are not used, and they are not suggested).

The graph is undirected for proximity (a follow in either direction, a friendship, a
trust statement make two users neighbours).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from feedwise.errors import ConfigError, DataError, NotFittedError
from feedwise.interactions import Interactions
from feedwise.store import EventStore

#: The features, in the order of ``coef_``.
FEATURES = ("common_neighbours", "adamic_adar", "resource_allocation", "jaccard",
            "paths3", "degree_other", "degree_user", "taste", "co_engagement",
            "pagerank", "friends_taste", "katz", "resource_allocation3", "rare_shared",
            "taste_binary", "friends_taste_other")
#: The features used by default: chosen on validation edges carved from the Last.fm
#: training graph (10% of it, carves 1-3; benchmarks/graph.py ``--validate``): adding
#: Katz, paths-of-three resource allocation, shared rare items, binary taste and the
#: other user's friends' taste lifted recall@10 there; ``pagerank`` did not help once
#: Katz and paths of three were in.
DEFAULT_FEATURES = tuple(f for f in FEATURES if f != "pagerank")
#: Katz's damping as a share of ``1 / largest eigenvalue`` of the graph, and the length
#: of the longest walk it counts.
KATZ_SHARE, KATZ_STEPS = 0.5, 6
_RELATIONS = ("follow", "friend", "trust")


class PeopleYouMayKnow:
    """Friend suggestions from the social graph and shared taste (see the module).

    Args:
        holdout: Fraction of each user's edges held out at ``fit`` to learn the blend.
        negatives: Negative pairs per user with a held-out edge, drawn from the user's
            candidate pool (``pool``) among the non-edges.
        Cs: Inverse regularisation strengths tried; the best on an inner validation carve
            (recall@10) is kept.
        taste: Whether to use the engagement features at all (``False``: graph only).
        random_state: Seed of the carves and the negative draws.
        batch: Users scored per block (memory: ``batch x n_users`` floats per feature).
        pool: Candidates per user: the ``pool`` best by Adamic–Adar, by paths of length
            three and by taste (union); only they are ranked.
        quadratic: Add pairwise products of the features to the blend.
        features: Names of :data:`FEATURES` the blend reads (the others are zero).
        normalise: ``"none"``, ``"max"`` (default: also each feature over its row's
            largest, i.e. relative to the user's best candidate) or ``"rank"`` (also
            within-row percentiles). ``"max"`` was chosen on validation carves of the
            Last.fm training graph (benchmarks/graph.py ``--validate``: recall@10 higher
            on 4 of 5 carves, mean 1.26x Adamic–Adar against 1.22x without).
        objective: ``"pairwise"`` (which of a held-out edge and a non-edge of the same
            user is the edge: a logistic regression on feature differences, no intercept)
            or ``"pointwise"`` (edge or not).
        by_degree: Add each feature times the user's log degree (lets the blend lean on
            taste for users with few relations).
        hard: Share of the negatives taken as the pool's best by Adamic–Adar instead of at
            random.
        repeats: Carves of the graph the blend learns from (more pairs, same features).
        ranker: ``"logistic"`` (the linear blend above) or ``"gbdt"`` (gradient-boosted
            trees, sklearn's ``HistGradientBoostingClassifier``, pointwise on the pool's
            held-out edges and non-edges: lets the blend lean on taste where the graph has
            nothing to say). ``Cs``/``objective`` apply to the logistic ranker only.
        trees, learning_rate, leaves: The boosted trees' size (``"gbdt"`` only).
    """

    def __init__(self, *, holdout: float = 0.1, negatives: int = 40,
                 Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), taste: bool = True,
                 random_state: int = 0, batch: int = 256, pool: int = 100,
                 quadratic: bool = False, features: Sequence[str] | None = DEFAULT_FEATURES,
                 normalise: str = "max", objective: str = "pairwise",
                 by_degree: bool = False, hard: float = 0.0, repeats: int = 1,
                 ranker: str = "logistic", trees: int = 200,
                 learning_rate: float = 0.05, leaves: int = 31) -> None:
        self.holdout = holdout
        self.negatives = negatives
        self.Cs = tuple(Cs)
        self.taste = taste
        self.random_state = random_state
        self.batch = batch
        self.pool = pool
        self.quadratic = quadratic
        self.features = None if features is None else tuple(features)
        self.normalise = normalise
        self.objective = objective
        self.by_degree = by_degree
        self.hard = hard
        self.repeats = repeats
        self.ranker = ranker
        self.trees = trees
        self.learning_rate = learning_rate
        self.leaves = leaves

    # ------------------------------------------------------------------ fitting
    def fit(self, edges: pd.DataFrame, interactions: Interactions | None = None, *,
            blocks: pd.DataFrame | None = None) -> Self:
        """Learn the blend on ``edges`` (``src_id, dst_id`` and optionally ``kind``: the
        follow, friend and trust relations standing at training time, e.g.
        ``store.edges_as_of(t, exclude_objectors=True)``; ``block`` rows are taken as
        ``blocks``) and ``interactions`` (the training view).

        Raises:
            ConfigError: A hyperparameter is out of range.
            DataError: ``edges`` lacks ``src_id``/``dst_id``.
        """
        if not 0 < self.holdout < 1:
            raise ConfigError(f"holdout must be in (0, 1), not {self.holdout}")
        if self.negatives < 1 or not self.Cs or min(self.Cs) <= 0:
            raise ConfigError("negatives must be >= 1 and Cs positive numbers")
        if self.ranker not in ("logistic", "gbdt"):
            raise ConfigError(f"ranker must be 'logistic' or 'gbdt', not {self.ranker!r}")
        edges, blocks = _split_blocks(edges, blocks)
        users = pd.unique(pd.concat([edges["src_id"], edges["dst_id"]]).astype(str))
        if interactions is not None and self.taste:
            users = pd.unique(np.r_[users, interactions.user_ids.astype(str)])
        self.user_ids_ = np.asarray(users, dtype=object)
        self.user_index_ = {u: i for i, u in enumerate(self.user_ids_)}
        n = len(self.user_ids_)
        src = edges["src_id"].astype(str).map(self.user_index_).to_numpy(np.int64)
        dst = edges["dst_id"].astype(str).map(self.user_index_).to_numpy(np.int64)
        self.out_ = _csr(src, dst, n)  # directed: who already relates to whom
        self.blocked_ = _blocks(blocks, self.user_index_, n)
        self.taste_, self.seen_ = _taste(interactions, self.user_index_, n) \
            if (interactions is not None and self.taste) else (None, None)
        adj = _undirected(src, dst, n)
        rng = np.random.default_rng(self.random_state)

        # carve held-out edges of the given graph: positives of the blend; C is chosen by
        # fitting on a second carve (of the rest) and ranking the first carve's edges
        train_adj, held = _carve(adj, self.holdout, rng)
        inner_adj, inner_held = _carve(train_adj, self.holdout, rng)
        if self.ranker == "gbdt":
            return self._fit_gbdt(adj, train_adj, held, inner_adj, inner_held, rng)
        best, best_c = -1.0, self.Cs[0]
        if len(self.Cs) > 1:
            xv, yv = self._pairs(inner_adj, inner_held, rng)
            for c in self.Cs:
                coef, icpt, mu, sd = _logit(xv, yv, c, self.random_state,
                                            self.objective == "pairwise")
                r = self._recall(train_adj, held, coef, icpt, mu, sd, exclude=train_adj)
                if r > best:
                    best, best_c = r, c
        x, y = self._pairs(train_adj, held, rng)
        for _ in range(self.repeats - 1):  # more carves: more pairs to learn the blend from
            more_adj, more_held = _carve(adj, self.holdout, rng)
            xm, ym = self._pairs(more_adj, more_held, rng)
            x, y = np.vstack([x, xm]), np.concatenate([y, ym])
        self.C_ = float(best_c)
        self.validation_recall_ = float(best) if best >= 0 else None
        self.coef_, self.intercept_, self.mean_, self.scale_ = _logit(
            x, y, self.C_, self.random_state, self.objective == "pairwise")
        self.adj_ = adj
        return self

    def _fit_gbdt(self, adj: sp.csr_matrix, train_adj: sp.csr_matrix, held: sp.csr_matrix,
                  inner_adj: sp.csr_matrix, inner_held: sp.csr_matrix,
                  rng: np.random.Generator) -> Self:
        """Boosted trees on (held-out edge | non-edge of the pool) rows; the validation
        recall is that of trees learned on the inner carve, ranking the first carve."""
        xv, yv = self._pairs(inner_adj, inner_held, rng, pointwise=True)
        self._set_trees(_gbdt(xv, yv, self))
        self.validation_recall_ = self._recall(train_adj, held, None, 0.0, None, None,
                                               exclude=train_adj)
        x, y = self._pairs(train_adj, held, rng, pointwise=True)
        for _ in range(self.repeats - 1):
            more_adj, more_held = _carve(adj, self.holdout, rng)
            xm, ym = self._pairs(more_adj, more_held, rng, pointwise=True)
            x, y = np.vstack([x, xm]), np.concatenate([y, ym])
        self._set_trees(_gbdt(x, y, self))
        self.C_ = 0.0
        self.coef_ = np.zeros(x.shape[1])
        self.intercept_, self.mean_, self.scale_ = 0.0, np.zeros(x.shape[1]), np.ones(x.shape[1])
        self.adj_ = adj
        return self

    def _set_trees(self, model: Any) -> None:
        """Keep the fitted trees as plain arrays (``trees_``, saved to ``.npz``) and the
        sklearn model for fast scoring until then."""
        self._hgb = model
        nodes = [p[0].nodes for p in model._predictors]
        sizes = np.array([len(nd) for nd in nodes], np.int64)
        allnodes = np.concatenate(nodes)
        offset = np.repeat(np.r_[0, np.cumsum(sizes)[:-1]], sizes)
        self.trees_ = {
            "feature": allnodes["feature_idx"].astype(np.int64),
            "threshold": allnodes["num_threshold"].astype(np.float64),
            "left": allnodes["left"].astype(np.int64) + offset,
            "right": allnodes["right"].astype(np.int64) + offset,
            "leaf": allnodes["is_leaf"].astype(bool),
            "value": allnodes["value"].astype(np.float64),
            "roots": np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64),
            "baseline": np.atleast_1d(np.asarray(model._baseline_prediction,
                                                 np.float64).ravel()[:1]),
        }

    def _scores(self, g: np.ndarray, pool: np.ndarray) -> np.ndarray:
        """``(rows, users)`` scores of the transformed features ``g``; outside ``pool``
        ``-inf``."""
        if self.ranker != "gbdt":
            s = _score(g, self.coef_, self.intercept_, self.mean_, self.scale_)
            s[~pool] = -np.inf
            return s
        s = np.full(pool.shape, -np.inf)
        i, j = np.nonzero(pool)
        if len(i):
            x = g[:, i, j].T
            hgb = getattr(self, "_hgb", None)
            s[i, j] = (hgb.decision_function(x) if hgb is not None
                       else _tree_scores(self.trees_, x))
        return s

    def _pairs(self, adj: sp.csr_matrix, held: sp.csr_matrix, rng: np.random.Generator,
               pointwise: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Training pairs of the blend: held-out edges (1) and hard non-edges (0)."""
        rows = np.flatnonzero(np.diff(held.indptr))
        xs, ys = [], []
        for lo in range(0, len(rows), self.batch):
            b = rows[lo:lo + self.batch]
            f = self._features(adj, b)
            pos = held[b].toarray() > 0
            excl = (adj[b].toarray() > 0)
            excl[np.arange(len(b)), b] = True
            pool = self._pool(f) & ~excl
            g = self._transform(f)
            for j in range(len(b)):
                p = np.flatnonzero(pos[j] & pool[j])
                cand = np.flatnonzero(pool[j] & ~pos[j])
                if len(cand) == 0 or len(p) == 0:
                    continue
                n_hard = int(round(self.hard * self.negatives))
                hard = cand[np.argsort(-f[1, j, cand], kind="stable")[:n_hard]]
                rest = np.setdiff1d(cand, hard)
                neg = np.r_[hard, rng.choice(rest, size=min(len(rest),
                                                        self.negatives - len(hard)),
                                             replace=False)].astype(np.int64)
                if self.objective == "pairwise" and not pointwise:  # which is the edge
                    pp = rng.choice(p, size=len(neg), replace=True)
                    d = g[:, j, pp].T - g[:, j, neg].T
                    xs += [d, -d]
                    ys += [np.ones(len(d)), np.zeros(len(d))]
                    continue
                xs.append(g[:, j, p].T)
                xs.append(g[:, j, neg].T)
                ys.append(np.ones(len(p)))
                ys.append(np.zeros(len(neg)))
        if not xs:
            raise DataError("people you may know: the graph has too few edges to learn "
                            "from (no user keeps an edge after the hold-out)")
        return np.vstack(xs), np.concatenate(ys)

    def _recall(self, adj: sp.csr_matrix, held: sp.csr_matrix, coef: np.ndarray | None,
                icpt: float, mu: np.ndarray | None, sd: np.ndarray | None, *,
                exclude: sp.csr_matrix,
                k: int = 10) -> float:
        rows = np.flatnonzero(np.diff(held.indptr))
        hits = []
        for lo in range(0, len(rows), self.batch):
            b = rows[lo:lo + self.batch]
            f = self._features(adj, b)
            g = self._transform(f)
            s = (self._scores(g, self._pool(f)) if coef is None
                 else _score(g, coef, icpt, mu, sd))
            s[~self._pool(f)] = -np.inf
            s[exclude[b].toarray() > 0] = -np.inf
            s[np.arange(len(b)), b] = -np.inf
            top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
            h = held[b].toarray() > 0
            got = np.take_along_axis(h, top, axis=1).sum(axis=1)
            hits.extend(got / np.minimum(h.sum(axis=1), k))
        return float(np.mean(hits)) if hits else 0.0

    def _pool(self, f: np.ndarray) -> np.ndarray:
        """The candidates of each row: the ``pool`` best by Adamic–Adar, by paths of
        length three and by taste (each only where positive)."""
        out = np.zeros(f.shape[1:], bool)
        k = min(self.pool, f.shape[2] - 1)
        for i in (1, 4, 7):
            x = f[i]
            top = np.argpartition(-x, k, axis=1)[:, :k]
            hit = np.zeros_like(out)
            np.put_along_axis(hit, top, np.take_along_axis(x, top, axis=1) > 0, axis=1)
            out |= hit
        return out

    # ------------------------------------------------------------------ features
    def _features(self, adj: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
        """``(len(FEATURES), len(rows), n_users)`` features of every pair (row, user) on
        the graph ``adj``."""
        n = adj.shape[0]
        deg = np.asarray(adj.sum(axis=1)).ravel()
        a = adj[rows]
        cn = (a @ adj).toarray()
        inv_log = np.where(deg > 1, 1.0 / np.log(np.maximum(deg, 2)), 0.0)
        aa = (a @ sp.diags(inv_log) @ adj).toarray()
        inv_deg = np.where(deg > 0, 1.0 / np.maximum(deg, 1), 0.0)
        a_inv = a @ sp.diags(inv_deg)
        ra = (a_inv @ adj).toarray()
        union = deg[rows][:, None] + deg[None, :] - cn
        jac = np.divide(cn, union, out=np.zeros_like(cn), where=union > 0)
        p3 = (sp.csr_matrix(cn) @ adj).toarray()
        f = np.zeros((len(FEATURES), len(rows), n), np.float64)
        f[0], f[1], f[2], f[3] = np.log1p(cn), aa, ra * 10, jac
        f[4] = np.log1p(p3)
        f[5] = np.log1p(deg)[None, :]
        f[6] = np.log1p(deg[rows])[:, None]
        want = set(FEATURES if self.features is None else self.features)
        e = np.zeros((len(rows), n))
        e[np.arange(len(rows)), rows] = 1.0
        if "pagerank" in want:  # personalised PageRank (restart 0.3, 8 steps of the walk)
            step = sp.diags(inv_deg) @ adj
            r = e.copy()
            for _ in range(8):
                r = 0.3 * e + 0.7 * (step.T @ r.T).T
            f[9] = np.log1p(1e4 * r)
        if "katz" in want:  # walks of every length up to KATZ_STEPS, damped by beta
            beta = KATZ_SHARE / self._eigenvalue(adj) if adj.nnz else 0.0
            walk, katz = e, np.zeros_like(e)
            for _ in range(KATZ_STEPS):
                walk = beta * (adj.T @ walk.T).T
                katz += walk
            f[11] = np.log1p(1e3 * katz)
        # resource allocation along paths of three (local-path RA)
        f[12] = 100 * ((sp.csr_matrix(ra) @ sp.diags(inv_deg)) @ adj).toarray()
        if self.taste_ is not None:
            t = self.taste_
            tt = (t[rows] @ t.T).toarray()
            f[7] = tt
            f[8] = np.log1p((self.seen_[rows] @ self.seen_.T).toarray())
            # taste of the other user against the user's neighbours' (mean cosine)
            nb = sp.diags(1.0 / np.maximum(deg[rows], 1)) @ a
            f[10] = ((nb @ t) @ t.T).toarray()
            # the user's taste against the other user's neighbours' (mean cosine)
            f[15] = (sp.csr_matrix(tt) @ (adj @ sp.diags(inv_deg))).toarray()
            seen = self.seen_
            df = np.asarray(seen.sum(axis=0)).ravel()
            # shared items, each weighted by 1 / log of how many engaged with it
            rare = np.where(df > 0, 1.0 / np.log(df + 1.5), 0.0)
            f[13] = (seen[rows] @ sp.diags(rare) @ seen.T).toarray()
            # cosine of the binary engagement, IDF-weighted
            b = seen @ sp.diags(np.log((1 + seen.shape[0]) / (1 + df)) + 1)
            norm = np.sqrt(np.asarray(b.multiply(b).sum(axis=1)).ravel())
            b = sp.diags(np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)) @ b
            f[14] = (b[rows] @ b.T).toarray()
        f[:, np.arange(len(rows)), rows] = 0.0  # a user is no candidate of their own
        if self.features is not None:
            f[[i for i, name in enumerate(FEATURES) if name not in self.features]] = 0.0
        return f

    def _eigenvalue(self, adj: sp.csr_matrix) -> float:
        """The largest eigenvalue of ``adj``, computed once per graph (the last one
        asked about is remembered: batches of one graph come in a row)."""
        key = (adj.shape, adj.nnz, hash(adj.indptr.tobytes()), hash(adj.indices.tobytes()))
        memo = getattr(self, "_lam", None)
        if memo is None or memo[0] != key:
            memo = self._lam = (key, _largest_eigenvalue(adj))
        return memo[1]

    def _transform(self, f: np.ndarray) -> np.ndarray:
        """What the blend reads of the raw features: as they are (``"none"``), divided by
        the row's largest value (``"max"``), or as within-row percentiles (``"rank"``),
        the last two followed by the raw ones; then pairwise products if ``quadratic``."""
        if self.normalise == "max":
            top = f.max(axis=2, keepdims=True)
            g = np.divide(f, top, out=np.zeros_like(f), where=top > 0)
            f = np.concatenate([g, f], axis=0)
        elif self.normalise == "rank":
            order = np.argsort(np.argsort(f, axis=2, kind="stable"), axis=2, kind="stable")
            f = np.concatenate([order / max(f.shape[2] - 1, 1), f], axis=0)
        if self.by_degree:  # each feature also times the user's log degree
            f = np.concatenate([f, f[:len(FEATURES)] * f[6][None]], axis=0)
        if self.quadratic:
            f = _quadratic(f)
        return f

    # ------------------------------------------------------------------ suggesting
    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("PeopleYouMayKnow is not fitted; call fit(edges, "
                                 "interactions) first")

    def suggest(self, user_ids: str | Iterable[str], n: int = 10, *,
                exclude: Iterable[str] = ()) -> pd.DataFrame:
        """The top ``n`` suggestions per user: ``user_id, suggested_id, rank, score,
        common, reason``. A user unknown to the graph and to the engagement gets none;
        ``exclude`` (stored ids) are never suggested, nor suggested to."""
        self._check()
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        gone = {str(u) for u in exclude}
        bad_cols = np.array([self.user_index_[u] for u in gone if u in self.user_index_],
                            np.int64)
        asked = [str(u) for u in user_ids]
        rows = np.array([self.user_index_[u] for u in asked
                         if u in self.user_index_ and u not in gone], np.int64)
        out: list[dict[str, Any]] = []
        for lo in range(0, len(rows), self.batch):
            b = rows[lo:lo + self.batch]
            f = self._features(self.adj_, b)
            s = self._scores(self._transform(f), self._pool(f))
            excl = (self.out_[b].toarray() > 0) | (self.blocked_[b].toarray() > 0)
            s[excl] = -np.inf
            s[np.arange(len(b)), b] = -np.inf
            if len(bad_cols):
                s[:, bad_cols] = -np.inf
            k = min(n, s.shape[1])
            top = np.argsort(-s, axis=1, kind="stable")[:, :k]
            for j, r in enumerate(b):
                nb = set(self.adj_[r].indices)
                rank = 0
                for c in top[j]:
                    if not np.isfinite(s[j, c]):
                        break
                    rank += 1
                    common = sorted(nb & set(self.adj_[c].indices))
                    out.append({"user_id": str(self.user_ids_[r]),
                                "suggested_id": str(self.user_ids_[c]), "rank": rank,
                                "score": float(s[j, c]), "common": len(common),
                                "reason": self._reason(r, c, common, f[7, j, c])})
        cols = ["user_id", "suggested_id", "rank", "score", "common", "reason"]
        return pd.DataFrame(out, columns=cols)

    def _reason(self, r: int, c: int, common: list[int], taste: float) -> str:
        if common:
            names = ", ".join(str(self.user_ids_[i]) for i in common[:3])
            more = f" and {len(common) - 3} more" if len(common) > 3 else ""
            word = "connection" if len(common) == 1 else "connections"
            return f"{len(common)} {word} in common ({names}{more})"
        if self.seen_ is not None:
            shared = int((self.seen_[r].multiply(self.seen_[c])).nnz)
            if shared:
                return f"you both engaged with {shared} of the same items"
        return "close to you in the network" if taste <= 0 else "similar taste"

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write ``model.npz`` and ``model.json`` into the folder ``path`` (no pickle)."""
        self._check()
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        arrays = {"coef": self.coef_, "mean": self.mean_, "scale": self.scale_,
                  "user_ids": self.user_ids_.astype(str)}
        if self.ranker == "gbdt":
            arrays |= {f"tree_{k}": v for k, v in self.trees_.items()}
        for name in ("adj", "out", "blocked", "taste", "seen"):
            m = getattr(self, f"{name}_")
            if m is None:
                continue
            m = m.tocsr()
            arrays |= {f"{name}_data": m.data, f"{name}_indices": m.indices,
                       f"{name}_indptr": m.indptr, f"{name}_shape": np.array(m.shape)}
        np.savez_compressed(p / "model.npz", **arrays)
        meta = {"class": "PeopleYouMayKnow", "features": list(FEATURES),
                "params": {"holdout": self.holdout, "negatives": self.negatives,
                           "Cs": list(self.Cs), "taste": self.taste,
                           "random_state": self.random_state, "batch": self.batch,
                           "pool": self.pool, "quadratic": self.quadratic,
                           "features": None if self.features is None
                           else list(self.features),
                           "normalise": self.normalise, "objective": self.objective,
                           "by_degree": self.by_degree, "hard": self.hard,
                           "repeats": self.repeats, "ranker": self.ranker,
                           "trees": self.trees, "learning_rate": self.learning_rate,
                           "leaves": self.leaves},
                "C": self.C_, "intercept": self.intercept_,
                "validation_recall": self.validation_recall_}
        (p / "model.json").write_text(json.dumps(meta, indent=2))
        return p

    @classmethod
    def load(cls, path: str | Path) -> PeopleYouMayKnow:
        p = Path(path)
        meta = json.loads((p / "model.json").read_text())
        if meta.get("class") != "PeopleYouMayKnow":
            raise DataError(f"{p}: not a PeopleYouMayKnow model")
        if meta.get("features") != list(FEATURES):
            raise DataError(f"{p}: saved with the features {meta.get('features')}, this "
                            f"version computes {list(FEATURES)}; fit the model again and "
                            "save it")
        m = cls(**meta["params"])
        with np.load(p / "model.npz", allow_pickle=False) as z:
            m.coef_, m.mean_, m.scale_ = z["coef"], z["mean"], z["scale"]
            m.user_ids_ = z["user_ids"].astype(object)
            if m.ranker == "gbdt":
                m.trees_ = {k[5:]: z[k] for k in z.files if k.startswith("tree_")}
            for name in ("adj", "out", "blocked", "taste", "seen"):
                if f"{name}_data" in z:
                    setattr(m, f"{name}_", sp.csr_matrix(
                        (z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]),
                        shape=tuple(z[f"{name}_shape"])))
                else:
                    setattr(m, f"{name}_", None)
        m.user_index_ = {u: i for i, u in enumerate(m.user_ids_)}
        m.C_, m.intercept_ = float(meta["C"]), float(meta["intercept"])
        m.validation_recall_ = meta.get("validation_recall")
        return m


# ---------------------------------------------------------------------- link predictors
def common_neighbours_scores(adj: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Common-neighbour counts of ``rows`` with every user (dense)."""
    return (adj[rows] @ adj).toarray().astype(np.float64)


def adamic_adar_scores(adj: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Adamic–Adar index of ``rows`` with every user (dense)."""
    deg = np.asarray(adj.sum(axis=1)).ravel()
    inv_log = np.where(deg > 1, 1.0 / np.log(np.maximum(deg, 2)), 0.0)
    return (adj[rows] @ sp.diags(inv_log) @ adj).toarray()


# ---------------------------------------------------------------------- helpers
def _split_blocks(edges: pd.DataFrame, blocks: pd.DataFrame | None
                  ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    for col in ("src_id", "dst_id"):
        if col not in edges.columns:
            raise DataError(f"edges need columns src_id and dst_id; have {list(edges.columns)}")
    if "kind" in edges.columns:
        b = edges[edges["kind"] == "block"]
        edges = edges[edges["kind"].isin(_RELATIONS)]
        if len(b):
            blocks = b if blocks is None else pd.concat([blocks, b])
    return edges, blocks


def _gbdt(x: np.ndarray, y: np.ndarray, m: PeopleYouMayKnow) -> Any:
    return HistGradientBoostingClassifier(
        max_iter=m.trees, learning_rate=m.learning_rate, max_leaf_nodes=m.leaves,
        min_samples_leaf=40, l2_regularization=1.0, early_stopping=False,
        random_state=m.random_state).fit(x, y)


def _tree_scores(trees: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The boosted trees' raw score (log-odds) of the rows of ``x``, from the saved
    arrays: every row walks every tree, one level per step."""
    node = np.broadcast_to(trees["roots"], (len(x), len(trees["roots"]))).copy()
    rows = np.arange(len(x))[:, None]
    while True:
        leaf = trees["leaf"][node]
        if leaf.all():
            break
        go_left = x[rows, trees["feature"][node]] <= trees["threshold"][node]
        nxt = np.where(go_left, trees["left"][node], trees["right"][node])
        node = np.where(leaf, node, nxt)
    return trees["value"][node].sum(axis=1) + float(trees["baseline"][0])


def _largest_eigenvalue(adj: sp.csr_matrix) -> float:
    """The largest eigenvalue of the (symmetric) adjacency ``adj`` (Katz's scale)."""
    if adj.shape[0] < 3:
        return float(max(np.abs(np.linalg.eigvalsh(adj.toarray())).max(), 1.0))
    try:
        start = np.full(adj.shape[0], 1.0 / np.sqrt(adj.shape[0]))  # same every call
        lam = float(eigsh(adj.astype(np.float64), k=1, which="LA", v0=start,
                          return_eigenvectors=False, tol=1e-6)[0])
    except Exception:  # no convergence: the largest degree bounds it from above
        lam = float(np.asarray(adj.sum(axis=1)).max())
    return max(lam, 1.0)


def _quadratic(f: np.ndarray) -> np.ndarray:
    """The features and their pairwise products (the blend standardises them)."""
    i, j = np.triu_indices(len(f))
    return np.concatenate([f, f[i] * f[j]], axis=0)


def _csr(src: np.ndarray, dst: np.ndarray, n: int) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    m.data[:] = 1.0
    return m


def _undirected(src: np.ndarray, dst: np.ndarray, n: int) -> sp.csr_matrix:
    ok = src != dst
    m = _csr(np.r_[src[ok], dst[ok]], np.r_[dst[ok], src[ok]], n)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _blocks(blocks: pd.DataFrame | None, index: dict[str, int], n: int) -> sp.csr_matrix:
    """Who may not be suggested to whom: a block in either direction."""
    if blocks is None or not len(blocks):
        return sp.csr_matrix((n, n))
    a = blocks["src_id"].astype(str).map(index)
    b = blocks["dst_id"].astype(str).map(index)
    ok = a.notna() & b.notna()
    return _undirected(a[ok].to_numpy(np.int64), b[ok].to_numpy(np.int64), n)


def _taste(data: Interactions, index: dict[str, int], n: int
           ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(L2-normalised IDF-weighted ``log1p`` engagement rows, binary engagement rows),
    users in ``index`` order."""
    x = data.matrix.tocsr().astype(np.float64)
    rows = np.array([index[str(u)] for u in data.user_ids], np.int64)
    x.data = np.log1p(np.maximum(x.data, 0))
    df = np.bincount(x.indices, minlength=x.shape[1])
    idf = np.log((1 + x.shape[0]) / (1 + df)) + 1
    x = x @ sp.diags(idf)
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.diags(np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)) @ x
    perm = sp.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))),
                         shape=(n, x.shape[0]))
    t = (perm @ x).tocsr()
    seen = t.copy()
    seen.data[:] = 1.0
    return t, seen


def _carve(adj: sp.csr_matrix, frac: float, rng: np.random.Generator
           ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out ``frac`` of the undirected edges (each edge once, both directions), never a
    user's last edge: (graph without them, held-out edges both ways)."""
    up = sp.triu(adj, k=1).tocoo()
    m = len(up.data)
    pick = rng.random(m) < frac
    deg = np.asarray(adj.sum(axis=1)).ravel().astype(np.int64)
    keep = np.ones(m, bool)
    order = rng.permutation(np.flatnonzero(pick))
    for e in order:  # keep every user with at least one edge
        a, b = up.row[e], up.col[e]
        if deg[a] > 1 and deg[b] > 1:
            keep[e] = False
            deg[a] -= 1
            deg[b] -= 1
    n = adj.shape[0]
    train = _undirected(up.row[keep], up.col[keep], n)
    held = _undirected(up.row[~keep], up.col[~keep], n)
    return train, held


def _logit(x: np.ndarray, y: np.ndarray, c: float, seed: int, pairwise: bool = False
           ) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Logistic regression on standardised ``x``: (coef, intercept, mean, scale). Pairwise
    (``x`` differences of two candidates): no centring, no intercept."""
    mu = np.zeros(x.shape[1]) if pairwise else x.mean(axis=0)
    sd = x.std(axis=0)
    sd[sd == 0] = 1.0
    lr = LogisticRegression(C=c, max_iter=1000, random_state=seed,
                            fit_intercept=not pairwise)
    lr.fit((x - mu) / sd, y)
    icpt = float(lr.intercept_[0]) if not pairwise else 0.0
    return lr.coef_.ravel().copy(), icpt, mu, sd


def _score(f: np.ndarray, coef: np.ndarray, icpt: float, mu: np.ndarray, sd: np.ndarray
           ) -> np.ndarray:
    w = coef / sd
    s = np.tensordot(w, f, axes=(0, 0))
    return s + (icpt - float(np.dot(w, mu)))


def suggest_from_store(store: EventStore, user_id: str, n: int = 10, *,
                       model: PeopleYouMayKnow | None = None,
                       until: datetime | None = None) -> tuple[pd.DataFrame, str | None]:
    """Suggestions for ``user_id`` (external id) from a store: ``(frame, note)``.

    Fits a :class:`PeopleYouMayKnow` on ``store.edges_as_of(until,
    exclude_objectors=True)`` and ``store.interactions(until=until)`` unless ``model`` is
    given. A user who withdrew personalisation consent gets none (``note`` says why), and
    such users are never suggested.
    """
    stored = store.user_key(user_id)
    objectors = store.opted_out_users()
    empty = pd.DataFrame(columns=["user_id", "suggested_id", "rank", "score", "common",
                                  "reason"])
    if stored in objectors:
        return empty, "personalisation consent withdrawn: no suggestions"
    if model is None:
        edges = store.edges_as_of(until, exclude_objectors=True)
        try:
            data = store.interactions(until=until)
        except DataError:  # no engagement yet: the graph alone
            data = None
        try:
            model = PeopleYouMayKnow().fit(edges, data)
        except DataError as e:
            return empty, str(e)
    if stored not in model.user_index_:
        return empty, "the user has no relations or engagement to suggest from"
    return model.suggest(stored, n, exclude=objectors), None
