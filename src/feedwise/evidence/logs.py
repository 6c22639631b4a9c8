"""Logged feeds for off-policy evaluation: estimator inputs, files and the reward model.

Each logged row is one shown item: its ``position``, the logging policy's ``propensity``
(probability of having shown that item at that position) and the observed ``reward`` (a
click, an engagement value or revenue). A target policy supplies, for the same row, the
probability ``target_propensity`` with which *it* would have shown that item there and, for
the model-based estimators, the predictions of a :class:`RewardModel`. :class:`OffPolicyData`
holds these per-row inputs of the estimators (:mod:`feedwise.evidence.estimators`).

Logged-bandit files (:func:`load_bandit_log`) have the columns ``timestamp, item_id,
position, reward, propensity``, optionally ``policy`` and any context feature columns, and
may be joined with an item-context file (``item_id`` + item feature columns).
:func:`synthetic_bandit_log` draws logged feeds with a known true value of a target policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feedwise.errors import DataError, NotFittedError

LOG_COLUMNS: tuple[str, ...] = ("timestamp", "item_id", "position", "reward", "propensity")


# ----------------------------------------------------------------------------- data


@dataclass
class OffPolicyData:
    """Per-row inputs of the estimators (all arrays of length ``n``).

    Attributes:
        reward: Observed reward of the logged row.
        propensity: Logging policy's probability of the logged item at the logged position.
        target_propensity: Target policy's probability of the same item at the same position.
        position: Slot index (0-based) of the row.
        q_logged: Reward model's prediction for the logged item (DR / Switch-DR).
        q_target: Reward model's expected reward under the target policy in the row's
            context and position, ``sum_a pi_e(a | x, k) q(x, a, k)`` (DM / DR / Switch-DR).
        groups: Optional cluster ids (e.g. session) for the bootstrap.
    """

    reward: np.ndarray
    propensity: np.ndarray
    target_propensity: np.ndarray
    position: np.ndarray | None = None
    q_logged: np.ndarray | None = None
    q_target: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.reward = np.asarray(self.reward, dtype=np.float64)
        if self.reward.ndim != 1:
            raise DataError(f"off-policy data: reward has shape {self.reward.shape}, expected "
                            "a 1-d array (one reward per logged row)")
        n = len(self.reward)
        if n == 0:
            raise DataError("off-policy data is empty: no logged rows")
        for name in ("propensity", "target_propensity", "position", "q_logged", "q_target",
                     "groups"):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v)
            if name == "position":
                v = _positions(v)
            elif name != "groups":
                v = v.astype(np.float64)
            if v.shape != (n,):
                raise DataError(f"off-policy data: {name} has shape {v.shape}, expected ({n},)")
            setattr(self, name, v)
        for name in ("reward", "q_logged", "q_target"):
            v = getattr(self, name)
            if v is not None and not np.all(np.isfinite(v)):
                bad = int(np.flatnonzero(~np.isfinite(v))[0])
                raise DataError(f"{name} must be finite; row {bad} has {v[bad]!r} (drop or fill "
                                "rows with a missing reward or prediction)")
        p = self.propensity
        if not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p > 1):
            bad = int(np.flatnonzero(~((p > 0) & (p <= 1)))[0])
            raise DataError(f"propensity must be in (0, 1]; row {bad} has {p[bad]!r} "
                            "(log the logging policy's probability of the shown item)")
        tp = self.target_propensity
        if np.any(tp < 0) or np.any(tp > 1) or not np.all(np.isfinite(tp)):
            bad = int(np.flatnonzero(~((tp >= 0) & (tp <= 1)))[0])
            raise DataError(f"target_propensity must be in [0, 1]; row {bad} has {tp[bad]!r}")

    def __len__(self) -> int:
        return len(self.reward)

    @property
    def weights(self) -> np.ndarray:
        """Importance weights ``target_propensity / propensity``."""
        return self.target_propensity / self.propensity

    def take(self, idx: np.ndarray) -> OffPolicyData:
        """The rows at ``idx`` (used by the bootstrap)."""
        def t(v):
            return None if v is None else v[idx]
        return OffPolicyData(self.reward[idx], self.propensity[idx], self.target_propensity[idx],
                             t(self.position), t(self.q_logged), t(self.q_target), t(self.groups))

    @classmethod
    def from_action_probs(cls, reward: np.ndarray, action: np.ndarray, propensity: np.ndarray,
                          target_probs: np.ndarray, q_hat: np.ndarray | None = None,
                          position: np.ndarray | None = None,
                          groups: np.ndarray | None = None) -> OffPolicyData:
        """Build inputs from a target policy's full action distribution.

        Args:
            reward: Observed rewards, shape ``(n,)``.
            action: Logged action (item column) per row, shape ``(n,)``.
            propensity: Logging probability of the logged action, shape ``(n,)``.
            target_probs: Target policy's distribution over actions per row, ``(n, K)``.
            q_hat: Reward model predictions for every action per row, ``(n, K)``.
            position: Slot index per row.
            groups: Bootstrap cluster per row.
        """
        action = np.asarray(action)
        rows = np.arange(len(action))
        target_probs = np.asarray(target_probs, dtype=np.float64)
        if target_probs.ndim != 2 or target_probs.shape[0] != len(action):
            raise DataError(f"target_probs has shape {target_probs.shape}, expected "
                            f"({len(action)}, n_actions): one distribution per logged row")
        k = target_probs.shape[1]
        ok = np.isfinite(action) & (action >= 0) & (action < k) & (action == np.round(action))
        if not np.all(ok):
            bad = int(np.flatnonzero(~ok)[0])
            raise DataError(f"action must be an integer column index in [0, {k}); row {bad} "
                            f"has {action[bad]!r}")
        action = action.astype(np.int64)
        if not np.allclose(target_probs.sum(axis=1), 1.0, atol=1e-6):
            bad = int(np.flatnonzero(~np.isclose(target_probs.sum(axis=1), 1.0, atol=1e-6))[0])
            raise DataError(f"target_probs rows must sum to 1; row {bad} sums to "
                            f"{target_probs[bad].sum():.6g}")
        ql = qt = None
        if q_hat is not None:
            q_hat = np.asarray(q_hat, dtype=np.float64)
            if q_hat.shape != target_probs.shape:
                raise DataError(f"q_hat has shape {q_hat.shape}, expected {target_probs.shape} "
                                "(the same shape as target_probs)")
            ql = q_hat[rows, action]
            qt = np.einsum("ij,ij->i", target_probs, q_hat)
        return cls(reward, propensity, target_probs[rows, action], position, ql, qt, groups)


def _positions(v: np.ndarray) -> np.ndarray:
    """Slot indices as int64: non-negative whole numbers, or a :class:`DataError`."""
    if v.dtype.kind in "iu":
        ok = v >= 0
    else:
        try:
            f = v.astype(np.float64)
        except (TypeError, ValueError):
            raise DataError("position must be numeric (0-based slot indices)") from None
        ok = np.isfinite(f) & (f >= 0) & (f == np.floor(f))
    if not np.all(ok):
        bad = int(np.flatnonzero(~ok)[0])
        raise DataError(f"position must be a non-negative whole number (0-based slot); "
                        f"row {bad} has {v[bad]!r}")
    return v.astype(np.int64)


# ----------------------------------------------------------------------------- reward model


class RewardModel:
    """A regression of reward on context, item features and position (for DM / DR).

    Wraps scikit-learn's ``HistGradientBoostingRegressor`` on the numeric feature columns
    plus the position and a per-item target encoding (mean reward per item on the
    training rows).

    Args:
        feature_columns: Numeric columns of the log (context + item context) to use.
        max_iter: Boosting iterations.
        seed: Random state of the regressor.
        n_threads: OpenMP threads for the regressor (1 by default: on a busy machine more
            threads spin and run far slower).
    """

    def __init__(self, feature_columns: Sequence[str] = (), max_iter: int = 100,
                 seed: int = 0, n_threads: int | None = 1) -> None:
        self.feature_columns = feature_columns
        self.max_iter = max_iter
        self.seed = seed
        self.n_threads = n_threads

    def _x(self, log: pd.DataFrame, item_col: str = "item_id",
           position_col: str = "position") -> np.ndarray:
        cols = [log[c].to_numpy(np.float64) for c in self.feature_columns]
        item_mean = log[item_col].astype(str).map(self.item_mean_).fillna(self.global_mean_)
        cols += [log[position_col].to_numpy(np.float64), item_mean.to_numpy(np.float64)]
        return np.column_stack(cols)

    def fit(self, log: pd.DataFrame) -> RewardModel:
        """Fit on a logged-bandit table (columns ``item_id, position, reward`` + features)."""
        from sklearn.ensemble import HistGradientBoostingRegressor

        missing = [c for c in (*self.feature_columns, "item_id", "position", "reward")
                   if c not in log.columns]
        if missing:
            raise DataError(f"RewardModel.fit: missing column(s) {missing}")
        if len(log) == 0:
            raise DataError("RewardModel.fit: the log is empty (no logged rows to fit on; "
                            "check the filters applied to it)")
        self.global_mean_ = float(log["reward"].mean())
        self.item_mean_ = log.groupby(log["item_id"].astype(str))["reward"].mean().to_dict()
        from threadpoolctl import threadpool_limits

        self.model_ = HistGradientBoostingRegressor(max_iter=self.max_iter,
                                                    random_state=self.seed)
        with threadpool_limits(self.n_threads):
            self.model_.fit(self._x(log), log["reward"].to_numpy(np.float64))
        return self

    def predict(self, log: pd.DataFrame, item_col: str = "item_id",
                position_col: str = "position") -> np.ndarray:
        """Predicted reward of ``item_col`` shown at ``position_col`` in each row's context."""
        from threadpoolctl import threadpool_limits

        if not hasattr(self, "model_"):
            raise NotFittedError("RewardModel is not fitted; call fit(log) first")
        with threadpool_limits(self.n_threads):
            return self.model_.predict(self._x(log, item_col, position_col))


# ----------------------------------------------------------------------------- loading


def load_bandit_log(path: str | Path, item_context: str | Path | None = None) -> pd.DataFrame:
    """Read a logged-bandit table (CSV, TSV, Parquet or JSONL), optionally with item context.

    Required columns: ``timestamp, item_id, position, reward, propensity``. Optional:
    ``policy``, ``target_propensity``, ``target_item_id``, ``session_id`` and any context
    feature columns. The item-context file has ``item_id`` and item feature columns, joined
    on ``item_id`` (columns prefixed ``item_`` when they clash).

    Raises:
        DataError: A missing file or column, or a row with an invalid value (the message
            names the file, row and column).
    """
    log = _read_table(path)
    missing = [c for c in LOG_COLUMNS if c not in log.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; a logged-bandit file needs "
                        f"{list(LOG_COLUMNS)}")
    for col in ("position", "reward", "propensity"):
        num = pd.to_numeric(log[col], errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy())
        if len(bad):
            raise DataError(f"{path}: row {bad[0] + 1}, column {col!r}: "
                            f"{log[col].iloc[bad[0]]!r} is not a number")
        log[col] = num
    p = log["propensity"].to_numpy()
    bad = np.flatnonzero((p <= 0) | (p > 1))
    if len(bad):
        raise DataError(f"{path}: row {bad[0] + 1}, column 'propensity': {p[bad[0]]!r} is not "
                        "in (0, 1]; log the probability the logging policy gave the shown item")
    pos = log["position"].to_numpy(np.float64)
    bad = np.flatnonzero((pos < 0) | (pos != np.floor(pos)))
    if len(bad):
        raise DataError(f"{path}: row {bad[0] + 1}, column 'position': {pos[bad[0]]!r} is not "
                        "a 0-based slot index (a whole number >= 0)")
    log["position"] = log["position"].astype(np.int64)
    log["item_id"] = log["item_id"].astype(str)
    if pd.api.types.is_numeric_dtype(log["timestamp"]):
        # numbers are unix seconds (pandas alone would read them as nanoseconds)
        ts = pd.to_datetime(log["timestamp"], unit="s", utc=True, errors="coerce")
    else:
        ts = pd.to_datetime(log["timestamp"], utc=True, errors="coerce")
    if ts.isna().any():
        num = pd.to_numeric(log["timestamp"], errors="coerce")
        if num.notna().all():
            ts = pd.to_datetime(num, unit="s", utc=True)
        else:
            r = int(np.flatnonzero(ts.isna().to_numpy())[0])
            raise DataError(f"{path}: row {r + 1}, column 'timestamp': "
                            f"{log['timestamp'].iloc[r]!r} is not a time")
    log["timestamp"] = ts
    if item_context is not None:
        items = _read_table(item_context)
        if "item_id" not in items.columns:
            raise DataError(f"{item_context}: the item-context file needs an 'item_id' column")
        items["item_id"] = items["item_id"].astype(str)
        items = items.drop_duplicates("item_id", keep="last")
        rename = {c: f"item_{c}" for c in items.columns if c != "item_id" and c in log.columns}
        log = log.merge(items.rename(columns=rename), on="item_id", how="left")
    return log


def _read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    suf = p.suffix.lower()
    try:
        if suf == ".parquet":
            return pd.read_parquet(p)
        if suf in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True)
        return pd.read_csv(p, sep="\t" if suf == ".tsv" else ",")
    except (ValueError, OSError) as e:
        raise DataError(f"{p}: cannot read: {e}") from None


def log_to_data(log: pd.DataFrame, *, target_propensity: str = "target_propensity",
                target_item: str | None = "target_item_id",
                reward_model: RewardModel | None = None,
                group: str | None = "session_id") -> OffPolicyData:
    """Turn a loaded log into estimator inputs.

    The target policy is described per row by ``target_propensity`` (its probability of the
    logged item at the logged position). With a ``target_item`` column (the item the target
    policy would show at that position, deterministically) and a fitted ``reward_model``,
    the model-based estimators (DM, DR, Switch-DR) are available too.
    """
    if target_propensity not in log.columns:
        raise DataError(f"the log has no {target_propensity!r} column: add the target "
                        "policy's probability of each logged item at its position")
    ql = qt = None
    if reward_model is not None and target_item and target_item in log.columns:
        ql = reward_model.predict(log)
        qt = reward_model.predict(log, item_col=target_item)
    groups = log[group].to_numpy() if group and group in log.columns else None
    return OffPolicyData(log["reward"].to_numpy(np.float64),
                         log["propensity"].to_numpy(np.float64),
                         log[target_propensity].to_numpy(np.float64),
                         log["position"].to_numpy(np.int64), ql, qt, groups)


# ----------------------------------------------------------------------------- synthetic


@dataclass
class SyntheticBanditLog:
    """Synthetic logged feeds with a known true value of the target policy.

    Attributes:
        data: Estimator inputs (with a deliberately coarse reward model's predictions).
        true_value: Exact expected reward per impression of the target policy.
        log: The logged rows as a table (``timestamp, item_id, position, reward,
            propensity, target_propensity, session_id`` + context features).
    """

    data: OffPolicyData
    true_value: float
    log: pd.DataFrame = field(repr=False)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def draw_slots(rng: np.random.Generator, pi0: np.ndarray, n_slots: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_slots`` independent draws per session (row of ``pi0``, the logging policy's
    probabilities over items): session, position and item of every logged slot."""
    n_sessions, n_items = pi0.shape
    cum = np.cumsum(pi0, axis=1)
    u = rng.random((n_sessions, n_slots))
    actions = np.minimum((u[:, :, None] > cum[:, None, :]).sum(axis=2), n_items - 1)
    return (np.repeat(np.arange(n_sessions), n_slots), np.tile(np.arange(n_slots), n_sessions),
            actions.ravel())


def synthetic_bandit_log(n_impressions: int = 100_000, *, n_items: int = 20, n_slots: int = 5,
                         dim: int = 5, logging_temperature: float = 1.0,
                         target_temperature: float = 0.5, seed: int = 0) -> SyntheticBanditLog:
    """Logged feeds from a known logging policy, and the exact value of a target policy.

    Each session has a context ``x ~ N(0, I)`` and ``n_slots`` slots; at every slot the
    logging policy draws an item from a softmax of noisy scores (the independence
    assumption holds by construction). The click probability of item ``a`` at slot ``k`` is
    ``examine_k * sigmoid(x . theta_a + b_a)``. The target policy is a sharper softmax of the
    true scores, so it differs from the logging policy but keeps full support. The reward
    model is the per-(item, position) mean reward, which ignores the context on purpose
    (DM is then biased; DR must correct it).

    Args:
        n_impressions: Logged rows (sessions = n_impressions // n_slots).
        n_items: Number of candidate items.
        n_slots: Slots per feed.
        dim: Context dimension.
        logging_temperature: Softmax temperature of the logging policy.
        target_temperature: Softmax temperature of the target policy.
        seed: Seed of everything random.
    """
    rng = np.random.default_rng(seed)
    world = np.random.default_rng(12345)  # the same world for every seed
    theta = world.normal(0, 0.7, size=(dim, n_items))
    bias = world.normal(-1.5, 0.5, size=n_items)
    log_noise = world.normal(0, 1.0, size=(dim, n_items))
    examine = 1.0 / (1.0 + 0.3 * np.arange(n_slots))
    n_sessions = max(1, n_impressions // n_slots)
    x = rng.normal(size=(n_sessions, dim))
    logits = x @ theta + bias
    p_true = 1.0 / (1.0 + np.exp(-logits))                       # (S, K)
    pi0 = _softmax((x @ (theta + log_noise) + bias) / logging_temperature)
    pie = _softmax(logits / target_temperature)
    # Exact value of the target on a large independent sample of contexts.
    xt = world.normal(size=(200_000, dim))
    lt = xt @ theta + bias
    true_per_slot = np.einsum("ij,ij->i", _softmax(lt / target_temperature),
                              1.0 / (1.0 + np.exp(-lt))).mean()
    true_value = float(true_per_slot * examine.mean())
    # Log n_slots independent draws per session.
    sess, pos, a = draw_slots(rng, pi0, n_slots)
    click_p = p_true[sess, a] * examine[pos]
    reward = (rng.random(len(a)) < click_p).astype(np.float64)
    prop = pi0[sess, a]
    tprop = pie[sess, a]
    # Coarse reward model: mean reward per (item, position) on the log itself.
    cell = a * n_slots + pos
    sums = np.bincount(cell, weights=reward, minlength=n_items * n_slots)
    cnts = np.bincount(cell, minlength=n_items * n_slots)
    qhat_cells = ((sums + reward.mean()) / (cnts + 1.0)).reshape(n_items, n_slots)
    q_logged = qhat_cells[a, pos]
    q_target = np.einsum("ij,ji->i", pie[sess], qhat_cells[:, pos])
    data = OffPolicyData(reward, prop, tprop, pos, q_logged, q_target, sess)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    log = pd.DataFrame({"timestamp": t0 + pd.to_timedelta(sess, unit="s"),
                        "item_id": [f"i{k}" for k in a], "position": pos, "reward": reward,
                        "propensity": prop, "target_propensity": tprop,
                        "session_id": sess})
    for d in range(dim):
        log[f"x{d}"] = x[sess, d]
    return SyntheticBanditLog(data, true_value, log)
