"""`Interactions`: the training view of the store (a weighted user x item CSR matrix)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from feedwise.errors import DataError, NotFoundError
from feedwise.schema import utc


def _index(ids: np.ndarray) -> dict[str, int]:
    return {str(x): i for i, x in enumerate(ids)}


@dataclass(frozen=True, eq=False)
class Interactions:
    """Users x items weights with the id maps and the time window they cover.

    Attributes:
        matrix: ``csr_matrix`` (n_users x n_items, float32) of positive weights.
        user_ids: External user id of each row (object array of str).
        item_ids: External item id of each column.
        last_ts: Same sparsity as ``matrix``: unix seconds of the latest event of each pair
            (``None`` when unknown).
        negatives: Binary ``csr_matrix`` of hidden / reported (user, item) pairs, or ``None``.
        item_labels: Optional human-readable label (title) per item, for reasons.
        since: Start of the time window (inclusive), or ``None``.
        until: End of the time window (exclusive), or ``None``.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    last_ts: sp.csr_matrix | None = None
    negatives: sp.csr_matrix | None = None
    item_labels: np.ndarray | None = None
    since: datetime | None = None
    until: datetime | None = None
    user_index: dict[str, int] = field(init=False, repr=False)
    item_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = sp.csr_matrix(self.matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        if m.shape != (len(self.user_ids), len(self.item_ids)):
            raise DataError(f"matrix shape {m.shape} does not match {len(self.user_ids)} users x "
                            f"{len(self.item_ids)} items")
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "user_ids", np.asarray(self.user_ids, dtype=object))
        object.__setattr__(self, "item_ids", np.asarray(self.item_ids, dtype=object))
        object.__setattr__(self, "user_index", _index(self.user_ids))
        object.__setattr__(self, "item_index", _index(self.item_ids))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, user: str = "user_id", item: str = "item_id",
                   weight: str | None = "weight", ts: str | None = "ts",
                   item_ids: np.ndarray | None = None, user_ids: np.ndarray | None = None,
                   item_labels: dict[str, str] | None = None) -> Interactions:
        """Build from a long table of (user, item[, weight][, ts]) rows; duplicates are summed.

        Args:
            df: The rows.
            user, item: Column names of the ids.
            weight: Column of positive weights, or ``None`` for 1.0 per row.
            ts: Column of event times (datetime or unix seconds), or ``None``.
            item_ids, user_ids: Fix the id maps (e.g. to share them across splits).
            item_labels: Optional item id -> title.
        """
        for col in (user, item):
            if col not in df.columns:
                raise DataError(f"column {col!r} missing; have {list(df.columns)}")
        users = df[user].astype(str).to_numpy(dtype=object)
        items = df[item].astype(str).to_numpy(dtype=object)
        uids = np.asarray(user_ids if user_ids is not None else np.unique(users), dtype=object)
        iids = np.asarray(item_ids if item_ids is not None else np.unique(items), dtype=object)
        uix, iix = _index(uids), _index(iids)
        try:
            rows = np.fromiter((uix[u] for u in users), dtype=np.int64, count=len(users))
            cols = np.fromiter((iix[i] for i in items), dtype=np.int64, count=len(items))
        except KeyError as e:
            raise DataError(f"id {e.args[0]!r} is not in the given id map") from None
        w = (np.ones(len(df), np.float32) if weight is None
             else df[weight].to_numpy(dtype=np.float32))
        shape = (len(uids), len(iids))
        mat = sp.csr_matrix((w, (rows, cols)), shape=shape)
        last = None
        if ts is not None and ts in df.columns:
            t = df[ts]
            if pd.api.types.is_numeric_dtype(t.dtype):
                secs = t.to_numpy(dtype=np.float64)
            else:
                secs = (pd.to_datetime(t, utc=True) - pd.Timestamp(0, tz="UTC")
                        ).dt.total_seconds().to_numpy()
            last = _max_csr(rows, cols, secs, shape)
        labels = None
        if item_labels:
            labels = np.array([item_labels.get(str(i), str(i)) for i in iids], dtype=object)
        return cls(mat, uids, iids, last_ts=last, item_labels=labels)

    @classmethod
    def from_pairs(cls, pos: pa.Table, negs: pa.Table, *,
                   item_titles: Mapping[str, str] | None = None,
                   since: datetime | None = None, until: datetime | None = None,
                   empty_hint: str = "ingest events first (feedwise ingest FILE)"
                   ) -> Interactions:
        """Build from aggregated pairs, with the id-mapping rules every engine shares.

        Args:
            pos: Columns ``user_id, item_id, weight, ts`` (unix seconds of the latest event),
                one row per (user, item) with positive weight.
            negs: Columns ``user_id, item_id``: hidden / reported pairs.
            item_titles: Item id -> title, for reasons.
            since, until: The time window the pairs cover.
            empty_hint: How to fix an empty window (part of the error message).

        Ids are the sorted distinct strings of both tables, so the embedded store and the
        Spark engine map the same events to the same rows and columns.
        """
        users = np.unique(np.concatenate([_strings(pos["user_id"]), _strings(negs["user_id"])]))
        items = np.unique(np.concatenate([_strings(pos["item_id"]), _strings(negs["item_id"])]))
        if len(users) == 0:
            raise DataError(f"no events with positive weight in this window; {empty_hint}")
        shape = (len(users), len(items))
        r = np.searchsorted(users, _strings(pos["user_id"]))
        c = np.searchsorted(items, _strings(pos["item_id"]))
        mat = sp.csr_matrix((pos["weight"].to_numpy().astype(np.float32), (r, c)), shape=shape)
        last = sp.csr_matrix((pos["ts"].to_numpy().astype(np.float64), (r, c)), shape=shape)
        nr = np.searchsorted(users, _strings(negs["user_id"]))
        nc = np.searchsorted(items, _strings(negs["item_id"]))
        negatives = sp.csr_matrix((np.ones(len(nr), np.float32), (nr, nc)), shape=shape)
        labels = None
        if item_titles:
            labels = np.array([item_titles.get(str(i), str(i)) for i in items], dtype=object)
        return cls(mat, users.astype(object), items.astype(object), last_ts=last,
                   negatives=negatives, item_labels=labels,
                   since=utc(since) if since else None, until=utc(until) if until else None)

    # ------------------------------------------------------------------ accessors
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    def user_row(self, user_id: str) -> int:
        try:
            return self.user_index[str(user_id)]
        except KeyError:
            raise NotFoundError(f"unknown user {user_id!r}") from None

    def item_col(self, item_id: str) -> int:
        try:
            return self.item_index[str(item_id)]
        except KeyError:
            raise NotFoundError(f"unknown item {item_id!r}") from None

    def items_of(self, user_id: str) -> np.ndarray:
        """External ids of the items a user has positive weight on."""
        r = self.user_row(user_id)
        return self.item_ids[self.matrix.indices[self.matrix.indptr[r]:self.matrix.indptr[r + 1]]]

    def label(self, col: int) -> str:
        return str(self.item_labels[col]) if self.item_labels is not None else str(
            self.item_ids[col])

    def with_matrix(self, matrix: sp.csr_matrix, last_ts: sp.csr_matrix | None = None
                    ) -> Interactions:
        """A copy with the same id maps and another matrix (used by splits)."""
        return replace(self, matrix=matrix, last_ts=last_ts)

    def to_frame(self) -> pd.DataFrame:
        coo = self.matrix.tocoo()
        out = pd.DataFrame({"user_id": self.user_ids[coo.row], "item_id": self.item_ids[coo.col],
                            "weight": coo.data})
        if self.last_ts is not None:
            out["ts"] = np.asarray(self.last_ts[coo.row, coo.col]).ravel()
        return out

    def __repr__(self) -> str:
        return (f"Interactions({self.n_users} users x {self.n_items} items, nnz={self.nnz}, "
                f"since={self.since}, until={self.until})")


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=str)


def _max_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
             ) -> sp.csr_matrix:
    """CSR of the maximum value per (row, col); sparsity matches a summed CSR of the pairs."""
    key = rows * shape[1] + cols
    order = np.lexsort((vals, key))
    key, vals = key[order], vals[order]
    last = np.r_[key[1:] != key[:-1], True]
    k = key[last]
    return sp.csr_matrix((vals[last].astype(np.float64), (k // shape[1], k % shape[1])),
                         shape=shape)


class InteractionWeights(BaseModel):
    """How event kinds turn into interaction weights.

    Hide and report never add weight: they are recorded as negatives. Dwell adds
    ``dwell_per_30s`` per 30 seconds of ``dwell_ms``, capped at ``dwell_cap``. A rating adds
    its ``value`` times ``rating``.
    """

    model_config = ConfigDict(extra="forbid")

    impression: float = 0.0
    click: float = 1.0
    like: float = 2.0
    comment: float = 3.0
    share: float = 4.0
    save: float = 3.0
    purchase: float = 5.0
    rating: float = 1.0
    dwell_per_30s: float = 1.0
    dwell_cap: float = 5.0
    ad_impression: float = 0.0
    ad_click: float = 0.0
    conversion: float = 0.0

    def sql(self, kind: str = "kind", dwell: str = "dwell_ms", value: str = "value") -> str:
        """A SQL expression of one event's weight (0 for kinds that carry none)."""
        fixed = ["impression", "click", "like", "comment", "share", "save", "purchase",
                 "ad_impression", "ad_click", "conversion"]
        cases = " ".join(f"WHEN '{k}' THEN {float(getattr(self, k))!r}" for k in fixed
                         if getattr(self, k))
        return (f"CASE {kind} {cases} "
                f"WHEN 'rating' THEN coalesce({value}, 0) * {self.rating!r} "
                f"WHEN 'dwell' THEN least(coalesce({dwell}, 0) / 30000.0 * {self.dwell_per_30s!r},"
                f" {self.dwell_cap!r}) ELSE 0 END")
