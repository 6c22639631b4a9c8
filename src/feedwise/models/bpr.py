"""`BPR`: Bayesian personalised ranking (Rendle et al. 2009) on implicit's CPU kernel."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.factorization import FactorModel, blas_single_thread, solve_users


class BPR(FactorModel):
    """Pairwise ranking factorisation trained by SGD on (user, liked, sampled) triples.

    Fitting runs ``implicit.cpu.bpr.BayesianPersonalizedRanking``. BPR's loss has no
    per-event confidence, so event weights enter as a threshold: pairs with weight below
    ``min_weight`` are not positives. Item factors carry a bias in their last column (user
    factors hold a 1 there). Users unseen in training are folded in by a regularised
    least-squares fit of their history against the fixed item factors.

    Args:
        factors: Latent dimensions (plus one bias column).
        learning_rate: SGD step.
        regularization: L2 penalty.
        iterations: Epochs.
        min_weight: Smallest interaction weight counted as a positive.
        num_threads: Kernel threads (0 = all cores).
        random_state: Seed of initialisation and sampling.
    """

    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.01,
                 regularization: float = 0.01, iterations: int = 100, min_weight: float = 0.0,
                 num_threads: int = 0, random_state: int | None = 42) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.min_weight = min_weight
        self.num_threads = num_threads
        self.random_state = random_state

    def _positives(self, m: sp.csr_matrix) -> sp.csr_matrix:
        x = sp.csr_matrix(m, dtype=np.float32, copy=True)
        x.data = (x.data >= max(self.min_weight, 1e-12)).astype(np.float32)
        x.eliminate_zeros()
        return x

    def _fit(self, data: Interactions) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        if self.factors <= 0 or self.iterations <= 0:
            raise ConfigError("factors and iterations must be positive, got "
                              f"factors={self.factors}, iterations={self.iterations}")
        x = self._positives(data.matrix)
        if x.nnz == 0:
            raise ConfigError(f"no interaction has weight >= min_weight={self.min_weight}")
        with blas_single_thread():
            kernel = BayesianPersonalizedRanking(
                factors=self.factors, learning_rate=self.learning_rate,
                regularization=self.regularization, iterations=self.iterations,
                num_threads=self.num_threads, random_state=self.random_state)
            kernel.fit(x, show_progress=False)
        self.user_factors_ = np.ascontiguousarray(kernel.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(kernel.item_factors, dtype=np.float32)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        x = self._positives(history)
        emb, bias = self.item_factors_[:, :-1], self.item_factors_[:, -1]
        users = solve_users(emb, x, regularization=max(self.regularization, 1e-3) * 10)
        return (users @ emb.T + bias).astype(np.float32)
