"""`ALS`: implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) on implicit's
CPU kernel."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.factorization import (
    FactorModel,
    Weighting,
    blas_single_thread,
    confidence,
)


class ALS(FactorModel):
    """Weighted alternating least squares over confidence ``C = 1 + alpha * f(weight)``.

    Fitting runs ``implicit.cpu.als.AlternatingLeastSquares`` (conjugate-gradient solver)
    on the confidence matrix. Users who were not in training, or who bring recent events,
    are folded in at request time with implicit's own user least-squares step against the
    fixed item factors.

    Args:
        factors: Latent dimensions.
        regularization: L2 penalty λ.
        alpha: Confidence slope.
        weighting: ``f`` in the confidence: ``linear``, ``log`` (log1p; default, robust to
            play counts) or ``binary``.
        iterations: ALS sweeps.
        num_threads: Kernel threads (0 = all cores).
        random_state: Seed of the factor initialisation.
    """

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 2.0,
                 weighting: Weighting = "log", iterations: int = 15, num_threads: int = 0,
                 random_state: int | None = 42) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.weighting = weighting
        self.iterations = iterations
        self.num_threads = num_threads
        self.random_state = random_state

    def _kernel(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=1.0,
            iterations=self.iterations, num_threads=self.num_threads,
            random_state=self.random_state)

    def _fit(self, data: Interactions) -> None:
        if self.factors <= 0 or self.iterations <= 0:
            raise ConfigError("factors and iterations must be positive, got "
                              f"factors={self.factors}, iterations={self.iterations}")
        conf = confidence(data.matrix, self.alpha, self.weighting)
        with blas_single_thread():
            kernel = self._kernel()
            kernel.fit(conf, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(kernel.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(kernel.item_factors, dtype=np.float32)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        conf = confidence(history, self.alpha, self.weighting)
        with blas_single_thread():
            kernel = self._kernel()
            kernel.item_factors = self.item_factors_
            users = kernel.recalculate_user(np.arange(history.shape[0]), conf)
        users = np.atleast_2d(users)
        return (users @ self.item_factors_.T).astype(np.float32)
