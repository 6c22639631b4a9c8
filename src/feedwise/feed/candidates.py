"""Candidate sources and the generator that merges them with quotas and a fallback chain.

A source answers one user with an :class:`~feedwise.itemlist.ItemList` of catalogue
indices (``index``), scores and optional reasons. :class:`CandidateGenerator`
asks each source for up to its quota, de-duplicates (the first source to propose a post
keeps it), and, when the pool is still short, refills from the sources in order without
quotas; :class:`TrendingSource` and :class:`FreshSource` never run dry while the catalogue
has posts, so a feed is never empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from feedwise.errors import ConfigError
from feedwise.feed.catalog import Catalog, UserTable
from feedwise.feed.config import CandidateConfig
from feedwise.feed.context import UserContext
from feedwise.itemlist import ItemList


@runtime_checkable
class CandidateSource(Protocol):
    """Proposes posts for a user.

    Attributes:
        name: Source name (the key of its quota).
        personal: Uses the user's history or profile (skipped without personalisation
            consent).
    """

    name: str
    personal: bool

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        """Up to ``k`` posts, best first: their catalogue indices (``index``), scores and,
        optionally, a reason each."""
        ...


@runtime_checkable
class ForgetsUsers(Protocol):
    """A part that holds per-user state and can drop it (erasure)."""

    def forget_user(self, user_id: str) -> bool:
        """Drop everything held about ``user_id`` (stored id); ``True`` if anything was."""
        ...


def _listed(index: np.ndarray, scores: np.ndarray) -> ItemList:
    return ItemList(None, scores, index=index)


def _nothing() -> ItemList:
    return _listed(np.empty(0, np.int64), np.empty(0))


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, np.int64)
    if k < len(scores):
        top = np.argpartition(scores, len(scores) - k)[len(scores) - k:]
    else:
        top = np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


class FactorSource:
    """Dot-product scores of user and item factors (e.g. from ALS/BPR or a simulator).

    Args:
        user_factors: n_users x d; row ``r`` is the user at row ``r`` of ``user_index`` (or of
            the engine's UserTable when ``user_index`` is ``None``).
        item_factors: n_posts x d, aligned with the catalogue.
        user_index: Optional user id -> factor row.
        name: Source name.
    """

    personal = True

    def __init__(self, user_factors: np.ndarray, item_factors: np.ndarray,
                 user_index: Mapping[str, int] | None = None, name: str = "recommender") -> None:
        self.user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
        self.user_index = user_index
        self.name = name

    def _row(self, ctx: UserContext) -> int:
        r = ctx.row if self.user_index is None else self.user_index.get(ctx.user_id, -1)
        return r if 0 <= r < len(self.user_factors) else -1

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        r = self._row(ctx)
        if r < 0:
            return _nothing()
        s = self.item_factors @ self.user_factors[r]
        top = _top(s, k)
        return _listed(top, s[top])

    def score(self, ctx: UserContext, items: np.ndarray) -> np.ndarray:
        r = self._row(ctx)
        if r < 0:
            return np.zeros(len(items), np.float32)
        return self.item_factors[items] @ self.user_factors[r]

    def forget_user(self, user_id: str) -> bool:
        """Zero the user's factors and drop the id from ``user_index`` (when it is a dict)."""
        if not isinstance(self.user_index, dict) or user_id not in self.user_index:
            return False
        r = self.user_index.pop(user_id)
        self.user_factors = np.array(self.user_factors, copy=True)  # maybe a model's array
        self.user_factors[r] = 0
        return True


class RecommenderSource:
    """Any fitted :class:`~feedwise.models.base.Recommender`, mapped onto the catalogue
    (its reasons, e.g. "because you liked ...", come with the answer)."""

    personal = True

    def __init__(self, recommender: Any, catalog: Catalog, name: str = "recommender") -> None:
        self.recommender = recommender
        self.catalog = catalog
        self.name = name
        # catalogue index -> model column, at build: lazily, the first user scored here (a
        # user without a materialised list) paid ~20 ms per 100k posts under the engine's
        # lock, and every feed of that process waited behind it
        self._columns: np.ndarray | None = None
        if hasattr(recommender, "item_columns"):  # any Recommender; a stand-in may lack it
            self._columns = np.asarray(recommender.item_columns(catalog.item_ids), np.int64)

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        lst = self.recommender.recommend([ctx.user_id], k)[0]
        idx = self.catalog.lookup(lst.ids)
        ok = idx >= 0
        reasons = None
        if lst.reasons:
            reasons = list(map(lst.reasons.__getitem__, np.flatnonzero(ok).tolist()))
        return ItemList(lst.ids[ok], lst.scores[ok], reasons, index=idx[ok])

    def grown(self) -> None:
        """Posts were appended to the catalogue: map them to model columns (-1 when the
        model does not know them: they score as cold)."""
        cols = self._columns
        if cols is not None and len(cols) < self.catalog.n:
            more = self.recommender.item_columns(self.catalog.item_ids[len(cols):])
            self._columns = np.concatenate([cols, np.asarray(more, cols.dtype)])

    def score(self, ctx: UserContext, items: np.ndarray) -> np.ndarray:
        assert self._columns is not None, "score() needs a recommender with item_columns()"
        cols = self._columns[items]
        row = self.recommender.score_row(ctx.user_id)
        return np.nan_to_num(np.where(cols >= 0, row[cols], 0.0), nan=0.0).astype(np.float32)

    def forget_user(self, user_id: str) -> bool:
        """Remove the user from the recommender (when it can forget users)."""
        if not hasattr(self.recommender, "forget_user"):
            return False
        return bool(self.recommender.forget_user(user_id))


class TextProfileSource:
    """Posts whose text the user's engagement says they want: ``V @ (w + p_u)``.

    ``text`` is a fitted :class:`~feedwise.ranking.text.TextEngagement`: ``w`` its projection
    learned from everyone's engagement (what text draws engagement), ``p_u`` the user's
    profile in the same space (text the user engaged with beyond their own rate), ``V`` the
    catalogue posts' text vectors (embeddings with the ``text`` extra, else hashed words).
    Users without a profile get nothing (the other sources fill the pool).

    Args:
        text: The fitted text model.
        catalog: The catalogue; ``texts`` gives each post's text in catalogue order.
        texts: Post texts aligned with ``catalog.item_ids``.
        name: Source name.
    """

    personal = True

    def __init__(self, text: Any, catalog: Catalog, texts: Sequence[Any],
                 name: str = "text") -> None:
        if len(texts) != catalog.n:
            raise ConfigError(f"TextProfileSource: {len(texts)} texts for {catalog.n} posts; "
                              "pass one text per catalogue post, in catalogue order")
        self.text = text
        self.catalog = catalog
        self.name = name
        self.item_vectors = np.asarray(text.vectors(texts), np.float32)
        self.appeal = self.item_vectors @ np.asarray(text.coef_, np.float32)

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        p = self.text.user_vector(ctx.user_id)
        if p is None:
            return _nothing()
        s = self.appeal + self.item_vectors @ np.asarray(p, np.float32)
        live = np.flatnonzero(self.catalog.created_s <= ctx.now_s)  # no post from the future
        top = live[_top(s[live], k)]
        return ItemList(None, s[top], ["text like what you engage with"] * len(top),
                        index=top)

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's text profile."""
        return bool(self.text.forget_user(user_id))


class TrendingSource:
    """Most popular posts (a fixed order; call :meth:`refresh` after popularity changes)."""

    personal = False
    name = "trending"

    def __init__(self, catalog: Catalog, max_k: int = 2000) -> None:
        self.catalog = catalog
        self.max_k = max_k
        self.refresh()

    def refresh(self) -> None:
        pop = self.catalog.popularity
        self.order = _top(pop + 1e-12 * self.catalog.created_s, min(self.max_k, len(pop)))
        self.scores = pop[self.order].astype(np.float32)

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        created = self.catalog.created_s[self.order[:k * 2]]
        keep = self.order[:k * 2][created <= ctx.now_s][:k]
        return _listed(keep, self.catalog.popularity[keep])


class FreshSource:
    """The newest posts created before the request time."""

    personal = False
    name = "fresh"

    def __init__(self, catalog: Catalog, max_age_hours: float = 72.0) -> None:
        self.catalog = catalog
        self.max_age_s = max_age_hours * 3600.0
        self.order = np.argsort(catalog.created_s, kind="stable")
        self.sorted_s = catalog.created_s[self.order]

    def grown(self) -> None:
        """Take in posts appended to the catalogue since (:meth:`Catalog.append`): each
        is inserted at its creation time, so a request at an earlier time never sees it."""
        n0 = len(self.order)
        if self.catalog.n <= n0:
            return
        new = np.arange(n0, self.catalog.n)
        new = new[np.argsort(self.catalog.created_s[new], kind="stable")]
        s = self.catalog.created_s[new]
        at = np.searchsorted(self.sorted_s, s, side="right")
        order = np.insert(self.order, at, new)
        self.sorted_s, self.order = np.insert(self.sorted_s, at, s), order

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        hi = int(np.searchsorted(self.sorted_s, ctx.now_s, side="right"))
        lo = max(hi - k, 0)
        idx = self.order[lo:hi][::-1]
        age = ctx.now_s - self.catalog.created_s[idx]
        idx = idx[age <= self.max_age_s]
        if len(idx) == 0:  # nothing fresh: still the newest k (so the chain never runs dry)
            idx = self.order[lo:hi][::-1]
        return _listed(idx, -(ctx.now_s - self.catalog.created_s[idx]) / 3600.0)


class FollowedSource:
    """Newest posts of the authors the user follows."""

    personal = True
    name = "followed"

    def __init__(self, catalog: Catalog, users: UserTable, per_author: int = 3) -> None:
        self.catalog = catalog
        self.users = users
        self.per_author = per_author

    def candidates(self, ctx: UserContext, k: int) -> ItemList:
        authors = self.users.followed(ctx.row)
        if len(authors) == 0:
            return _nothing()
        cat = self.catalog
        parts = []
        for a in authors[:k]:
            if a >= len(cat.authors):
                continue
            posts = cat.by_author[cat.author_start[a]:cat.author_start[a + 1]]
            posts = posts[cat.created_s[posts] <= ctx.now_s][:self.per_author]
            parts.append(posts)
        if not parts:
            return _nothing()
        idx = np.concatenate(parts)
        idx = idx[np.argsort(-cat.created_s[idx], kind="stable")][:k]
        return _listed(idx, -(ctx.now_s - cat.created_s[idx]) / 3600.0)


def first_of_each(values: np.ndarray) -> np.ndarray | None:
    """Positions of the first occurrence of each distinct value, in order (what
    ``np.unique(values, return_index=True)`` gives, sorted), or ``None`` when no value
    repeats: one stable sort, a few times cheaper than ``np.unique`` on a request's few
    hundred ids."""
    order = np.argsort(values, kind="stable")
    s = values[order]
    dup = s[1:] == s[:-1]
    if not dup.any():
        return None
    keep = np.ones(len(values), bool)
    keep[order[1:][dup]] = False  # equal values keep their order: the later ones
    return np.flatnonzero(keep)


@dataclass
class CandidatePool:
    """The merged pool: catalogue indices, the source of each, and its personal score.

    Attributes:
        items: Catalogue indices (unique).
        source: Index into ``sources`` of the source that proposed each.
        sources: Source names.
        rec_score: Personal score of each (the primary scorer's, else the source's rank
            score in [0, 1]).
        reasons: The reason the proposing source gave for each (``None`` where it gave
            none), or ``None`` when no source gave any.
    """

    items: np.ndarray
    source: np.ndarray
    sources: Sequence[str]
    rec_score: np.ndarray
    reasons: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.items)


class CandidateGenerator:
    """Merges sources with quotas, de-duplication, exclusions and a fallback chain.

    Args:
        sources: Sources in priority order.
        config: Quotas and pool size.
        n_items: Catalogue size.
    """

    def __init__(self, sources: Sequence[CandidateSource], config: CandidateConfig,
                 n_items: int) -> None:
        self.sources = list(sources)
        self.names = [s.name for s in self.sources]
        self.config = config
        self.n_items = n_items
        self.scorer = next((s for s in self.sources if hasattr(s, "score")), None)

    def generate(self, ctx: UserContext, min_size: int) -> CandidatePool:
        """The pool for one request (at least ``min_size`` posts when the catalogue allows)."""
        cfg = self.config
        excluded = ctx.excluded
        soft = ctx.served
        extra = len(excluded) + len(soft)
        allowed = [s for s in self.sources if ctx.consent_personalization or not s.personal]
        seen = np.zeros(self.n_items, bool)
        seen[excluded] = True
        seen[soft] = True
        items, srcs, scores, whys = [], [], [], []
        target = max(cfg.pool_size, min_size)
        total = 0

        def take(src_i: int, src: CandidateSource, k: int) -> None:
            nonlocal total
            # room for every post already seen; a source that can skip them cheaply
            # (``candidates_unseen``: a materialised list) is asked for the k unseen ones,
            # so its cost does not grow with the posts the user was already served
            unseen = getattr(src, "candidates_unseen", None)
            lst = (unseen(ctx, k, seen, k + extra + total) if unseen is not None
                   else src.candidates(ctx, k + extra + total))
            idx = lst.index
            if idx is None:
                raise ConfigError(f"candidate source {src.name!r} answered without catalogue "
                                  "indices (ItemList.index)")
            if len(idx) == 0:
                return
            fresh = ~seen[idx]
            idx = idx[fresh]
            why = np.asarray(lst.reasons, dtype=object)[fresh] if lst.reasons else None
            first = first_of_each(idx)  # duplicates inside one source's answer
            if first is not None:
                idx = idx[first]
                why = why[first] if why is not None else None
            idx = idx[:k]
            seen[idx] = True
            items.append(idx)
            whys.append(why[:k] if why is not None else None)
            srcs.append(np.full(len(idx), self.names.index(src.name), np.int16))
            rank = 1.0 - np.arange(len(idx)) / max(len(idx), 1)
            scores.append(rank.astype(np.float32))
            total += len(idx)

        for i, src in enumerate(allowed):
            q = cfg.quotas.get(src.name, cfg.pool_size)
            if q > 0 and total < target:
                take(i, src, min(q, target - total))
        if total < min_size:  # fallback chain: refill without quotas
            for i, src in enumerate(allowed):
                if total >= target:
                    break
                take(i, src, target - total)
        if total < min_size and len(soft):  # the catalogue ran dry: show served posts again
            seen[soft] = False
            seen[excluded] = True
            for i, src in enumerate(allowed):
                if total >= target:
                    break
                take(i, src, target - total)
        if not items:
            return CandidatePool(np.empty(0, np.int64), np.empty(0, np.int16), self.names,
                                 np.empty(0, np.float32))
        pool = np.concatenate(items).astype(np.int64)
        rank_score = np.concatenate(scores)
        if self.scorer is not None and ctx.consent_personalization:
            rec = np.asarray(self.scorer.score(ctx, pool), np.float32)
        else:
            rec = rank_score
        reasons = None
        if any(w is not None for w in whys):
            reasons = np.concatenate([w if w is not None else np.full(len(i), None, object)
                                      for w, i in zip(whys, items, strict=True)])
        return CandidatePool(pool, np.concatenate(srcs), self.names, rec, reasons)
