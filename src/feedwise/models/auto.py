"""`Auto`: the default model — the blend for a static catalogue or for a fresh feed, picked
from the data at fit.

At fit, ``Auto`` carves a *temporal* validation out of the training data (the pairs of the
last ``validation_fraction`` of its time are held out; the rest is the fit part) and:

1. **detects a fresh feed**: ``fresh_share_`` is the share of the held-out engagements on
   items younger than the validation window at the validation cut (an item's age from its
   ``created_at`` in the items table, else from its first engagement in the fit part; an item
   created after the cut, or never engaged with before it, counts as young). At or above
   ``feed_threshold`` the data is a feed; below ``static_threshold`` it is a static
   catalogue outright and ``hybrid`` is taken without step 2;
2. **picks the blend**: each candidate (``fresh`` — :class:`~feedwise.models.fresh.Fresh` —
   and ``hybrid`` — :class:`~feedwise.models.hybrid.Hybrid`) is fitted on the fit part and
   scored by NDCG@10 on the held-out pairs of the users seen on both sides; the better one
   is ``choice_`` (a tie goes to ``fresh`` on a feed, to ``hybrid`` on a catalogue). The
   Hybrid is compared as it comes (its default blend). Fresh tunes its weights on a
   validation nested inside the fit part (a fifth of a fifth of the time), and where tags
   are gathered from engagements (Last.fm) the items table carries tags applied inside
   that nested window, so the nested tuning over-weights content (Last.fm development
   split: content scored 0.106 on the nested validation, and the tuned Fresh 0.046 on
   Auto's, against 0.066 for its start blend). So off a feed Fresh is scored in both
   forms, tuned and as it comes (its start blend, with the time constants its own
   validation starts from, as multiples of the window), and counts with the better
   (``validation_forms_`` keeps both). On a feed (posts carry their tags from creation)
   only the tuned form is scored, as before;
3. **refits the choice on all the data**. The Hybrid calibrates its blend on random
   validation splits (its default) only on a static catalogue: on a feed random splits hide
   what matters (which posts are still live), so there the Hybrid keeps its default blend
   and the temporal choice above is the calibration.

``reason_`` says what was picked and why, with the figures (one sentence);
``inner_`` is the fitted chosen model, which serves every request. Side data goes to ``fit``
as for Hybrid and Fresh: ``items`` (``store.posts()``: titles, text, tags, authors,
``created_at``; posts without engagement join the catalogue) and ``edges`` (the social
graph as of the training end). The cut — "now" — is the newest training engagement.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError
from feedwise.evaluation import metrics
from feedwise.evaluation.evaluate import recommend_matrix
from feedwise.evaluation.splits import temporal_split
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList
from feedwise.models.base import History, Recommender
from feedwise.models.content import item_table, widen_catalog
from feedwise.models.fresh import _DAY, START_WEIGHTS, TIME_GRID, _first_seen, _pair_times, _seconds

#: The blends Auto chooses between.
CANDIDATES: tuple[str, ...] = ("fresh", "hybrid")


class Auto(Recommender):
    """The default model: ``fresh`` on a fresh feed, ``hybrid`` on a static catalogue,
    chosen on a temporal validation carved from the training data.

    Args:
        candidates: Registered model names to choose between.
        validation_fraction: Share of the training time held out for the choice.
        feed_threshold: Share of held-out engagements on young items at which the data
            counts as a fresh feed.
        static_threshold: Share of held-out engagements on young items below which the
            data is a static catalogue outright: ``hybrid`` (calibrated on random validation
            splits) is taken without the temporal comparison, which on such data measures
            little but popularity drift.
        margin: How much better (relative NDCG@10 on the validation) another candidate must
            be to replace the kind's own blend (``fresh`` on a feed, ``hybrid`` on a
            catalogue): a small validation gap is noise, the kind is evidence.
        max_validation_users: Most validation users scored (a seeded sample beyond that).
        seed: Seed of that sample.
    """

    name = "auto"

    def __init__(self, candidates: Sequence[str] = CANDIDATES,
                 validation_fraction: float = 0.2, feed_threshold: float = 0.5,
                 static_threshold: float = 0.1, margin: float = 0.1,
                 max_validation_users: int = 1000, seed: int = 0) -> None:
        self.candidates = candidates
        self.validation_fraction = validation_fraction
        self.feed_threshold = feed_threshold
        self.static_threshold = static_threshold
        self.margin = margin
        self.max_validation_users = max_validation_users
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def fit(self, data: Interactions, items: pd.DataFrame | None = None,
            edges: pd.DataFrame | None = None,
            progress: Callable[[str], None] | None = None) -> Self:
        """Detect feed or catalogue, pick the blend on a temporal validation, refit it on
        all of ``data`` (see the module docstring)."""
        names = [str(c) for c in self.candidates]
        bad = [c for c in names if c == self.name or c not in Recommender.registry]
        if not names or bad:
            raise ConfigError(f"candidates must be registered models other than auto, got "
                              f"{list(self.candidates)!r}")
        if not 0 < float(self.validation_fraction) < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got "
                              f"{self.validation_fraction}")
        self._side = (items, edges, progress)
        try:
            return super().fit(widen_catalog(data, item_table(items)["item_id"]))
        finally:
            del self._side

    def _fit(self, data: Interactions) -> None:
        items, edges, progress = getattr(self, "_side", (None, None, None))
        say = progress or (lambda _: None)
        names = [str(c) for c in self.candidates]
        self.fresh_share_ = float("nan")
        self.validation_ = {}
        self.validation_forms_ = {}
        feed = False
        if data.last_ts is not None and data.last_ts.nnz:
            ts = _pair_times(data)
            cut = float(np.quantile(ts, 1 - self.validation_fraction))
            window = float(ts.max()) - cut
            split = temporal_split(data, at=cut) if window > 0 else None
            if split is not None and split.test.nnz and split.train.nnz:
                self.fresh_share_ = _young_share(split.train, split.test, items, cut, window)
                feed = self.fresh_share_ >= self.feed_threshold
                static = (self.fresh_share_ < self.static_threshold and "hybrid" in names)
                if len(names) > 1 and not static:
                    for name in names:
                        say(f"validating {name} on the last "
                            f"{self.validation_fraction:.0%} of the training time")
                        # off a feed Fresh is scored as it tunes itself and as it comes
                        # (its start blend); it counts with the better (module docstring)
                        forms = ({"tuned": 0.0, "start blend": window}
                                 if name == "fresh" and not feed else {"": 0.0})
                        got = {}
                        for form, start in forms.items():
                            model = self._candidate(name, feed, final=False, window=start)
                            model.fit(split.train, **_side(model, items, edges))
                            got[form] = _validation_ndcg(model, split,
                                                         self.max_validation_users, self.seed)
                        self.validation_[name] = max(got.values())
                        if len(got) > 1:
                            self.validation_forms_[name] = got
                self.window_hours_ = window / 3600.0
        own = ("fresh" if feed and "fresh" in names else
               "hybrid" if "hybrid" in names else names[0])
        choice = own
        if self.validation_:
            best = max(names, key=lambda n: (self.validation_[n], n == own))
            if self.validation_[best] > self.validation_[own] * (1 + self.margin):
                choice = best
        self.choice_ = choice
        self.reason_ = self._reason(feed)
        say(f"fitting {choice} on all the data")
        model = self._candidate(choice, feed, final=True)
        kwargs = _side(model, items, edges)
        if progress is not None and "progress" in inspect.signature(model.fit).parameters:
            kwargs["progress"] = progress
        self.inner_ = model.fit(data, **kwargs)
        self._models = [self.inner_]

    def _candidate(self, name: str, feed: bool, final: bool,
                   window: float = 0.0) -> Recommender:
        model = Recommender.registry[name]()
        if name == "hybrid":
            # random-split calibration only on a catalogue, and only for the final fit
            # (the choice compares the blends as they come)
            model.set_params(calibrate=bool(final and not feed))
        elif name == "fresh" and not final and not feed and window > 0:
            # Fresh as it comes: its start blend, with the time constants its own
            # validation starts from (multiples of the window), no nested tuning
            days = {s: None if TIME_GRID[s][0] is None else TIME_GRID[s][0] * window / _DAY
                    for s in TIME_GRID}
            model.set_params(weights=dict(START_WEIGHTS),
                             trending_half_life_days=days["trending"],
                             newness_half_life_days=days["newness"],
                             live_window_days=days["content"])
        model.memory_budget = self.memory_budget
        return model

    def _reason(self, feed: bool) -> str:
        share = self.fresh_share_
        if np.isnan(share):
            kind = "no event times to validate on"
        else:
            hours = getattr(self, "window_hours_", 0.0)
            span = f"{hours:.0f} h" if hours < 96 else f"{hours / 24:.0f} days"
            kind = (f"{'fresh feed' if feed else 'static catalogue'}: {share:.0%} of "
                    f"validation engagements on items younger than {span}")
        if self.validation_:
            figs = " vs ".join(f"{n} {v:.3f}{self._forms(n)}" for n, v in
                               sorted(self.validation_.items(), key=lambda kv: -kv[1]))
            return f"{kind}; {figs} NDCG@10 on temporal validation, so {self.choice_}"
        if not np.isnan(share) and share < self.static_threshold:
            return (f"{kind} (under {self.static_threshold:.0%}: no temporal comparison); "
                    f"so {self.choice_}")
        return f"{kind}; so {self.choice_}"

    def _forms(self, name: str) -> str:
        forms = getattr(self, "validation_forms_", {}).get(name)
        if not forms:
            return ""
        order = sorted(forms.items(), key=lambda kv: -kv[1])
        return f" ({order[0][0]}; " + "; ".join(f"{f} {v:.3f}" for f, v in order[1:]) + ")"

    # ------------------------------------------------------------------ serving
    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.inner_._score_rows(rows)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray | None:
        return self.inner_._score_history(history)

    def _scores_for(self, user_ids: Sequence[str], history: History
                    ) -> tuple[np.ndarray, np.ndarray]:
        return self.inner_._scores_for(user_ids, history)

    def _static_scores(self) -> np.ndarray | None:
        return self.inner_._static_scores()

    def _score_cell_bytes(self) -> int:
        return self.inner_._score_cell_bytes()

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        return self.inner_._explain(history, cols)

    def _scores_and_state(self, user_ids: Sequence[str], history: History
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.inner_._scores_and_state(user_ids, history)

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray,
                      state: np.ndarray | None = None) -> np.ndarray | None:
        """The chosen model's :meth:`score_columns` (with the user's ``state`` if given)."""
        if state is None:
            return self.inner_.score_columns(history, cols)
        return self.inner_.score_columns(history, cols, state=state)

    def explain_columns(self, user_id: str, history: sp.csr_matrix, cols: np.ndarray,
                        state: np.ndarray | None) -> list[str] | None:
        """The chosen model's reasons for ``cols`` from the user's ``state``, or ``None``."""
        got = getattr(self.inner_, "explain_columns", None)
        return None if got is None else got(user_id, history, cols, state)

    def last_winners(self, cols: Sequence[np.ndarray]) -> list[np.ndarray | None] | None:
        """The chosen model's :meth:`~feedwise.models.hybrid.Hybrid.last_winners`, or
        ``None`` where it has none."""
        got = getattr(self.inner_, "last_winners", None)
        return None if got is None else got(cols)

    def winners_liked(self, history: sp.csr_matrix, cols: Sequence[np.ndarray],
                      winners: Sequence[np.ndarray | None]) -> list[np.ndarray]:
        """The chosen model's :meth:`~feedwise.models.hybrid.Hybrid.winners_liked`."""
        return self.inner_.winners_liked(history, cols, winners)

    def winner_reasons(self, winners: np.ndarray, liked: np.ndarray) -> list[str]:
        """The chosen model's :meth:`~feedwise.models.hybrid.Hybrid.winner_reasons`."""
        return self.inner_.winner_reasons(winners, liked)

    def explain_winners(self, user_id: str, history: sp.csr_matrix, cols: np.ndarray,
                        winners: np.ndarray) -> list[str]:
        """The chosen model's reasons for ``cols`` given the component explaining each."""
        return self.inner_.explain_winners(user_id, history, cols, winners)

    def similar_items(self, item_id: str, n: int = 10) -> ItemList:
        self._check_fitted()
        return self.inner_.similar_items(item_id, n)

    def recommend(self, user_ids, n=10, **kwargs):  # noqa: D102 - documented on base
        self._check_fitted()
        # the chosen model serves (its own per-call state, e.g. Hybrid's reasons, included)
        return self.inner_.recommend(user_ids, n, **kwargs)

    def score_row(self, user_id: str, *, history: History = None) -> np.ndarray:
        self._check_fitted()
        return self.inner_.score_row(user_id, history=history)

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        meta = {"choice": self.choice_, "reason": self.reason_,
                "fresh_share": self.fresh_share_, "validation": self.validation_,
                "validation_forms": self.validation_forms_,
                "window_hours": getattr(self, "window_hours_", None),
                "params": self.inner_.get_params()}
        state: dict[str, Any] = {"meta": np.array(json.dumps(meta, default=_plain))}
        for key, v in self.inner_._state().items():
            state[f"inner__{key}"] = v
        return state

    def _set_state(self, state: dict) -> None:
        meta = json.loads(str(state["meta"]))
        self.choice_ = str(meta["choice"])
        self.reason_ = str(meta["reason"])
        self.fresh_share_ = float(meta["fresh_share"])
        self.validation_ = {k: float(v) for k, v in meta["validation"].items()}
        self.validation_forms_ = {k: {f: float(x) for f, x in v.items()}
                                  for k, v in meta.get("validation_forms", {}).items()}
        if meta.get("window_hours") is not None:
            self.window_hours_ = float(meta["window_hours"])
        klass = Recommender.registry[self.choice_]
        inner = klass(**{**klass.saved_before, **meta["params"]})
        self._load_inner(inner, state, "inner__")
        self.inner_ = inner
        self._models = [inner]


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else str(v)


def _side(model: Recommender, items: pd.DataFrame | None, edges: pd.DataFrame | None
          ) -> dict[str, Any]:
    params = inspect.signature(model.fit).parameters
    return {k: v for k, v in (("items", items), ("edges", edges))
            if k in params and v is not None and len(v)}


def _young_share(train: Interactions, test: Interactions, items: pd.DataFrame | None,
                 cut: float, window: float) -> float:
    """Share of ``test``'s pairs on items younger than ``window`` at ``cut``."""
    born = _first_seen(train)
    if items is not None and len(items) and "created_at" in items.columns:
        created = _seconds(items["created_at"])
        pos = np.array([train.item_index.get(str(i), -1) for i in items["item_id"]])
        ok = (pos >= 0) & np.isfinite(created)
        born[pos[ok]] = created[ok]
    t = test.matrix.tocoo()
    if not t.nnz:
        return float("nan")
    age = cut - born[t.col]
    return float(np.mean(~np.isfinite(age) | (age < window)))


def _validation_ndcg(model: Recommender, split: Any, max_users: int, seed: int) -> float:
    seen, truth = split.train.matrix, split.test.matrix
    users = np.flatnonzero((np.diff(seen.indptr) > 0) & (np.diff(truth.indptr) > 0))
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    if not len(users):
        return 0.0
    recs = recommend_matrix(model, split.test.user_ids[users], 10, split.test.item_index)
    t = truth[users]
    return float(metrics.ndcg(metrics.hits_matrix(recs, t), metrics.n_relevant(t)).mean())
