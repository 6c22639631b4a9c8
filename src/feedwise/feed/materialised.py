"""Materialised per-user candidate lists: built offline, merged online, refreshed as events land.

Scoring a personal model for one request is the dominant cost of a feed when it is done over
the whole catalogue (a dense row of 100k scores, an argpartition, reasons for 150 items).
:class:`MaterialisedLists` holds, for every user the model knows, their top ``n`` (300 by
default) items in the model's column space, with scores, computed in batches when a model is
promoted or the service loads it (sparse products for ItemKNN / RP3beta, dense blocks for
the others). :class:`MaterialisedSource` is the feed engine's personal candidate source over
them: a request reads a slice of three arrays; the engine scores the pool from the list
(items outside a user's list exactly as the direct path scores them, from those items'
columns alone: ``Recommender.score_columns``, given a blend's per-user row state kept with
the list), and reasons ("because you liked ...") are computed for the shown posts only
(:meth:`MaterialisedSource.explain`). Users without a list (unknown to the model, or
scored without personal signal) get the direct path: the model's own ``recommend``
(fold-in, then popularity).

Staleness: a list reflects the model (as trained) plus the user's engagement that landed
before their last refresh. :class:`Refresher` recomputes the lists of users with new
engagement (their training row plus the new items, the model's fold-in) every
``interval_s`` on a background thread, the users with the oldest pending events first, at
most ``max_users`` per round; so a new engagement reaches the user's next feed within
``interval_s`` plus one round's compute while ingest stays under ``max_users / interval_s``
distinct users per second (measured by ``benchmarks/serve.py``). The catalogue itself
(new posts) is not part of the lists: fresh and followed-author posts come from their own
sources at request time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from feedwise.feed.catalog import Catalog
from feedwise.feed.context import UserContext
from feedwise.interactions import InteractionWeights
from feedwise.itemlist import ItemList
from feedwise.models.base import csr_row
from feedwise.models.factorization import FactorModel

log = logging.getLogger("feedwise.feed.materialised")

#: A user's list as the overlay holds it: model columns, scores, whether it holds every
#: positive score, and what explains each item (:data:`WHY`, or ``None``).
Entry = tuple[np.ndarray, np.ndarray, bool, "np.ndarray | None"]

#: Items kept per user by default.
DEFAULT_N = 300


class MaterialisedLists:
    """Per-user top-``n`` items of one fitted model (model columns, scores best first).

    A CSR layout (``indptr``, ``cols``, ``scores``) over the model's users, plus an overlay
    of lists recomputed since (:meth:`update`), merged into the arrays by :meth:`compact`.
    Only personally scored users have a list.

    Attributes:
        n: Items kept per user.
        complete: Per stored user, whether the list holds every item the model scores above
            zero (sparse models whose user has fewer than ``n`` such items): an item outside
            it scores exactly 0.
        why: Aligned with ``cols``, what explains each listed item (:data:`WHY`): the
            blend's component (``k``, -1: none stored) and the liked item it names
            (``liked``, a model column; -1: none), for models that give them
            (``last_winners``, ``winners_liked``), so the reasons of a shown post need no
            component scored again, and none of its weights read where the liked item is
            stored; else ``None``.
        built_s: Seconds the last :meth:`build` took.
    """

    def __init__(self, model: Any, n: int = DEFAULT_N) -> None:
        self.model = model
        self.n = int(n)
        self.index: dict[str, int] = {}
        self.indptr = np.zeros(1, np.int64)
        self.cols = np.empty(0, np.int32)
        self.scores = np.empty(0, np.float32)
        self.complete = np.empty(0, bool)
        self.why: np.ndarray | None = None
        #: user -> (cols, scores, complete, why or None): lists recomputed since the arrays
        self.overlay: dict[str, Entry] = {}
        #: Dense models: every user's scores of a few shared items (``extra_cols``, sorted
        #: model columns: the trending and newest posts any pool may hold), so scoring a
        #: pool needs no dense row; rows aligned with ``index``, overlay in ``extra_overlay``.
        self.extra_cols = np.empty(0, np.int64)
        #: Columns of :attr:`extra` after the shared items' scores: the user's row state
        #: of models that need one to score a few columns (a blend's per-user z-score
        #: constants, see ``Recommender._scores_and_state``).
        self.n_state = 0
        self.extra: np.ndarray | None = None
        self.extra_overlay: dict[str, np.ndarray | None] = {}
        self._snap: tuple[Any, ...] = ()
        self.publish()
        self.built_s = 0.0
        #: Called with the user id after :meth:`forget_user` (the service tells its feed
        #: workers to rebuild, so an erasure reaches their copies too).
        self.on_forget: Callable[[str], None] | None = None
        #: Called with the new overlay entries and extra rows after :meth:`update` (the
        #: service hands them to its feed workers, which do not recompute lists).
        self.on_update: Callable[[dict, dict], None] | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, model: Any, n: int = DEFAULT_N, *, users: Sequence[str] | None = None,
              batch: int = 2048, progress: Callable[[int, int], None] | None = None,
              extra_cols: np.ndarray | None = None) -> MaterialisedLists:
        """Lists of ``users`` (default: every user the model was fitted on); for a dense
        model, also every user's scores of ``extra_cols`` (see :attr:`extra`)."""
        t0 = time.perf_counter()
        out = cls(model, n)
        if extra_cols is not None and not _has_sparse(model):
            out.extra_cols = np.unique(np.asarray(extra_cols, np.int64))
        ids = list(model.user_ids_) if users is None else [str(u) for u in users]
        if not _has_sparse(model):  # dense blocks: as many users as the budget holds
            batch = model.batch_rows(batch)
        parts = []
        for lo in range(0, len(ids), batch):
            part = ids[lo:lo + batch]
            parts.append((part, score_top(model, part, out.n, extra_cols=out.extra_cols)))
            if parts[-1][1].extra is not None:
                out.n_state = parts[-1][1].extra.shape[1] - len(out.extra_cols)
            if progress is not None:
                progress(min(lo + batch, len(ids)), len(ids))
        keep_ids: list[str] = []
        counts, cols, vals, comp, extra, why = [], [], [], [], [], []
        winners = bool(parts) and all(got.why is not None for _, got in parts)
        for part, got in parts:
            for b, (u, (c, v), p, k) in enumerate(zip(part, got.rows, got.personal,
                                                      got.complete, strict=True)):
                if not p:
                    continue
                if got.extra is not None:
                    extra.append(got.extra[b])
                if winners:
                    why.append(_why(got.why[b], len(c)))
                keep_ids.append(u)
                counts.append(len(c))
                cols.append(c)
                vals.append(v)
                comp.append(k)
        out.index = {u: i for i, u in enumerate(keep_ids)}
        out.indptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        out.cols = (np.concatenate(cols).astype(np.int32) if cols else np.empty(0, np.int32))
        out.scores = (np.concatenate(vals).astype(np.float32) if vals
                      else np.empty(0, np.float32))
        out.complete = np.asarray(comp, bool)
        if winners:
            out.why = np.concatenate(why) if why else np.empty(0, WHY)
        if len(out.extra_cols) or out.n_state:
            out.extra = (np.vstack(extra).astype(np.float32) if extra else
                         np.empty((0, len(out.extra_cols) + out.n_state), np.float32))
        out.publish()
        out.built_s = time.perf_counter() - t0
        return out

    def state_row(self, user_id: str) -> np.ndarray | None:
        """The user's row state for the model's ``score_columns`` (see :attr:`n_state`),
        or ``None``."""
        if not self.n_state:
            return None
        g = self.extra_row(user_id)
        return None if g is None else g[len(self.extra_cols):]

    def extra_row(self, user_id: str) -> np.ndarray | None:
        """The user's scores of :attr:`extra_cols` (then their row state), or ``None``."""
        if user_id in self.extra_overlay:
            return self.extra_overlay[user_id]
        index, _, _, _, _, extra, _ = self._snap
        if extra is None:
            return None
        r = index.get(user_id)
        return extra[r] if r is not None else None

    def __len__(self) -> int:
        return len(self.index) + sum(1 for u in self.overlay if u not in self.index)

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.cols.nbytes + self.scores.nbytes
                   + (self.why.nbytes if self.why is not None else 0))

    # ------------------------------------------------------------------ read
    def publish(self) -> None:
        """Make the arrays as they are now what readers see, in one assignment (a reader
        never pairs one version's index with another's rows)."""
        self._snap = (self.index, self.indptr, self.cols, self.scores, self.complete,
                      self.extra, self.why)

    def row(self, user_id: str) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """``(model columns, scores, complete)`` of a user's list, best first, or ``None``."""
        got = self._entry(user_id)
        return None if got is None else got[:3]

    def why_row(self, user_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(model columns, explaining component)`` of a user's list (see :attr:`why`), or
        ``None`` where none is stored."""
        got = self._entry(user_id)
        return None if got is None or got[3] is None else (got[0], got[3])

    def _entry(self, user_id: str
               ) -> Entry | None:
        got = self.overlay.get(user_id)
        if got is not None:
            return got if len(got[0]) or got[2] else None
        index, indptr, cols, scores, complete, _, why = self._snap
        r = index.get(user_id)
        if r is None:
            return None
        lo, hi = indptr[r], indptr[r + 1]
        return (cols[lo:hi], scores[lo:hi], bool(complete[r]),
                None if why is None else why[lo:hi])

    # ------------------------------------------------------------------ write
    def update(self, user_ids: Sequence[str], history: Mapping[str, Mapping[str, float]]
               ) -> int:
        """Recompute the lists of ``user_ids`` with their extra ``history`` (item id ->
        weight, the model's fold-in) and put them in the overlay; returns the count."""
        if not user_ids:
            return 0
        got = score_top(self.model, list(user_ids), self.n, history,
                        extra_cols=self.extra_cols)
        gs = got.extra
        new_extra = ({u: (gs[b] if got.personal[b] else None)
                      for b, u in enumerate(user_ids)} if gs is not None else {})
        new = {}
        for b, u in enumerate(user_ids):
            new[u] = self._entry_of(got, b) if got.personal[b] else _EMPTY
        self.put(new, new_extra)
        if self.on_update is not None:
            self.on_update(new, new_extra)
        return len(new)

    def put(self, new: Mapping[str, Entry],
            extra: Mapping[str, np.ndarray | None]) -> None:
        """Put recomputed lists (:meth:`update`'s, or another process's) in the overlay."""
        with self._lock:
            self.extra_overlay = {**self.extra_overlay, **extra}
            self.overlay = {**self.overlay, **new}  # readers see the old dict or the new

    def deepen(self, user_id: str, n: int, history: Mapping[str, float] | None = None
               ) -> tuple[np.ndarray, np.ndarray, bool] | None:
        """Recompute one user's list ``n`` deep (more than :attr:`n`: a user served through
        their list), with their extra ``history``, into the overlay; returns the new row
        (``None`` if the user is no longer scored personally). One key is set in place
        (readers see the old row or the new one), so the cost does not grow with the
        overlay."""
        got = score_top(self.model, [user_id], int(n),
                        {user_id: dict(history)} if history else None,
                        extra_cols=self.extra_cols)
        if not got.personal[0]:
            return None
        row = self._entry_of(got, 0)
        with self._lock:
            if got.extra is not None:
                self.extra_overlay[user_id] = got.extra[0]
            self.overlay[user_id] = row
        return row[:3]

    def _entry_of(self, got: Scored, b: int
                  ) -> Entry:
        """The overlay entry of batch row ``b`` of a :func:`score_top` result (winners
        kept only where the arrays keep them, so a compaction stays aligned)."""
        c, v = got.rows[b]
        why = (_why(got.why[b], len(c)) if self.why is not None and got.why is not None
               else None)
        return c.astype(np.int32), v.astype(np.float32), bool(got.complete[b]), why

    def forget_user(self, user_id: str) -> bool:
        """Drop a user's list (erasure); ``True`` if one was held."""
        with self._lock:
            found = user_id in self.overlay or user_id in self.index
            overlay = dict(self.overlay)
            overlay[user_id] = _EMPTY
            if self.extra is not None:
                self.extra_overlay = {**self.extra_overlay, user_id: None}
            self.overlay = overlay
            r = self.index.get(user_id)
            if r is not None:  # shared read-only pages (mmap): blank the row in a copy
                if not self.scores.flags.writeable:
                    self.scores = np.array(self.scores)
                    self.cols = np.array(self.cols)
                self.scores[self.indptr[r]:self.indptr[r + 1]] = 0
                self.cols[self.indptr[r]:self.indptr[r + 1]] = 0
                if self.why is not None:
                    if not self.why.flags.writeable:
                        self.why = np.array(self.why)
                    self.why[self.indptr[r]:self.indptr[r + 1]] = -1
                if self.extra is not None:
                    if not self.extra.flags.writeable:
                        self.extra = np.array(self.extra)
                    self.extra[r] = 0
            self.publish()
        if self.on_forget is not None:
            self.on_forget(user_id)
        return found

    def compact(self) -> None:
        """Merge the overlay into the arrays (readers keep a consistent view)."""
        with self._lock:
            overlay = self.overlay
            if not overlay:
                return
            users = list(self.index)
            users += [u for u in overlay if u not in self.index]
            counts, cols, vals, comp, keep, extra, why = [], [], [], [], [], [], []
            for u in users:
                got = overlay.get(u)
                if got is None:
                    r = self.index[u]
                    lo, hi = self.indptr[r], self.indptr[r + 1]
                    got = (self.cols[lo:hi], self.scores[lo:hi], bool(self.complete[r]),
                           None if self.why is None else self.why[lo:hi])
                    g = self.extra[r] if self.extra is not None else None
                elif not len(got[0]) and not got[2]:
                    continue  # forgotten, or no personal list any more
                else:
                    g = self.extra_overlay.get(u)
                if self.extra is not None:
                    extra.append(g if g is not None else np.zeros(self.extra.shape[1],
                                                                  np.float32))
                keep.append(u)
                counts.append(len(got[0]))
                cols.append(got[0])
                vals.append(got[1])
                comp.append(got[2])
                if self.why is not None:
                    why.append(_why(got[3], len(got[0])))
            indptr = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
            c = np.concatenate(cols).astype(np.int32) if cols else np.empty(0, np.int32)
            v = np.concatenate(vals).astype(np.float32) if vals else np.empty(0, np.float32)
            self.indptr, self.cols, self.scores = indptr, c, v
            self.complete = np.asarray(comp, bool)
            if self.why is not None:
                self.why = np.concatenate(why) if why else np.empty(0, WHY)
            self.index = {u: i for i, u in enumerate(keep)}
            if self.extra is not None:
                self.extra = (np.vstack(extra).astype(np.float32) if extra else
                              np.empty((0, self.extra.shape[1]), np.float32))
            self.publish()  # readers now find every changed user here, then:
            self.overlay = {}
            self.extra_overlay = {}

    # ------------------------------------------------------------------ files
    def save(self, folder: Any) -> None:
        """Write the lists (overlay merged) as ``.npy`` files that :meth:`load` maps."""
        from pathlib import Path

        self.compact()
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / "indptr.npy", self.indptr)
        np.save(d / "cols.npy", self.cols)
        np.save(d / "scores.npy", self.scores)
        np.save(d / "complete.npy", self.complete)
        np.save(d / "users.npy", np.asarray(list(self.index), dtype=str))
        if self.why is not None:
            np.save(d / "why.npy", self.why)
        if self.extra is not None:
            np.save(d / "extra.npy", self.extra)
            np.save(d / "extra_cols.npy", self.extra_cols)
            np.save(d / "n_state.npy", np.asarray(self.n_state, np.int64))

    @classmethod
    def load(cls, model: Any, folder: Any, n: int = DEFAULT_N) -> MaterialisedLists:
        """Lists saved by :meth:`save`, memory-mapped read-only (processes share the pages)."""
        from pathlib import Path

        d = Path(folder)
        out = cls(model, n)
        out.indptr = _mapped(d / "indptr.npy")
        out.cols = _mapped(d / "cols.npy")
        out.scores = _mapped(d / "scores.npy")
        out.complete = np.load(d / "complete.npy")
        out.index = {str(u): i for i, u in enumerate(np.load(d / "users.npy"))}
        if (d / "why.npy").is_file():
            out.why = _mapped(d / "why.npy")
        if (d / "extra.npy").is_file():
            out.extra = _mapped(d / "extra.npy")
            out.extra_cols = np.load(d / "extra_cols.npy")
            if (d / "n_state.npy").is_file():
                out.n_state = int(np.load(d / "n_state.npy"))
        out.publish()
        return out


def _mapped(path: Any) -> np.ndarray:
    """A saved array memory-mapped read-only, as a plain ``ndarray`` over the mapping: a
    slice of an ``np.memmap`` is a memmap again, and its Python-level bookkeeping cost
    more than the slice itself on every request."""
    return np.load(path, mmap_mode="r").view(np.ndarray)


class Scored(NamedTuple):
    """What :func:`score_top` computed for a batch of users."""

    #: per user, (model columns, scores) best first
    rows: list[tuple[np.ndarray, np.ndarray]]
    #: users scored personally
    personal: np.ndarray
    #: lists holding every item scored above zero (the rest score exactly 0)
    complete: np.ndarray
    #: dense models with ``extra_cols``: every user's scores of those columns, then their
    #: row state; else ``None``
    extra: np.ndarray | None
    #: models with ``last_winners``: per user, what explains each listed item (:data:`WHY`;
    #: ``None`` for a user explained otherwise); else ``None``
    why: list[np.ndarray | None] | None


#: The overlay's entry of a user without a list (erased, or no longer scored personally).
_EMPTY = (np.empty(0, np.int32), np.empty(0, np.float32), False, None)


#: What explains a listed item: the blend's component (-1: not stored) and the liked item
#: (model column) it names as the reason (-1: none, or not stored).
WHY = np.dtype([("k", np.int8), ("liked", np.int32)])


def _why(got: np.ndarray | None, n: int) -> np.ndarray:
    """A list's :data:`WHY` as stored (-1 where nothing is known)."""
    return np.full(n, -1, WHY) if got is None else np.asarray(got, WHY)


def _winners(model: Any, hist: sp.csr_matrix, cols: list[np.ndarray]
             ) -> list[np.ndarray | None] | None:
    """:data:`WHY` of each user's ``cols``, right after their scoring on this thread (a
    blend's per-component scores are its own), for models that give it; else ``None``."""
    last = getattr(model, "last_winners", None)
    won = last(cols) if last is not None else None
    if won is None:
        return None
    liked = model.winners_liked(hist, cols, won)
    out: list[np.ndarray | None] = []
    for w, g in zip(won, liked, strict=True):
        if w is None:
            out.append(None)
            continue
        why = np.empty(len(w), WHY)
        why["k"], why["liked"] = w, g
        out.append(why)
    return out


def score_top(model: Any, user_ids: Sequence[str], n: int,
              history: Mapping[str, Mapping[str, float]] | None = None, *,
              extra_cols: np.ndarray | None = None) -> Scored:
    """Top-``n`` (model columns, scores) of each user, what ``recommend`` ranks before its
    popularity fill: seen items (training row and ``history``) and hidden / reported ones
    left out, equal scores by column. Sparse models (ItemKNN, RP3beta) are scored by sparse
    products (only the items a user's history reaches); the others by dense blocks.

    Returns:
        A :class:`Scored`.
    """
    hist = model.history_matrix(history, user_ids)
    sparse = model._sparse_scores(user_ids, history, hist) if _has_sparse(model) else None
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    complete = np.zeros(len(user_ids), bool)
    neg = getattr(model, "negatives_", None)
    if sparse is not None:
        scores, personal = sparse
        scores = sp.csr_matrix(scores)
        for b, u in enumerate(user_ids):
            lo, hi = scores.indptr[b], scores.indptr[b + 1]
            c = scores.indices[lo:hi].astype(np.int64)
            v = np.asarray(scores.data[lo:hi], np.float32)
            ok = np.isfinite(v) & (v > 0)
            drop = _drop_cols(model, hist, b, u, neg)
            if len(drop):
                ok &= ~np.isin(c, drop)
            c, v = c[ok], v[ok]
            complete[b] = len(c) <= n
            best = np.lexsort((c, -v))[:n]
            rows.append((c[best], v[best]))
        return Scored(rows, np.asarray(personal, bool), complete, None, None)
    dense, personal, state = model._scores_and_state(list(user_ids), history)
    dense = np.array(dense, dtype=np.float32, copy=True)
    gs = (dense[:, extra_cols].copy() if extra_cols is not None and len(extra_cols)
          else None)
    if state is not None:  # stored after the shared items' scores (``extra``)
        gs = np.hstack([gs, state]) if gs is not None else np.asarray(state, np.float32)
    for b, u in enumerate(user_ids):
        drop = _drop_cols(model, hist, b, u, neg)
        if len(drop):
            dense[b, drop] = -np.inf
    k = min(n, dense.shape[1])
    top = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    for b in range(len(user_ids)):
        c = top[b]
        v = dense[b, c]
        ok = np.isfinite(v)
        c, v = c[ok], v[ok]
        best = np.lexsort((c, -v))
        rows.append((c[best].astype(np.int64), v[best]))
    why = _winners(model, hist, [c for c, _ in rows])
    return Scored(rows, np.asarray(personal, bool), complete, gs, why)


class _Positions(threading.local):
    """Per column of ``want``, its position in the list ``listed`` (-1 where absent; the
    first position where a column is listed twice). A column -> position array over the
    model's columns, one per thread, is filled with the list's positions and cleared
    again: a few gathers and scatters of a few hundred entries, where sorting the list
    for each lookup took about twice as long."""

    def __init__(self) -> None:
        self.at = np.empty(0, np.int64)

    def __call__(self, listed: np.ndarray, want: np.ndarray, n_cols: int) -> np.ndarray:
        at = self.at
        if len(at) < n_cols:
            at = self.at = np.full(n_cols, -1, np.int64)
        listed = np.asarray(listed, np.int64)
        want = np.asarray(want, np.int64)
        at[listed[::-1]] = np.arange(len(listed) - 1, -1, -1)  # the first one wins
        try:
            return np.where(want >= 0, at[np.maximum(want, 0)], -1)
        finally:
            at[listed] = -1


def _has_sparse(model: Any) -> bool:
    try:
        empty = sp.csr_matrix((0, model.n_items), dtype=np.float32)
        return model._sparse_cost(empty) is not None
    except Exception:  # noqa: BLE001 - no sparse path
        return False


def _drop_cols(model: Any, hist: sp.csr_matrix, b: int, user: str,
               neg: sp.csr_matrix | None) -> np.ndarray:
    seen = hist.indices[hist.indptr[b]:hist.indptr[b + 1]]
    r = model.user_index_.get(user, -1)
    if neg is not None and r >= 0:
        n_ = neg.indices[neg.indptr[r]:neg.indptr[r + 1]]
        if len(n_):
            return np.concatenate([seen, n_]).astype(np.int64)
    return seen.astype(np.int64)


class MaterialisedSource:
    """The feed engine's personal candidate source over :class:`MaterialisedLists`.

    Args:
        lists: The lists of the served model.
        catalog: The engine's catalogue (model columns are mapped onto it).
        direct: The direct source (:class:`~feedwise.feed.candidates.RecommenderSource`
            of the same model) for users without a list.
        name: Source name (``recommender``: the quota and reasons of the direct path).
        exact: Score pool items outside a user's list as the direct path does (see
            :meth:`_outside`); ``False``: just below the list's last score.
    """

    personal = True

    def __init__(self, lists: MaterialisedLists, catalog: Catalog, direct: Any,
                 name: str = "recommender", *, exact: bool = True) -> None:
        self.lists = lists
        self.model = lists.model
        self.exact = exact
        self.sparse = _has_sparse(self.model)
        self.catalog = catalog
        self.direct = direct
        self.name = name
        self.col2cat = catalog.lookup(self.model.item_ids_)
        self.cat2col = np.full(catalog.n, -1, np.int64)
        ok = self.col2cat >= 0
        self.cat2col[self.col2cat[ok]] = np.flatnonzero(ok)
        self.refresher: Refresher | None = None
        self._positions = _Positions()
        self.hits = 0
        self.misses = 0
        self.deepened = 0  # lists recomputed deeper (candidates_unseen)

    def grown(self) -> None:
        """Posts were appended to the catalogue (:meth:`FeedEngine.add_posts`): map them
        to the model's columns (-1 for posts it does not know: scored as cold)."""
        grown = getattr(self.direct, "grown", None)
        if grown is not None:
            grown()
        n0 = len(self.cat2col)
        if self.catalog.n <= n0:
            return
        more = np.asarray(self.model.item_columns(self.catalog.item_ids[n0:]), np.int64)
        known = more >= 0
        if known.any():  # a post the model knows but the catalogue lacked until now
            col2cat = self.col2cat.copy()
            col2cat[more[known]] = n0 + np.flatnonzero(known)
            self.col2cat = col2cat
        self.cat2col = np.concatenate([self.cat2col, more])

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        got = self.lists.row(ctx.user_id)
        if got is None:
            self.misses += 1
            return self._direct(ctx, k)
        cols, vals, complete = got
        if len(cols) < k:
            # the direct path would list more: the popularity fill after every positive
            # score (sparse path: emulated here), else items the cut list does not hold
            if not (complete and self.model.uses_sparse_path()):
                self.misses += 1
                return self._direct(ctx, k)
            cols, vals = self._fill(ctx.user_id, cols, vals, k)
        self.hits += 1
        idx = self.col2cat[cols]
        ok = idx >= 0
        idx, vals = idx[ok][:k], vals[ok][:k]
        return ItemList(None, np.asarray(vals, np.float32), index=idx)

    def candidates_unseen(self, ctx: UserContext, k: int, seen: np.ndarray, room: int
                          ) -> ItemList:
        """The first ``k`` posts of the user's ranking that ``seen`` (a mask over the
        catalogue: hidden, recently served, already in the pool) does not hold.

        The generator used to ask :meth:`candidates` for ``room`` = ``k`` + every seen post,
        which outgrows the list once a user was served more posts than ``lists.n - k``
        and sent every later request of theirs down the direct path (the whole catalogue
        scored and ``room`` items explained per request: a served feed got slower the
        more it had served). The list is the top of the direct path's ranking, so when it
        still holds ``k`` unseen posts they are the direct path's first ``k`` unseen ones.
        A complete list (every positive score) is topped up with the most popular unseen
        posts at score 0 (the sparse path's rule; the dense path's choice among equal zero
        scores depended on ``room``); a cut list the user was served through is recomputed
        deeper once (:meth:`MaterialisedLists.deepen`), which serves the next ``lists.n``
        posts. Otherwise this answers ``candidates(ctx, room)`` as before.
        """
        uid = ctx.user_id
        got = self.lists.row(uid)
        if got is not None:
            for attempt in (0, 1):
                cols, vals, complete = got
                idx = self.col2cat[cols]
                keep = idx >= 0
                keep[keep] = ~seen[idx[keep]]
                take = np.flatnonzero(keep)[:k]
                if len(take) == k:
                    self.hits += 1
                    return ItemList(None, np.asarray(vals, np.float32)[take], index=idx[take])
                if complete:  # every positive score listed: the popular unseen ones next
                    head = self._fill_unseen(uid, cols, k - len(take), seen)
                    if head is None:
                        break
                    self.hits += 1
                    return ItemList(None, np.concatenate([
                        np.asarray(vals, np.float32)[take], np.zeros(len(head), np.float32)]),
                        index=np.concatenate([idx[take], head]))
                if attempt or len(cols) < self.lists.n:
                    break
                # served through the cut list: recompute it deeper, once for the next
                # ``lists.n`` posts rather than the direct path on every later request
                extra = self.refresher.history_of(uid) if self.refresher else None
                got = self.lists.deepen(uid, int(seen.sum()) + max(k, self.lists.n), extra)
                self.deepened += 1
                if got is None:
                    break
        return self.candidates(ctx, room)

    def _fill_unseen(self, user_id: str, cols: np.ndarray, need: int, seen: np.ndarray
                     ) -> np.ndarray | None:
        """Catalogue indices of the ``need`` most popular posts the user did not engage
        with, hide or get listed and ``seen`` does not hold (what follows every positive
        score, at score 0, on the sparse path), or ``None`` if they are not found cheaply."""
        m = self.model
        extra = self.refresher.history_of(user_id) if self.refresher else None
        hist = m.history_matrix({user_id: extra} if extra else None, [user_id])
        drop = np.concatenate([_drop_cols(m, hist, 0, user_id, getattr(m, "negatives_", None)),
                               np.asarray(cols, np.int64)])
        head = m._static_order(m.popularity_)[:need + len(drop) + int(seen.sum())]
        head = self.col2cat[head[~np.isin(head, drop)]]
        ok = head >= 0
        ok[ok] = ~seen[head[ok]]
        head = head[ok][:need]
        return head if len(head) == need else None

    def _direct(self, ctx: UserContext, k: int) -> ItemList:
        """The model's own ``recommend``, with the engagement landed since it was trained
        (the refresher's history: fold-in) when there is any."""
        extra = self.refresher.history_of(ctx.user_id) if self.refresher else None
        if not extra:
            return self.direct.candidates(ctx, k)
        lst = self.model.recommend([ctx.user_id], k, history={ctx.user_id: extra})[0]
        idx = self.catalog.lookup(lst.ids)
        ok = idx >= 0
        reasons = ([lst.reasons[j] for j in np.flatnonzero(ok).tolist()]
                   if lst.reasons else None)
        return ItemList(lst.ids[ok], lst.scores[ok], reasons, index=idx[ok])

    def _fill(self, user_id: str, cols: np.ndarray, vals: np.ndarray, k: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """A complete list topped up as ``recommend``'s sparse path does: the most popular
        items not seen, hidden or listed, at score 0."""
        m = self.model
        extra = self.refresher.history_of(user_id) if self.refresher else None
        hist = m.history_matrix({user_id: extra} if extra else None, [user_id])
        drop = np.concatenate([_drop_cols(m, hist, 0, user_id, getattr(m, "negatives_", None)),
                               np.asarray(cols, np.int64)])
        order = m._static_order(m.popularity_)
        need = k - len(cols)
        head = order[:need + len(drop)]
        head = head[~np.isin(head, drop)][:need]
        return (np.concatenate([np.asarray(cols, np.int64), head]),
                np.concatenate([np.asarray(vals, np.float32), np.zeros(len(head), np.float32)]))

    def score(self, ctx: UserContext, items: np.ndarray) -> np.ndarray:
        got = self.lists.row(ctx.user_id)
        if got is None:
            return self.direct.score(ctx, items)
        cols, vals, complete = got
        want = self.cat2col[items]
        out = np.zeros(len(items), np.float32)
        pos = self._positions(cols, want, self.model.n_items)
        hit = pos >= 0
        out[hit] = np.asarray(vals)[pos[hit]]
        miss = ~hit & (want >= 0)
        if miss.any():  # a complete list still leaves out seen items, which the pool may hold
            ec = self.lists.extra_cols
            g = self.lists.extra_row(ctx.user_id) if self.exact and len(ec) else None
            if g is not None:  # the shared items (trending, newest) every user has scores of
                at = np.flatnonzero(miss)
                pos = np.minimum(np.searchsorted(ec, want[at]), len(ec) - 1)
                found = ec[pos] == want[at]
                out[at[found]] = g[pos[found]]
                miss[at[found]] = False
            if miss.any():
                out[miss] = self._outside(ctx.user_id, want[miss], vals)
        return out

    def _outside(self, user_id: str, cols: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """Scores of items outside the user's (cut) list, as the direct path scores them:
        factor models by one small dot product, models with ``score_columns`` from those
        columns alone (ItemKNN, RP3beta, the EASE family, GF-CF, Content; Hybrid / Auto
        with the user's row state), sparse models otherwise from the user's sparse score
        row, other models from the dense row; with ``exact=False``, just below the list's
        last score (every such item scores at most that: cheaper, but the order among them
        is lost)."""
        m = self.model
        if not self.exact:
            floor = float(vals[-1]) if len(vals) else 0.0
            return np.full(len(cols), np.nextafter(np.float32(floor), np.float32(-np.inf)),
                           np.float32)
        extra = self.refresher.history_of(user_id) if self.refresher else None
        uf, itf = getattr(m, "user_factors_", None), getattr(m, "item_factors_", None)
        r = m.user_index_.get(user_id, -1)
        if isinstance(m, FactorModel) and uf is not None and itf is not None and r >= 0 \
                and not extra:
            return np.asarray(itf[cols], np.float32) @ np.asarray(uf[r], np.float32)
        hist = self._history(user_id, extra)
        state = self._state(user_id)
        got = (m.score_columns(hist, cols) if state is None else
               m.score_columns(hist, cols, state=state))
        if got is not None:
            return np.asarray(got, np.float32)
        if self.sparse:
            row = sp.csr_matrix(m._score_sparse(hist))
            row.sort_indices()
            ix, data = row.indices, row.data
            out = np.zeros(len(cols), np.float32)
            if len(ix):
                pos = np.minimum(np.searchsorted(ix, cols), len(ix) - 1)
                hit = ix[pos] == cols
                out[hit] = data[pos[hit]]
            return out
        return np.asarray(m.score_row(user_id, history={user_id: extra} if extra else None)
                          [cols], np.float32)

    def _history(self, user_id: str, extra: Mapping[str, float] | None) -> sp.csr_matrix:
        """The model's ``history_matrix`` of one user: their training row as it is stored
        when no engagement awaits (no Python loop over its entries)."""
        m = self.model
        r = -1 if extra else m.user_index_.get(user_id, -1)
        if r < 0:
            return m.history_matrix({user_id: extra} if extra else None, [user_id])
        seen = m.seen_
        lo, hi = seen.indptr[r], seen.indptr[r + 1]
        return csr_row(np.asarray(seen.data[lo:hi], np.float32), seen.indices[lo:hi],
                       m.n_items)

    def _state(self, user_id: str) -> np.ndarray | None:
        """The user's row state for ``score_columns``, kept with their list. While new
        engagement of theirs awaits a refresh it is as stale as the list itself: items
        are scored from their whole history with the constants of their last refresh."""
        return self.lists.state_row(user_id)

    def explain(self, ctx: UserContext, items: np.ndarray) -> list[str | None]:
        """Reasons for the shown posts ``items`` (catalogue indices) from the model (the
        direct path computes them for every candidate). What explains a listed post is
        kept with the list (:attr:`MaterialisedLists.why`, as stale as the list itself:
        chosen at the user's last refresh, from their history then): where the liked item
        it names is kept, the reason is worded from it; where only the explaining
        component is, that component alone explains it, from the user's whole history.
        For the other posts, a blend that explains from its per-user scores
        (``explain_columns``) gets them from the user's row state, or, without one, from
        scoring the user first (what the direct path does)."""
        cols = self.cat2col[items]
        ok = cols >= 0
        out: list[str | None] = [None] * len(items)
        if not ok.any():
            return out
        uid = ctx.user_id
        m = self.model
        at = np.flatnonzero(ok)
        listed = self.lists.why_row(uid)
        win = None
        if listed is not None:  # what explains each listed post, kept with it
            lcols, lwhy = listed
            pos = self._positions(lcols, cols[at], self.model.n_items)
            hit = pos >= 0
            win = np.full(len(pos), -1, np.int64)  # an empty list: nothing to index
            liked = np.full(len(pos), -1, np.int64)
            kept = lwhy[pos[hit]]
            win[hit], liked[hit] = kept["k"], kept["liked"]
            named = liked >= 0
            if named.any():  # the reason's liked item kept too: no history needed
                got = m.winner_reasons(win[named], liked[named])
                for j, why in zip(at[named].tolist(), got, strict=True):
                    out[j] = why
                at, win = at[~named], win[~named]
                if not len(at):
                    return out
        extra = self.refresher.history_of(uid) if self.refresher else None
        history = {uid: extra} if extra else None
        hist = self._history(uid, extra)
        if hist.nnz == 0:
            return out
        if win is not None:
            known = win >= 0
            if known.any():
                got = m.explain_winners(uid, hist, cols[at[known]], win[known])
                for j, why in zip(at[known].tolist(), got, strict=True):
                    out[j] = why
                at = at[~known]
                if not len(at):
                    return out
        by_state = getattr(m, "explain_columns", None)
        got = None
        if by_state is not None:
            state = self._state(uid)
            got = by_state(uid, hist, cols[at], state) if state is not None else None
            if got is None:  # its reasons read the scores of the user's last scoring
                m._scores_for([uid], history)
        if got is None:
            got = m._explain(hist, [cols[at]])[0]
        for j, why in zip(at.tolist(), got, strict=True):
            out[j] = why
        return out

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's list, pending refresh and the direct source's state."""
        found = self.lists.forget_user(user_id)
        if self.refresher is not None:
            found = self.refresher.forget_user(user_id) or found
        forget = getattr(self.direct, "forget_user", None)
        return bool(forget(user_id)) or found if forget else found


_TEXT = frozenset((str, type(None)))


def _as_text(values: Iterable[Any]) -> list[str | None]:
    """``values`` as a list of text (None stays None); a list of text as it is."""
    got = values if type(values) is list else list(values)
    if _TEXT.issuperset(map(type, got)):
        return got
    return [v if v is None or type(v) is str else str(v) for v in got]


class Refresher:
    """Recomputes the lists of users with new engagement, on a background thread.

    Args:
        lists: The lists to keep fresh.
        interval_s: Seconds between rounds.
        max_users: Most users recomputed per round (the oldest pending first).
        weights: Event kind -> weight (the model's training weights by default).
        compact_every: Merge the overlay into the arrays once it holds this many users.
        busy: Share of one core the refresh may take (its duty cycle): a round computes
            for about ``busy * interval_s`` (in blocks sized from the measured cost of a
            user, at most ``chunk``; the rest stay pending, oldest first), and a round
            that ran longer waits proportionally longer before the next one. Under heavy
            ingest the refresh takes at most about this share of a core from serving, and
            a user's engagement waits longer for their list instead (until then, items
            outside their list and their reasons are scored from their whole history).
        flood_busy: The share while the refresh cannot keep up (a flood): more users
            pending than ``flood_rounds`` rounds at ``busy`` recompute. A flood of events
            over many users outgrows any share (a dense blend's list costs ~20 ms a user:
            a handful a second against thousands pending), so the refresh then leaves the
            cores to serving and recomputes a trickle, oldest first.
        flood_rounds: See ``flood_busy``.
        chunk: Most users recomputed per block.
        recompute: ``False``: another process recomputes the lists and hands them over
            (a feed worker's owner: :mod:`feedwise.server.listslog`); this one only keeps
            the engagement noted since, which requests fold in, and :meth:`start` starts
            no thread.
    """

    def __init__(self, lists: MaterialisedLists, interval_s: float = 0.5,
                 max_users: int = 2000, weights: InteractionWeights | None = None,
                 compact_every: int = 20_000, busy: float = 0.25, chunk: int = 128,
                 flood_busy: float = 0.05, flood_rounds: int = 20,
                 recompute: bool = True) -> None:
        self.lists = lists
        self.recompute = recompute
        self.interval_s = interval_s
        self.max_users = max_users
        self.compact_every = compact_every
        self.busy = busy
        self.flood_busy = flood_busy
        self.flood_rounds = flood_rounds
        self.share = busy  # the share of the last round (busy, or flood_busy in a flood)
        self.chunk = max(int(chunk), 1)
        w = weights or InteractionWeights()
        self.kind_weight = {k: float(getattr(w, k)) for k in (
            "click", "like", "comment", "share", "save", "purchase")
            if getattr(w, k) > 0}
        self.kind_weight["dwell"] = float(w.dwell_per_30s)
        self.kind_weight["rating"] = float(w.rating)
        self._pending: OrderedDict[str, float] = OrderedDict()
        self._history: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.refreshed = 0
        self.last_lag_s = 0.0
        self.max_lag_s = 0.0
        self.per_user_s = 0.0  # measured seconds a user's list takes (moving average)
        self.last_round_s = 0.0

    #: Events noted between two yields of the GIL (:meth:`note`).
    NOTE_CHUNK = 1000

    def note(self, user_ids: Iterable[Any], item_ids: Iterable[Any],
             kinds: Iterable[Any]) -> int:
        """Record landed events (positive kinds only); returns how many counted.

        A Python loop of a few dict operations an event: a worker's poll brings half a
        second of ingest at once (10-16k events), which held the GIL for 10-20 ms while
        the event loop of the process waited. It yields the GIL every
        :attr:`NOTE_CHUNK` events, so requests run between the chunks."""
        now = time.monotonic()
        cols = [_as_text(c) for c in (user_ids, item_ids, kinds)]
        weights = list(map(self.kind_weight.get, cols[2]))  # None: not a positive kind
        known = self.lists.model.item_index_
        history, pending, track = self._history, self._pending, self.recompute
        n = 0
        for lo in range(0, len(weights), self.NOTE_CHUNK):
            if lo:
                time.sleep(0)  # the GIL to the threads that wait for it
            hi = lo + self.NOTE_CHUNK
            with self._lock:  # every process notes every event: a few dict operations each
                for u, i, w in zip(cols[0][lo:hi], cols[1][lo:hi], weights[lo:hi],
                                   strict=True):
                    if not w or u is None or i not in known:
                        continue
                    h = history.get(u)
                    if h is None:
                        history[u] = {i: w}
                    else:
                        h[i] = h.get(i, 0.0) + w
                    if track and u not in pending:  # users to recompute
                        pending[u] = now
                    n += 1
        return n

    def history_of(self, user_id: str) -> dict[str, float] | None:
        return self._history.get(user_id)

    def pending(self) -> int:
        return len(self._pending)

    def forget_user(self, user_id: str) -> bool:
        with self._lock:
            found = self._history.pop(user_id, None) is not None
            return self._pending.pop(user_id, None) is not None or found

    def run_once(self) -> int:
        """One round: recompute up to ``max_users`` pending users, oldest first; with a
        ``busy`` budget, only as many as it allows at the measured cost of a user, the
        first block one user while that cost is unknown (a block of ``chunk`` users of a
        dense model can take seconds: more than a round's budget); returns the count."""
        self.share = self._share()
        limit = self.share * self.interval_s if self.share > 0 else float("inf")
        most = self.max_users
        if limit < float("inf") and self.per_user_s:
            most = min(most, max(1, int(limit / self.per_user_s)))
        with self._lock:
            take: list[tuple[str, float]] = []
            while self._pending and len(take) < most:
                take.append(self._pending.popitem(last=False))
            hist = {u: dict(self._history.get(u, {})) for u, _ in take}
        if not take:
            return 0
        t0 = time.perf_counter()
        done = 0
        while done < len(take):
            size = self.chunk if limit == float("inf") else 1  # 1: measures the cost
            if self.per_user_s > 0 and limit < float("inf"):  # what the budget has left
                left = limit - (time.perf_counter() - t0)
                size = max(1, min(self.chunk, int(left / self.per_user_s)))
            part = [u for u, _ in take[done:done + size]]
            b0 = time.perf_counter()
            self.lists.update(part, {u: hist[u] for u in part})
            cost = (time.perf_counter() - b0) / len(part)
            self.per_user_s = cost if not self.per_user_s else (
                0.7 * self.per_user_s + 0.3 * cost)
            done += len(part)
            if time.perf_counter() - t0 >= limit:
                break
        self.last_round_s = time.perf_counter() - t0
        if done < len(take):  # back to the front, in their order, unless re-noted since
            with self._lock:
                for u, t in reversed(take[done:]):
                    if u not in self._pending:
                        self._pending[u] = t
                        self._pending.move_to_end(u, last=False)
        oldest = take[0][1]
        take = take[:done]
        lag = time.monotonic() - oldest
        self.last_lag_s = lag
        self.max_lag_s = max(self.max_lag_s, lag)
        self.rounds += 1
        self.refreshed += len(take)
        if len(self.lists.overlay) >= self.compact_every:
            self.lists.compact()
        return len(take)

    def start(self) -> Refresher:
        if self._thread is None and self.recompute:
            self._thread = threading.Thread(target=self._run, name="feedwise-lists",
                                            daemon=True)
            self._thread.start()
        return self

    def pause_s(self) -> float:
        """The wait before the next round: ``interval_s``, or longer after a round that
        overran its budget, so the refresh keeps to a ``busy`` share of a core."""
        if self.share <= 0 or self.share >= 1:
            return self.interval_s
        return max(self.interval_s, self.last_round_s * (1.0 - self.share) / self.share)

    def _share(self) -> float:
        """``flood_busy`` while more users are pending than ``flood_rounds`` rounds at
        ``busy`` recompute (at the measured cost of a user), else ``busy``."""
        if self.busy <= 0 or not self.per_user_s or self.flood_busy >= self.busy:
            return self.busy
        per_round = self.busy * self.interval_s / self.per_user_s
        return self.flood_busy if len(self._pending) > self.flood_rounds * per_round \
            else self.busy

    def _run(self) -> None:
        while not self._stop.wait(self.pause_s()):
            self.last_round_s = 0.0
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - keep serving the lists as they are
                log.exception("refreshing materialised lists failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def shared_columns(engine: Any, model: Any, k: int = 200) -> np.ndarray:
    """Model columns of the posts any user's pool may hold besides their own list: the
    engine's ``k`` most popular (trending) and newest posts, and the model's ``k`` most
    popular items (for :meth:`MaterialisedLists.build`'s ``extra_cols``)."""
    cat = engine.catalog
    picks = [np.argsort(-cat.popularity, kind="stable")[:k],
             np.argsort(-cat.created_s, kind="stable")[:k]]
    cols = m_cols = model.item_columns(cat.item_ids[np.concatenate(picks)])
    pop = getattr(model, "popularity_", None)
    if pop is not None:
        m_cols = np.concatenate([cols, np.argsort(-np.nan_to_num(pop, nan=-np.inf),
                                                  kind="stable")[:k]])
    return np.unique(m_cols[m_cols >= 0])


def attach(engine: Any, lists: MaterialisedLists, refresher: Refresher | None = None
           ) -> MaterialisedSource | None:
    """Serve ``engine``'s personal candidates from ``lists`` (its ``recommender`` source
    becomes the direct path for users without a list); ``None`` if it has none."""
    direct = next((s for s in engine.sources if s.name == "recommender"), None)
    if direct is None:
        return None
    src = MaterialisedSource(lists, engine.catalog, direct)
    src.refresher = refresher
    engine.replace_source("recommender", src)
    return src


# ---------------------------------------------------------------------- kept between starts
#: The saved lists' layout (part of the cache key): 2 since :attr:`MaterialisedLists.why`
#: holds :data:`WHY` (the component and the liked item) instead of the component alone.
_FORMAT = 2


def lists_cache_key(version: str, model: Any, n: int, extra_cols: np.ndarray | None) -> str:
    """The folder name of ``model``'s lists (registry ``version``) in a lists cache: the
    version, ``n``, the shared columns and the users the model holds (a model rewritten
    without an erased user never matches the lists built before)."""
    import hashlib

    h = hashlib.sha256(f"{version}|{int(n)}|{_FORMAT}|".encode())
    if extra_cols is not None:
        h.update(np.unique(np.asarray(extra_cols, np.int64)).tobytes())
    h.update("\n".join(map(str, model.user_ids_)).encode())
    return f"{version}-{h.hexdigest()[:16]}"


def build_cached(model: Any, n: int, *, version: str, cache_dir: Any,
                 extra_cols: np.ndarray | None = None) -> MaterialisedLists:
    """:meth:`MaterialisedLists.build`, kept in ``cache_dir`` between starts of the service
    (``FEEDWISE_LISTS_CACHE``): the same version, ``n``, shared columns and users load the
    saved lists (memory-mapped) instead of scoring every user again. Other folders of the
    version are deleted when it is built again."""
    import shutil
    from pathlib import Path

    root = Path(cache_dir)
    folder = root / lists_cache_key(version, model, n, extra_cols)
    if (folder / "complete").is_file():
        t0 = time.perf_counter()
        try:
            out = MaterialisedLists.load(model, folder, n)
            out.built_s = time.perf_counter() - t0
            log.info("materialised lists of %s loaded from %s", version, folder)
            return out
        except (OSError, ValueError):
            log.exception("the cached lists in %s could not be read; building", folder)
    for old in root.glob(f"{version}-*"):
        shutil.rmtree(old, ignore_errors=True)
    out = MaterialisedLists.build(model, n, extra_cols=extra_cols)
    tmp = root / (folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out.save(tmp)
    (tmp / "complete").touch()
    tmp.rename(folder)
    return out


def forget_cache(cache_dir: Any) -> None:
    """Delete every list kept in ``cache_dir`` (a user was erased or objected: lists are
    derived from their data)."""
    import shutil
    from pathlib import Path

    root = Path(cache_dir)
    if root.is_dir():
        for folder in root.iterdir():
            shutil.rmtree(folder, ignore_errors=True)
