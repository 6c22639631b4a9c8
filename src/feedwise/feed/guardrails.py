"""Guardrails: the hard rules every composed feed obeys, each one checkable after the fact.

A :class:`Guardrail` inspects a composed :class:`~feedwise.feed.types.Feed` against a
:class:`GuardrailState` (the config, the campaigns, the frequency/spend state after the feed
was recorded, the user's consent) and returns the :class:`Violation` s it finds. The engine
builds feeds that satisfy them by construction; the property tests prove it by calling
:func:`check_all` on every feed they compose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

from feedwise.feed.adstate import AdState
from feedwise.feed.campaigns import CampaignBook
from feedwise.feed.config import FeedConfig
from feedwise.feed.types import Feed


@dataclass(frozen=True)
class Violation:
    """One broken rule: the guardrail's name, the slot (or -1 for the whole feed), a message."""

    rule: str
    slot: int
    message: str


@dataclass
class GuardrailState:
    """What the guardrails need besides the feed.

    Attributes:
        config: The engine's config.
        book: The campaigns.
        ads: Frequency and spend state *after* the feed was recorded.
        consent_ads, consent_personalization: The user's consent.
        personal_sources: Names of sources that use personal data.
    """

    config: FeedConfig
    book: CampaignBook
    ads: AdState
    consent_ads: bool = True
    consent_personalization: bool = True
    personal_sources: frozenset[str] = field(default_factory=frozenset)


class Guardrail:
    """Base class: one rule."""

    name = "guardrail"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        raise NotImplementedError

    def _v(self, slot: int, msg: str) -> Violation:
        return Violation(self.name, slot, msg)


class AdLoadGuardrail(Guardrail):
    """At most ``floor(max_ad_load × L)`` ads in a composed feed of ``L`` slots (what the
    user sees; ``L <= n``, so also at most ``floor(max_ad_load × n)``): a feed cut short
    because the posts ran out may not make up the missing slots with ads."""

    name = "ad_load"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        shown = min(len(feed), feed.request.n)
        cap = state.config.max_ads(shown)
        ads = len(feed.ad_slots)
        return ([self._v(-1, f"{ads} ads in {shown} slots > {cap} allowed")] if ads > cap
                else [])


class FirstAdSlotGuardrail(Guardrail):
    """No ad before ``first_ad_slot``."""

    name = "first_ad_slot"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        first = state.config.first_ad_slot
        return [self._v(i, f"ad at slot {i} < first_ad_slot {first}")
                for i in feed.ad_slots if i < first]


class AdGapGuardrail(Guardrail):
    """At least ``min_ad_gap`` organic slots between two ads."""

    name = "min_ad_gap"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        gap = state.config.min_ad_gap
        ads = feed.ad_slots
        return [self._v(b, f"ads at slots {a} and {b}: gap {b - a - 1} < {gap}")
                for a, b in zip(ads, ads[1:], strict=False) if b - a - 1 < gap]


class AdvertiserGuardrail(Guardrail):
    """No two ads of one advertiser (and never one campaign twice) in a feed."""

    name = "one_ad_per_advertiser"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        out, seen_adv, seen_c = [], set(), set()
        for i in feed.ad_slots:
            cid = feed.slots[i].campaign_id
            if cid in seen_c:
                out.append(self._v(i, f"campaign {cid} twice"))
            seen_c.add(cid)
            c = state.book.index.get(cid)
            if c is None:
                out.append(self._v(i, f"unknown campaign {cid}"))
                continue
            adv = state.book.advertiser[c]
            if state.config.one_ad_per_advertiser and adv in seen_adv:
                out.append(self._v(i, f"advertiser {state.book.advertisers[adv]} twice"))
            seen_adv.add(adv)
        return out


class QuietHoursGuardrail(Guardrail):
    """No ads during the configured quiet hours."""

    name = "quiet_hours"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        hour = feed.request.now.astimezone(UTC).hour
        if feed.ad_slots and state.config.is_quiet(hour):
            return [self._v(i, f"ad during quiet hour {hour}") for i in feed.ad_slots]
        return []


class FrequencyCapGuardrail(Guardrail):
    """Every campaign cap (max impressions per user per sliding window) holds, counting the
    feed's own impressions (check after the feed is recorded)."""

    name = "frequency_cap"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        out = []
        now_s = feed.request.now.timestamp()
        for i in feed.ad_slots:
            c = state.book.index.get(feed.slots[i].campaign_id)
            if c is None:
                continue
            for cap in state.book.caps[c]:
                k = state.ads.count(feed.request.user_id, c, cap.window_s, now_s)
                if k > cap.max_impressions:
                    out.append(self._v(i, f"campaign {feed.slots[i].campaign_id}: {k} "
                                          f"impressions in {cap.window_s:g}s > "
                                          f"{cap.max_impressions}"))
        return out


class BudgetGuardrail(Guardrail):
    """No campaign has spent more than its daily or total budget."""

    name = "budget"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        b, a = state.book, state.ads
        out = []
        for c in range(b.n):
            if a.spend_today[c] > b.daily_budget[c] + 1e-9:
                out.append(self._v(-1, f"campaign {b.ids[c]} spent {a.spend_today[c]:.6f} "
                                       f"today > daily budget {b.daily_budget[c]}"))
            if a.spend_total[c] > b.total_budget[c] + 1e-9:
                out.append(self._v(-1, f"campaign {b.ids[c]} spent {a.spend_total[c]:.6f} "
                                       f"> total budget {b.total_budget[c]}"))
        return out


class ConsentGuardrail(Guardrail):
    """Without ads consent: no ads, or only non-targeted ones (``ads.no_consent``); without
    personalisation consent: no slot from a personal source."""

    name = "consent"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        out = []
        if not state.consent_ads:
            for i in feed.ad_slots:
                c = state.book.index.get(feed.slots[i].campaign_id)
                if state.config.ads.no_consent == "none":
                    out.append(self._v(i, "ad shown without ads consent"))
                elif c is not None and state.book.targeted[c]:
                    out.append(self._v(i, "targeted ad shown without ads consent"))
        if not state.consent_personalization:
            for i, s in enumerate(feed.slots):
                if s.kind == "organic" and s.source in state.personal_sources:
                    out.append(self._v(i, f"personal source {s.source!r} without "
                                          "personalisation consent"))
        return out


class ScheduleGuardrail(Guardrail):
    """Ads only from active campaigns in flight and inside their active hours."""

    name = "schedule"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        b = state.book
        t = feed.request.now.timestamp()
        hour = feed.request.now.astimezone(UTC).hour
        out = []
        for i in feed.ad_slots:
            c = b.index.get(feed.slots[i].campaign_id)
            if c is None:
                continue
            if not (b.active[c] and b.start_s[c] <= t < b.end_s[c] and b.hours[c, hour]):
                out.append(self._v(i, f"campaign {b.ids[c]} not scheduled at "
                                      f"{feed.request.now.isoformat()}"))
        return out


class AuthorDiversityGuardrail(Guardrail):
    """At most ``rerank.max_per_author`` organic posts of one author (when set)."""

    name = "max_per_author"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        cap = state.config.rerank.max_per_author
        if cap is None:
            return []
        counts: dict[str | None, int] = {}
        out = []
        for i, s in enumerate(feed.slots):
            if s.kind != "organic":
                continue
            counts[s.author_id] = counts.get(s.author_id, 0) + 1
            if counts[s.author_id] > cap:
                out.append(self._v(i, f"author {s.author_id}: {counts[s.author_id]} posts "
                                      f"> {cap}"))
        return out


class DistinctItemsGuardrail(Guardrail):
    """No item appears twice in one feed."""

    name = "distinct_items"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        seen: set[str] = set()
        out = []
        for i, s in enumerate(feed.slots):
            if s.item_id in seen:
                out.append(self._v(i, f"item {s.item_id} twice"))
            seen.add(s.item_id)
        return out


class PropensityGuardrail(Guardrail):
    """Every slot carries a propensity in (0, 1]."""

    name = "propensity"

    def check(self, feed: Feed, state: GuardrailState) -> list[Violation]:
        return [self._v(i, f"propensity {s.propensity}") for i, s in enumerate(feed.slots)
                if not 0.0 < s.propensity <= 1.0]


def default_guardrails() -> list[Guardrail]:
    """Every guardrail above."""
    return [AdLoadGuardrail(), FirstAdSlotGuardrail(), AdGapGuardrail(), AdvertiserGuardrail(),
            QuietHoursGuardrail(), FrequencyCapGuardrail(), BudgetGuardrail(),
            ConsentGuardrail(), ScheduleGuardrail(), AuthorDiversityGuardrail(),
            DistinctItemsGuardrail(), PropensityGuardrail()]


def check_all(feed: Feed, state: GuardrailState,
              guardrails: Sequence[Guardrail] | None = None) -> list[Violation]:
    """All violations of ``feed`` under ``guardrails`` (default: :func:`default_guardrails`)."""
    out: list[Violation] = []
    for g in guardrails if guardrails is not None else default_guardrails():
        out.extend(g.check(feed, state))
    return out


