"""Train/test splits of `Interactions` that keep the id maps (so test rows line up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError
from feedwise.interactions import Interactions
from feedwise.schema import utc


@dataclass(frozen=True)
class Split:
    """A train and a test view over the same users and items."""

    train: Interactions
    test: Interactions
    name: str = "split"

    def __repr__(self) -> str:
        return f"Split({self.name}: train nnz={self.train.nnz}, test nnz={self.test.nnz})"


def _mask_split(data: Interactions, test_mask: np.ndarray, name: str) -> Split:
    m = data.matrix.tocoo()
    lt = None if data.last_ts is None else _aligned_ts(data)

    def part(mask: np.ndarray) -> Interactions:
        mat = sp.csr_matrix((m.data[mask], (m.row[mask], m.col[mask])), shape=data.shape)
        ts = None if lt is None else sp.csr_matrix((lt[mask], (m.row[mask], m.col[mask])),
                                                   shape=data.shape)
        return data.with_matrix(mat, ts)

    return Split(part(~test_mask), part(test_mask), name)


def _aligned_ts(data: Interactions) -> np.ndarray:
    """The last-event time of each stored (row, col) pair, in the matrix's COO order."""
    m = data.matrix.tocoo()
    t = data.last_ts.tocsr()
    t.sort_indices()
    return np.asarray(t[m.row, m.col]).ravel()


def random_split(data: Interactions, ratio: float = 0.75, seed: int = 42,
                 min_train: int = 1) -> Split:
    """Per-user random split: each user keeps ``ratio`` of their items in train (stratified).

    Every user with at least two items keeps at least ``min_train`` in train and one in test.
    """
    if not 0 < ratio < 1:
        raise ConfigError(f"ratio must be in (0, 1), got {ratio}")
    rng = np.random.default_rng(seed)
    m = data.matrix.tocoo()
    order = np.lexsort((rng.random(m.nnz), m.row))  # shuffle within each user
    counts = np.bincount(m.row, minlength=data.n_users)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(starts, counts)
    n_train = np.maximum(np.round(counts * ratio).astype(np.int64), min_train)
    n_train = np.where(counts >= 2, np.minimum(n_train, counts - 1), counts)
    return _mask_split(data, rank >= n_train[m.row], f"random{int(ratio * 100)}")


def last_n_split(data: Interactions, n: int = 1) -> Split:
    """Per-user leave-last-n-out by event time (users with <= n items stay in train)."""
    if data.last_ts is None:
        raise DataError("last_n_split needs event times (Interactions.last_ts)")
    m = data.matrix.tocoo()
    ts = _aligned_ts(data)
    order = np.lexsort((-ts, m.row))
    counts = np.bincount(m.row, minlength=data.n_users)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.empty(m.nnz, dtype=np.int64)
    rank[order] = np.arange(m.nnz) - np.repeat(starts, counts)  # 0 = newest
    return _mask_split(data, (rank < n) & (counts[m.row] > n), f"last{n}")


def temporal_split(data: Interactions, at: datetime | float | None = None,
                   test_fraction: float = 0.2) -> Split:
    """Global temporal split: pairs last seen at/after ``at`` are test.

    Without ``at``, the cut is the time quantile that leaves ``test_fraction`` of the pairs
    in test. Test pairs of users absent from train are kept (they test cold start).
    """
    if data.last_ts is None:
        raise DataError("temporal_split needs event times (Interactions.last_ts)")
    ts = _aligned_ts(data)
    if at is None:
        cut = float(np.quantile(ts, 1 - test_fraction))
    elif isinstance(at, datetime):
        cut = utc(at).timestamp()
    else:
        cut = float(at)
    return _mask_split(data, ts >= cut, "temporal")
