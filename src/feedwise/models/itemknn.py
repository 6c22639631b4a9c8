"""`ItemKNN`: classic item-item collaborative filtering with cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from feedwise.errors import ConfigError, NotFoundError
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList
from feedwise.models.base import HistoryRecommender, gather_scores
from feedwise.models.memory import split_by_cost

#: Working bytes per cell of a dense similarity block in ``fit``: the sparse product
#: (values and indices), its dense copy, the shrinkage denominator and its temporary, and
#: ``argpartition``'s negated copy and int64 indices.
DENSE_FIT_CELL_BYTES = 24
#: Working bytes per stored entry of a sparse similarity block in ``fit``: the sparse
#: product, its row ids, the shrunk values, the filtered copies and the sort order.
SPARSE_FIT_ENTRY_BYTES = 64


def fit_blocks(n: int, block_size: int, budget: int, entries: np.ndarray
               ) -> tuple[str, list[tuple[int, int]]]:
    """How an item-item model computes its ``n`` rows within ``budget`` bytes.

    ``("dense", spans)``: blocks of ``block_size`` rows x ``n`` dense similarities fit, and
    the rows go in those blocks (exactly as before the budget existed). Otherwise
    ``("sparse", spans)``: blocks of rows whose sparse products, bounded by ``entries``
    (an upper bound of each row's stored similarities), fit the budget; a dense row is
    never built.
    """
    rows = min(max(int(block_size), 1), n)
    if rows * n * DENSE_FIT_CELL_BYTES <= budget:
        return "dense", [(s, min(s + rows, n)) for s in range(0, n, rows)]
    return "sparse", split_by_cost(np.minimum(entries, n), budget / SPARSE_FIT_ENTRY_BYTES)


def sparse_top_k(block: sp.csr_matrix, start: int, k: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``block`` (row ``r`` is item ``start + r``; its own column is skipped) its
    ``k`` largest positive entries: how many each row keeps, then their columns (int32)
    and values, row by row, best first. Equal values are taken by column, so the result
    does not depend on the order entries are stored in."""
    block = sp.csr_matrix(block)
    n_rows = block.shape[0]
    rows = np.repeat(np.arange(n_rows, dtype=np.int32), np.diff(block.indptr))
    cols = block.indices.astype(np.int32, copy=False)
    vals = block.data
    keep = (vals > 0) & (cols != rows + start)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    del keep
    order = np.lexsort((cols, -vals, rows))  # each row's entries, best first
    rows, cols, vals = rows[order], cols[order], vals[order]
    del order
    first = np.searchsorted(rows, rows, side="left")  # where each entry's row begins
    top = (np.arange(len(rows)) - first) < k
    counts = np.bincount(rows[top], minlength=n_rows)
    return counts, cols[top], vals[top]


def stack_rows(counts: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray],
               shape: tuple[int, int]) -> sp.csr_matrix:
    """The CSR matrix of consecutive row blocks given as (entries per row, columns, values),
    float32 with int32 indices: no int64 coordinates of every entry are ever built."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts) if counts else np.zeros(0, np.int64), out=indptr[1:])
    out = sp.csr_matrix((np.concatenate(vals).astype(np.float32, copy=False) if vals
                         else np.zeros(0, np.float32),
                         np.concatenate(cols) if cols else np.zeros(0, np.int32), indptr),
                        shape=shape)
    out.sort_indices()
    return out


class ItemKNN(HistoryRecommender):
    """Item-based neighbourhood model (Sarwar et al. 2001; Deshpande & Karypis 2004).

    ``sim(i, j)`` is the cosine between the item columns of the user x item matrix (with an
    optional shrinkage term). Each item keeps its ``k`` most similar neighbours ``N_k(i)``,
    and a user's score for ``i`` is the neighbourhood formula

        score(u, i) = sum_{j in N_k(i) ∩ I(u)} sim(i, j) * r(u, j)

    divided by ``sum |sim(i, j)|`` over the same ``j`` when ``normalize`` is set.

    Args:
        k: Neighbours kept per item.
        shrink: Shrinkage added to the cosine denominator (damps rare co-occurrence).
        binary: Treat every interaction as 1 (implicit feedback) instead of its weight.
        normalize: Use the weighted-average form of the formula.
        block_size: Items whose similarities are computed at once as dense rows, when
            ``block_size x n_items`` of them fit in the memory budget (see
            :mod:`feedwise.models.memory`); otherwise the similarities are computed as
            sparse products in blocks that fit it and each item's top ``k`` is taken from
            its stored entries: no dense ``n_items``-wide row is built, in ``fit`` or in
            ``recommend``.

    Memory: the learned state is the top-``k`` similarities, at most ``n_items x k`` entries
    (8 bytes each, kept twice: by row and transposed); ``fit`` and ``recommend`` work in
    blocks within the budget.
    """

    name = "itemknn"
    sparse_entry_bytes = 40  # scores, and with ``normalize`` the denominators aligned to them

    def __init__(self, k: int = 50, shrink: float = 10.0, binary: bool = True,
                 normalize: bool = False, block_size: int = 2048) -> None:
        self.k = k
        self.shrink = shrink
        self.binary = binary
        self.normalize = normalize
        self.block_size = block_size

    def _prepare(self, m: sp.csr_matrix) -> sp.csr_matrix:
        m = sp.csr_matrix(m, dtype=np.float32)
        if self.binary:
            m = m.copy()
            m.data[:] = 1.0
        return m

    def _fit(self, data: Interactions) -> None:
        if self.k <= 0:
            raise ConfigError(f"k must be positive, got {self.k}")
        x = self._prepare(data.matrix)
        xt = x.T.tocsr()  # items x users
        norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel())
        xn = normalize(xt, axis=1) if self.shrink == 0 else xt
        n = xt.shape[0]
        k = min(self.k, n - 1) if n > 1 else 1
        # row i of xn @ xn.T has at most one entry per item of each of i's users
        users_of = sp.csr_matrix((np.ones(xt.nnz), xt.indices, xt.indptr), shape=xt.shape)
        entries = users_of @ np.diff(x.indptr).astype(np.float64)
        mode, spans = fit_blocks(n, self.block_size, self.budget(), entries)
        if mode == "sparse":
            self._fit_sparse(xn, norms, k, spans)
            return
        rows, cols, vals = [], [], []
        for start, stop in spans:
            block = (xn[start:stop] @ xn.T).toarray()
            if self.shrink:
                block /= np.outer(norms[start:stop], norms) + self.shrink
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            top = np.argpartition(-block, k - 1, axis=1)[:, :k]
            v = np.take_along_axis(block, top, axis=1)
            keep = v > 0
            rows.append(np.repeat(np.arange(start, stop), k)[keep.ravel()])
            cols.append(top.ravel()[keep.ravel()])
            vals.append(v.ravel()[keep.ravel()])
        # sim_[i, j] = sim(i, j) for j in N_k(i)
        self.sim_ = sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                                   (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
        self.sim_t_ = self.sim_.T.tocsr()

    def _fit_sparse(self, xn: sp.csr_matrix, norms: np.ndarray, k: int,
                    spans: list[tuple[int, int]]) -> None:
        """``sim_`` from sparse similarity blocks: the same cosine (and shrinkage) as the
        dense blocks, each item's top ``k`` taken from its stored entries."""
        n = xn.shape[0]
        ui = xn.T.tocsr()  # users x items, made once rather than per block
        counts, cols, vals = [], [], []
        for start, stop in spans:
            block = sp.csr_matrix(xn[start:stop] @ ui)
            if self.shrink:
                r = np.repeat(np.arange(start, stop), np.diff(block.indptr))
                block.data /= norms[r] * norms[block.indices] + self.shrink
                del r
            c, i, v = sparse_top_k(block, start, k)
            del block
            counts.append(c)
            cols.append(i)
            vals.append(v)
        del ui
        self.sim_ = stack_rows(counts, cols, vals, (n, n))
        del counts, cols, vals
        self.sim_t_ = self.sim_.T.tocsr()

    def _score_matrix(self, x: sp.csr_matrix) -> np.ndarray:
        x = self._prepare(x)
        scores = (x @ self.sim_t_).toarray()
        if self.normalize:
            denom = (sp.csr_matrix((np.ones_like(x.data), x.indices, x.indptr), shape=x.shape)
                     @ abs(self.sim_t_)).toarray()
            scores = np.divide(scores, denom, out=np.zeros_like(scores), where=denom > 0)
        return scores.astype(np.float32)

    def _score_sparse(self, x: sp.csr_matrix) -> sp.csr_matrix:
        """:meth:`_score_matrix` without the dense rows: the stored entries of the same
        sparse products (and, with ``normalize``, the same divisions)."""
        x = self._prepare(x)
        scores = sp.csr_matrix(x @ self.sim_t_, dtype=np.float32)  # no duplicate entries
        if self.normalize and scores.nnz:
            scores.sort_indices()
            ones = sp.csr_matrix((np.ones_like(x.data), x.indices, x.indptr), shape=x.shape)
            denom = sp.csr_matrix(ones @ abs(self.sim_t_), dtype=np.float32)
            pattern = sp.csr_matrix((np.ones(scores.nnz, np.float32), scores.indices,
                                     scores.indptr), shape=scores.shape)
            # the denominator where a score is stored: every stored score has one (its
            # similarities are > 0), so both hold the same entries in the same order
            at = sp.csr_matrix(denom.multiply(pattern), dtype=np.float32)
            at.sum_duplicates()
            del denom, pattern
            if at.nnz != scores.nnz or not np.array_equal(at.indices, scores.indices):
                raise AssertionError("ItemKNN: denominators do not align with scores")
            scores.data = np.divide(scores.data, at.data, out=np.zeros_like(scores.data),
                                    where=at.data > 0)
            scores.eliminate_zeros()
        return scores

    def _score_fanout(self) -> np.ndarray:
        return np.diff(self.sim_t_.indptr)

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
        """:meth:`_score_matrix` of one history row at ``cols``, from the items' rows of
        neighbours (``sim_``: row j holds ``sim_t_[:, j]``)."""
        x = self._prepare(history)
        x.sum_duplicates()
        x.sort_indices()
        num, den = gather_scores(self.sim_, x.indices.astype(np.int64),
                                 x.data.astype(np.float64), cols)
        if self.normalize:
            num = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        return num.astype(np.float32)

    def _explain_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray]
                       ) -> list[np.ndarray]:
        x = self._prepare(history)
        out = []
        for r, items in enumerate(cols):
            liked = x.indices[x.indptr[r]:x.indptr[r + 1]]
            w = x.data[x.indptr[r]:x.indptr[r + 1]]
            if len(liked) == 0 or len(items) == 0:
                out.append(np.full(len(items), -1, np.int64))
                continue
            # each item's contribution from each liked item (in the history's order), read
            # from the item's row of neighbours: the liked item with the largest one (the
            # first of equal ones) is the reason
            srt = np.argsort(liked, kind="stable")
            ordered = liked[srt]
            because = []
            for i in np.asarray(items):
                lo, hi = self.sim_.indptr[i], self.sim_.indptr[i + 1]
                nb, sim = self.sim_.indices[lo:hi], self.sim_.data[lo:hi]
                pos = np.minimum(np.searchsorted(ordered, nb), len(ordered) - 1)
                hit = ordered[pos] == nb
                at = srt[pos[hit]]
                contrib = np.zeros(len(liked), dtype=np.result_type(sim, w))
                contrib[at] = sim[hit] * w[at]
                j = int(contrib.argmax())
                because.append(int(liked[j]) if contrib[j] > 0 else -1)
            out.append(np.asarray(because, np.int64))
        return out

    def similar_items(self, item_id: str, n: int = 10) -> ItemList:  # noqa: D102
        self._check_fitted()
        c = self.item_index_.get(str(item_id))
        if c is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        row = self.sim_[c]
        order = np.argsort(-row.data, kind="stable")[:n]
        cols = row.indices[order]
        return ItemList(self.item_ids_[cols], row.data[order],
                        [f"similar to {self.item_labels_[c]}"] * len(cols))

    def _state(self) -> dict:
        return {"sim": self.sim_}

    def _set_state(self, state: dict) -> None:
        self.sim_ = state["sim"]
        self.sim_t_ = self.sim_.T.tocsr()
