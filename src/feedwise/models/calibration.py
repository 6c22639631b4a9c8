"""Blend calibration: a Hybrid's weights and its components' key settings, chosen at fit on
validation splits carved from the data the Hybrid is fitted on.

A blend whose weights suit one catalogue does not suit every catalogue: on validation splits
of the MovieLens training parts the best content weight was 2-4 times the default, on
Last.fm about twice, and the best NormEASE ``l2`` / ``pop_boost`` moved with the data set
too. So ``Hybrid(calibrate=True)`` (the default) tries, before its final
fit:

* for each component that has a :data:`CALIBRATION_SPACES` entry, the settings listed there
  (a setting the blend gives the component explicitly is kept as given);
* for each component but the heaviest (which anchors the scale), its weight times each of
  :data:`WEIGHT_STEPS` (never 0 for :data:`NEW_ITEM_SCORERS`: Content serves new items);
* for each *optional* component (the default Hybrid's ``OPTIONAL_COMPONENTS``), whether
  to add it, at its weight times each of :data:`WEIGHT_STEPS`; it starts switched off, so
  where it never lifts the validation NDCG the search takes the path it takes without it;

by coordinate ascent from the blend as given, keeping a change only if the mean NDCG@k over
the splits rises. Every candidate setting of every component is fitted once per split; each
validation user's candidates (the union of every component's top items, unseen) are scored
once, so every blend after that is a weighted sum over a small matrix.

The splits keep 90 % of each user's items for fitting (as :func:`feedwise.selection.tune`
does: settings chosen on much sparser fit parts over-regularise the final fit).

Why this lives in ``feedwise.models`` and not in ``feedwise.selection``: it is part of the
Hybrid's own ``fit`` (as RidgeCV's cross-validation is part of its fit), not a search a
caller runs over models, so ``Hybrid`` needs it at fit time. It uses only the offline
metrics and splits of :mod:`feedwise.evaluation`, a lower layer that knows nothing of the
models, so importing them here makes no cycle.
"""

from __future__ import annotations

import itertools
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from feedwise.errors import ConfigError
from feedwise.evaluation import metrics, random_split
from feedwise.evaluation.splits import Split
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender
from feedwise.models.memory import memory_budget, rows_within

#: (model name, weight, constructor params) of a blend component.
Component = tuple[str, float, dict[str, Any]]

#: Settings calibration tries per component model (the product of the lists). NormEASE's
#: ``pop_boost`` settings cost no refit (:meth:`NormEASE.variant`); each ``l2`` one solve.
#: Chosen on outer validation splits of the three benchmark sets' training parts (the
#: Hybrid fitted on 90 %, calibrated within that, scored on the other 10 %): against the
#: uncalibrated blend, l2 12/24 x pop_boost 0/0.1/0.25 gave +0.3 % / +1.7 % / +1.7 % NDCG@10
#: (MovieLens-100k, 5 splits / latest-small / Last.fm, 3 splits); adding l2 48 and
#: pop_boost 0.05 gave +0.6 % on MovieLens-100k and the same on the others; NormEASE's
#: ``temporal`` or TimeEASE's and RP3beta's settings added nothing (or lost).
#: ``benchmarks/calibration.py`` reproduces these (``--space`` tries another).
CALIBRATION_SPACES: dict[str, dict[str, list[Any]]] = {
    "norm-ease": {"l2": [12.0, 24.0, 48.0], "pop_boost": [0.0, 0.05, 0.1, 0.25]},
}
#: Multiples of a component's weight calibration tries.
WEIGHT_STEPS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)
#: Components that score items nobody has engaged with yet (posts that join the catalogue
#: at fit): calibration never turns them off, because validation splits hold no such items
#: and so cannot show what that would cost.
NEW_ITEM_SCORERS: frozenset[str] = frozenset({"content"})


@dataclass
class Calibration:
    """What calibration chose, and how it scored on the validation splits."""

    components: list[Component]
    metric: str
    given: float
    chosen: float
    blends_scored: int
    splits: int
    validation_users: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def variants(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Settings tried for one component: the component as given first, then the rest of
    its calibration space (parameters it was given explicitly are not varied)."""
    space = {p: v for p, v in CALIBRATION_SPACES.get(name, {}).items() if p not in params}
    given = {**Recommender.registry[name]().get_params(), **params}
    out = [dict(params)]
    for combo in itertools.product(*space.values()):
        cfg = {**params, **dict(zip(space, combo, strict=True))}
        if any(given[p] != v for p, v in cfg.items()):
            out.append(cfg)
    return out


class _Candidates:
    """One validation split, scored: per validation user the union of every fitted
    setting's top unseen items, and each setting's normalised score on them."""

    def __init__(self, fitted: dict[tuple[int, int], Recommender], split: Split,
                 normalise: Callable[[Recommender, np.ndarray], np.ndarray], k: int,
                 per_model: int, max_users: int = 2000, chunk: int = 256) -> None:
        truth = split.test.matrix
        self.n_rel = metrics.n_relevant(truth)
        self.users = np.flatnonzero(self.n_rel > 0)
        if len(self.users) > max_users:  # a seeded sample bounds the work on big data
            pick = np.random.default_rng(len(self.users)).choice(len(self.users), max_users,
                                                                 replace=False)
            self.users = self.users[np.sort(pick)]
        self.truth = truth[self.users]
        self.n_rel = self.n_rel[self.users]
        self.k = k
        seen = split.train.matrix
        if split.train.negatives is not None:  # hidden or reported: never recommended either
            seen = seen + abs(split.train.negatives)
        keys = list(fitted)
        cols, z = [], {key: [] for key in keys}
        # per user and item: every setting's float32 scores at once, plus one setting's
        # scoring and normalising temporaries and the top-n selection, within the budget
        budget = fitted[keys[0]].budget() if keys else memory_budget()
        chunk = rows_within(budget, seen.shape[1] * (4 * len(keys) + 56), chunk)
        for start in range(0, len(self.users), chunk):
            rows = self.users[start:start + chunk]
            mask = seen[rows].toarray() > 0
            scores = {}
            for key in keys:
                s = normalise(fitted[key], fitted[key]._score_rows(rows))
                s[mask] = -np.inf
                scores[key] = s
            take = min(per_model, seen.shape[1])
            top = np.concatenate([np.argpartition(-s, take - 1, axis=1)[:, :take]
                                  for s in scores.values()], axis=1)
            top.sort(axis=1)
            top[:, 1:][top[:, 1:] == top[:, :-1]] = -1  # repeats: padding
            picked = np.where(top >= 0, top, 0)
            for key in keys:
                v = np.take_along_axis(scores[key], picked, axis=1)
                z[key].append(np.where((top >= 0) & np.isfinite(v), v, -np.inf))
            cols.append(top)
        self.cols = np.concatenate(cols)
        self.z = {key: np.concatenate(v).astype(np.float32) for key, v in z.items()}

    def ndcg(self, blend: dict[tuple[int, int], float]) -> float:
        s = sum(w * self.z[key] for key, w in blend.items() if w)
        if isinstance(s, int):  # every weight zero: nothing is ranked
            return 0.0
        # padding, and items recommend leaves out (seen, hidden: -inf, or nan / +inf where a
        # negative weight meets -inf) are never ranked, however few candidates are left
        s = np.where((self.cols >= 0) & np.isfinite(s), s, -np.inf)
        top = np.argsort(-s, axis=1, kind="stable")[:, :self.k]
        recs = np.take_along_axis(self.cols, top, axis=1)
        recs = np.where(np.isfinite(np.take_along_axis(s, top, axis=1)), recs, -1)
        return float(metrics.ndcg(metrics.hits_matrix(recs, self.truth), self.n_rel).mean())


def calibrate(specs: Sequence[Component], data: Interactions,
              fit: Callable[[str, dict[str, Any], Interactions], Recommender | None],
              normalise: Callable[[Recommender, np.ndarray], np.ndarray], *,
              n_splits: int = 2, ratio: float = 0.9, seed: int = 0, k: int = 10,
              per_model: int = 50, min_users: int = 20, max_users: int = 2000,
              max_passes: int = 4, optional: Sequence[Component] = (),
              progress: Callable[[str], None] | None = None) -> Calibration | None:
    """Choose the blend's weights and component settings on validation splits of ``data``.

    Args:
        specs: The blend as given (``(name, weight, params)``).
        data: What the blend will be fitted on.
        fit: Fits one component (``name``, ``params``) on interactions; ``None`` when the
            component sits out (side data it needs was not given).
        normalise: Per-user normalisation of a component's scores (as the blend sums them).
        n_splits: Validation splits (seeds ``seed``, ``seed + 1``, ...), scores averaged.
        ratio: Share of each user's items kept for fitting in a split.
        k: List length of NDCG.
        per_model: Top unseen items per setting and user that enter the candidate set.
        min_users: Fewest validation users (per split) worth calibrating on; with fewer the
            blend stays as given and ``None`` is returned.
        max_users: Most validation users scored per split (a seeded sample beyond that).
        max_passes: Most coordinate-ascent passes.
        optional: Components the calibration may add to the blend: each starts switched
            off and is tried at its weight times each of :data:`WEIGHT_STEPS`; it is kept
            (listed last in ``components``, with weight 0 when it was not) only if the
            validation NDCG rises.
        progress: Called with a short description of each step.

    Returns:
        What was chosen (``components`` is the calibrated blend), or ``None`` when there
        were too few validation users.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) or n_splits < 1:
        raise ConfigError(f"calibration needs a whole number of splits >= 1 (n_splits, "
                          f"Hybrid's calibration_splits), got {n_splits!r}")
    t0 = time.perf_counter()
    given_n = len(specs)
    specs = [(str(n), float(w), dict(p)) for n, w, p in [*specs, *optional]]
    tried = [variants(n, p) if w else [p] for n, w, p in specs]
    splits = [random_split(data, ratio, seed=seed + j) for j in range(n_splits)]
    if min(int((metrics.n_relevant(s.test.matrix) > 0).sum()) for s in splits) < min_users:
        return None  # counted as the scoring counts them: users with a positive item
    scored: list[_Candidates] = []
    for j, split in enumerate(splits):
        fitted: dict[tuple[int, int], Recommender] = {}
        for i, ((name, w, _), options) in enumerate(zip(specs, tried, strict=True)):
            if not w:
                continue
            for v, params in enumerate(options):
                if progress is not None:
                    progress(f"calibrating: split {j + 1}/{n_splits}, {name} "
                             f"{v + 1}/{len(options)}")
                # a setting derived from one already fitted (no refit) when the model can
                model = next((got for got in (fitted[(i, u)].variant(params) for u in range(v))
                              if got is not None), None) or fit(name, params, split.train)
                if model is None:
                    break  # the component sits out; so would every setting of it
                fitted[(i, v)] = model
        if not fitted:
            return None
        scored.append(_Candidates(fitted, split, normalise, k, per_model, max_users))
    live = sorted({i for i, _ in scored[0].z})
    anchor = max((i for i in live if i < given_n), key=lambda i: specs[i][1], default=None)
    if anchor is None:
        return None  # no component as given could be fitted: nothing to calibrate against
    # the state searched: the setting (variant) and weight multiple of each live component
    # (optional ones start switched off)
    state = {i: (0, 1.0 if i < given_n else 0.0) for i in live}
    memo: dict[tuple, float] = {}

    def score(st: dict[int, tuple[int, float]]) -> float:
        key = tuple(sorted(st.items()))
        if key not in memo:
            blend = {(i, v): specs[i][1] * m for i, (v, m) in st.items()}
            memo[key] = float(np.mean([c.ndcg(blend) for c in scored]))
        return memo[key]

    given = best = score(state)
    for _ in range(max_passes):
        changed = False
        for i in live:
            options = [(v, state[i][1]) for v in range(len(tried[i]))]
            if i != anchor:
                options += [(state[i][0], m) for m in WEIGHT_STEPS
                            if m > 0 or specs[i][0] not in NEW_ITEM_SCORERS]
            for option in options:
                cand = {**state, i: option}
                got = score(cand)
                if got > best:
                    state, best, changed = cand, got, True
        if not changed:
            break
    chosen = [(n, w * state[i][1] if i in state else w if i < given_n else 0.0,
               tried[i][state[i][0]] if i in state else p)
              for i, (n, w, p) in enumerate(specs)]
    return Calibration(components=chosen, metric=f"ndcg@{k}", given=given, chosen=best,
                       blends_scored=len(memo), splits=n_splits,
                       validation_users=int(np.mean([len(c.users) for c in scored])),
                       seconds=time.perf_counter() - t0)
