"""Re-ranking: author diversity, topic diversity (MMR), freshness and negative-feedback fatigue.

The engagement values of the pool are turned into a positive utility ``u`` (shifted up when
some are negative), boosted for freshness and damped by fatigue; then posts are chosen one
slot at a time by

    score = u × author_decay ** (posts of this author already chosen)
            − mmr_lambda × max(u) × max topic similarity to the posts already chosen

with the :class:`~feedwise.feed.exploration.Explorer` making (and logging the probability
of) each choice. Fatigue: an author or topic the user hid or reported is weighted
``fatigue_floor`` for ``fatigue_window_hours``, then ramps linearly back to 1 over
``fatigue_ramp_hours``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from feedwise.feed.catalog import Catalog
from feedwise.feed.config import RerankConfig
from feedwise.feed.exploration import Explorer


def nan_to_lowest(values: np.ndarray) -> np.ndarray:
    """``values`` with NaN (a predictor that could not score a post) replaced by the lowest
    known value, so that post ranks with the worst instead of scrambling the whole order."""
    values = np.asarray(values, np.float64)
    bad = np.isnan(values)
    if not bad.any():
        return values
    known = values[~bad]
    return np.where(bad, known.min() if len(known) else 0.0, values)


class FatigueState:
    """Authors and topics each user hid or reported, with the time of the latest one."""

    def __init__(self) -> None:
        self.authors: dict[str, dict[int, float]] = defaultdict(dict)
        self.topics: dict[str, dict[int, float]] = defaultdict(dict)

    def record(self, user_id: str, author: int, topics: np.ndarray, ts: float) -> None:
        if author >= 0:
            a = self.authors[user_id]
            a[author] = max(a.get(author, ts), ts)
        t = self.topics[user_id]
        for k in np.asarray(topics).tolist():
            t[int(k)] = max(t.get(int(k), ts), ts)

    def forget_user(self, user_id: str) -> bool:
        """Drop the user's hidden authors and topics; ``True`` if there were any."""
        a = self.authors.pop(user_id, None) is not None
        return (self.topics.pop(user_id, None) is not None) or a

    @staticmethod
    def weight(age_s: np.ndarray, cfg: RerankConfig) -> np.ndarray:
        """Fatigue weight as a function of the time since the negative feedback."""
        window = cfg.fatigue_window_hours * 3600.0
        ramp = cfg.fatigue_ramp_hours * 3600.0
        frac = np.clip((age_s - window) / ramp, 0.0, 1.0) if ramp > 0 else (
            (age_s >= window).astype(np.float64))
        w = cfg.fatigue_floor + (1.0 - cfg.fatigue_floor) * frac
        return np.where(age_s < 0, 1.0, w)

    def factors(self, user_id: str, authors: np.ndarray, topics: np.ndarray, now_s: float,
                cfg: RerankConfig) -> np.ndarray | None:
        """Multiplicative fatigue weight per post (``None`` when the user hid nothing)."""
        out = None
        for table, keys in ((self.authors.get(user_id), authors),
                            (self.topics.get(user_id), topics)):
            if not table:
                continue
            codes = np.fromiter(table.keys(), np.int64, len(table))
            times = np.fromiter(table.values(), np.float64, len(table))
            w = self.weight(now_s - times, cfg)
            hit = keys[:, None] == codes[None, :]
            f = np.where(hit, w[None, :], 1.0).min(axis=1)
            out = f if out is None else out * f
        return out


@dataclass
class RerankResult:
    """Chosen pool positions in slot order, their re-ranked scores and propensities."""

    order: np.ndarray
    scores: np.ndarray
    propensities: np.ndarray


class Reranker:
    """Greedy slot-by-slot re-ranking with exploration.

    Args:
        config: Re-ranking weights.
        catalog: The posts.
        shortlist: Posts considered (the best by utility), as a multiple of the slots.
    """

    def __init__(self, config: RerankConfig, catalog: Catalog, shortlist: int = 4) -> None:
        self.config = config
        self.catalog = catalog
        self.shortlist = shortlist

    def utility(self, items: np.ndarray, values: np.ndarray, now_s: float,
                fatigue: np.ndarray | None) -> np.ndarray:
        """Positive utility per post: shifted value, freshness boost, fatigue."""
        cfg = self.config
        values = nan_to_lowest(values)
        # utilities must be positive for the multiplicative terms: shift only when needed
        u = values - min(float(values.min()), 0.0) + 1e-3 if len(values) else values
        if cfg.freshness_weight:
            age_h = np.maximum(now_s - self.catalog.created_s[items], 0.0) / 3600.0
            u = u * (1.0 + cfg.freshness_weight
                     * np.exp2(-age_h / cfg.freshness_half_life_hours))
        if fatigue is not None:
            u = u * fatigue
        return u

    def _shortlist(self, items: np.ndarray, u: np.ndarray, n: int, top_k: int
                   ) -> np.ndarray:
        """Pool positions considered, best utility first: the top ``shortlist × n`` (at
        least ``n + top_k`` and 40), extended under ``max_per_author`` until it holds
        ``n + top_k`` posts the cap allows (or all there are), so one prolific author cannot
        crowd the others out of the shortlist and shorten the feed."""
        m = min(len(u), max(self.shortlist * n, n + top_k, 40))
        if m == 0:
            return np.empty(0, np.int64)
        if m == len(u):
            return np.argsort(-u, kind="stable")
        cap = self.config.max_per_author
        if cap is not None:
            order = np.argsort(-u, kind="stable")
            authors = self.catalog.author[items[order]]
            by_author = np.argsort(authors, kind="stable")
            first = np.searchsorted(authors[by_author], authors[by_author])
            nth = np.empty(len(order), np.int64)  # 0 for an author's best post, 1 next, ...
            nth[by_author] = np.arange(len(order)) - first
            room = np.cumsum(nth < cap)
            need = min(n + top_k, int(room[-1]))
            if room[m - 1] < need:
                return order[:int(np.searchsorted(room, need)) + 1]
        short = np.argpartition(-u, m - 1)[:m]
        return short[np.argsort(-u[short], kind="stable")]

    def rank(self, items: np.ndarray, values: np.ndarray, n: int, now_s: float,
             explorer: Explorer, rng: np.random.Generator,
             fatigue: np.ndarray | None = None) -> RerankResult:
        """Choose up to ``n`` posts of ``items`` in slot order."""
        cfg = self.config
        u = self.utility(items, values, now_s, fatigue)
        short = self._shortlist(items, u, n, explorer.config.top_k)
        m = len(short)
        if m == 0:
            e = np.empty(0, np.int64)
            return RerankResult(e, np.empty(0), np.empty(0))
        su = u[short]
        sitems = items[short]
        author = self.catalog.author[sitems]  # codes: only equality and counts matter
        author = author - author.min()
        counts = np.zeros(author.max() + 1)
        tags = self.catalog.tag_rows(sitems) if cfg.mmr_lambda else None
        umax = float(su.max()) if len(su) else 0.0
        # the MMR penalty: mmr_lambda × max(u) × the largest similarity to a chosen post
        # (scaled once: a non-negative factor commutes with the maximum, exactly)
        msim = ((cfg.mmr_lambda * umax) * np.asarray(tags @ tags.T, np.float64)
                if tags is not None else None)
        pen_mmr = np.zeros(m)
        n_avail = m
        k = min(n, m)
        order = np.empty(k, np.int64)
        scores = np.empty(k)
        props = np.empty(k)
        decay = cfg.author_decay
        pen = np.ones(m)  # decay ** (posts already chosen from the post's author)
        # row j: decay for the posts of post j's author, 1 elsewhere (x * 1.0 is x)
        decay_by = (np.where(author[:, None] == author[None, :], decay, 1.0) if decay < 1
                    else None)
        gone = np.zeros(m)  # -inf where chosen or capped, 0 where still available
        sc = np.empty(m)
        greedy = explorer.config.method == "none"
        for s in range(k):
            if n_avail == 0:
                k = s
                break
            np.multiply(su, pen, out=sc)
            if msim is not None:
                sc -= pen_mmr
            sc += gone
            if greedy:
                j, p = int(sc.argmax()), 1.0
            else:
                j, p = explorer.choose(sc, rng)
            order[s] = short[j]
            scores[s] = sc[j]
            props[s] = p
            gone[j] = -np.inf
            n_avail -= 1
            a = author[j]
            counts[a] += 1
            if decay_by is not None:
                pen *= decay_by[j]
            if cfg.max_per_author is not None and counts[a] >= cfg.max_per_author:
                same = author == a
                n_avail -= int((same & (gone == 0)).sum())
                gone[same] = -np.inf
            if msim is not None:
                np.maximum(pen_mmr, msim[j], out=pen_mmr)
        return RerankResult(order[:k], scores[:k], props[:k])
