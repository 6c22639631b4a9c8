"""Replay evaluation of whole feed policies on the logged feed sessions after a cut.

The protocol (``feedwise evaluate --protocol replay``, :func:`replay_evaluate`):

* **Temporal split.** ``cut`` splits the log (default: 80% of the event times). Every
  policy is fitted once on what was known before the cut: the events before it, the social
  graph standing at it, the posts created by then (models fitted on the store also see the
  metadata -- title, tags, author, ``created_at`` -- of posts created after the cut; a
  post is never *scored* before it exists, see below).
* **Requests.** A held-out request is one logged feed session after the cut: the
  organic ``impression`` events of one user sharing a ``session_id`` (events without a
  session id: a user's impressions less than ``gap`` apart). Its time is its first
  impression's time; its *candidates* are the posts it showed, in logged order; the
  posts the user *engaged with* (click, like, comment, share, save) from the request's time
  until their next request (at most ``gap`` after its last impression) are its relevant
  posts.
* **Model frozen at the cut, availability at request time.** At each request the policy
  may rank only the posts created at or before the request's time; the user's events
  between the cut and the request are NOT added to any policy (they are not folded in:
  every policy answers from its state at the cut). Posts the user engaged with before
  the cut are left out of open retrieval for every policy alike.
* **Two scores in one run.**
  (a) *impression re-ranking* as on MIND: the policy ranks the request's logged
  candidates; AUC, MRR (MIND's: the mean reciprocal rank of the engaged candidates),
  nDCG@5 and nDCG@10 (binary gains) of the engaged ones, over the requests with at least
  one engaged and one not engaged candidate;
  (b) *open retrieval*: the policy ranks every post available then; NDCG@10 and
  recall@50 of the posts engaged with, over the requests with at least one engaged post
  that is available and not engaged with before the cut.

Policies are :class:`ReplayPolicy` objects: stateless baselines (newest first, newest from
followed authors), any fitted recommender (:class:`ModelPolicy`: time-decayed popularity,
ItemKNN, Content, Hybrid, ``auto`` ...) and the whole :class:`~feedwise.feed.engine.FeedEngine`
(:class:`EnginePolicy`: its candidate sources, engagement value and re-ranker; ads off).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError, DataError, FeedwiseError
from feedwise.feed.candidates import CandidateGenerator, RecommenderSource
from feedwise.feed.config import FeedConfig
from feedwise.feed.engine import FeedEngine
from feedwise.feed.rerank import nan_to_lowest
from feedwise.feed.types import FeedRequest
from feedwise.itemlist import ItemList
from feedwise.models import get_model
from feedwise.models.base import side_data
from feedwise.ranking.pointintime import PointInTimeFeatures, fit_point_in_time
from feedwise.schema import ENGAGEMENT_KINDS, utc
from feedwise.store import EventStore

#: Default gap that ends a session when events carry no session id (seconds).
SESSION_GAP_S = 1800.0


# ---------------------------------------------------------------------------- metrics
def auc(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Area under the ROC curve (ties count one half); NaN without both classes."""
    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    pos, neg = s[y], s[~y]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (n_pos * n_neg))


def _order(scores: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices best first; ties broken by a seeded random permutation (not by position)."""
    s = np.asarray(scores, np.float64)
    s = np.where(np.isnan(s), -np.inf, s)
    perm = rng.permutation(len(s)) if rng is not None else np.arange(len(s))
    return perm[np.argsort(-s[perm], kind="stable")]


def mrr_mind(labels_in_order: np.ndarray) -> float:
    """MIND's MRR: the mean over engaged items of 1 / their rank."""
    y = np.asarray(labels_in_order, np.float64)
    return float((y / (np.arange(len(y)) + 1)).sum() / y.sum()) if y.sum() else float("nan")


def ndcg_labels(labels_in_order: np.ndarray, k: int, n_relevant: int | None = None) -> float:
    """Binary-gain nDCG@k of a ranked label vector; the ideal puts ``n_relevant``
    (default: the label vector's positives) first."""
    y = np.asarray(labels_in_order, np.float64)
    n_rel = int(y.sum()) if n_relevant is None else int(n_relevant)
    if n_rel == 0:
        return float("nan")
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((y[:k] * disc[:len(y[:k])]).sum())
    idcg = float(disc[:min(n_rel, k)].sum())
    return dcg / idcg


def recall_at(labels_in_order: np.ndarray, k: int, n_relevant: int) -> float:
    """Share of the ``n_relevant`` relevant items in the top ``k``."""
    return float(np.asarray(labels_in_order[:k]).sum() / n_relevant) if n_relevant else float("nan")


# ---------------------------------------------------------------------------- requests
def _seconds(ts: pd.Series) -> np.ndarray:
    """Unix seconds (float; NaN for a missing time) of any datetime column."""
    t = pd.to_datetime(ts, utc=True)
    return (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(np.float64)


@dataclass
class Request:
    """One logged feed request (see the module docstring)."""

    user_id: str
    ts: float  # unix seconds of the first impression
    candidates: list[str]  # logged posts, in logged order
    engaged: set[str] = field(default_factory=set)  # posts engaged with until the next one


def logged_requests(events: pd.DataFrame, *, since: datetime | float | None = None,
                    gap_s: float = SESSION_GAP_S,
                    posts: Iterable[str] | None = None) -> list[Request]:
    """The logged feed requests starting at or after ``since`` (see the module docstring).

    ``events`` has the store's columns (``user_id``, ``item_id``, ``kind``, ``ts`` and,
    when present, ``session_id``); ``posts`` restricts candidates and engagements to those
    item ids (the organic posts)."""
    if events.empty:
        return []
    ev = events[["user_id", "item_id", "kind", "ts"]
                + (["session_id"] if "session_id" in events.columns else [])].copy()
    ev["t"] = _seconds(ev["ts"])
    ev["user_id"] = ev["user_id"].astype(str)
    ev["item_id"] = ev["item_id"].astype(str)
    if posts is not None:
        keep = set(map(str, posts))
        ev = ev[ev["item_id"].isin(keep)]
    imp = ev[ev["kind"] == "impression"].sort_values(["user_id", "t"], kind="stable")
    if imp.empty:
        return []
    sess = imp["session_id"] if "session_id" in imp.columns else pd.Series(None, imp.index)
    new_user = imp["user_id"].ne(imp["user_id"].shift())
    gap = imp["t"].diff().fillna(np.inf) > gap_s
    has_sid = sess.notna()
    sid_change = sess.ne(sess.shift()) & has_sid
    start = new_user | np.where(has_sid, sid_change, gap)
    imp = imp.assign(req=np.cumsum(start.to_numpy()) - 1)
    lo = -np.inf
    if since is not None:
        lo = since if isinstance(since, float | int) else utc(since).timestamp()
    if lo > -np.inf:  # only the requests starting at or after ``since`` are built
        begun = imp.groupby("req", sort=False)["t"].transform("min")
        imp = imp[(begun >= lo).to_numpy()]
        if imp.empty:
            return []
    g = imp.groupby("req", sort=True)
    first = g["t"].min()
    last = g["t"].max()
    users = g["user_id"].first()
    # each request's posts, in logged order, once each
    once = imp.drop_duplicates(["req", "item_id"], keep="first")
    cands = once.groupby("req", sort=True)["item_id"].agg(list)
    # engagements -> the user's latest request starting at or before them (an engagement
    # before ``since`` can only belong to a request that started before it)
    eng = ev[ev["kind"].isin(ENGAGEMENT_KINDS) & (ev["t"] >= lo)].sort_values("t",
                                                                             kind="stable")
    table = pd.DataFrame({"req": first.index, "user_id": users.to_numpy(),
                          "t": first.to_numpy(), "last": last.to_numpy()}
                         ).sort_values("t", kind="stable")
    engaged: dict[int, set[str]] = {}
    if len(eng):
        m = pd.merge_asof(eng[["user_id", "item_id", "t"]], table, on="t", by="user_id",
                          direction="backward")
        m = m[m["req"].notna() & (m["t"] <= m["last"] + gap_s)]
        for r, items in m.groupby("req")["item_id"]:
            engaged[int(r)] = set(items)
    out = [Request(str(users[r]), float(first[r]), cands[r], engaged.get(int(r), set()))
           for r in first.index if first[r] >= lo]
    out.sort(key=lambda q: (q.ts, q.user_id))
    return out


# ---------------------------------------------------------------------------- policies
@dataclass
class PostTable:
    """The posts a replay ranks: ids, creation times (unix s; NaN = unknown, always
    available) and author ids, in one order."""

    item_ids: np.ndarray
    created_s: np.ndarray
    author: np.ndarray

    @classmethod
    def from_frame(cls, posts: pd.DataFrame) -> PostTable:
        created = (pd.to_datetime(posts["created_at"], utc=True) if "created_at" in posts
                   else pd.Series(pd.NaT, index=posts.index, dtype="datetime64[ns, UTC]"))
        secs = _seconds(created)
        author = (posts["author_id"].astype(str).to_numpy(object) if "author_id" in posts
                  else np.full(len(posts), "", object))
        return cls(posts["item_id"].astype(str).to_numpy(object), secs.astype(np.float64),
                   author)

    def __post_init__(self) -> None:
        self.index = {str(x): i for i, x in enumerate(self.item_ids)}

    def lookup(self, ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.index.get(str(i), -1) for i in ids), np.int64)

    def available(self, now_s: float) -> np.ndarray:
        return np.flatnonzero(~(self.created_s > now_s))  # NaN (unknown) counts as old


class ReplayPolicy(Protocol):
    """A feed policy the replay can score: ``scores`` of post rows (of the replay's
    :class:`PostTable`) for one user at ``now_s`` (higher is better; NaN = cannot rank).
    ``rank`` (optional) returns its own best-first list of post rows among ``items``."""

    name: str

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray: ...


class NewestPolicy:
    """Newest first."""

    name = "newest"

    def __init__(self, posts: PostTable) -> None:
        self.posts = posts

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray:
        return np.nan_to_num(self.posts.created_s[items], nan=0.0)


class FollowedNewestPolicy:
    """Newest from followed authors first (then the newest of the rest)."""

    name = "newest followed"

    def __init__(self, posts: PostTable, follows: dict[str, set[str]]) -> None:
        self.posts = posts
        self.follows = follows

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray:
        f = self.follows.get(str(user_id), set())
        hit = np.fromiter((a in f for a in self.posts.author[items]), bool, len(items))
        return np.nan_to_num(self.posts.created_s[items], nan=0.0) + 1e10 * hit


class ModelPolicy:
    """A fitted recommender, frozen at the cut: its score of each post (NaN for posts it
    does not know); the user's row is computed once."""

    def __init__(self, model: Any, posts: PostTable, name: str | None = None) -> None:
        self.model = model
        self.name = name or getattr(model, "name", type(model).__name__)
        self.cols = np.asarray(model.item_columns(list(posts.item_ids)), np.int64)
        self._user: str | None = None
        self._row: np.ndarray | None = None

    def prepare(self, user_ids: Sequence[str], batch: int = 256) -> None:
        """Score ``user_ids`` in batches up front (one dense block per batch instead of
        one scoring per user: a blend scores a batch about as fast as one user)."""
        users = list(dict.fromkeys(map(str, user_ids)))
        self._rows: dict[str, np.ndarray] = {}
        batch_scores = getattr(self.model, "_scores_for", None)
        if batch_scores is None:
            return
        ok = self.cols >= 0
        for i in range(0, len(users), batch):
            part = users[i:i + batch]
            scores = np.asarray(batch_scores(part, None)[0], np.float32)
            for u, row in zip(part, scores, strict=True):
                out = np.full(len(self.cols), np.nan, np.float32)
                out[ok] = row[self.cols[ok]]
                self._rows[u] = out

    def _score_row(self, user_id: str) -> np.ndarray:
        rows = getattr(self, "_rows", None)
        if rows is not None and user_id in rows:
            return rows[user_id]
        if self._user != user_id:
            row = np.asarray(self.model.score_row(user_id), np.float64)
            out = np.full(len(self.cols), np.nan)
            ok = self.cols >= 0
            out[ok] = row[self.cols[ok]]
            self._user, self._row = user_id, out
        return self._row  # type: ignore[return-value]

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray:
        return self._score_row(str(user_id))[items]


class EnginePolicy:
    """The whole :class:`~feedwise.feed.engine.FeedEngine`: impression re-ranking orders
    the candidates by the engine's re-ranker over its engagement values; open retrieval is
    the organic part of the feed it composes (``rank``). Build it with
    :func:`replay_engine` so its recommender never proposes a post from the future."""

    name = "feed engine"

    def __init__(self, engine: Any, posts: PostTable, *, seed: int = 0) -> None:
        self.engine = engine
        self.posts = posts
        self.seed = seed
        self.to_cat = engine.catalog.lookup(list(posts.item_ids))

    def _request(self, user_id: str, now_s: float, n: int) -> Any:
        return FeedRequest(user_id=str(user_id), n=n,
                           now=datetime.fromtimestamp(now_s, UTC),
                           context={"seed": self.seed})

    def scores(self, user_id: str, items: np.ndarray, now_s: float) -> np.ndarray:
        eng = self.engine
        cat_idx = self.to_cat[items]
        ok = cat_idx >= 0
        out = np.full(len(items), np.nan)
        if not ok.any():
            return out
        idx = cat_idx[ok]
        req = self._request(user_id, now_s, len(idx))
        ctx = eng.context(req)
        scorer = eng.generator.scorer
        if scorer is not None and ctx.consent_personalization:
            rec = np.asarray(scorer.score(ctx, idx), np.float32)
        else:
            rec = np.zeros(len(idx), np.float32)
        values = nan_to_lowest(eng.engagement.predict(ctx, idx, rec))
        social, _ = eng.reshared.bonus(ctx, idx)
        values = values + social
        fat = eng.state.fatigue.factors(ctx.user_id, eng.catalog.author[idx],
                                        eng.catalog.topic[idx], ctx.now_s, eng.config.rerank)
        rr = eng.reranker.rank(idx, values, len(idx), ctx.now_s, eng.explorer,
                               np.random.default_rng(self.seed), fat)
        s = np.full(len(idx), -np.inf)
        s[rr.order] = -np.arange(len(rr.order), dtype=np.float64)
        out[ok] = s
        return out

    def rank(self, user_id: str, items: np.ndarray, now_s: float, n: int) -> np.ndarray:
        feed = self.engine.compose(self._request(user_id, now_s, n), record=False)
        rows = self.posts.lookup([s.item_id for s in feed.slots if s.kind == "organic"])
        allowed = np.zeros(len(self.posts.item_ids), bool)
        allowed[items] = True
        return np.asarray([r for r in rows if r >= 0 and allowed[r]], np.int64)


class _LiveRecommenderSource:
    """The engine's recommender source in a replay: the model's scores of the posts that
    exist at the request's time only (a post created later is never proposed)."""

    personal = True
    name = "recommender"

    def __init__(self, model: Any, catalog: Any) -> None:
        self.inner = RecommenderSource(model, catalog)
        self.catalog = catalog
        self.recommender = model

    def candidates(self, ctx: Any, k: int) -> Any:
        cat = self.catalog
        live = np.flatnonzero(~(cat.created_s > ctx.now_s))
        s = self.inner.score(ctx, live).astype(np.float64)
        row = self.recommender.user_index_.get(ctx.user_id, -1)
        if row >= 0:  # what the user engaged with before the cut is not proposed again
            cols = self.inner._columns[live]
            hist = self.recommender.seen_[row].indices
            s[np.isin(cols, hist) & (cols >= 0)] = -np.inf
        k = min(k, len(live))
        if k <= 0:
            return ItemList(None, np.empty(0), index=np.empty(0, np.int64))
        top = np.argpartition(-s, k - 1)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        top = top[np.isfinite(s[top])]
        return ItemList(None, s[top].astype(np.float32), index=live[top])

    def score(self, ctx: Any, items: np.ndarray) -> np.ndarray:
        return self.inner.score(ctx, items)

    def forget_user(self, user_id: str) -> bool:
        return self.inner.forget_user(user_id)


def replay_engine(store: EventStore, model: Any, cut: datetime, *, config: Any = None,
                  engagement: Any = None, seed: int = 0) -> Any:
    """A :class:`~feedwise.feed.engine.FeedEngine` over the store's posts, with features
    from the events before ``cut``, ``model`` as its recommender (proposing live posts
    only) and ads off (the replay scores the organic ranking)."""
    cfg = (config or FeedConfig()).model_copy(update={"max_ad_load": 0.0})
    kwargs = {"engagement": engagement} if engagement is not None else {}
    eng = FeedEngine.from_store(store, None, cfg, until=cut, seed=seed, **kwargs)
    src = _LiveRecommenderSource(model, eng.catalog)
    # the recommender source goes first, and it is the pool's scorer (as in the engine)
    eng.sources.insert(0, src)
    eng.personal_sources = frozenset(s.name for s in eng.sources if s.personal)
    eng.generator = CandidateGenerator(eng.sources, eng.config.candidates, eng.catalog.n)
    eng.store = None  # nothing a replay composes is persisted
    return eng


def point_in_time_engagement_model(store: EventStore, cut: datetime,
                                   progress: Callable[[str], None] | None = None) -> Any:
    """The engine's engagement model trained as ``feedwise feed --train-engagement`` trains
    it (:mod:`feedwise.ranking.pointintime`: every feature of a training impression from
    the events strictly before it), on the impressions before ``cut`` only: the protocol's
    hold-out starts at ``cut``, and the model returned is the one fitted before it. No
    recommender score enters it (``rec_score`` is 0). ``None`` when there is too little
    log before the cut."""
    ev = store.impression_log()
    if ev.empty:
        return None
    t = pd.to_datetime(ev["ts"], utc=True)
    span = (t.max() - t.min()).total_seconds()
    if span <= 0:
        return None
    # the hold-out (never trained on) begins at the cut, a hair before to absorb rounding
    holdout = (t.max() - pd.Timestamp(utc(cut))).total_seconds() / span + 1e-3
    if not 0.05 <= holdout <= 0.6:
        return None
    base = FeedEngine(None, store.posts(), users=store.users())  # declared profiles only
    features = PointInTimeFeatures(base.catalog, base.users, ev, store.edge_log())
    try:
        return fit_point_in_time(features, holdout=holdout, progress=progress).model
    except FeedwiseError:
        return None


# ---------------------------------------------------------------------------- the run
METRICS = ("open_ndcg@10", "open_recall@50", "auc", "mrr", "ndcg@5", "ndcg@10")


@dataclass
class ReplayResult:
    """Per-policy means (:data:`METRICS`), request counts and the protocol facts."""

    table: pd.DataFrame  # one row per policy: METRICS, requests_open, requests_impression
    facts: dict[str, Any]
    per_request: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)
    #: The fitted models by table name and the policies scored (for further use: the
    #: engine's feed, an off-policy estimate).
    fitted: dict[str, Any] = field(default_factory=dict, repr=False)
    policies: list[Any] = field(default_factory=list, repr=False)

    def to_json(self) -> str:
        return json.dumps({"facts": self.facts,
                           "policies": self.table.to_dict(orient="records")}, default=str)


def score_requests(policies: Sequence[Any], requests: Sequence[Request], posts: PostTable,
                   seen: dict[str, set[str]] | None = None, *, seed: int = 0,
                   progress: Callable[[str], None] | None = None) -> ReplayResult:
    """Score ``policies`` on ``requests`` both ways (the module docstring's protocol):
    availability is ``posts.created_s <= request time``; ``seen`` (user -> posts engaged
    with before the cut) are left out of open retrieval."""
    seen = seen or {}
    rows = []
    per: dict[str, dict[str, np.ndarray]] = {}
    # per request: candidates (rows), labels; open: available rows, relevant rows
    prepared = []
    shuffle = np.random.default_rng(seed + 1)
    for q in requests:
        avail = posts.available(q.ts)
        cand = posts.lookup(q.candidates)
        cand = cand[(cand >= 0)]
        cand = cand[~(posts.created_s[cand] > q.ts)]
        # the policy sees the candidates in a seeded random order, not the logged one (a
        # policy that breaks its ties by input order must not inherit the logged ranking)
        cand = cand[shuffle.permutation(len(cand))]
        lab = np.fromiter((posts.item_ids[c] in q.engaged for c in cand), bool, len(cand))
        prior = seen.get(q.user_id, set())
        rel = {r for r in posts.lookup(q.engaged) if r >= 0 and not posts.created_s[r] > q.ts
               and posts.item_ids[r] not in prior}
        if prior:
            pr = posts.lookup(prior)
            mask = np.ones(len(posts.item_ids), bool)
            mask[pr[pr >= 0]] = False
            avail = avail[mask[avail]]
        prepared.append((q, cand, lab, avail, rel))
    t_all = time.perf_counter()
    for pol in policies:
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        m: dict[str, list[float]] = {k: [] for k in METRICS}
        order_q = sorted(range(len(prepared)), key=lambda i: prepared[i][0].user_id)
        if hasattr(pol, "prepare"):
            pol.prepare([q.user_id for q, *_ in prepared])
        for done, i in enumerate(order_q):
            q, cand, lab, avail, rel = prepared[i]
            if 0 < lab.sum() < len(lab):
                s = pol.scores(q.user_id, cand, q.ts)
                y = lab[_order(s, rng)]
                m["auc"].append(auc(lab, np.where(np.isnan(s), -np.inf, s)))
                m["mrr"].append(mrr_mind(y))
                m["ndcg@5"].append(ndcg_labels(y, 5))
                m["ndcg@10"].append(ndcg_labels(y, 10))
            if rel:
                if hasattr(pol, "rank"):
                    top = pol.rank(q.user_id, avail, q.ts, 50)
                else:
                    s = pol.scores(q.user_id, avail, q.ts)
                    s = np.where(np.isnan(s), -np.inf, s)
                    k = min(50, len(avail))
                    part = np.argpartition(-s, k - 1)[:k] if k < len(avail) else \
                        np.arange(len(avail))
                    part = part[_order(s[part], rng)]
                    top = avail[part[np.isfinite(s[part])]]
                y = np.fromiter((r in rel for r in top[:50]), bool, min(50, len(top)))
                m["open_ndcg@10"].append(ndcg_labels(y, 10, n_relevant=len(rel)))
                m["open_recall@50"].append(recall_at(y, 50, len(rel)))
            if progress is not None and done % 200 == 0:
                progress(f"{pol.name}: request {done}/{len(prepared)}")
        if hasattr(pol, "prepare"):
            pol._rows = None  # the batch of rows is not kept past the policy's turn
        per[pol.name] = {k: np.asarray(v) for k, v in m.items()}
        row = {"policy": pol.name}
        row.update({k: float(np.nanmean(v)) if len(v) else float("nan") for k, v in m.items()})
        row["requests_open"] = len(m["open_ndcg@10"])
        row["requests_impression"] = len(m["auc"])
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
    facts = {"requests": len(requests), "seconds": round(time.perf_counter() - t_all, 1)}
    return ReplayResult(pd.DataFrame(rows), facts, per)


# the baselines and their names in the table
BASELINES = ("newest", "newest followed", "popularity (decayed)", "itemknn", "content",
             "hybrid")


def sample_requests(reqs: Sequence[Request], max_requests: int | None,
                    seed: int) -> list[Request]:
    """At most ``max_requests`` of ``reqs``: a seeded sample kept in their order (the same
    seed picks the same requests, so other scorers can rank exactly these)."""
    if max_requests is None or len(reqs) <= max_requests:
        return list(reqs)
    pick = np.sort(np.random.default_rng(seed).choice(len(reqs), max_requests, replace=False))
    return [reqs[i] for i in pick]


def engaged_before(events: pd.DataFrame, cut: datetime) -> dict[str, set[str]]:
    """Each user's posts engaged with before the cut (not recommended to them again)."""
    t = pd.to_datetime(events["ts"], utc=True)
    before = events[(t < pd.Timestamp(cut)) & events["kind"].isin(ENGAGEMENT_KINDS)]
    return before.groupby(before["user_id"].astype(str))["item_id"].agg(
        lambda s: set(map(str, s))).to_dict()


def followed_authors(store: EventStore, cut: datetime) -> dict[str, set[str]]:
    """User -> the authors (and users) they follow at ``cut``: the stored edges standing
    then, and the ``follows`` the user record declares."""
    out: dict[str, set[str]] = {}
    edges = store.edges_as_of(cut, ("follow",))
    for s, d in zip(edges["src_id"].astype(str), edges["dst_id"].astype(str), strict=True):
        out.setdefault(s, set()).add(d)
    users = store.users()
    if "attributes" in users.columns:
        for u, a in zip(users["user_id"].astype(str), users["attributes"], strict=True):
            try:
                f = json.loads(a).get("follows") if isinstance(a, str) else None
            except (ValueError, AttributeError):
                f = None
            if isinstance(f, list):
                out.setdefault(u, set()).update(map(str, f))
    return out


def _cut_of(events: pd.DataFrame, cut: datetime | None, test_fraction: float) -> datetime:
    if cut is not None:
        return utc(cut)
    ts = pd.to_datetime(events["ts"], utc=True)
    return ts.quantile(1.0 - test_fraction).to_pydatetime()


def fit_model(name: str, store: EventStore, cut: datetime, posts: pd.DataFrame,
              params: dict | None = None) -> Any:
    """``get_model(name, **params)`` fitted on the interactions before ``cut`` with the
    posts table and the graph standing at ``cut`` as side data."""
    model = get_model(name, **(params or {}))
    data = store.interactions(until=cut)
    edges = store.edges_as_of(cut, exclude_objectors=True)
    return model.fit(data, **side_data(model, items=posts, edges=edges))


def baseline_specs() -> dict[str, tuple[str, dict]]:
    """Table name -> (registered model, params) of the model baselines."""
    return {"popularity (decayed)": ("popularity", {"half_life_days": 0.25}),
            "itemknn": ("itemknn", {}), "content": ("content", {}), "hybrid": ("hybrid", {})}


def replay_evaluate(store: EventStore, *, models: Sequence[str] | None = None,
                    cut: datetime | None = None, test_fraction: float = 0.2,
                    until: datetime | None = None, max_requests: int | None = 2000,
                    baselines: bool = True, engine: bool = True, engine_model: str = "auto",
                    seed: int = 0, gap_s: float = SESSION_GAP_S,
                    fitted: dict[str, Any] | None = None,
                    progress: Callable[[str], None] | None = None,
                    events: pd.DataFrame | None = None,
                    engine_engagement: str = "point-in-time") -> ReplayResult:
    """Replay evaluation of the store's log (the module docstring's protocol).

    Args:
        store: The store (its events, posts, users and edges).
        models: Registered model names scored as policies (default: ``["auto"]``).
        cut: The split time (default: the ``1 - test_fraction`` quantile of event times).
        until: Requests at or after this time are not scored (a validation window ends
            before the test part).
        max_requests: Score a seeded sample of this many requests (``None``: all).
        baselines: Add the baselines (:data:`BASELINES`).
        engine: Add the whole FeedEngine, with ``engine_model`` as its recommender.
        fitted: Already fitted models by name (reused instead of refitting).
        events: ``store.events()`` when the caller already read it (not read again).
        engine_engagement: The engine's engagement model: ``"point-in-time"`` (trained on
            the impressions before the cut, :func:`point_in_time_engagement_model`, as
            ``feedwise feed --train-engagement`` trains it; the engine's built-in one when
            the log before the cut is too short) or ``"built-in"``.
    """
    say = progress or (lambda _s: None)
    t0 = time.perf_counter()
    if events is None:
        events = store.events()
    if events.empty:
        raise DataError("replay: the store holds no events")
    cut = _cut_of(events, cut, test_fraction)
    post_frame = store.posts()
    if post_frame.empty:
        raise DataError("replay: the store holds no posts (items); ingest --items first")
    posts = PostTable.from_frame(post_frame)
    say("finding the logged requests")
    reqs = logged_requests(events, since=cut, gap_s=gap_s, posts=posts.item_ids)
    if until is not None:
        hi = utc(until).timestamp()
        reqs = [q for q in reqs if q.ts < hi]
    n_all = len(reqs)
    if not reqs:
        raise DataError(f"replay: no logged feed request (impressions) after the cut {cut}")
    reqs = sample_requests(reqs, max_requests, seed)
    seen = engaged_before(events, cut)
    fitted = dict(fitted or {})
    policies: list[Any] = []
    names = list(models) if models is not None else ["auto"]
    if baselines:
        policies.append(NewestPolicy(posts))
        policies.append(FollowedNewestPolicy(posts, followed_authors(store, cut)))
    specs = baseline_specs() if baselines else {}
    for label, (name, params) in specs.items():
        if label not in fitted:
            say(f"fitting {label} on the events before the cut")
            fitted[label] = fit_model(name, store, cut, post_frame, params)
        policies.append(ModelPolicy(fitted[label], posts, label))
    for name in names:
        if name in specs:
            continue
        if name not in fitted:
            say(f"fitting {name} on the events before the cut")
            fitted[name] = fit_model(name, store, cut, post_frame)
        policies.append(ModelPolicy(fitted[name], posts, name))
    if engine:
        if engine_model not in fitted:
            say(f"fitting {engine_model} for the feed engine")
            fitted[engine_model] = fit_model(engine_model, store, cut, post_frame)
        if engine_engagement not in ("point-in-time", "built-in"):
            raise ConfigError(f"engine_engagement must be 'point-in-time' or 'built-in', "
                              f"got {engine_engagement!r}")
        eng_model = None
        if engine_engagement == "point-in-time":
            say("training the engine's engagement model on the impressions before the cut")
            eng_model = point_in_time_engagement_model(store, cut)
        engagement_used = "point-in-time" if eng_model is not None else "built-in"
        say("building the feed engine as of the cut")
        policies.append(EnginePolicy(replay_engine(store, fitted[engine_model], cut,
                                                   engagement=eng_model, seed=seed),
                                     posts, seed=seed))
    res = score_requests(policies, reqs, posts, seen, seed=seed, progress=progress)
    share_new = _fresh_share(reqs, posts, cut)
    if engine:
        res.facts["engine_engagement"] = engagement_used
    res.facts.update({"cut": str(cut), "requests_after_cut": n_all,
                      "requests_scored": len(reqs), "gap_s": gap_s,
                      "engaged_on_posts_created_after_cut": share_new,
                      "protocol": "model frozen at the cut, availability at request time; "
                                  "the user's events after the cut are not added",
                      "seconds": round(time.perf_counter() - t0, 1)})
    res.fitted = fitted
    res.policies = policies
    return res


def _fresh_share(reqs: Sequence[Request], posts: PostTable, cut: datetime) -> float:
    c = utc(cut).timestamp()
    rows = [r for q in reqs for r in posts.lookup(q.engaged) if r >= 0]
    return float(np.mean(posts.created_s[rows] > c)) if rows else float("nan")


def ratios(table: pd.DataFrame, policy: str, against: Sequence[str],
           metrics: Sequence[str] = ("open_ndcg@10", "auc")) -> dict[str, dict[str, Any]]:
    """``policy``'s figure over the best of ``against`` per metric (and which was best)."""
    t = table.set_index("policy")
    if policy not in t.index:
        raise ConfigError(f"no policy {policy!r} in the replay table")
    out = {}
    for mt in metrics:
        base = t.loc[[a for a in against if a in t.index and a != policy], mt]
        best = base.idxmax()
        out[mt] = {"value": float(t.loc[policy, mt]), "best_baseline": best,
                   "baseline_value": float(base.max()),
                   "ratio": float(t.loc[policy, mt] / base.max()) if base.max() else
                   float("inf")}
    return out
