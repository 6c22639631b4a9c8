"""The `Recommender` base class: the estimator contract every model follows.

Hyperparameters go in the constructor and nothing else; ``fit(data) -> self``; learned
state ends in ``_``; using a model before ``fit`` raises :class:`NotFittedError`.
A subclass implements ``_fit`` and ``_score_rows`` (and optionally ``_score_history`` for
fold-in of users unseen in training, ``_explain`` for reasons, ``_state``/``_set_state`` for
persistence). Everything else — batching, business filters, top-n, cold users, reasons,
save/load without pickle — lives here once. Models that score a user from the history row
alone subclass :class:`HistoryRecommender` and implement ``_score_matrix`` instead.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError, NotFittedError, NotFoundError
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList
from feedwise.models.memory import memory_budget, rows_within, split_by_cost

#: Per-user item ids: one iterable for every user, or a mapping user_id -> iterable.
PerUser = Iterable[str] | Mapping[str, Iterable[str]] | None
#: A user's recent events for fold-in: item ids, or item id -> weight.
History = Mapping[str, Sequence[str] | Mapping[str, float]] | None

FORMAT_VERSION = 1


class Recommender(ABC):
    """Base of every recommender.

    Subclasses set ``name`` (the registry key used by the CLI and ``load``).
    """

    name: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Recommender]]] = {}
    #: Reason shown for items scored without personal signal.
    fallback_reason: ClassVar[str] = "trending"
    #: Whether a user's scores come from their training row alone (item-item and factor
    #: models, content profiles): a user the model holds with an empty row (in the
    #: training window without a positive event of their own, e.g. every user a temporal
    #: split finds only after its cut) is then scored as an unknown user, the popular
    #: items, not the catalogue's order of scores that are all the same.
    scores_from_history: ClassVar[bool] = False
    #: Parameters added after models were first saved, with the value that reproduces the
    #: behaviour of before: a saved model without them was fitted that way (see ``load``).
    saved_before: ClassVar[dict[str, Any]] = {}
    #: Working bytes per (user, item) cell of a dense block of scores in ``recommend``: the
    #: float32 scores, the model's temporaries while computing them and the top-n selection
    #: (``argpartition``'s negated copy and int64 indices). ``recommend`` scores
    #: ``budget // (n_items * score_cell_bytes)`` users per block.
    score_cell_bytes: ClassVar[int] = 24
    #: Users per dense block that a model with a sparse scoring path must fit in the budget
    #: to keep the dense path (see :meth:`uses_sparse_path`).
    dense_batch: ClassVar[int] = 512
    #: Working bytes per stored score of the sparse scoring path (models that define it).
    sparse_entry_bytes: ClassVar[int] = 24
    #: This model's memory budget (bytes, or a size such as ``"512MiB"``); ``None``: the
    #: ``FEEDWISE_MEMORY_BUDGET`` environment variable, else 1 GiB (``feedwise.models.memory``).
    #: A runtime setting, not a hyperparameter: it is neither saved nor tuned.
    memory_budget: int | str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # only a class that names itself registers: a subclass inheriting its parent's
        # name (a test double, a variant) must not replace the parent under that name
        if cls.__dict__.get("name"):
            Recommender.registry[cls.name] = cls

    # ------------------------------------------------------------------ params
    def get_params(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def set_params(self, **params: Any) -> Self:
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ConfigError(f"{type(self).__name__} has no parameter {k!r}; "
                                  f"parameters are {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fit
    def fit(self, data: Interactions) -> Self:
        """Learn from ``data`` and return ``self``."""
        if not isinstance(data, Interactions):
            raise DataError(f"fit expects Interactions, got {type(data).__name__}")
        if data.nnz == 0:
            raise DataError("cannot fit on empty interactions")
        self._drop_caches()
        self._fit(data)
        self.user_ids_ = data.user_ids
        self.item_ids_ = data.item_ids
        self.user_index_ = dict(data.user_index)
        self.item_index_ = dict(data.item_index)
        self.seen_ = data.matrix
        self.negatives_ = (data.negatives if data.negatives is not None
                           else sp.csr_matrix(data.shape, dtype=np.float32))
        self.item_labels_ = (data.item_labels if data.item_labels is not None
                             else data.item_ids)
        self.popularity_ = np.asarray((data.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        return self

    @abstractmethod
    def _fit(self, data: Interactions) -> None:
        """Learn the model's own state from ``data``."""

    @abstractmethod
    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores (len(rows) x n_items) for training users at matrix ``rows``."""

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray | None:
        """Scores for users described only by a history matrix (fold-in), or ``None``.

        ``None`` means the model cannot fold in; the user gets the popularity fallback.
        """
        return None

    def _sparse_scores(self, batch: Sequence[str], history: History, hist: sp.csr_matrix
                       ) -> tuple[sp.csr_matrix, np.ndarray] | None:
        """Scores of a batch as a sparse matrix (an item not stored scores 0; every stored
        score is >= 0) and the mask of users scored personally, or ``None`` when the model
        has no sparse scoring path. ``hist`` is :meth:`history_matrix` of the batch."""
        return None

    def _sparse_cost(self, hist: sp.csr_matrix) -> np.ndarray | None:
        """Upper bound of each history row's stored scores in :meth:`_sparse_scores`, or
        ``None`` when the model has no sparse scoring path."""
        return None

    def budget(self) -> int:
        """The memory budget in bytes (see :attr:`memory_budget`)."""
        return memory_budget(self.memory_budget)

    def _score_cell_bytes(self) -> int:
        """Working bytes per cell of a dense score block (see :attr:`score_cell_bytes`)."""
        return self.score_cell_bytes

    def batch_rows(self, batch_size: int = 512) -> int:
        """Users ``recommend`` scores per dense block: at most ``batch_size``, and no more
        than the memory budget holds (``budget // (n_items * score_cell_bytes)``, at least
        one)."""
        self._check_fitted()
        return rows_within(self.budget(), self.n_items * self._score_cell_bytes(),
                           max(int(batch_size), 1))

    def uses_sparse_path(self) -> bool:
        """Whether ``recommend`` takes the sparse path: the model has one and a dense block
        of :attr:`dense_batch` users would not fit in the budget. Where it fits, the dense
        path serves (the results of before the budget existed, ties included). The choice
        depends on the model and the budget only, never on the request, so a user gets the
        same list alone or in a batch."""
        self._check_fitted()
        if self._sparse_cost(sp.csr_matrix((0, self.n_items), dtype=np.float32)) is None:
            return False
        return self.dense_batch * self.n_items * self._score_cell_bytes() > self.budget()

    def _static_scores(self) -> np.ndarray | None:
        """Scores that are the same for every user (e.g. popularity), or ``None``.

        A model that returns them is served from one cached ranking: ``recommend`` walks it
        past the excluded items instead of scoring and partitioning the catalogue per user.
        """
        return None

    def _static_order(self, static: np.ndarray) -> np.ndarray:
        cached = getattr(self, "_static_rank", None)
        if cached is None or cached[0] is not static:
            order = np.argsort(-static, kind="stable")
            cached = (static, order[np.isfinite(static[order])])
            self._static_rank = cached
        return cached[1]

    def _explain(self, history: sp.csr_matrix, cols: np.ndarray) -> list[list[str]]:
        """Reasons for items ``cols`` (one row of item columns per user): "because you
        liked ..." where :meth:`_explain_liked` names a liked item, else
        :attr:`fallback_reason`."""
        liked = self._explain_liked(history, cols)
        if liked is None:
            return [[self.fallback_reason] * len(c) for c in cols]
        return [self.liked_reasons(x) for x in liked]

    def _explain_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray]
                       ) -> list[np.ndarray] | None:
        """Per history row ``r``, the liked item (model column) that explains each of
        ``cols[r]`` (-1: none, the item gets :attr:`fallback_reason`); ``None`` for a
        model whose reasons name no liked item."""
        return None

    def liked_reasons(self, liked: np.ndarray) -> list[str]:
        """The reasons of items explained by the liked items ``liked`` (model columns, -1:
        :attr:`fallback_reason`), as :meth:`_explain` words them."""
        labels, fallback = self.item_labels_, self.fallback_reason
        return [f"because you liked {labels[j]}" if j >= 0 else fallback
                for j in np.asarray(liked).tolist()]

    # ------------------------------------------------------------------ column scoring
    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray | None:
        """Scores of the items at ``cols`` for the one history row ``history`` (1 x
        n_items), equal to the dense row's ``cols`` (:meth:`score_row` of that history),
        computed without a row over the catalogue; ``None`` when the model has no such
        path. Serving scores a few hundred pooled posts this way. Blends whose scores are
        normalised per user (:class:`~feedwise.models.hybrid.Hybrid`) also take
        ``state=``, the user's row of :meth:`_scores_and_state`."""
        return None

    def _scores_and_state(self, user_ids: Sequence[str], history: History
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`_scores_for` plus, per user, the row state :meth:`score_columns` needs
        (``None``: it needs none). Materialised lists keep it beside each user's list."""
        scores, personal = self._scores_for(user_ids, history)
        return scores, personal, None

    def variant(self, params: Mapping[str, Any]) -> Recommender | None:
        """This fitted model as if it had been fitted with ``params`` changed, when that can
        be derived without refitting, else ``None`` (blend calibration tries settings this
        way)."""
        return None

    # ------------------------------------------------------------------ state
    def _check_fitted(self) -> None:
        if not hasattr(self, "item_ids_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(data) first")

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_ids_)

    def knows_user(self, user_id: str) -> bool:
        self._check_fitted()
        return str(user_id) in self.user_index_

    def history_matrix(self, history: Mapping[str, Sequence[str] | Mapping[str, float]] | None,
                       user_ids: Sequence[str]) -> sp.csr_matrix:
        """Rows for ``user_ids``: their training row plus any given history (unknown items
        are ignored)."""
        rows, cols, vals = [], [], []
        for r, u in enumerate(user_ids):
            u = str(u)
            if u in self.user_index_:
                row = self.seen_[self.user_index_[u]]
                rows.extend([r] * row.nnz)
                cols.extend(row.indices.tolist())
                vals.extend(row.data.tolist())
            h = (history or {}).get(u)
            if h:
                pairs = h.items() if isinstance(h, Mapping) else ((i, 1.0) for i in h)
                for item, w in pairs:
                    c = self.item_index_.get(str(item))
                    if c is not None:
                        rows.append(r)
                        cols.append(c)
                        vals.append(float(w))
        m = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                          shape=(len(user_ids), self.n_items))
        m.sum_duplicates()
        return m

    # ------------------------------------------------------------------ serving
    def score(self, user_id: str, item_ids: Sequence[str], *, history: History = None
              ) -> np.ndarray:
        """Scores of ``item_ids`` for one user (NaN for items unknown to the model)."""
        s = self.score_row(user_id, history=history)
        cols = self.item_columns(item_ids)
        out = np.full(len(cols), np.nan)
        ok = cols >= 0
        out[ok] = s[cols[ok]]
        return out

    def score_row(self, user_id: str, *, history: History = None) -> np.ndarray:
        """Scores of every item for one user, indexed by item column (see
        :meth:`item_columns`); read-only, it may be shared."""
        self._check_fitted()
        static = self._static_scores()
        return static if static is not None else self._scores_for([str(user_id)], history)[0][0]

    def item_columns(self, item_ids: Sequence[str]) -> np.ndarray:
        """Column of each of ``item_ids`` in the model's item order (-1 for unknown ids)."""
        return np.fromiter(map(self.item_index_.get, map(str, item_ids), repeat(-1)),
                           np.int64, len(item_ids))  # C-level iteration: no frame per id

    def _scores_for(self, user_ids: Sequence[str], history: History
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Dense scores for a batch and a mask of users scored personally.

        The last single user's row is kept (``_last_row``): a feed asks for one user's
        candidates and then for the scores of its pool, and that is one scoring, not two.
        Callers get a copy (``recommend`` filters it in place).
        """
        single = len(user_ids) == 1 and not (history and history.get(user_ids[0]))
        if single:
            last = getattr(self, "_last_row", None)
            if last is not None and last[0] == user_ids[0] and last[1] is self.seen_:
                return last[2].copy(), last[3].copy()
        scores, personal = self._score_batch(user_ids, history)
        if single:
            self._last_row = (user_ids[0], self.seen_, scores.copy(), personal.copy())
        return scores, personal

    def _score_batch(self, user_ids: Sequence[str], history: History
                     ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.array([self.user_index_.get(u, -1) for u in user_ids], dtype=np.int64)
        folded = np.array([bool(history and history.get(u)) for u in user_ids])
        known = (rows >= 0) & ~folded
        if self.scores_from_history:  # an empty training row: scored as an unknown user
            known &= row_sizes(self.seen_, rows) > 0
        scores = np.empty((len(user_ids), self.n_items), dtype=np.float32)
        personal = known.copy()
        if known.any():
            scores[known] = self._score_rows(rows[known])
        rest = np.flatnonzero(~known)
        if len(rest):
            hist = self.history_matrix(history, [user_ids[i] for i in rest])
            has = np.diff(hist.indptr) > 0
            fold = self._score_history(hist[has]) if has.any() else None
            scores[rest] = self.popularity_
            if fold is not None:
                scores[rest[has]] = fold
                personal[rest[has]] = True
        return scores, personal

    def recommend(self, user_ids: Sequence[str] | str, n: int = 10, *, exclude_seen: bool = True,
                  exclude: PerUser = None, candidates: PerUser = None, history: History = None,
                  exclude_negative: bool = True, batch_size: int = 512) -> list[ItemList]:
        """Top-``n`` items for each user, best first.

        Args:
            user_ids: One id or a batch of ids. Users unknown to the model are folded in
                from ``history`` when the model supports it, else get popular items.
            n: List length.
            exclude_seen: Drop items the user interacted with in training (and in
                ``history``).
            exclude: Item ids to drop (for every user, or per user via a mapping).
            candidates: Whitelist of item ids (for every user, or per user).
            history: Recent events per user, for request-time fold-in.
            exclude_negative: Drop items the user hid or reported.
            batch_size: Users scored per block at most; fewer when a block of
                ``batch_size x n_items`` scores would not fit in the memory budget
                (:meth:`batch_rows`). Models with sparse scores (ItemKNN, RP3beta) whose
                dense block would not fit score sparsely instead (:meth:`uses_sparse_path`).
        """
        self._check_fitted()
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        if n <= 0:
            raise ConfigError(f"n must be positive, got {n}")
        user_ids = [str(u) for u in user_ids]
        out: list[ItemList] = []
        static = self._static_scores() if candidates is None else None
        sparse = static is None and self.uses_sparse_path()
        step = max(int(batch_size), 1) if static is not None or sparse else \
            self.batch_rows(batch_size)
        for start in range(0, len(user_ids), step):
            batch = user_ids[start:start + step]
            if static is not None:
                out.extend(self._recommend_static(static, batch, n, history, exclude_seen,
                                                  exclude, exclude_negative))
                continue
            if sparse:
                out.extend(self._recommend_sparse(batch, n, history, exclude_seen, exclude,
                                                  candidates, exclude_negative))
                continue
            scores, personal = self._scores_for(batch, history)
            hist = self.history_matrix(history, batch) if (exclude_seen or history) else None
            self._apply_filters(scores, batch, hist if exclude_seen else None, exclude,
                                candidates, exclude_negative)
            k = min(n, self.n_items)
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            top_scores = np.take_along_axis(scores, top, axis=1)
            order = np.argsort(-top_scores, axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            valid = np.isfinite(top_scores)
            explained = self._explain(hist if hist is not None else
                                      self.history_matrix(None, batch),
                                      [t[v] for t, v in zip(top, valid, strict=True)])
            for b in range(len(batch)):
                cols = top[b][valid[b]]
                reasons = (explained[b] if personal[b] else [self.fallback_reason] * len(cols))
                out.append(ItemList(self.item_ids_[cols], top_scores[b][valid[b]], reasons))
        return out

    def _recommend_static(self, static: np.ndarray, batch: list[str], n: int,
                          history: History, exclude_seen: bool, exclude: PerUser,
                          exclude_negative: bool) -> list[ItemList]:
        """``recommend`` for user-independent scores: the cached ranking minus exclusions.
        The scores are not personal, so every item carries :attr:`fallback_reason`."""
        order = self._static_order(static)
        hist = self.history_matrix(history, batch) if exclude_seen and history else None
        out = []
        for b, u in enumerate(batch):
            r = self.user_index_.get(u, -1)
            seen = (hist.indices[hist.indptr[b]:hist.indptr[b + 1]] if hist is not None else
                    _row_cols(self.seen_, r) if exclude_seen and r >= 0 else None)
            drop_cols = self._dropped(u, r, seen, exclude_negative, exclude)
            head = order[:n + len(drop_cols)]
            if len(drop_cols):
                head = head[~np.isin(head, drop_cols)]
            head = head[:n]
            out.append(ItemList(self.item_ids_[head], static[head],
                                [self.fallback_reason] * len(head)))
        return out

    def _recommend_sparse(self, batch: list[str], n: int, history: History,
                          exclude_seen: bool, exclude: PerUser, candidates: PerUser,
                          exclude_negative: bool) -> list[ItemList]:
        """``recommend`` from sparse scores, in blocks whose stored scores fit the budget.

        A personal user's list is their positive scores, best first (equal scores by item
        column), then, when fewer than ``n`` remain after the filters, the most popular
        remaining items at score 0 (what every unscored item scores). Users scored without
        personal signal get the most popular items, as on the dense path.
        """
        hist = self.history_matrix(history, batch)
        cost = self._sparse_cost(hist)
        limit = self.budget() / max(self.sparse_entry_bytes, 1)
        order = self._static_order(self.popularity_)
        out: list[ItemList] = []
        for lo, hi in split_by_cost(cost, limit):
            part, sub = batch[lo:hi], hist[lo:hi]
            scores, personal = self._sparse_scores(part, history, sub)
            picked: list[np.ndarray] = []
            values: list[np.ndarray] = []
            for b, u in enumerate(part):
                cols, vals = self._sparse_top(scores, b, u, n, sub, order, bool(personal[b]),
                                              exclude_seen, exclude, candidates,
                                              exclude_negative)
                picked.append(cols)
                values.append(vals)
            del scores
            explained = self._explain(sub, picked)
            for b in range(len(part)):
                reasons = (explained[b] if personal[b]
                           else [self.fallback_reason] * len(picked[b]))
                out.append(ItemList(self.item_ids_[picked[b]], values[b], reasons))
        return out

    def _dropped(self, user: str, r: int, seen: np.ndarray | None, exclude_negative: bool,
                 exclude: PerUser) -> np.ndarray:
        """Columns left out of ``user``'s list (row ``r``): ``seen``, negatives, ``exclude``."""
        drop = [] if seen is None else [seen]
        if exclude_negative and r >= 0:
            drop.append(_row_cols(self.negatives_, r))
        ex = _for_user(exclude, user)
        if ex:
            drop.append(self._cols(ex))
        return np.concatenate(drop) if drop else np.empty(0, np.int64)

    def _sparse_top(self, scores: sp.csr_matrix, b: int, user: str, n: int,
                    hist: sp.csr_matrix, order: np.ndarray, personal: bool,
                    exclude_seen: bool, exclude: PerUser, candidates: PerUser,
                    exclude_negative: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` columns and scores of row ``b`` of sparse ``scores`` after the filters."""
        r = self.user_index_.get(user, -1)
        drop_cols = self._dropped(user, r, _row_cols(hist, b) if exclude_seen else None,
                                  exclude_negative, exclude)
        cand = _for_user(candidates, user)
        cand_cols = np.unique(self._cols(cand)) if cand is not None else None
        cols = np.empty(0, np.int64)
        vals = np.empty(0, np.float32)
        stored = cols
        if personal:
            lo, hi = scores.indptr[b], scores.indptr[b + 1]
            cols = stored = scores.indices[lo:hi].astype(np.int64)
            vals = np.asarray(scores.data[lo:hi], dtype=np.float32)
            ok = np.isfinite(vals) & (vals > 0)
            if cand_cols is not None:
                ok &= np.isin(cols, cand_cols)
            cols, vals = cols[ok], vals[ok]
            # the best n after the drops are among the best n + len(drop) before them,
            # counting every entry equal to the last one (so ties are decided below)
            take = n + len(drop_cols)
            if len(vals) > take:
                near = vals >= _kth_largest(vals, take)
                cols, vals = cols[near], vals[near]
            if len(drop_cols):
                keep = ~np.isin(cols, drop_cols)
                cols, vals = cols[keep], vals[keep]
            best = np.lexsort((cols, -vals))[:n]  # best first; equal scores by column
            cols, vals = cols[best], vals[best]
        need = n - len(cols)
        if need > 0:
            pool = order
            if cand_cols is not None:
                pool = cand_cols[np.argsort(-self.popularity_[cand_cols], kind="stable")]
                pool = pool[np.isfinite(self.popularity_[pool])]
            # every stored score that was not taken was filtered out (or is not > 0): the
            # fill is of items no stored score reaches
            blocked = np.concatenate([drop_cols, stored])
            head = pool[:need + len(blocked)]
            if len(blocked):
                head = head[~np.isin(head, blocked)]
            head = head[:need]
            fill = (np.zeros(len(head), np.float32) if personal
                    else self.popularity_[head].astype(np.float32))
            cols = np.concatenate([cols, head])
            vals = np.concatenate([vals, fill])
        return cols, vals

    def _apply_filters(self, scores: np.ndarray, batch: Sequence[str],
                       hist: sp.csr_matrix | None, exclude: PerUser, candidates: PerUser,
                       exclude_negative: bool) -> None:
        if hist is not None:
            r, c = hist.nonzero()
            scores[r, c] = -np.inf
        for b, u in enumerate(batch):
            if exclude_negative and u in self.user_index_:
                row = self.negatives_[self.user_index_[u]]
                scores[b, row.indices] = -np.inf
            ex = _for_user(exclude, u)
            if ex:
                cols = self._cols(ex)
                scores[b, cols] = -np.inf
            cand = _for_user(candidates, u)
            if cand is not None:
                keep = np.zeros(self.n_items, dtype=bool)
                keep[self._cols(cand)] = True
                scores[b, ~keep] = -np.inf

    def _cols(self, item_ids: Iterable[str]) -> np.ndarray:
        cols = self.item_columns(list(item_ids))
        return cols[cols >= 0]

    def similar_items(self, item_id: str, n: int = 10) -> ItemList:
        """Items most similar to ``item_id`` (default: by co-engagement cosine)."""
        self._check_fitted()
        c = self.item_index_.get(str(item_id))
        if c is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        x = self.seen_.T.tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()) + 1e-9
        sims = np.asarray((x @ x[c].T).todense()).ravel() / (norms * norms[c])
        sims[c] = -np.inf
        k = min(n, self.n_items - 1)
        top = np.argsort(-sims, kind="stable")[:k]
        return ItemList(self.item_ids_[top], sims[top],
                        [f"often engaged with {self.item_labels_[c]}"] * len(top))

    # ------------------------------------------------------------------ privacy
    #: Learned arrays with one row per training user, emptied by :meth:`forget_user`.
    user_row_state: ClassVar[tuple[str, ...]] = ("user_factors_",)
    #: Learned users x users matrices (e.g. a social graph): row and column are emptied.
    user_pair_state: ClassVar[tuple[str, ...]] = ("friends_",)
    #: Learned dicts keyed by user id (e.g. declared interests): the user's key is dropped.
    user_key_state: ClassVar[tuple[str, ...]] = ("interests_",)
    #: Private caches derived from the fitted state or from a batch: dropped by ``fit`` and
    #: :meth:`forget_user`, rebuilt on use. A subclass with caches of its own extends it.
    derived_caches: ClassVar[tuple[str, ...]] = ("_last_row",)

    def forget_user(self, user_id: str) -> bool:
        """Remove one user's personal data from the loaded model at once (erasure).

        The user's row of ``seen_`` and ``negatives_`` is emptied, the id leaves
        ``user_ids_`` and ``user_index_``, and :meth:`_forget_rows` empties the per-user
        learned state (user factors, social edges, declared interests, sub-models). From
        then on the user is unknown: ``recommend`` and ``score`` serve the non-personal
        fallback. Item-level aggregates (popularity, item-item weights) stay until the
        next retrain, which no longer sees the user's events.

        Returns:
            ``True`` if the model held anything about the user.
        """
        self._check_fitted()
        u = str(user_id)
        r = self.user_index_.get(u)
        rows = np.array([] if r is None else [r], dtype=np.int64)
        if r is not None:
            self.user_index_ = {k: v for k, v in self.user_index_.items() if k != u}
            ids = np.array(self.user_ids_, dtype=object, copy=True)
            ids[r] = ""
            self.user_ids_ = ids
            self.seen_ = _drop_rows(self.seen_, rows)
            self.negatives_ = _drop_rows(self.negatives_, rows)
        return self._forget_rows(rows, u) or r is not None

    def _forget_rows(self, rows: np.ndarray, user_id: str) -> bool:
        """Empty the per-user learned state of matrix ``rows`` (the user ``user_id``).

        The default handles the attributes named in :attr:`user_row_state`,
        :attr:`user_pair_state`, :attr:`user_key_state` and :attr:`derived_caches`, and
        sub-models in ``_models``; override (calling ``super()``) for other per-user state.
        Returns ``True`` if state keyed by the id itself (not by row) was found.
        """
        found = False
        for name in self.user_row_state:
            v = getattr(self, name, None)
            if v is not None and len(rows):
                if sp.issparse(v):
                    setattr(self, name, _drop_rows(v, rows))
                else:
                    v = np.array(v, copy=True)
                    v[rows] = 0
                    setattr(self, name, v)
        for name in self.user_pair_state:
            v = getattr(self, name, None)
            if v is not None and len(rows):
                setattr(self, name, _drop_rows(v, rows, columns=True))
        for name in self.user_key_state:
            v = getattr(self, name, None)
            if isinstance(v, Mapping) and user_id in v:
                setattr(self, name, {k: x for k, x in v.items() if k != user_id})
                found = True
        self._drop_caches()
        for model in getattr(self, "_models", None) or ():
            if isinstance(model, Recommender) and hasattr(model, "item_ids_"):
                found = model.forget_user(user_id) or found
        return found

    def _drop_caches(self) -> None:
        for name in self.derived_caches:
            if name in vars(self):
                delattr(self, name)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray | sp.csr_matrix]:
        """Model-specific learned arrays (names without the trailing ``_``)."""
        return {}

    def _set_state(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k + "_", v)

    def _load_inner(self, model: Recommender, state: dict[str, Any], prefix: str) -> None:
        """Restore ``model``, an inner model of this blend saved under ``prefix``: it
        shares the blend's ids, history and popularity, and takes its own arrays."""
        for attr in ("user_ids_", "item_ids_", "user_index_", "item_index_", "seen_",
                     "negatives_", "item_labels_", "popularity_"):
            setattr(model, attr, getattr(self, attr))
        model._set_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def save(self, path: str | Path) -> Path:
        """Write ``model.npz`` + ``model.json`` into directory ``path`` (no pickle)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        common = {"user_ids": self.user_ids_, "item_ids": self.item_ids_, "seen": self.seen_,
                  "negatives": self.negatives_, "item_labels": self.item_labels_,
                  "popularity": self.popularity_}
        for prefix, group in (("base.", common), ("model.", self._state())):
            for k, v in group.items():
                _pack(arrays, prefix + k, v)
        np.savez_compressed(path / "model.npz", **arrays)
        meta = {"format": FORMAT_VERSION, "class": self.name, "params": self.get_params()}
        (path / "model.json").write_text(json.dumps(meta, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        try:
            meta = json.loads((path / "model.json").read_text())
        except FileNotFoundError:
            raise NotFoundError(f"{path}: no model.json (not a saved feedwise model)") from None
        klass = Recommender.registry.get(meta["class"])
        if klass is None:
            raise DataError(f"{path}: unknown model class {meta['class']!r}")
        model = klass(**{**klass.saved_before, **meta["params"]})
        with np.load(path / "model.npz", allow_pickle=False) as z:
            groups = _unpack(z)
        base = groups.get("base", {})
        for k in ("user_ids", "item_ids", "item_labels"):
            setattr(model, k + "_", np.asarray(base[k], dtype=object))
        model.seen_, model.negatives_ = base["seen"], base["negatives"]
        model.popularity_ = base["popularity"]
        model.user_index_ = {str(u): i for i, u in enumerate(model.user_ids_)}
        model.item_index_ = {str(u): i for i, u in enumerate(model.item_ids_)}
        model._set_state(groups.get("model", {}))
        return model


class HistoryRecommender(Recommender):
    """A recommender whose scores are a function of the user's history row alone (item-item
    models: EASE, ItemKNN, RP3beta, GF-CF): subclasses implement ``_score_matrix(x)`` for a
    users x items history matrix, which serves training users and fold-in alike."""

    scores_from_history = True

    @abstractmethod
    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        """Dense scores (x.shape[0] x n_items) for the histories in ``x``."""

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._score_matrix(self.seen_[rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._score_matrix(history)

    def _score_sparse(self, x: sp.csr_matrix) -> sp.csr_matrix | None:
        """Sparse scores (x.shape[0] x n_items, stored scores >= 0, every other item 0)
        for the histories in ``x``, equal to ``_score_matrix(x)``; ``None`` (the default):
        the model's scores are dense."""
        return None

    def _score_fanout(self) -> np.ndarray | None:
        """Per item, how many items a history entry of it adds scores to (the stored
        entries of its row of the scoring matrix), or ``None`` without a sparse path."""
        return None

    def _sparse_cost(self, hist: sp.csr_matrix) -> np.ndarray | None:
        fan = self._score_fanout()
        if fan is None:
            return None
        ones = sp.csr_matrix((np.ones(hist.nnz, np.float64), hist.indices, hist.indptr),
                             shape=hist.shape)
        return np.minimum(ones @ fan.astype(np.float64), self.n_items)

    def _sparse_scores(self, batch: Sequence[str], history: History, hist: sp.csr_matrix
                       ) -> tuple[sp.csr_matrix, np.ndarray] | None:
        # the dense path scores a training user from their training row and a folded-in
        # user from training row + history: both are the rows of ``hist``, and a user with
        # neither (an empty row) is scored as an unknown user, as on the dense path
        personal = np.diff(hist.indptr) > 0
        scores = self._score_sparse(hist)
        if scores is None:
            return None
        return sp.csr_matrix(scores), personal


def side_data(model: Recommender | type[Recommender], *, items: Any = None,
              edges: Any = None) -> dict[str, Any]:
    """The keyword side data ``model.fit`` accepts, of what is given: ``items`` (the items
    table: titles, text, tags, and posts without events yet) and ``edges`` (social graph)."""
    params = inspect.signature(model.fit).parameters
    return {k: v for k, v in (("items", items), ("edges", edges))
            if k in params and v is not None and len(v)}


def binary(m: sp.spmatrix) -> sp.csr_matrix:
    """A float32 copy of ``m`` with every stored entry set to 1 (one per user-item pair)."""
    if isinstance(m, sp.csr_matrix) and m.shape[0] == 1:
        return _one_row(m, 0.0)
    x = sp.csr_matrix(m, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    return x


def relative(m: sp.spmatrix, power: float) -> sp.csr_matrix:
    """A float32 copy of ``m`` with each entry ``(value / its row's largest value) ** power``:
    interaction strength on each user's own scale (ratings, play counts and event weights
    alike; ``power`` 0 is :func:`binary`)."""
    if power == 0:
        return binary(m)
    if isinstance(m, sp.csr_matrix) and m.shape[0] == 1:
        return _one_row(m, power)
    x = sp.csr_matrix(m, dtype=np.float32, copy=True)
    n = np.diff(x.indptr)
    if x.nnz:  # each non-empty row's segment of data ends where the next one starts
        top = np.maximum.reduceat(x.data, x.indptr[:-1][n > 0])
        top = np.repeat(np.where(top > 0, top, 1.0), n[n > 0])
        x.data = np.maximum(x.data / top, 0.0) ** np.float32(power)
    return x


def _one_row(m: sp.csr_matrix, power: float) -> sp.csr_matrix:
    """:func:`relative` of one user's row (a request), without the general path's copies."""
    return csr_row(row_strength(m.data, power), m.indices.copy(), m.shape[1])


def _csr_template() -> dict[str, Any] | None:
    """The attributes scipy's constructor gives a one-row CSR matrix, or ``None`` where
    this scipy sets others (then :func:`csr_row` uses the constructor)."""
    x = sp.csr_matrix((np.ones(1, np.float32), np.zeros(1, np.int32),
                       np.array([0, 1], np.int32)), shape=(1, 2))
    return dict(vars(x)) if set(vars(x)) == {"_shape", "maxprint", "data", "indices",
                                             "indptr"} else None


_CSR_ROW = _csr_template()


def csr_row(data: np.ndarray, indices: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """One row as a CSR matrix equal to ``sp.csr_matrix((data, indices, [0, nnz]),
    shape=(1, n_cols))``, built without the constructor's checks: a request builds a
    few such rows, and the checks were most of their cost (14-37 us each). ``indices``
    must be sorted and unique within ``n_cols`` (a stored row's are); they are shared,
    not copied, as the constructor shares them."""
    if _CSR_ROW is None or n_cols >= 2**31:
        return sp.csr_matrix((data, indices, np.array([0, len(indices)])), shape=(1, n_cols))
    indices = np.asarray(indices, np.int32)  # the constructor's choice below 2**31 columns
    x = sp.csr_matrix.__new__(sp.csr_matrix)
    vars(x).update(_CSR_ROW, _shape=(1, int(n_cols)), data=data, indices=indices,
                   indptr=np.array([0, len(indices)], np.int32))
    return x


def row_strength(values: np.ndarray, power: float) -> np.ndarray:
    """:func:`relative` of one row's stored values (float32): ``(value / the row's largest)
    ** power``, clipped at 0; all 1 for ``power`` 0 (:func:`binary`)."""
    v = np.asarray(values, np.float32)
    if power == 0 or not len(v):
        return np.ones(len(v), np.float32)
    top = v.max()
    top = top if top > 0 else np.float32(1.0)
    return np.maximum(v / top, np.float32(0.0)) ** np.float32(power)


def _drop_rows(m: Any, rows: np.ndarray, *, columns: bool = False) -> Any:
    """A copy of ``m`` with ``rows`` (and, with ``columns``, the same columns) emptied."""
    keep = np.ones(m.shape[0], dtype=np.float32)
    keep[rows] = 0.0
    d = sp.diags(keep)
    out = d @ sp.csr_matrix(m)
    if columns:
        out = out @ d
    out = sp.csr_matrix(out, dtype=m.dtype)
    out.eliminate_zeros()
    return out


def dense_block(m: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``m[rows][:, cols]`` as a dense array of ``m``'s dtype, equal to scipy's, for a CSR
    matrix (in canonical format) or an array: gathered from the rows' entries, without
    the two sparse matrices scipy's indexing builds (most of its time for a request's few
    rows and columns)."""
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    if not sp.issparse(m):
        return np.asarray(m)[np.ix_(rows, cols)]
    if not (isinstance(m, sp.csr_matrix) and m.has_canonical_format):
        return np.asarray(m[rows][:, cols].toarray())
    lo = m.indptr[rows]
    lens = m.indptr[rows + 1] - lo
    total = int(lens.sum())
    if total == 0 or len(cols) == 0:
        return np.zeros((len(rows), len(cols)), m.dtype)
    ucols, inv = np.unique(cols, return_inverse=True)
    owner = np.repeat(np.arange(len(rows)), lens)
    at = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens) + np.arange(total)
    nb = m.indices[at]
    pos = np.minimum(np.searchsorted(ucols, nb), len(ucols) - 1)
    hit = ucols[pos] == nb
    block = np.zeros((len(rows), len(ucols)), m.dtype)
    block[owner[hit], pos[hit]] = m.data[at[hit]]
    return block[:, inv.ravel()]


def gather_scores(into: sp.csr_matrix, liked: np.ndarray, weight: np.ndarray,
                  cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sum_l weight_l * into[j, l]`` and ``sum_l |into[j, l]|`` over the ``liked``
    columns (sorted, unique), for each ``j`` in ``cols``: one history row's scores of a few
    items from their rows of a CSR matrix ``into`` (row j: what flows into item j)."""
    cols = np.asarray(cols, np.int64)
    lo, hi = into.indptr[cols], into.indptr[cols + 1]
    lens = hi - lo
    total = int(lens.sum())
    num = np.zeros(len(cols), np.float64)
    den = np.zeros(len(cols), np.float64)
    if total == 0 or len(liked) == 0:
        return num, den
    owner = np.repeat(np.arange(len(cols)), lens)
    start = np.repeat(lo - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    at = start + np.arange(total)
    nb, val = into.indices[at], into.data[at]
    pos = np.minimum(np.searchsorted(liked, nb), len(liked) - 1)
    hit = liked[pos] == nb
    num += np.bincount(owner[hit], weights=val[hit] * weight[pos[hit]], minlength=len(cols))
    den += np.bincount(owner[hit], weights=np.abs(val[hit]), minlength=len(cols))
    return num, den


def _kth_largest(v: np.ndarray, k: int) -> float:
    """The ``k``-th largest of ``v`` (1 <= k <= len(v)).

    Scores of a big catalogue hold few distinct values, where a full partition is slow: a
    strided sample's top share gives a bound ``q`` first, and when at least ``k`` values
    reach it the answer is the ``k``-th largest of those few (it is, whatever the sample).
    """
    if len(v) > 4096 and len(v) > 16 * k:
        sample = v[::len(v) // 2048]
        j = min(len(sample), 2 * k * len(sample) // len(v) + 2)
        q = np.partition(sample, len(sample) - j)[len(sample) - j]
        high = v[v >= q]
        if len(high) >= k:
            v = high
    return v[np.argpartition(v, len(v) - k)[len(v) - k]]


def row_sizes(m: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Stored entries of each of ``rows`` of a CSR matrix (a row of -1 reads row 0), from
    its index pointer: a request's few rows, not a pass over every row."""
    rows = np.maximum(np.asarray(rows, np.int64), 0)
    return m.indptr[rows + 1] - m.indptr[rows]


def _row_cols(m: sp.csr_matrix, r: int) -> np.ndarray:
    """Column indices of row ``r`` of a CSR matrix, without building a sub-matrix."""
    return m.indices[m.indptr[r]:m.indptr[r + 1]]


def _for_user(spec: PerUser, user: str) -> Iterable[str] | None:
    if spec is None:
        return None
    if isinstance(spec, Mapping):
        return spec.get(user)
    return spec


def _pack(out: dict[str, np.ndarray], name: str, v: Any) -> None:
    if sp.issparse(v):
        v = sp.csr_matrix(v)
        out[name + ".__csr_data"] = v.data
        out[name + ".__csr_indices"] = v.indices
        out[name + ".__csr_indptr"] = v.indptr
        out[name + ".__csr_shape"] = np.array(v.shape)
    else:
        a = np.asarray(v)
        out[name] = a.astype(str) if a.dtype == object else a


def _unpack(z: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for key in z:
        group, rest = key.split(".", 1)
        g = groups.setdefault(group, {})
        if ".__csr_" in rest:
            name = rest.split(".__csr_")[0]
            if name not in g:
                p = f"{group}.{name}.__csr_"
                g[name] = sp.csr_matrix((z[p + "data"], z[p + "indices"], z[p + "indptr"]),
                                        shape=tuple(z[p + "shape"]))
        else:
            g[rest] = z[key]
    return groups
