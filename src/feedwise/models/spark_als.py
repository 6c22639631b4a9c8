"""`SparkALS`: implicit-feedback ALS trained by Apache Spark MLlib, served by feedwise.

Fitting runs ``pyspark.ml.recommendation.ALS`` (``implicitPrefs=True``); the learned user
and item factors are kept as plain arrays, so the fitted model scores, recommends, saves
(npz + JSON) and loads exactly like any other feedwise model — and loading or serving it
needs neither Spark nor Java. Two ways to get one:

* ``SparkALS(...).fit(interactions)`` trains on interactions already on the driver (the
  estimator contract; used to evaluate the Spark trainer on the same split as the others);
* :func:`feedwise.engines.spark.train_als` builds the interactions with Spark SQL from the
  Parquet event layout and hands their weights to ``fit`` as a Spark frame
  (``fit(interactions, frame=...)``), so the events are never held on the driver.

Factors trained elsewhere are taken as they are by :meth:`SparkALS.with_factors`.

Users unseen in training are folded in at request time with Spark's own implicit-ALS user
step (confidence ``1 + alpha * weight``, L2 ``regularization`` times the user's item count).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError
from feedwise.interactions import Interactions
from feedwise.models.factorization import FactorModel
from feedwise.sparksession import spark_session, to_arrow

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def _weights_frame(spark: SparkSession, data: Interactions) -> DataFrame:
    """``data``'s weights as a Spark frame of ``u``, ``i`` (matrix row, column), ``weight``."""
    m = data.matrix.tocoo()
    table = pa.table({"u": m.row.astype(np.int32), "i": m.col.astype(np.int32),
                      "weight": m.data.astype(np.float32)})
    try:  # Spark >= 4 takes Arrow directly
        return spark.createDataFrame(table)
    except (TypeError, ValueError):
        return spark.createDataFrame(table.to_pandas())


def _als(factors: int, regularization: float, alpha: float, iterations: int, seed: int,
         blocks: int | None):
    from pyspark.ml.recommendation import ALS

    kw: dict[str, Any] = {}
    if blocks:
        kw = {"numUserBlocks": blocks, "numItemBlocks": blocks}
    return ALS(rank=factors, maxIter=iterations, regParam=regularization, alpha=alpha,
               implicitPrefs=True, nonnegative=False, seed=seed, userCol="u", itemCol="i",
               ratingCol="weight", coldStartStrategy="drop", **kw)


def _factor_array(df: DataFrame, n: int, k: int) -> np.ndarray:
    """Spark's ``id, features`` factor table as an ``n x k`` array (zero rows for ids
    without factors, e.g. users seen only in negatives)."""
    t = to_arrow(df.select("id", "features"))
    out = np.zeros((n, k), dtype=np.float32)
    if t.num_rows:
        ids = t["id"].to_numpy()
        feats = t["features"].combine_chunks()
        out[ids] = np.asarray(feats.values.to_numpy(zero_copy_only=False),
                              dtype=np.float32).reshape(-1, k)
    return out


class SparkALS(FactorModel):
    """Spark MLlib ALS with implicit preferences.

    Args:
        factors: Rank of the factorisation.
        regularization: Spark's ``regParam`` (scaled by each user's / item's count).
        alpha: Confidence slope: confidence = 1 + alpha * weight.
        iterations: Alternating least-squares sweeps.
        seed: Seed of the factor initialisation.
        blocks: User and item blocks of Spark's ALS (``None``: Spark's default parallelism).
        master: Spark master for :meth:`fit` (``None``: ``$FEEDWISE_SPARK_MASTER`` or
            ``local[*]``; an already running session is reused).
    """

    name = "spark_als"
    fallback_reason = "popular"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0, blocks: int | None = None,
                 master: str | None = None) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.seed = seed
        self.blocks = blocks
        self.master = master

    def _check_params(self) -> None:
        if self.factors <= 0 or self.iterations <= 0:
            raise ConfigError("factors and iterations must be positive, got "
                              f"factors={self.factors}, iterations={self.iterations}")
        if self.regularization < 0 or self.alpha < 0:
            raise ConfigError("regularization and alpha must be >= 0, got "
                              f"{self.regularization} and {self.alpha}")

    def fit(self, data: Interactions, *, frame: DataFrame | None = None) -> Self:
        """Learn from ``data`` with Spark MLlib ALS.

        Args:
            data: The interactions; the factors' rows and columns are its users and items.
            frame: ``data``'s weights already on the cluster, as a Spark DataFrame of
                ``u``, ``i`` (``data``'s matrix row and column, ints) and ``weight``
                (float); default: ``data``'s matrix, sent to a session on ``master``.
        """
        if not isinstance(data, Interactions) or data.nnz == 0:
            return super().fit(data)  # raises the estimator contract's DataError
        self._check_params()
        if frame is None:
            frame = _weights_frame(spark_session(self.master), data)
        fitted = _als(**self._als_params()).fit(frame)
        return self.with_factors(data, _factor_array(fitted.userFactors, data.n_users,
                                                     self.factors),
                                 _factor_array(fitted.itemFactors, data.n_items, self.factors))

    def with_factors(self, data: Interactions, user_factors: np.ndarray,
                     item_factors: np.ndarray) -> Self:
        """Fit from factors trained elsewhere, aligned with ``data``'s rows and columns."""
        u = np.ascontiguousarray(user_factors, dtype=np.float32)
        v = np.ascontiguousarray(item_factors, dtype=np.float32)
        if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[1]:
            raise DataError(f"factor shapes {u.shape} and {v.shape} do not agree")
        if u.shape[0] != data.n_users or v.shape[0] != data.n_items:
            raise DataError(f"factors cover {u.shape[0]} users x {v.shape[0]} items but the "
                            f"interactions have {data.n_users} x {data.n_items}")
        super().fit(data)
        self.user_factors_, self.item_factors_ = u, v
        return self

    def _fit(self, data: Interactions) -> None:
        """Checks the parameters; :meth:`with_factors` sets the factors after the base fit."""
        self._check_params()

    def _als_params(self) -> dict[str, Any]:
        return {"factors": self.factors, "regularization": self.regularization,
                "alpha": self.alpha, "iterations": self.iterations, "seed": self.seed,
                "blocks": self.blocks}

    def user_vectors(self, history: sp.csr_matrix) -> np.ndarray:
        """Fold-in: Spark's implicit-ALS user step for each history row, items held fixed."""
        v = self.item_factors_.astype(np.float64)
        k = v.shape[1]
        gram = v.T @ v
        out = np.zeros((history.shape[0], k), dtype=np.float32)
        for r in range(history.shape[0]):
            lo, hi = history.indptr[r], history.indptr[r + 1]
            if lo == hi:
                continue
            cols, w = history.indices[lo:hi], history.data[lo:hi].astype(np.float64)
            vh = v[cols]
            c1 = self.alpha * np.abs(w)
            n_pos = max(int(np.sum(w > 0)), 1)
            a = gram + (vh.T * c1) @ vh + self.regularization * n_pos * np.eye(k)
            b = vh.T @ np.where(w > 0, 1.0 + c1, 0.0)
            out[r] = np.linalg.solve(a, b)
        return out

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray | None:
        return (self.user_vectors(history) @ self.item_factors_.T).astype(np.float32)
