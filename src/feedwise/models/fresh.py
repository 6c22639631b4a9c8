"""`Fresh`: a recommender for feeds of new posts — freshness inside the model.

A social feed is a stream of new posts: most engagements land on posts a few hours or days
old, so a model that ranks by past co-engagement alone recommends posts nobody is shown any
more. ``Fresh`` blends signals that know about time and authorship, each normalised per user
(z-scores over the catalogue) and summed with a weight:

* ``trending`` — time-decayed popularity: every engagement counts ``0.5 ** (age / half_life)``,
  its age measured from the end of the training data;
* ``newness`` — item age as a score factor: ``0.5 ** (age / half_life)`` of the item itself
  (posts created after the training end count as brand new);
* ``author`` — author affinity: the user's share of engagements with each author, given to
  that author's posts (with ``newness`` the author's newest posts come first);
* ``follow`` — follows as a candidate generator: posts of authors the user follows (the
  stored graph, ``src`` follows ``dst``);
* ``friends`` — social proof: the items the people a user follows or befriends engaged
  with before the cut, scored by how many of them did (``log1p`` of the count);
* ``content`` — profile-to-item cosine over title, text and tags
  (:class:`~feedwise.models.content.Content`), restricted to *live* posts: created at most
  a window before the training end, or after it (items of unknown time are not live when
  the window is set);
* ``interest`` — topical interest from tags: the user's share of engagements on items
  carrying each tag (smoothed towards everyone's share, so a user without history gets
  the popular tags); an item scores the mean share of its tags. It estimates how much the
  user likes the item's topic, the question impression ranking asks ("which of these shown
  posts will this user engage with?"), without the idf weighting that makes a cosine
  favour rare, topic-less tags;
* ``collab`` — a collaborative model (EASE by default) for the catalogue part of the data.

**Side data and the cut.** ``fit(data, items=..., edges=...)`` takes what
:class:`~feedwise.models.hybrid.Hybrid` takes: ``items`` is the items table (``item_id`` and
any of ``title``, ``text``, ``tags``, ``author_id``, ``created_at``: ``store.posts()``);
items in it with no engagement yet join the catalogue (scored by content, newness, author
and follows). ``edges`` is the social graph as of the training end
(``store.edges_as_of(until)``: ``src_id, dst_id, kind``; or ``src, dst``); an edge whose
``dst`` is an author of posts makes its ``src`` a follower of that author. The cut — "now"
for every age — is the time of the newest training engagement (``Interactions.last_ts``),
else ``Interactions.until``. An item without ``created_at`` is as old as its first
engagement in the training data (unknown when it has none).

**Weights.** Given (``weights``), or chosen at fit on a *temporal* validation carved from the
training data: the pairs of the last ``validation_fraction`` of the training time are held
out, every signal is fitted on the rest (with the cut at the validation start), and the
weights and time constants (half-lives and the live window, as multiples of the
validation window) are chosen by coordinate ascent on NDCG@10 of the held-out pairs; the
model is then refitted on all the data. ``validation_`` records what was measured. On a
feed (at least :data:`FEED_SHARE` of the held-out pairs on items younger than the window)
each validation user is asked as a feed request is: at their first held-out engagement,
over the items that exist then, against what they engage with within
``request_horizon_days`` after it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feedwise.errors import ConfigError, DataError
from feedwise.evaluation import metrics
from feedwise.evaluation.splits import temporal_split
from feedwise.interactions import Interactions
from feedwise.models.base import Recommender, binary
from feedwise.models.content import Content, item_table, widen_catalog
from feedwise.models.memory import rows_within

#: The signals of the blend, in the order they are summed.
SIGNALS: tuple[str, ...] = ("trending", "newness", "author", "follow", "friends", "content",
                             "interest", "collab")
#: Weights coordinate ascent starts from (``newness`` off: it is a tie-breaker at most
#: until validation shows it helps; ``friends`` off: at 0.5 it lowered the impression AUC
#: of the synthetic development world from 0.695 to 0.660, docs/fresh.md).
START_WEIGHTS: dict[str, float] = {"trending": 0.5, "newness": 0.0, "author": 0.5,
                                   "follow": 0.5, "friends": 0.0, "content": 0.5,
                                   "interest": 0.5, "collab": 1.0}
#: Weights tried per signal.
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: Time constants tried, as multiples of the validation window (``None``: no decay / no
#: liveness restriction).
TIME_GRID: dict[str, tuple[float | None, ...]] = {
    "trending": (0.25, 1.0, 4.0, None),
    "newness": (0.25, 1.0, 4.0),
    "content": (None, 1.0, 3.0),
}
_DAY = 86400.0
#: Share of held-out engagements on young items from which validation asks as a feed does
#: (the rule :class:`~feedwise.models.auto.Auto` uses to call the data a feed).
FEED_SHARE = 0.5
#: Pseudo-engagements of everyone's tag shares added to a user's own (the interest signal).
INTEREST_PRIOR = 1.0


def _seconds(col: pd.Series) -> np.ndarray:
    """Unix seconds of a column of times (NaN where missing or unreadable)."""
    t = pd.to_datetime(col, utc=True, errors="coerce")
    secs = (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return secs.to_numpy(dtype=np.float64, na_value=np.nan)


def _znorm(s: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the finite scores; the others take the row's lowest z (rows
    with no spread become 0)."""
    s = np.where(np.isfinite(s), s, np.nan).astype(np.float32)
    if not s.size:
        return s
    ok = np.isfinite(s)
    n = np.maximum(ok.sum(axis=1, keepdims=True), 1)
    mu = np.where(ok, s, 0.0).sum(axis=1, keepdims=True) / n
    z = np.where(ok, s - mu, 0.0)
    sd = np.sqrt(np.square(z).sum(axis=1, keepdims=True) / n)
    z = z / np.where(sd > 0, sd, 1.0)
    low = np.where(ok, z, np.inf).min(axis=1, keepdims=True)
    return np.where(ok, z, np.where(np.isfinite(low), low, 0.0)).astype(np.float32)


def _decay(age: np.ndarray, half_life: float | None) -> np.ndarray:
    if half_life is None:
        return np.ones_like(age, dtype=np.float32)
    return np.power(0.5, np.maximum(age, 0.0) / half_life).astype(np.float32)


class Fresh(Recommender):
    """The blend for a fresh feed: trending, newness, author affinity, follows, live content
    and (optionally) collaborative scores.

    Args:
        weights: Signal name -> weight (names in :data:`SIGNALS`; missing ones weigh 0).
            ``None``: chosen at fit on a temporal validation carved from the data.
        collaborative: Registered model for the ``collab`` signal (``None``: no such signal).
        trending_half_life_days: Half-life of the trending counts (``None``: all-time), used
            when the weights are given (validation chooses its own).
        newness_half_life_days: Half-life of an item's own age factor (same rule).
        live_window_days: Content scores only posts created within this many days of the cut
            (``None``: every item; same rule).
        validation_fraction: Share of the training time held out for the validation.
        request_horizon_days: How validation asks its question on a feed (at least
            :data:`FEED_SHARE` of the held-out engagements on items younger than the
            validation window): as the feed is served -- each validation user's "request"
            is the time of their first held-out engagement, only items that exist then are
            ranked, and the relevant ones are what the user engaged with within this many
            days after it. Otherwise, or with ``None``: every held-out engagement of the
            window, every item ranked at the validation cut.
        max_validation_users: Most validation users scored (a seeded sample beyond that).
        seed: Seed of that sample.
    """

    name = "fresh"
    fallback_reason = "trending"
    user_row_state: ClassVar[tuple[str, ...]] = ("follows_",)

    def __init__(self, weights: Mapping[str, float] | None = None,
                 collaborative: str | None = "ease",
                 trending_half_life_days: float | None = 1.0,
                 newness_half_life_days: float | None = 3.0,
                 live_window_days: float | None = 3.0, validation_fraction: float = 0.2,
                 request_horizon_days: float | None = 1 / 24,
                 max_validation_users: int = 500, seed: int = 0) -> None:
        self.weights = weights
        self.collaborative = collaborative
        self.trending_half_life_days = trending_half_life_days
        self.newness_half_life_days = newness_half_life_days
        self.live_window_days = live_window_days
        self.validation_fraction = validation_fraction
        self.request_horizon_days = request_horizon_days
        self.max_validation_users = max_validation_users
        self.seed = seed

    # ------------------------------------------------------------------ fit
    def fit(self, data: Interactions, items: pd.DataFrame | None = None,
            edges: pd.DataFrame | None = None) -> Self:
        """Fit on ``data`` with the items table (text, tags, authors, creation times) and
        the social graph (see the module docstring)."""
        self._check_params()
        self._side = (items, edges)
        try:
            table = item_table(items)
            return super().fit(widen_catalog(data, table["item_id"]))
        finally:
            del self._side

    def _check_params(self) -> None:
        if self.weights is not None:
            if not isinstance(self.weights, Mapping):
                raise ConfigError(f"weights must map signal names to numbers, got "
                                  f"{self.weights!r}")
            bad = sorted(set(self.weights) - set(SIGNALS))
            if bad:
                raise ConfigError(f"unknown signal(s) {bad} in weights; use {list(SIGNALS)}")
        if self.collaborative is not None and (self.collaborative in ("fresh", "auto") or
                                               self.collaborative not in Recommender.registry):
            raise ConfigError(f"collaborative must be a registered model other than fresh "
                              f"or auto, got {self.collaborative!r}")
        if not 0 < float(self.validation_fraction) < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got "
                              f"{self.validation_fraction}")
        for p in ("trending_half_life_days", "newness_half_life_days", "live_window_days",
                  "request_horizon_days"):
            v = getattr(self, p)
            if v is not None and not float(v) > 0:
                raise ConfigError(f"{p} must be positive or None, got {v!r}")

    def _fit(self, data: Interactions) -> None:
        items, edges = getattr(self, "_side", (None, None))
        now = _data_end(data)
        given = self.weights is not None
        self.validation_ = None
        settings = {"trending": _days(self.trending_half_life_days),
                    "newness": _days(self.newness_half_life_days),
                    "content": _days(self.live_window_days)}
        weights = dict(START_WEIGHTS) if not given else {s: float(self.weights.get(s, 0.0))
                                                         for s in SIGNALS}
        if not given and data.last_ts is not None and data.last_ts.nnz:
            chosen = self._validate(data, items, edges)
            if chosen is not None:
                weights, settings, self.validation_ = chosen
        self.weights_ = weights
        self.settings_ = settings
        self._prepare(data, items, edges, now)

    def _prepare(self, data: Interactions, items: pd.DataFrame | None,
                 edges: pd.DataFrame | None, now: float) -> None:
        """Every signal's state from ``data`` with the cut at ``now`` (unix seconds)."""
        self.now_ = float(now)
        n_items = data.n_items
        index = data.item_index
        created = np.full(n_items, np.nan)
        authors = np.full(n_items, None, dtype=object)
        if items is not None and len(items):
            cols = set(items.columns)
            ids = items["item_id"].astype(str).to_numpy()
            pos = np.array([index.get(i, -1) for i in ids])
            ok = pos >= 0
            if "created_at" in cols:
                created[pos[ok]] = _seconds(items["created_at"])[ok]
            if "author_id" in cols:
                authors[pos[ok]] = items["author_id"].to_numpy(dtype=object)[ok]
        # an item of unknown creation time is as old as its first training engagement
        first = _first_seen(data)
        self.item_time_ = np.where(np.isfinite(created), created, first)
        self._time_state(data, now)
        # authors: one-hot items x authors; follows: users x authors
        has = np.array([a is not None and not (isinstance(a, float) and np.isnan(a))
                        and str(a) != "" for a in authors])
        names, codes = np.unique(np.array([str(a) for a in authors[has]], dtype=object),
                                 return_inverse=True) if has.any() else (np.array([], object),
                                                                         np.array([], int))
        self.authors_ = names.astype(object)
        self.item_author_ = np.full(n_items, -1, dtype=np.int64)
        self.item_author_[has] = codes
        self.follows_ = _follow_matrix(edges, data.user_index, names)
        self.friends_ = _friend_matrix(edges, data.user_index)
        self.item_tags_, self.tag_share_ = _item_tags(items, index, n_items, data)
        # inner models
        self._models = []
        self.inner_names_ = []
        w = self.weights_
        if self.collaborative is not None and w.get("collab", 0):
            model = Recommender.registry[self.collaborative]()
            model.memory_budget = self.memory_budget
            self._models.append(model.fit(data))
            self.inner_names_.append("collab")
        if w.get("content", 0) and (items is not None or data.item_labels is not None):
            model = Content()
            model.memory_budget = self.memory_budget
            self._models.append(model.fit(data, items=items))
            self.inner_names_.append("content")

    def _time_state(self, data: Interactions, now: float) -> None:
        """Trending counts, newness and liveness under ``settings_`` at the cut ``now``."""
        self.trending_ = np.log1p(_trend(binary(data.matrix), data.last_ts, now,
                                         self.settings_["trending"]))
        age = now - self.item_time_
        known = np.isfinite(age)
        new = _decay(np.where(known, np.maximum(age, 0.0), 0.0), self.settings_["newness"])
        self.newness_ = np.where(known, new, 0.0).astype(np.float32)
        window = self.settings_["content"]
        self.live_ = (np.ones(data.n_items, bool) if window is None
                      else known & (age <= window))

    # ------------------------------------------------------------------ signals
    def _inner(self, name: str) -> Recommender | None:
        names = getattr(self, "inner_names_", [])
        return self._models[names.index(name)] if name in names else None

    def _author_matrix(self) -> sp.csr_matrix:
        """Items x authors one-hot (items without an author: empty rows)."""
        n_a = max(len(self.authors_), 1)
        ok = self.item_author_ >= 0
        rows = np.flatnonzero(ok)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, self.item_author_[ok])),
                             shape=(len(self.item_author_), n_a))

    def _signals(self, rows: np.ndarray | None, hist: sp.csr_matrix | None,
                 only: frozenset[str] | None = None) -> dict[str, np.ndarray]:
        """Each weighted signal's per-user z-scores (users x items) for training ``rows``
        or history matrix ``hist`` (only the signals in ``only`` when given)."""
        n_users = len(rows) if rows is not None else hist.shape[0]
        x = self.seen_[rows] if rows is not None else sp.csr_matrix(hist)
        w = {k: v for k, v in self.weights_.items() if only is None or k in only}
        out: dict[str, np.ndarray] = {}
        for name, vec in (("trending", self.trending_), ("newness", self.newness_)):
            if w.get(name, 0):
                out[name] = np.broadcast_to(_znorm(vec[None, :].astype(np.float32)),
                                            (n_users, self.n_items))
        if w.get("author", 0) and len(self.authors_):
            m = self._author_matrix()
            aff = binary(x) @ m
            tot = np.asarray(aff.sum(axis=1)).ravel()
            aff = sp.diags(1.0 / np.maximum(tot, 1.0)) @ aff
            out["author"] = _znorm(np.asarray((aff @ m.T).toarray(), np.float32))
        if w.get("interest", 0) and self.item_tags_.shape[1]:
            out["interest"] = _znorm(self._interest(binary(x)))
        if w.get("follow", 0) and len(self.authors_) and rows is not None:
            m = self._author_matrix()
            out["follow"] = _znorm(np.asarray((self.follows_[rows] @ m.T).toarray(),
                                              np.float32))
        friends = getattr(self, "friends_", None)
        if w.get("friends", 0) and rows is not None and friends is not None and friends.nnz:
            # how many of the people the user follows engaged with each item before the cut
            # (from those people's rows only, not a copy of every user's)
            f = friends[rows]
            who = np.unique(f.indices)
            counts = f[:, who] @ binary(self.seen_[who])
            out["friends"] = _znorm(np.log1p(np.asarray(counts.toarray(), np.float32)))
        for name in ("collab", "content"):
            model = self._inner(name)
            if model is None or not w.get(name, 0):
                continue
            s = model._score_rows(rows) if rows is not None else model._score_history(hist)
            if s is None:
                continue
            s = np.array(s, dtype=np.float32)
            modelled = getattr(model, "modelled_", None)
            if modelled is not None and len(modelled) < s.shape[1]:
                keep = np.zeros(s.shape[1], bool)
                keep[modelled] = True
                s[:, ~keep] = np.nan  # left out by the model's memory guard
            if name == "content":
                s = np.where(self.live_[None, :], s, np.nan)
            out[name] = _znorm(s)
        return out

    def _interest(self, x: sp.csr_matrix) -> np.ndarray:
        """Users x items: the mean over each item's tags of the user's smoothed share of
        engagements carrying the tag (items without tags: NaN)."""
        tags = self.item_tags_
        counts = np.asarray((x @ tags).todense(), np.float32)  # users x tags
        n = np.asarray(x.sum(axis=1), np.float32).reshape(-1, 1)
        share = (counts + INTEREST_PRIOR * self.tag_share_[None, :]) / (n + INTEREST_PRIOR)
        per_item = np.asarray(tags.sum(axis=1), np.float32).ravel()
        got = np.asarray((tags @ share.T).T, np.float32)  # users x items
        return np.where(per_item[None, :] > 0, got / np.maximum(per_item, 1.0)[None, :],
                        np.nan)

    def _blend(self, rows: np.ndarray | None, hist: sp.csr_matrix | None) -> np.ndarray:
        n_users = len(rows) if rows is not None else hist.shape[0]
        total = np.zeros((n_users, self.n_items), dtype=np.float32)
        for name, z in self._signals(rows, hist).items():
            total += np.float32(self.weights_[name]) * z
        # a hair of trending breaks ties, so a blend of flat signals still ranks
        return total + 1e-4 * _znorm(self.trending_[None, :].astype(np.float32))

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._blend(rows, None)

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._blend(None, history)

    def _score_cell_bytes(self) -> int:
        return 8 * len(SIGNALS) + 40

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        out = []
        for r, items in enumerate(cols):
            liked = history.indices[history.indptr[r]:history.indptr[r + 1]]
            fav = set(self.item_author_[liked][self.item_author_[liked] >= 0].tolist())
            tags = getattr(self, "item_tags_", None)
            mine = (set(tags[liked].indices.tolist()) if tags is not None and len(liked)
                    and self.weights_.get("interest", 0) else set())
            reasons = []
            for i in items:
                a = self.item_author_[i]
                if a >= 0 and a in fav and self.weights_.get("author", 0):
                    reasons.append(f"new from {self.authors_[a]}, whom you engage with")
                elif mine and mine.intersection(tags[i].indices.tolist()):
                    reasons.append("on a topic you engage with")
                elif self.live_[i] and self.weights_.get("content", 0) and len(liked):
                    reasons.append("fresh, like what you engaged with")
                elif self.newness_[i] > 0.5 and self.weights_.get("newness", 0):
                    reasons.append("new")
                else:
                    reasons.append(self.fallback_reason)
            out.append(reasons)
        return out

    # ------------------------------------------------------------------ validation
    def _validate(self, data: Interactions, items: pd.DataFrame | None,
                  edges: pd.DataFrame | None
                  ) -> tuple[dict[str, float], dict[str, float | None], dict] | None:
        """Weights and time constants chosen on the last ``validation_fraction`` of the
        training time (``None``: too little data to validate on)."""
        ts = _pair_times(data)
        cut = float(np.quantile(ts, 1 - self.validation_fraction))
        window = float(ts.max()) - cut
        if window <= 0:
            return None
        split = temporal_split(data, at=cut)
        seen = split.train.matrix
        truth = split.test.matrix
        users = np.flatnonzero((np.diff(seen.indptr) > 0) & (np.diff(truth.indptr) > 0))
        if len(users) < 5:
            return None
        if len(users) > self.max_validation_users:
            pick = np.random.default_rng(self.seed).choice(len(users),
                                                           self.max_validation_users,
                                                           replace=False)
            users = np.sort(users[pick])
        grid = {name: [None if m is None else m * window for m in mults]
                for name, mults in TIME_GRID.items()}
        # one probe fitted on the part before the cut; the time constants' variants only
        # recompute the time state (no refit)
        neg = split.train.negatives
        seen_or_hidden = seen + abs(neg) if neg is not None else seen
        probe = Fresh(weights={s: 1.0 for s in SIGNALS}, collaborative=self.collaborative)
        probe.memory_budget = self.memory_budget
        probe.settings_ = {name: g[0] for name, g in grid.items()}
        probe.weights_ = {s: 1.0 for s in SIGNALS}
        probe._prepare(split.train, items, edges, cut)
        probe.seen_, probe.item_ids_ = seen, split.train.item_ids
        probe.popularity_ = np.asarray((seen > 0).sum(axis=0), np.float32).ravel()
        t_req = None
        young = _young_share(split.test, probe.item_time_, cut - window)
        if self.request_horizon_days is not None and young >= FEED_SHARE:
            truth, t_req = _as_requests(split.test, probe.item_time_,
                                        float(self.request_horizon_days) * _DAY)
            users = users[np.diff(truth.indptr)[users] > 0]
            if len(users) < 5:
                return None
        # each time constant's variant: the time state it gives (small per-item vectors)
        base = probe.settings_

        def time_state() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return probe.trending_, probe.newness_, probe.live_

        states = {("", 0): time_state()}
        for name, g in grid.items():
            for v, value in enumerate(g[1:], 1):
                probe.settings_ = {**base, name: value}
                probe._time_state(split.train, cut)
                states[(name, v)] = time_state()
        probe.settings_ = base
        # validation users in row blocks within the memory budget: every variant's users x
        # items z-scores of a block at once (plus scoring temporaries), cut to candidates
        n_mats = len(SIGNALS) + sum(len(g) - 1 for g in grid.values())
        step = rows_within(probe.budget(), seen.shape[1] * (4 * n_mats + 64), 256)
        blocks = []
        for start in range(0, len(users), step):
            rows = users[start:start + step]
            mask = seen_or_hidden[rows].toarray() > 0
            if t_req is not None:  # what did not exist at the user's request is not ranked
                mask |= probe.item_time_[None, :] > t_req[rows][:, None]

            def masked(z: np.ndarray, mask: np.ndarray = mask) -> np.ndarray:
                return np.where(mask, -np.inf, z).astype(np.float32)

            probe.trending_, probe.newness_, probe.live_ = states[("", 0)]
            variants = {n: [masked(z)] for n, z in probe._signals(rows, None).items()}
            for (name, _), st in list(states.items())[1:]:
                if name in variants:
                    probe.trending_, probe.newness_, probe.live_ = st
                    variants[name].append(masked(probe._signals(rows, None,
                                                                frozenset({name}))[name]))
            if not variants:
                return None
            blocks.append(_Candidates(variants, truth[rows], per=100))
            del variants, mask
        names = list(blocks[0].z)
        cand = _Candidates.stack(blocks)
        state = {n: (0, START_WEIGHTS.get(n, 0.0)) for n in names}
        memo: dict[tuple, float] = {}

        def score(st: dict[str, tuple[int, float]]) -> float:
            key = tuple(sorted(st.items()))
            if key not in memo:
                memo[key] = cand.ndcg(st)
            return memo[key]

        start = best = score(state)
        for _ in range(3):
            changed = False
            for n in names:
                for option in [(v, state[n][1]) for v in range(len(cand.z[n]))] + \
                              [(state[n][0], w) for w in WEIGHT_GRID]:
                    trial = {**state, n: option}
                    got = score(trial)
                    if got > best + 1e-9:
                        state, best, changed = trial, got, True
            if not changed:
                break
        weights = {s: (float(state[s][1]) if s in state else 0.0) for s in SIGNALS}
        if not any(weights.values()):
            weights["trending"] = 1.0
        settings = {name: grid[name][state[name][0]] if name in state else grid[name][0]
                    for name in grid}
        report = {"metric": "ndcg@10", "start": start, "chosen": best, "users": len(users),
                  "window_hours": window / 3600.0, "blends_scored": len(memo),
                  "cut": cut, "young_share": young, "request_horizon_hours": (
                      None if t_req is None else float(self.request_horizon_days) * 24)}
        return weights, settings, report

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict:
        state: dict[str, Any] = {
            "trending": self.trending_, "newness": self.newness_, "live": self.live_,
            "item_time": self.item_time_, "authors": self.authors_.astype(str),
            "item_author": self.item_author_, "follows": self.follows_,
            "friends": self.friends_,
            "item_tags": self.item_tags_, "tag_share": self.tag_share_,
            "meta": np.array(json.dumps({"weights": self.weights_, "settings": self.settings_,
                                         "now": self.now_, "validation": self.validation_,
                                         "inner": self.inner_names_,
                                         "params": [m.get_params() for m in self._models]},
                                        default=float))}
        for name, model in zip(self.inner_names_, self._models, strict=True):
            for key, v in model._state().items():
                state[f"{name}__{key}"] = v
        return state

    def _set_state(self, state: dict) -> None:
        meta = json.loads(str(state["meta"]))
        self.weights_ = {k: float(v) for k, v in meta["weights"].items()}
        self.settings_ = meta["settings"]
        self.now_ = float(meta["now"])
        self.validation_ = meta["validation"]
        self.inner_names_ = list(meta["inner"])
        self.trending_ = np.asarray(state["trending"], np.float32)
        self.newness_ = np.asarray(state["newness"], np.float32)
        self.live_ = np.asarray(state["live"], bool)
        self.item_time_ = np.asarray(state["item_time"], np.float64)
        self.authors_ = np.asarray(state["authors"], dtype=object)
        self.item_author_ = np.asarray(state["item_author"], np.int64)
        self.follows_ = sp.csr_matrix(state["follows"])
        n_users = len(self.user_ids_)
        self.friends_ = (sp.csr_matrix(state["friends"], dtype=np.float32) if "friends" in state
                         else sp.csr_matrix((n_users, n_users), dtype=np.float32))
        if "item_tags" in state:
            self.item_tags_ = sp.csr_matrix(state["item_tags"], dtype=np.float32)
            self.tag_share_ = np.asarray(state["tag_share"], np.float32)
        else:  # saved before the interest signal
            self.item_tags_ = sp.csr_matrix((len(self.item_author_), 0), dtype=np.float32)
            self.tag_share_ = np.zeros(0, np.float32)
        models = []
        for name, params in zip(self.inner_names_, meta["params"], strict=True):
            klass = (Content if name == "content"
                     else Recommender.registry[self.collaborative])
            model = klass(**{**klass.saved_before, **params})
            self._load_inner(model, state, f"{name}__")
            models.append(model)
        self._models = models


class _Candidates:
    """Validation users' candidates (the union of every signal variant's top unseen items)
    and each variant's z-scores on them: every blend is then a weighted sum of small
    matrices."""

    def __init__(self, variants: dict[str, list[np.ndarray]], truth: sp.csr_matrix,
                 per: int = 100, k: int = 10) -> None:
        mats = [m for ms in variants.values() for m in ms]
        n_items = mats[0].shape[1]
        take = min(per, n_items)
        top = np.concatenate([np.argpartition(-m, take - 1, axis=1)[:, :take] for m in mats],
                             axis=1)
        top.sort(axis=1)
        top[:, 1:][top[:, 1:] == top[:, :-1]] = -1
        self.cols = top
        picked = np.where(top >= 0, top, 0)
        self.z = {n: [np.where(top >= 0, np.take_along_axis(m, picked, axis=1), -np.inf)
                      for m in ms] for n, ms in variants.items()}
        self.dead = ~np.isfinite(next(iter(self.z.values()))[0])  # seen or padding
        self.truth = sp.csr_matrix(truth)
        self.n_rel = metrics.n_relevant(self.truth)
        self.k = k

    @classmethod
    def stack(cls, blocks: Sequence[_Candidates]) -> _Candidates:
        """The candidates of consecutive blocks of users as one (rows stacked)."""
        if len(blocks) == 1:
            return blocks[0]
        out = cls.__new__(cls)
        out.cols = np.concatenate([b.cols for b in blocks])
        out.z = {n: [np.concatenate([b.z[n][v] for b in blocks])
                     for v in range(len(blocks[0].z[n]))] for n in blocks[0].z}
        out.dead = np.concatenate([b.dead for b in blocks])
        out.truth = sp.vstack([b.truth for b in blocks], format="csr")
        out.n_rel = np.concatenate([b.n_rel for b in blocks])
        out.k = blocks[0].k
        return out

    def ndcg(self, state: Mapping[str, tuple[int, float]]) -> float:
        s = np.zeros(self.cols.shape, np.float32)
        for n, (v, w) in state.items():
            if w:
                s = s + np.float32(w) * np.where(np.isfinite(self.z[n][v]), self.z[n][v], 0)
        s[self.dead] = -np.inf
        top = np.argsort(-s, axis=1, kind="stable")[:, :self.k]
        recs = np.take_along_axis(self.cols, top, axis=1)
        recs = np.where(np.isfinite(np.take_along_axis(s, top, axis=1)), recs, -1)
        return float(metrics.ndcg(metrics.hits_matrix(recs, self.truth), self.n_rel).mean())


# ---------------------------------------------------------------------- helpers
def _days(v: float | None) -> float | None:
    return None if v is None else float(v) * _DAY


def _pair_times(data: Interactions) -> np.ndarray:
    t = data.last_ts.tocsr()
    return np.asarray(t.data, dtype=np.float64)


def _data_end(data: Interactions) -> float:
    """The cut: the newest training engagement, else ``until``, else 0."""
    if data.last_ts is not None and data.last_ts.nnz:
        return float(data.last_ts.data.max())
    if data.until is not None:
        return data.until.timestamp()
    return 0.0


def _first_seen(data: Interactions) -> np.ndarray:
    """Per item, the time of its earliest engagement in ``data`` (NaN: none or no times)."""
    out = np.full(data.n_items, np.nan)
    if data.last_ts is None or not data.last_ts.nnz:
        return out
    t = sp.csc_matrix(data.last_ts)
    n = np.diff(t.indptr)
    nz = n > 0
    if nz.any():
        out[nz] = np.minimum.reduceat(t.data, t.indptr[:-1][nz])
    return out


def _trend(x: sp.csr_matrix, last_ts: sp.csr_matrix | None, now: float,
           half_life: float | None) -> np.ndarray:
    if half_life is not None and last_ts is not None and last_ts.nnz:
        t = sp.csr_matrix(last_ts)
        t.sort_indices()
        x = sp.csr_matrix(x, copy=True)
        x.sort_indices()
        if t.nnz == x.nnz and np.array_equal(t.indices, x.indices):
            x.data = x.data * _decay(now - t.data, half_life)
        else:
            r, c = x.nonzero()
            x = sp.csr_matrix((_decay(now - np.asarray(t[r, c]).ravel(), half_life), (r, c)),
                              shape=x.shape)
    return np.asarray(x.sum(axis=0), dtype=np.float32).ravel()


def _young_share(test: Interactions, item_time: np.ndarray, since: float) -> float:
    """Share of the held-out pairs on items created at or after ``since``."""
    cols = sp.csr_matrix(test.matrix).indices
    return float(np.mean(item_time[cols] >= since)) if len(cols) else 0.0


def _as_requests(test: Interactions, item_time: np.ndarray, horizon: float
                 ) -> tuple[sp.csr_matrix, np.ndarray]:
    """The held-out pairs as feed requests: per user, the request time is their first
    held-out engagement; the relevant items are those engaged with within ``horizon``
    seconds after it that existed at it (unknown creation time counts as existing)."""
    tt = sp.csr_matrix(test.last_ts, dtype=np.float64)
    tt.sort_indices()
    t_req = np.full(tt.shape[0], np.inf)
    nz = np.diff(tt.indptr) > 0
    if nz.any():
        t_req[nz] = np.minimum.reduceat(tt.data, tt.indptr[:-1][nz])
    coo = tt.tocoo()
    keep = (coo.data <= t_req[coo.row] + horizon) & ~(item_time[coo.col] > t_req[coo.row])
    truth = sp.csr_matrix((np.ones(int(keep.sum()), np.float32),
                           (coo.row[keep], coo.col[keep])), shape=tt.shape)
    return truth, t_req


def _item_tags(items: pd.DataFrame | None, index: Mapping[str, int], n_items: int,
               data: Interactions) -> tuple[sp.csr_matrix, np.ndarray]:
    """Items x tags (1 where the item carries the tag) from the items table's ``tags``, and
    each tag's share of all training engagements (the interest signal's prior)."""
    rows: list[int] = []
    cols: list[int] = []
    vocab: dict[str, int] = {}
    if items is not None and len(items) and "tags" in items.columns:
        table = item_table(items)
        for item, tags in zip(table["item_id"], table["tags"], strict=True):
            r = index.get(item, -1)
            if r < 0:
                continue
            for tag in dict.fromkeys(map(str, tags)):
                rows.append(r)
                cols.append(vocab.setdefault(tag, len(vocab)))
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                      shape=(n_items, len(vocab)), dtype=np.float32)
    m.data[:] = 1.0
    x = binary(data.matrix)
    per_tag = np.asarray((x @ m).sum(axis=0), np.float32).ravel()
    total = float(x.sum())  # engagements (user-item pairs): a tag's share is of these
    return m, (per_tag / total if total > 0 else per_tag)


def _relations(edges: pd.DataFrame) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """The follow, friend and trust edges of a graph table (``src_id, dst_id, kind``, or
    ``src, dst``; without ``kind`` every edge is a follow): sources and destinations as
    text, and each edge's kind."""
    src, dst = (("src_id", "dst_id") if {"src_id", "dst_id"} <= set(edges.columns)
                else ("src", "dst"))
    if src not in edges.columns or dst not in edges.columns:
        raise DataError(f"edges table needs columns src_id, dst_id (or src, dst); has "
                        f"{list(edges.columns)}")
    if "kind" in edges.columns:
        edges = edges[edges["kind"].isin(("follow", "friend", "trust"))]
        kind = edges["kind"].to_numpy(dtype=object)
    else:
        kind = np.full(len(edges), "follow", dtype=object)
    return edges[src].astype(str), edges[dst].astype(str), kind


def _follow_matrix(edges: pd.DataFrame | None, user_index: Mapping[str, int],
                   authors: np.ndarray) -> sp.csr_matrix:
    """Users x authors: 1 where the user follows (befriends) the author."""
    n_u, n_a = len(user_index), max(len(authors), 1)
    if edges is None or not len(edges) or not len(authors):
        return sp.csr_matrix((n_u, n_a), dtype=np.float32)
    src, dst, _ = _relations(edges)
    a_index = {str(a): i for i, a in enumerate(authors)}
    r = src.map(user_index)
    c = dst.map(a_index)
    ok = r.notna() & c.notna()
    m = sp.csr_matrix((np.ones(int(ok.sum()), np.float32),
                       (r[ok].to_numpy(np.int64), c[ok].to_numpy(np.int64))), shape=(n_u, n_a))
    m.data[:] = 1.0
    return m


def _friend_matrix(edges: pd.DataFrame | None, user_index: Mapping[str, int]
                   ) -> sp.csr_matrix:
    """Users x users: 1 where the row user follows, trusts or befriends the column user (a
    friendship both ways; no self-edges)."""
    n_u = len(user_index)
    empty = sp.csr_matrix((n_u, n_u), dtype=np.float32)
    if edges is None or not len(edges):
        return empty
    src, dst, kind = _relations(edges)
    r, c = src.map(user_index), dst.map(user_index)
    ok = (r.notna() & c.notna()).to_numpy()
    if not ok.any():
        return empty
    r, c = r[ok].to_numpy(np.int64), c[ok].to_numpy(np.int64)
    both = kind[ok] == "friend"  # a friendship goes both ways
    r, c = np.concatenate([r, c[both]]), np.concatenate([c, r[both]])
    keep = r != c
    m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])),
                      shape=(n_u, n_u))
    m.data[:] = 1.0
    return m


def blend_names(weights: Mapping[str, float]) -> str:
    """``trending 1, content 0.5`` — the signals with a weight, for messages."""
    return ", ".join(f"{k} {v:g}" for k, v in weights.items() if v) or "none"


__all__: Sequence[str] = ("Fresh", "SIGNALS", "blend_names")
