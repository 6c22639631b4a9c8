"""`Hybrid`: a blend of recommenders with a cold-start fallback chain.

Each component scores every item; scores are normalised per user and per model (z-scores)
and summed with the component weights, or fused by reciprocal rank. The chain for the cold
cases:

* **no history** (unknown user, no events given) → trending items in the user's declared
  interests (tags) → global trending;
* **a few events** (a user not in training, or events newer than the model) → each
  component folds the events in at request time;
* **new item** (in the items table, no interactions yet) → joins the catalogue at fit and is
  scored by the content component (its content neighbours of what the user liked), since
  collaborative components have nothing on it.

By default the blend is calibrated at fit: its weights and NormEASE's ``l2`` / ``pop_boost``
are chosen on validation splits carved from the data being fitted (see
:mod:`feedwise.models.calibration`), starting from :data:`DEFAULT_COMPONENTS`, and each of
:data:`OPTIONAL_COMPONENTS` joins the blend only where those splits show it helps.
"""

from __future__ import annotations

import inspect
import json
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.interactions import Interactions
from feedwise.models.base import History, Recommender, row_sizes
from feedwise.models.calibration import Calibration, Component, calibrate
from feedwise.models.content import item_table, widen_catalog
from feedwise.models.popularity import Popularity
from feedwise.models.scratch import call_state

#: The out-of-the-box blend, where calibration starts. Weights were chosen on validation
#: splits carved from the training parts of MovieLens-100k, MovieLens latest-small and
#: Last.fm (seeds 7, 8, 9; never on test data; ``benchmarks/hybrid_blends.py`` reproduces
#: the choice).
#: NormEASE (EASE on a degree-normalised Gram with temporal adjacency, interactions on each
#: user's own value scale) leads; TimeEASE (0.5) adds the sequence signal, RP3beta (0.2)
#: long-tail neighbours, Content (0.15) item text and tags, Social (0.15) the friends'
#: items. Of 36 blends (NormEASE 0.75-2, TimeEASE 0.5-1, RP3beta 0.2-0.6), this one had
#: the best worst-case gain over the previous weights (TimeEASE 1.0, NormEASE 0.75, RP3beta
#: 0.6, with NormEASE as now): NDCG@10 0.2781 / 0.2333 / 0.1774 against 0.2765 / 0.2317 /
#: 0.1759.
#: History: TimeEASE 1.0 + EASE 0.25 + RP3beta 0.6 (+ content, social) came first; NormEASE
#: replaced EASE; its value weighting and new defaults then made it the strongest single
#: model, and its weight rose; RP3beta then weighed interactions by value too (alone far
#: better on Last.fm; in this blend a wash). Adding ALS did not help; GF-CF blends won on
#: MovieLens-100k but lost clearly on latest-small and Last.fm.
DEFAULT_COMPONENTS: tuple[Component, ...] = (
    ("norm-ease", 2.0, {}),
    ("time-ease", 0.5, {}),
    ("rp3beta", 0.2, {}),
    ("content", 0.15, {}),
    ("social", 0.15, {"symmetric": True}),
)

#: Components calibration may add to the default blend (each kept only where validation
#: splits of the data show it helps): GF-CF's ideal low-pass filter, a smooth low-rank view
#: of each user that the item-item models lack.
OPTIONAL_COMPONENTS: tuple[Component, ...] = (
    ("gf-cf", 0.3, {"linear": 0.0}),
)

#: The default blend before NormEASE replaced EASE: a default hybrid saved without its
#: component list (written before the list was saved) was fitted with this one.
_SAVED_BEFORE_SPECS: tuple[Component, ...] = (
    ("time-ease", 1.0, {}),
    ("ease", 0.25, {}),
    ("rp3beta", 0.6, {}),
    ("content", 0.15, {}),
    ("social", 0.15, {"symmetric": True}),
)


#: Component defaults that changed after hybrids were saved without every component's full
#: params (written before those were saved): NormEASE's, before value weighting.
_SAVED_BEFORE_PARAMS: dict[str, dict[str, Any]] = {
    "norm-ease": {"binary": True, "l2": 16.0, "dropout": 0.25, "pop_boost": 0.25,
                  "temporal": 0.5}}


def _plain(v: Any) -> Any:
    """A numpy scalar in component params (from tuning) as its Python value, for JSON."""
    return v.item() if hasattr(v, "item") else str(v)


class Hybrid(Recommender):
    """Weighted blend of recommenders plus the cold-start chain.

    Side data goes to ``fit``: ``items`` (item table: tags, titles; feeds the content
    component, the interest fallback and new items), ``edges`` (social graph for the social
    component) and ``interests`` (user id -> declared tags). A component that needs side
    data which was not given (social without ``edges``, content without ``items`` or item
    labels) is left out of the blend.

    Args:
        components: ``(name, weight, params)`` per component; ``None`` = the default blend.
        fusion: ``score`` (weighted per-user z-scores) or ``rrf`` (reciprocal rank fusion).
        rrf_k: The constant of reciprocal rank fusion.
        trending_half_life_days: Half-life of the trending fallback (``None`` = all-time).
        calibrate: Choose the blend's weights and its components' key settings on
            validation splits of the data at fit (see :mod:`feedwise.models.calibration`;
            ``score`` fusion only; with the default blend, also whether to add each of
            :data:`OPTIONAL_COMPONENTS`). The blend as fitted is ``components_``, and what
            the calibration measured is ``calibration_``.
        calibration_splits: Validation splits the calibration averages over.
        calibration_seed: Seed of the first validation split.
    """

    name = "hybrid"
    saved_before = {"calibrate": False}

    def __init__(self, components: Sequence[Component] | None = None,
                 fusion: Literal["score", "rrf"] = "score", rrf_k: float = 60.0,
                 trending_half_life_days: float | None = 14.0, calibrate: bool = True,
                 calibration_splits: int = 2, calibration_seed: int = 0) -> None:
        self.components = components
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.trending_half_life_days = trending_half_life_days
        self.calibrate = calibrate
        self.calibration_splits = calibration_splits
        self.calibration_seed = calibration_seed

    # ------------------------------------------------------------------ fit
    def _specs(self) -> list[Component]:
        specs = DEFAULT_COMPONENTS if self.components is None else self.components
        out = []
        for spec in specs:
            if len(spec) not in (2, 3):
                raise ConfigError(f"a component is (name, weight[, params]), got {spec!r}")
            name = str(spec[0])
            try:
                weight = float(spec[1])
            except (TypeError, ValueError):
                weight = float("nan")
            if not np.isfinite(weight):
                raise ConfigError(f"the weight of component {name!r} must be a finite number, "
                                  f"got {spec[1]!r}; give e.g. ({name!r}, 0.5, {{}})")
            params = dict(spec[2]) if len(spec) == 3 and spec[2] else {}
            if name == self.name:
                raise ConfigError("a hybrid cannot contain a hybrid")
            if name not in Recommender.registry:
                raise ConfigError(f"unknown component {name!r}; choose one of "
                                  f"{sorted(Recommender.registry)}")
            out.append((name, weight, params))
        if not out:
            raise ConfigError("a hybrid needs at least one component")
        return out

    def fit(self, data: Interactions, items: pd.DataFrame | None = None,
            edges: pd.DataFrame | None = None,
            interests: Mapping[str, Iterable[str]] | None = None,
            progress: Callable[[str], None] | None = None) -> Self:
        """Fit every component on ``data`` (widened with the new items of ``items``), after
        calibrating the blend on validation splits of ``data`` when ``calibrate`` is set.

        ``progress`` is called with a short description of each calibration step."""
        if self.fusion not in ("score", "rrf"):
            raise ConfigError(f"fusion must be 'score' or 'rrf', got {self.fusion!r}")
        self._check_calibration_params()
        specs = self._specs()
        if not any(w for _, w, _ in specs):
            raise ConfigError("every component of the hybrid has weight 0, so nothing would be "
                              "ranked: give at least one component of `components` a weight "
                              "other than 0")
        table = item_table(items)
        data = widen_catalog(data, table["item_id"])
        has_text = items is not None or data.item_labels is not None

        def fit_one(name: str, params: dict[str, Any], part: Interactions
                    ) -> Recommender | None:
            model = Recommender.registry[name](**params)
            model.memory_budget = self.memory_budget  # the blend's budget binds its parts
            sig = inspect.signature(model.fit).parameters
            if ("edges" in sig and edges is None) or ("items" in sig and not has_text):
                return None  # side data it needs was not given: it sits out
            kwargs = {k: v for k, v in (("items", items), ("edges", edges)) if k in sig}
            return model.fit(part, **kwargs)

        self.calibration_ = None
        if self.calibrate and self.fusion == "score":
            optional = OPTIONAL_COMPONENTS if self.components is None else ()
            self.calibration_ = calibrate(specs, data, fit_one, self._normalise,
                                          optional=optional, n_splits=self.calibration_splits,
                                          seed=self.calibration_seed, progress=progress)
            if self.calibration_ is not None:
                specs = self.calibration_.components
        self.components_ = specs
        models, active = [], []
        for name, weight, params in specs:
            fitted = fit_one(name, params, data) if weight else None
            models.append(fitted or Recommender.registry[name](**params))
            active.append(fitted is not None)
        if not any(active):
            raise ConfigError("no component of the hybrid with a weight could be fitted with the "
                              "data given: give fit the side data they need (edges for social, "
                              "items for content) or weigh another component")
        self._models = models
        self.active_ = np.array(active, dtype=bool)
        tags = table.set_index("item_id")["tags"].to_dict()
        self.item_tags_ = np.array(["|".join(tags.get(str(i), [])) for i in data.item_ids],
                                   dtype=object)
        trend = Popularity(half_life_days=self.trending_half_life_days if data.last_ts
                           is not None else None).fit(data)
        self.trending_ = trend.scores_.astype(np.float32)
        self.set_interests(interests or {})
        return super().fit(data)

    def _check_calibration_params(self) -> None:
        if not isinstance(self.calibrate, bool | np.bool_):
            raise ConfigError(f"calibrate must be True or False, got {self.calibrate!r}; in "
                              f"JSON params write true / false without quotes")
        for name in ("calibration_splits", "calibration_seed"):
            v = getattr(self, name)
            if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Integral):
                raise ConfigError(f"{name} must be a whole number, got {v!r}")
        if self.calibration_seed < 0:
            raise ConfigError(f"calibration_seed must be >= 0, got {self.calibration_seed}")
        if self.calibration_splits < 1:
            raise ConfigError(f"calibration_splits must be at least 1, got "
                              f"{self.calibration_splits}; to keep the blend as given, set "
                              f"calibrate=False instead")

    def _fit(self, data: Interactions) -> None:
        if not hasattr(self, "_models"):
            self.fit(data)  # called through the base path: plain data, no side tables

    def set_interests(self, interests: Mapping[str, Iterable[str]]) -> Self:
        """Declared interests (user id -> tags) used when a user has no history yet."""
        self.interests_ = {str(u): [str(t) for t in tags] for u, tags in interests.items()}
        return self

    @property
    def models_(self) -> list[Recommender]:
        """The fitted components (inactive ones unfitted)."""
        return self._models

    # ------------------------------------------------------------------ scoring
    def _normalise(self, model: Recommender, s: np.ndarray,
                   stats: np.ndarray | None = None) -> np.ndarray:
        """Per-user z-scores of ``s`` (or reciprocal ranks); with ``stats`` (users x 3),
        each user's mean, divisor and own lowest z go there (see :meth:`_column_parts`)."""
        s = s.astype(np.float32, copy=True)
        if hasattr(model, "modelled_") and len(model.modelled_) < s.shape[1]:
            mask = np.ones(s.shape[1], dtype=bool)
            mask[model.modelled_] = False
            s[:, mask] = np.nan  # EASE's memory guard left these out
        ok = np.isfinite(s)
        if self.fusion == "rrf":
            filled = np.where(ok, s, -np.inf)
            ranks = np.argsort(np.argsort(-filled, axis=1, kind="stable"), axis=1)
            out = (1.0 / (self.rrf_k + 1 + ranks)).astype(np.float32)
            out[~ok] = 0.0
            return out
        # per-user z-scores over the finite scores; the rest take the batch's lowest z
        n = np.maximum(ok.sum(axis=1, keepdims=True), 1).astype(np.float32)
        mu = np.where(ok, s, 0.0).sum(axis=1, keepdims=True) / n
        z = np.where(ok, s - mu, 0.0)
        sd = np.sqrt(np.square(z).sum(axis=1, keepdims=True) / n)
        div = np.where(sd > 0, sd, 1.0)
        z /= div
        low = np.where(ok, z, np.inf).min(axis=1, keepdims=True)
        if stats is not None:  # a row scored alone takes its own lowest z
            stats[:, 0:1], stats[:, 1:2] = mu, div
            stats[:, 2:3] = np.where(np.isfinite(low), low, 0.0)
        z[~ok] = low.min() if ok.any() else 0.0
        return z

    def _contributions(self, rows: np.ndarray | None, hist: sp.csr_matrix | None,
                       stats: np.ndarray | None = None) -> np.ndarray:
        """Weighted normalised scores per component (components x users x items); with
        ``stats`` (users x components x 3), each user's z-score constants go there."""
        n_users = len(rows) if rows is not None else hist.shape[0]
        specs = self.components_
        out = np.zeros((len(specs), n_users, self.n_items), dtype=np.float32)
        for k, ((_, w, _), model, on) in enumerate(zip(specs, self._models, self.active_,
                                                       strict=True)):
            if not on or w == 0:
                continue
            s = model._score_rows(rows) if rows is not None else model._score_history(hist)
            if s is not None:
                out[k] = w * self._normalise(model, s, None if stats is None else stats[:, k])
        return out

    def _score_cell_bytes(self) -> int:
        """Per (user, item) cell: each component's slice of the contributions, held twice
        (the blend and the copy kept for reasons), one component's scoring and normalising
        temporaries at a time, and the top-n selection (measured: 69 bytes with five
        components)."""
        return 8 * len(getattr(self, "_models", None) or ()) + 40

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._contributions(rows, None).sum(axis=0)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._contributions(None, history).sum(axis=0)

    def _blending(self) -> np.ndarray:
        """Mask of the components that contribute (fitted and with a non-zero weight)."""
        return self.active_ & np.array([w != 0 for _, w, _ in self.components_], dtype=bool)

    def _interest_scores(self, user_id: str) -> tuple[np.ndarray, list[str]]:
        """Trending scores with items in the user's interests first, and those interests."""
        wanted = self.interests_.get(user_id, [])
        base = self.trending_ / (self.trending_.max() + 1.0)
        if not wanted:
            return base.copy(), []
        match = np.array([bool(set(str(t).split("|")) & set(wanted)) if t else False
                          for t in self.item_tags_])
        return (base + match).astype(np.float32), wanted

    def _scores_for(self, user_ids: Sequence[str], history: History
                    ) -> tuple[np.ndarray, np.ndarray]:
        scores, personal, _ = self._scored(user_ids, history, False)
        return scores, personal

    def _scores_and_state(self, user_ids: Sequence[str], history: History
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The scores, and per user the z-score constants of every component (mean,
        divisor, fill; NaN for a user scored by trending): what :meth:`score_columns`
        needs to score a few items exactly as the dense row does."""
        return self._scored(user_ids, history, self.fusion != "rrf")

    def _scored(self, user_ids: Sequence[str], history: History, want_state: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rows = np.array([self.user_index_.get(u, -1) for u in user_ids], dtype=np.int64)
        folded = np.array([bool(history and history.get(u)) for u in user_ids])
        known = (rows >= 0) & ~folded
        contrib = np.zeros((len(self._models), len(user_ids), self.n_items), np.float32)
        stats = (np.zeros((len(user_ids), len(self._models), 3), np.float32)
                 if want_state else None)
        if known.any():
            part = None if stats is None else stats[known]
            contrib[:, known] = self._contributions(rows[known], None, part)
            if stats is not None:
                stats[known] = part
            # a user held with an empty training row whom no component scores (no friends
            # either): the cold-start chain, as for an unknown user, not the catalogue's
            # order of a blend that is the same for every item
            empty = np.flatnonzero(known & (row_sizes(self.seen_, rows) == 0))
            if len(empty):
                total = contrib[:, empty].sum(axis=0)
                flat = empty[~(np.nanmax(total, axis=1) > np.nanmin(total, axis=1))]
                known[flat] = False
                contrib[:, flat] = 0.0
        rest = np.flatnonzero(~known)
        cold: dict[int, list[str]] = {}
        if len(rest):
            hist = self.history_matrix(history, [user_ids[i] for i in rest])
            has = np.diff(hist.indptr) > 0
            if has.any():
                part = None if stats is None else stats[rest[has]]
                contrib[:, rest[has]] = self._contributions(None, hist[has], part)
                if stats is not None:
                    stats[rest[has]] = part
            for i in rest[~has]:
                scores, wanted = self._interest_scores(user_ids[i])
                contrib[0, i] = scores
                cold[int(i)] = wanted
                if stats is not None:
                    stats[i] = np.nan
        # the batch's per-component scores, for _explain (called next by recommend on this
        # thread); thread-local so concurrent requests on one model never mix
        call_state(self).last = (list(user_ids), rows, contrib, cold)
        state = None if stats is None else stats.reshape(len(user_ids), -1)
        return contrib.sum(axis=0), np.ones(len(user_ids), dtype=bool), state

    def _column_parts(self, history: sp.csr_matrix, cols: np.ndarray,
                      state: np.ndarray | None) -> np.ndarray | None:
        """Each component's contribution at ``cols`` for one history row, from the
        components' :meth:`score_columns` and the user's z-score constants ``state``;
        ``None`` where that path does not exist (no state, rank fusion, a component
        without column scoring, a user scored by trending)."""
        if state is None or self.fusion == "rrf" or history.nnz == 0:
            return None
        st = np.asarray(state, np.float32).reshape(len(self._models), 3)
        if np.isnan(st).any():
            return None
        cols = np.asarray(cols, np.int64)
        out = np.zeros((len(self._models), len(cols)), np.float32)
        for k, ((_, w, _), model, on) in enumerate(zip(self.components_, self._models,
                                                       self.active_, strict=True)):
            if not on or w == 0:
                continue
            s = model.score_columns(history, cols)
            if s is None:
                return None
            s = np.array(s, dtype=np.float32)
            if hasattr(model, "modelled_") and len(model.modelled_) < self.n_items:
                pos = getattr(model, "_positions", None)
                s[(pos()[cols] < 0) if pos is not None
                  else ~np.isin(cols, model.modelled_)] = np.nan  # as _normalise leaves out
            ok = np.isfinite(s)
            mu, div, fill = st[k]
            z = np.where(ok, s - mu, np.float32(0.0))
            z /= div
            z[~ok] = fill
            out[k] = w * z
        return out

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray,
                      state: np.ndarray | None = None) -> np.ndarray | None:
        """The blend at ``cols`` for one history row, given the user's ``state`` (their
        row of :meth:`_scores_and_state`); ``None`` without it."""
        parts = self._column_parts(history, cols, state)
        return None if parts is None else parts.sum(axis=0)

    def explain_columns(self, user_id: str, history: sp.csr_matrix, cols: np.ndarray,
                        state: np.ndarray | None) -> list[str] | None:
        """Reasons for ``cols`` as :meth:`_explain` gives them after scoring the user (the
        component contributing most explains each item), from the user's ``state``
        instead of a scored row; ``None`` where :meth:`score_columns` has no path."""
        parts = self._column_parts(history, cols, state)
        if parts is None:
            return None
        return self._reasons(history, self.user_index_.get(str(user_id), -1),
                             np.asarray(cols, np.int64), parts)

    # ------------------------------------------------------------------ reasons
    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        users, rows, contrib, cold = call_state(self).last
        out: list[list[str]] = []
        for b, items in enumerate(cols):
            if b in cold:
                wanted = set(cold[b])
                reasons = []
                for i in items:
                    tags = [t for t in str(self.item_tags_[i]).split("|") if t in wanted]
                    reasons.append(f"trending in {sorted(tags)[0]}" if tags else "trending")
                out.append(reasons)
                continue
            out.append(self._reasons(history[b], int(rows[b]), np.asarray(items),
                                     contrib[:, b, items]))
        return out

    def _winners(self, parts: np.ndarray) -> np.ndarray:
        """Per item, the component whose contribution (``parts``: components x items) is
        largest: the one that explains it."""
        part = parts.copy()
        part[~self._blending()] = -np.inf  # components that sit out never explain
        return (np.argmax(part, axis=0) if part.shape[1]
                else np.array([], dtype=np.int64))

    def last_winners(self, cols: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """For each user of this thread's last scoring (batch row ``b``), the component
        that explains each of ``cols[b]`` as :meth:`_explain` would; ``None`` for a user
        explained by trending. Stored with a user's materialised list, so the reasons of
        the posts shown from it need no component scored again
        (:meth:`explain_winners`)."""
        _, _, contrib, cold = call_state(self).last
        return [None if b in cold else
                self._winners(contrib[:, b, np.asarray(c, np.int64)]).astype(np.int8)
                for b, c in enumerate(cols)]

    def winners_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray],
                      winners: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """For each history row ``b`` and each of ``cols[b]``, the liked item (model
        column) that its explaining component (``winners[b]``, from :meth:`last_winners`)
        names as the reason; -1 where it names none (no winner, a component whose reasons
        are of another kind, or its fallback). Stored with a materialised list, so the
        reasons of the posts shown from it need no component's weights read again
        (:meth:`winner_reasons`)."""
        out = [np.full(len(c), -1, np.int64) for c in cols]
        for k, model in enumerate(self._models):
            picks = {b: p for b, w in enumerate(winners)
                     if w is not None and len(p := np.flatnonzero(w == k))}
            if not picks:
                continue
            rows = list(picks)
            got = model._explain_liked(history[rows], [np.asarray(cols[b], np.int64)[p]
                                                        for b, p in picks.items()])
            if got is None:
                continue
            for (b, p), g in zip(picks.items(), got, strict=True):
                out[b][p] = g
        return out

    def winner_reasons(self, winners: np.ndarray, liked: np.ndarray) -> list[str]:
        """The reasons of items explained by component ``winners[i]`` through the liked
        item ``liked[i]`` (both >= 0, from :meth:`winners_liked`), as :meth:`_explain`
        words them."""
        winners = np.asarray(winners)
        reasons: list[str] = [""] * len(winners)
        for k in np.unique(winners).tolist():
            pick = np.flatnonzero(winners == k)
            for p, g in zip(pick.tolist(), self._models[k].liked_reasons(liked[pick]),
                            strict=True):
                reasons[p] = g
        return reasons

    def explain_winners(self, user_id: str, history: sp.csr_matrix, cols: np.ndarray,
                        winners: np.ndarray) -> list[str]:
        """Reasons for ``cols`` given the component that explains each (``winners``, from
        :meth:`last_winners`)."""
        return self._reasons_by(history, self.user_index_.get(str(user_id), -1),
                                np.asarray(cols, np.int64), np.asarray(winners, np.int64))

    def _reasons(self, history: sp.csr_matrix, row: int, items: np.ndarray,
                 parts: np.ndarray) -> list[str]:
        """One user's reasons for ``items``: the component whose contribution (``parts``:
        components x items) is largest explains each."""
        return self._reasons_by(history, row, items, self._winners(parts))

    def _reasons_by(self, history: sp.csr_matrix, row: int, items: np.ndarray,
                    best: np.ndarray) -> list[str]:
        reasons = [self.fallback_reason] * len(items)
        for k in np.unique(best):
            pick = np.flatnonzero(best == k)
            model = self._models[int(k)]
            sub = [items[pick]]
            if hasattr(model, "explain_rows"):
                got = model.explain_rows([row], sub)[0]
            else:
                got = model._explain(history, sub)[0]
            for p, g in zip(pick, got, strict=True):
                reasons[p] = g
        return reasons

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        state: dict[str, Any] = {"active": self.active_, "item_tags": self.item_tags_,
                                 "trending": self.trending_,
                                 "interest_users": np.array(list(self.interests_), dtype=str),
                                 "interest_tags": np.array(["|".join(v) for v in
                                                            self.interests_.values()],
                                                           dtype=str),
                                 # the blend as fitted (calibrated): a later default
                                 # cannot change it
                                 "specs": np.array(json.dumps(self.components_,
                                                              default=_plain)),
                                 "calibration": np.array(json.dumps(
                                     None if self.calibration_ is None
                                     else self.calibration_.as_dict(), default=_plain)),
                                 # nor can a later default of a component's params
                                 "params": np.array(json.dumps(
                                     [m.get_params() for m in self._models], default=_plain))}
        for k, (model, on) in enumerate(zip(self._models, self.active_, strict=True)):
            if on:
                for key, v in model._state().items():
                    state[f"c{k}__{key}"] = v
        return state

    def _set_state(self, state: dict) -> None:
        if "specs" in state:  # the blend as fitted
            self.components_ = [(str(n), float(w), dict(p))
                                for n, w, p in json.loads(str(state["specs"]))]
        else:  # saved before the blend was: the given one, or the default of then
            self.components_ = (self._specs() if self.components is not None
                                else list(_SAVED_BEFORE_SPECS))
        cal = json.loads(str(state["calibration"])) if "calibration" in state else None
        self.calibration_ = None if cal is None else Calibration(**{
            **cal, "components": [tuple(c) for c in cal["components"]]})
        self.active_ = np.asarray(state["active"], dtype=bool)
        self.item_tags_ = np.asarray(state["item_tags"], dtype=object)
        self.trending_ = np.asarray(state["trending"], dtype=np.float32)
        self.interests_ = {str(u): (str(t).split("|") if t else [])
                           for u, t in zip(state["interest_users"], state["interest_tags"],
                                           strict=True)}
        specs = self.components_
        saved = (json.loads(str(state["params"])) if "params" in state else
                 [{**_SAVED_BEFORE_PARAMS.get(name, {}), **params} for name, _, params in specs])
        # params a component gained later take their value of before (``saved_before``)
        full = [{**Recommender.registry[name].saved_before, **params}
                for (name, _, _), params in zip(specs, saved, strict=True)]
        models = []
        for k, ((name, _, _), params, on) in enumerate(zip(specs, full, self.active_,
                                                           strict=True)):
            model = Recommender.registry[name](**params)
            if on:
                self._load_inner(model, state, f"c{k}__")
            models.append(model)
        self._models = models
