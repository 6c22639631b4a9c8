"""The ad auction and budget pacing.

:func:`run_auction` ranks eligible campaigns by ``eCPM × quality`` (eCPM = bid for CPM,
bid × pCTR × 1000 for CPC), drops those under the reserve, and charges each winner the
generalised second price: the least that keeps its rank (the next score over its own
quality, never below the reserve). :func:`pacing_pass_probability` throttles campaigns
that spend ahead of their daily schedule: even through the day, or, with dayparting, in
proportion to their audience's activity by hour (:func:`pace_fraction`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feedwise.feed.adstate import DAY_S, AdState
from feedwise.feed.campaigns import CampaignBook


@dataclass(frozen=True)
class AuctionResult:
    """Winners of an auction in rank order.

    Attributes:
        campaigns: Campaign index of each winner, best first.
        creatives: Creative index (into the book) of each winner.
        ecpm: Each winner's effective CPM bid.
        score: Rank score (``ecpm × quality``).
        price_ecpm: Second-price charge as an effective CPM.
        revenue: Expected revenue of one impression (``price_ecpm / 1000``).
        charge: What is charged: per impression for CPM, per click for CPC.
        pctr: Predicted CTR of each winner.
    """

    campaigns: np.ndarray
    creatives: np.ndarray
    ecpm: np.ndarray
    score: np.ndarray
    price_ecpm: np.ndarray
    revenue: np.ndarray
    charge: np.ndarray
    pctr: np.ndarray

    def __len__(self) -> int:
        return len(self.campaigns)


def run_auction(book: CampaignBook, campaigns: np.ndarray, creatives: np.ndarray,
                pctr: np.ndarray, quality: np.ndarray, reserve_ecpm: float) -> AuctionResult:
    """Rank eligible campaigns and price them by the generalised second price.

    Args:
        book: The campaigns.
        campaigns: Eligible campaign indices.
        creatives: The creative chosen for each.
        pctr: Predicted CTR of each creative for this user.
        quality: Quality factor of each (creative quality).
        reserve_ecpm: The reserve price.
    """
    ecpm = np.where(book.is_cpc[campaigns], book.bid[campaigns] * pctr * 1000.0,
                    book.bid[campaigns])
    keep = ecpm >= reserve_ecpm
    campaigns, creatives, pctr, quality, ecpm = (a[keep] for a in (campaigns, creatives, pctr,
                                                                   quality, ecpm))
    score = ecpm * quality
    order = np.lexsort((campaigns, -score))  # ties broken by campaign index: deterministic
    campaigns, creatives, pctr, quality, ecpm, score = (
        a[order] for a in (campaigns, creatives, pctr, quality, ecpm, score))
    nxt = np.append(score[1:], 0.0)
    price = np.minimum(np.maximum(nxt / np.maximum(quality, 1e-12), reserve_ecpm), ecpm)
    revenue = price / 1000.0
    charge = np.where(book.is_cpc[campaigns], price / (1000.0 * np.maximum(pctr, 1e-12)),
                      revenue)
    return AuctionResult(campaigns, creatives, ecpm, score, price, revenue, charge, pctr)


def pace_fraction(book: CampaignBook, now_s: float) -> np.ndarray:
    """Per campaign, the share of its daily budget its schedule has spent by ``now_s``:
    the cumulative pacing curve (``book.pace_curve``, per UTC hour; flat by default, i.e.
    the fraction of the day elapsed), interpolated within the hour."""
    sec = now_s % DAY_S
    h = int(sec // 3600.0)
    within = (sec - 3600.0 * h) / 3600.0
    return book.pace_cum[:, h] + book.pace_curve[:, h] * within


def pacing_pass_probability(book: CampaignBook, state: AdState, now_s: float,
                            band: float, min_pass: float) -> np.ndarray:
    """Throttle pass probability per campaign from spend-to-date vs. its daily schedule.

    A campaign that has spent no more than ``daily_budget × pace_fraction`` (the share of
    the day elapsed, or with dayparting the share of its audience's daily activity) always
    passes; beyond that, the probability falls linearly to ``min_pass`` over
    ``band × daily_budget`` of over-delivery.
    """
    frac = pace_fraction(book, now_s)
    daily = book.daily_budget
    finite = np.isfinite(daily)
    ahead = np.where(finite, state.spend_today - daily * frac, -1.0)
    width = np.where(finite, band * daily, 1.0)
    p = 1.0 - (1.0 - min_pass) * np.clip(ahead / width, 0.0, 1.0)
    return np.where(finite, p, 1.0)
