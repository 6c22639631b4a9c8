"""Ads: campaigns, eligibility, the auction, budget pacing and frequency/spend state.

* :class:`Campaign` — advertiser, creatives, bid (CPM or CPC), daily and total budget,
  schedule, targeting (segments, interest tags) and frequency caps.
* :class:`CampaignBook` — the campaigns as numpy arrays for the hot path.
* :class:`AdState` — per-user frequency and exposure, per-campaign spend; held in memory and
  persisted to the store's own ``ad_impressions`` / ``ad_spend`` tables (restart-safe).
* :func:`run_auction` — rank eligible campaigns by ``eCPM × quality`` (eCPM = bid for CPM,
  bid × pCTR × 1000 for CPC), drop those under the reserve, and charge each winner the
  generalised second price: the least that keeps its rank (the next score over its own
  quality, never below the reserve).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feedwise.errors import ConfigError, DataError
from feedwise.schema import utc
from feedwise.store.privacy import TOMBSTONE_PREFIX

DAY_S = 86400.0
log = logging.getLogger(__name__)


class FrequencyCap(BaseModel):
    """At most ``max_impressions`` of one campaign per user within ``window_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    max_impressions: int = Field(ge=1)
    window_s: float = Field(gt=0)


class Creative(BaseModel):
    """One ad creative (an item of kind ``ad``)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1)
    title: str | None = None
    text: str | None = None
    tags: list[str] = Field(default_factory=list)
    quality: float = Field(1.0, gt=0)


class Campaign(BaseModel):
    """An advertising campaign.

    Attributes:
        campaign_id, advertiser_id, name: Identity.
        creatives: At least one creative.
        bid_model: ``cpm`` (price per 1000 impressions) or ``cpc`` (price per click).
        bid: The maximum price.
        daily_budget, total_budget: Spend limits (``None`` = unlimited).
        start_at, end_at: Flight dates (UTC); ``active_hours``: hours of day (UTC) it runs.
        target_tags: Show only to users interested in one of these tags (empty = anyone).
        target_segments: Show only to users in one of these segments (empty = anyone).
        frequency_caps: Caps per user, e.g. 3 per hour and 10 per day.
        base_ctr: Prior click-through rate of the campaign (used by the default pCTR model).
        status: ``active`` or ``paused``.
    """

    model_config = ConfigDict(extra="forbid")

    campaign_id: str = Field(min_length=1)
    advertiser_id: str = Field(min_length=1)
    name: str = ""
    creatives: list[Creative] = Field(min_length=1)
    bid_model: Literal["cpm", "cpc"] = "cpm"
    bid: float = Field(gt=0)
    daily_budget: float | None = Field(None, gt=0)
    total_budget: float | None = Field(None, gt=0)
    start_at: datetime | None = None
    end_at: datetime | None = None
    active_hours: list[int] | None = None
    target_tags: list[str] = Field(default_factory=list)
    target_segments: list[str] = Field(default_factory=list)
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    base_ctr: float = Field(0.02, gt=0, lt=1)
    status: Literal["active", "paused"] = "active"

    @field_validator("start_at", "end_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return utc(v) if v is not None else None

    @field_validator("frequency_caps", mode="before")
    @classmethod
    def _caps(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = json.loads(v) if v.strip() else []
        out = []
        for c in v or []:
            if isinstance(c, list | tuple):
                c = {"max_impressions": c[0], "window_s": c[1]}
            out.append(c)
        return out

    @model_validator(mode="after")
    def _check(self) -> Campaign:
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ConfigError(f"campaign {self.campaign_id}: end_at must be after start_at")
        for h in self.active_hours or []:
            if not 0 <= h <= 23:
                raise ConfigError(f"campaign {self.campaign_id}: active hour {h} not in 0..23")
        return self

    @property
    def targeted(self) -> bool:
        return bool(self.target_tags or self.target_segments)

    def to_row(self) -> dict[str, Any]:
        """The row of the store's ``campaigns`` table (the full model is kept in ``spec``)."""
        return {"campaign_id": self.campaign_id, "advertiser_id": self.advertiser_id,
                "name": self.name, "bid_model": self.bid_model, "bid": self.bid,
                "daily_budget": self.daily_budget, "total_budget": self.total_budget,
                "start_at": self.start_at, "end_at": self.end_at,
                "target_tags": list(self.target_tags),
                "target_segments": list(self.target_segments),
                "frequency_caps": json.dumps([c.model_dump() for c in self.frequency_caps]),
                "status": self.status, "spec": self.model_dump_json()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Campaign:
        """Rebuild from a ``campaigns`` row (``spec`` JSON when present, else the columns)."""
        spec = row.get("spec")
        if isinstance(spec, str) and spec.strip():
            return cls.model_validate_json(spec)
        d = {k: _clean(row.get(k)) for k in (
            "campaign_id", "advertiser_id", "name", "bid_model", "bid", "daily_budget",
            "total_budget", "start_at", "end_at", "target_tags", "target_segments",
            "frequency_caps", "status")}
        d = {k: v for k, v in d.items() if v is not None}
        d.setdefault("creatives", [{"item_id": f"{d.get('campaign_id')}-creative"}])
        for k in ("target_tags", "target_segments"):
            if k in d:
                d[k] = [str(t) for t in d[k]]
        return cls.model_validate(d)


def _clean(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float) and np.isnan(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.to_pydatetime()
    try:
        if pd.isna(v) is True:
            return None
    except (TypeError, ValueError):
        pass
    return v


def campaigns_from_frame(df: pd.DataFrame) -> list[Campaign]:
    """Campaigns from the store's ``campaigns`` table (or any frame of those columns)."""
    out = []
    for i, row in enumerate(df.to_dict(orient="records")):
        try:
            out.append(Campaign.from_row(row))
        except (ValueError, TypeError) as e:
            raise DataError(f"campaigns row {i + 1} ({row.get('campaign_id')}): {e}") from None
    return out


def load_campaigns(store: Any) -> list[Campaign]:
    """Active and paused campaigns stored in ``store``."""
    return campaigns_from_frame(store.campaigns())


# ---------------------------------------------------------------------------- book
class CampaignBook:
    """Campaigns and creatives as arrays for vectorised eligibility and auctions.

    Args:
        campaigns: The campaigns.
        tag_index: Tag -> column of the interest space shared with users and posts; tags
            not in it are added.
        segment_index: Segment -> column; segments not in it are added.
    """

    def __init__(self, campaigns: Iterable[Campaign], tag_index: dict[str, int] | None = None,
                 segment_index: dict[str, int] | None = None) -> None:
        self.campaigns = list(campaigns)
        ids = [c.campaign_id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            dup = sorted({c for c in ids if ids.count(c) > 1})
            raise ConfigError(f"campaign ids must be unique; {dup} appear more than once: give "
                              "each campaign its own campaign_id")
        self.tag_index = tag_index if tag_index is not None else {}
        self.segment_index = segment_index if segment_index is not None else {}
        for c in self.campaigns:
            for t in c.target_tags + [t for cr in c.creatives for t in cr.tags]:
                self.tag_index.setdefault(t, len(self.tag_index))
            for s in c.target_segments:
                self.segment_index.setdefault(s, len(self.segment_index))
        n = len(self.campaigns)
        self.n = n
        self.ids = np.array(ids, dtype=object)
        self.index = {c: i for i, c in enumerate(ids)}
        adv = sorted({c.advertiser_id for c in self.campaigns})
        self.advertisers = np.array(adv, dtype=object)
        adv_ix = {a: i for i, a in enumerate(adv)}
        self.advertiser = np.array([adv_ix[c.advertiser_id] for c in self.campaigns], np.int64)
        self.is_cpc = np.array([c.bid_model == "cpc" for c in self.campaigns], bool)
        self.bid = np.array([c.bid for c in self.campaigns], np.float64)
        inf = np.inf
        self.daily_budget = np.array([c.daily_budget or inf for c in self.campaigns], np.float64)
        self.total_budget = np.array([c.total_budget or inf for c in self.campaigns], np.float64)
        self.start_s = np.array([c.start_at.timestamp() if c.start_at else -inf
                                 for c in self.campaigns], np.float64)
        self.end_s = np.array([c.end_at.timestamp() if c.end_at else inf
                               for c in self.campaigns], np.float64)
        self.hours = np.ones((n, 24), bool)
        for i, c in enumerate(self.campaigns):
            if c.active_hours:
                self.hours[i] = False
                self.hours[i, c.active_hours] = True
        self.active = np.array([c.status == "active" for c in self.campaigns], bool)
        self.base_ctr = np.array([c.base_ctr for c in self.campaigns], np.float64)
        self.targeted = np.array([c.targeted for c in self.campaigns], bool)
        self.has_tag_target = np.array([bool(c.target_tags) for c in self.campaigns], bool)
        self.has_seg_target = np.array([bool(c.target_segments) for c in self.campaigns], bool)
        self.caps: list[list[FrequencyCap]] = [c.frequency_caps for c in self.campaigns]
        self.max_cap_window = max((f.window_s for c in self.caps for f in c), default=0.0)
        self.has_caps = np.array([bool(c) for c in self.caps], bool)
        # creatives: one row each, grouped by campaign
        cr_campaign, cr_ids, cr_quality, cr_tags = [], [], [], []
        for i, c in enumerate(self.campaigns):
            for cr in c.creatives:
                cr_campaign.append(i)
                cr_ids.append(cr.item_id)
                cr_quality.append(cr.quality)
                cr_tags.append(cr.tags or c.target_tags)
        self.creative_campaign = np.array(cr_campaign, np.int64)
        self.creative_ids = np.array(cr_ids, dtype=object)
        self.creative_quality = np.array(cr_quality, np.float64)
        self.creative_tags = cr_tags
        self.creative_start = np.searchsorted(self.creative_campaign, np.arange(n))
        self.n_creatives = len(cr_ids)
        self._tag_targets_list = [c.target_tags for c in self.campaigns]
        self._seg_targets_list = [c.target_segments for c in self.campaigns]
        self.rebuild_matrices(len(self.tag_index), len(self.segment_index))

    def rebuild_matrices(self, n_tags: int, n_segments: int) -> None:
        """(Re)build the dense campaign x tag / segment matrices for a given space size."""
        self.n_tags, self.n_segments = n_tags, n_segments
        self.target_tag_matrix = np.zeros((self.n, n_tags), np.float32)
        self.target_seg_matrix = np.zeros((self.n, n_segments), np.float32)
        for i in range(self.n):
            for t in self._tag_targets_list[i]:
                self.target_tag_matrix[i, self.tag_index[t]] = 1.0
            for s in self._seg_targets_list[i]:
                self.target_seg_matrix[i, self.segment_index[s]] = 1.0
        self.creative_tag_matrix = np.zeros((self.n_creatives, n_tags), np.float32)
        for j, tags in enumerate(self.creative_tags):
            for t in tags:
                self.creative_tag_matrix[j, self.tag_index[t]] = 1.0
        norms = np.linalg.norm(self.creative_tag_matrix, axis=1, keepdims=True)
        self.creative_tag_matrix /= np.maximum(norms, 1e-9)

    def campaign(self, i: int) -> Campaign:
        return self.campaigns[i]


# ---------------------------------------------------------------------------- state
AD_TABLES = (
    "CREATE TABLE IF NOT EXISTS ad_impressions (user_id VARCHAR, campaign_id VARCHAR, "
    "item_id VARCHAR, ts DOUBLE, price DOUBLE, request_id VARCHAR)",
    "CREATE TABLE IF NOT EXISTS ad_spend (campaign_id VARCHAR PRIMARY KEY, day BIGINT, "
    "spend_today DOUBLE, spend_total DOUBLE, updated_at DOUBLE)",
)


@dataclass
class AdImpression:
    """One served ad, as recorded in the state."""

    user_id: str
    campaign: int
    item_id: str
    ts: float
    price: float
    request_id: str | None = None


class AdState:
    """Frequency, exposure and spend state, held in memory and persisted to the store.

    Per user: the times of recent ad impressions per campaign (for frequency caps) and
    overall (for the user's recent ad exposure). Per campaign: spend today (UTC day) and in
    total. :meth:`record` updates memory at once; :meth:`flush` writes the pending rows to
    the store's ``ad_impressions`` / ``ad_spend`` tables (created here if missing), and
    :meth:`load` rebuilds the state after a restart.

    Args:
        book: The campaigns.
        store: An :class:`~feedwise.store.EventStore` or ``None`` (memory only).
        exposure_window_s: Window of the recent-exposure count.
        flush_every: Flush automatically after this many recorded impressions (0 = only on
            explicit :meth:`flush`).
    """

    def __init__(self, book: CampaignBook, store: Any = None, *,
                 exposure_window_s: float = 3600.0, flush_every: int = 0) -> None:
        self.book = book
        self.store = store
        self.exposure_window_s = exposure_window_s
        self.flush_every = flush_every
        self.keep_s = max(book.max_cap_window, exposure_window_s)
        self.freq: dict[str, dict[int, deque[float]]] = defaultdict(dict)
        self.exposure: dict[str, deque[float]] = defaultdict(deque)
        self.spend_today = np.zeros(book.n, np.float64)
        self.spend_total = np.zeros(book.n, np.float64)
        self.day = -1
        self._pending: list[AdImpression] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        if store is not None:
            try:
                self.load(store)
            except duckdb.Error as e:  # e.g. a read-only store: keep the state in memory
                log.warning("ad state not persisted (%s); keeping it in memory", e)
                self.store = None

    def copy(self) -> AdState:
        """An independent copy in memory (same campaigns, no store)."""
        out = AdState(self.book, None, exposure_window_s=self.exposure_window_s)
        out.freq = defaultdict(dict, {u: {c: deque(t) for c, t in per.items()}
                                      for u, per in self.freq.items()})
        out.exposure = defaultdict(deque, {u: deque(t) for u, t in self.exposure.items()})
        out.spend_today = self.spend_today.copy()
        out.spend_total = self.spend_total.copy()
        out.day = self.day
        return out

    # -------------------------------------------------------------- queries
    def roll_day(self, now_s: float) -> None:
        """Start a new UTC day (spend today back to 0) when ``now_s`` is past the current one;
        a late request stamped before it never rolls back (that would forget today's spend
        and let the daily budget be spent twice)."""
        day = int(now_s // DAY_S)
        if day > self.day:
            if self.day >= 0:
                self.spend_today[:] = 0.0
            self.day = day

    def recent_exposure(self, user_id: str, now_s: float) -> int:
        """Ads the user saw in the exposure window before ``now_s``."""
        dq = self.exposure.get(user_id)
        if not dq:
            return 0
        lo = now_s - self.exposure_window_s
        while dq and dq[0] <= lo - self.keep_s:
            dq.popleft()
        return sum(1 for t in dq if lo < t <= now_s)

    def capped(self, user_id: str, now_s: float) -> np.ndarray:
        """Boolean per campaign: one more impression now would break a frequency cap."""
        out = np.zeros(self.book.n, bool)
        per = self.freq.get(user_id)
        if not per:
            return out
        for c, times in per.items():
            caps = self.book.caps[c]
            if not caps:
                continue
            for cap in caps:
                lo = now_s - cap.window_s
                if sum(1 for t in times if lo < t <= now_s) >= cap.max_impressions:
                    out[c] = True
                    break
        return out

    def count(self, user_id: str, campaign: int, window_s: float, now_s: float) -> int:
        times = self.freq.get(user_id, {}).get(campaign, ())
        return sum(1 for t in times if now_s - window_s < t <= now_s)

    def remaining(self) -> tuple[np.ndarray, np.ndarray]:
        """Budget left today and in total per campaign."""
        return (self.book.daily_budget - self.spend_today,
                self.book.total_budget - self.spend_total)

    # -------------------------------------------------------------- updates
    def record(self, imp: AdImpression, charge: float = 0.0) -> None:
        """Record a served ad impression and charge ``charge`` (never beyond the budget)."""
        self.roll_day(imp.ts)
        per = self.freq[imp.user_id]
        dq = per.get(imp.campaign)
        if dq is None:
            dq = per[imp.campaign] = deque()
        dq.append(imp.ts)
        lo = imp.ts - self.keep_s
        while dq and dq[0] <= lo:
            dq.popleft()
        self.exposure[imp.user_id].append(imp.ts)
        self.charge(imp.campaign, charge)
        imp.price = charge
        if self.store is not None:
            with self._lock:  # flush() may run in another thread (the service's writer)
                self._pending.append(imp)
                due = self.flush_every and len(self._pending) >= self.flush_every
            if due:
                self.flush()

    def charge(self, campaign: int, amount: float) -> float:
        """Charge up to ``amount`` to a campaign, capped by what is left; returns the charge."""
        left_day, left_total = self.remaining()
        amt = float(max(0.0, min(amount, left_day[campaign], left_total[campaign])))
        self.spend_today[campaign] += amt
        self.spend_total[campaign] += amt
        return amt

    def record_click(self, campaign_id: str, price: float) -> float:
        """Charge a CPC click (capped by the remaining budget); returns what was charged."""
        return self.charge(self.book.index[campaign_id], price)

    # -------------------------------------------------------------- persistence
    @staticmethod
    def _ensure_tables(store: Any) -> None:
        # a cursor of its own: the store's main connection may be busy in another thread
        cur = store.cursor()
        try:
            for ddl in AD_TABLES:
                cur.execute(ddl)
        finally:
            cur.close()

    def flush(self) -> int:
        """Write pending impressions and current spend to the store; returns rows written."""
        if self.store is None:
            return 0
        # requests record ads under self._lock, so it only swaps out the pending rows and
        # snapshots spend; frames and transaction are built outside it (flushes themselves
        # are serialised, so an older spend snapshot never lands after a newer one)
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, []
                spend_today, spend_total = self.spend_today.copy(), self.spend_total.copy()
                day = self.day
            try:
                return self._write(pending, day, spend_today, spend_total)
            except BaseException:
                with self._lock:
                    self._pending = pending + self._pending
                raise

    def _write(self, pending: list[AdImpression], day: int, spend_today: np.ndarray,
               spend_total: np.ndarray) -> int:
        self._ensure_tables(self.store)
        pending = self._drop_erased(pending)
        # Arrow, not pandas: DuckDB scans Arrow without the GIL, while object columns of a
        # DataFrame are read under it (stalling every request for the whole insert)
        ids = self.book.ids
        rows = pa.table({"user_id": pa.array([p.user_id for p in pending], pa.string()),
                         "campaign_id": pa.array([str(ids[p.campaign]) for p in pending],
                                                 pa.string()),
                         "item_id": pa.array([p.item_id for p in pending], pa.string()),
                         "ts": pa.array([p.ts for p in pending], pa.float64()),
                         "price": pa.array([p.price for p in pending], pa.float64()),
                         "request_id": pa.array([p.request_id for p in pending], pa.string())})
        spend = pa.table({"campaign_id": pa.array(ids.astype(str).tolist(), pa.string()),
                          "day": np.full(self.book.n, day, np.int64),
                          "spend_today": np.asarray(spend_today, np.float64),
                          "spend_total": np.asarray(spend_total, np.float64),
                          "updated_at": np.full(self.book.n, datetime.now(UTC).timestamp())})
        con = self.store.cursor()
        with self.store._lock:
            con.execute("BEGIN TRANSACTION")
            try:
                if len(rows):
                    con.register("_fw_adimp", rows)
                    # erased users stay erased (see EventStore.erase_user)
                    con.execute(f"""INSERT INTO ad_impressions SELECT * FROM _fw_adimp a
                        WHERE NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.digest =
                            sha256('{TOMBSTONE_PREFIX}' || a.user_id))""")
                    con.unregister("_fw_adimp")
                con.register("_fw_adspend", spend)
                con.execute("INSERT OR REPLACE INTO ad_spend SELECT * FROM _fw_adspend")
                con.unregister("_fw_adspend")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.close()
        return len(rows)

    def _drop_erased(self, pending: list[AdImpression]) -> list[AdImpression]:
        """Impressions of users erased from the store (tombstoned) are never persisted."""
        if not pending:
            return pending
        try:
            from feedwise.store.privacy import tombstone_digest
        except ImportError:  # a store without erasure support
            return pending
        try:  # the usual case, nobody erased: no hashing of every user
            if not self.store.scalar("SELECT count(*) FROM tombstones"):
                return pending
        except duckdb.Error:  # no tombstones table
            return pending
        users = {p.user_id for p in pending}
        digests = {tombstone_digest(u): u for u in users}
        marks = ", ".join("?" * len(digests))
        try:
            gone = self.store.query(f"SELECT digest FROM tombstones WHERE digest IN ({marks})",
                                    list(digests))["digest"]
        except duckdb.Error:  # no tombstones table
            return pending
        erased = {digests[d] for d in gone}
        return [p for p in pending if p.user_id not in erased] if erased else pending

    def load(self, store: Any) -> None:
        """Rebuild frequency, exposure and spend from the store (after a restart)."""
        self._ensure_tables(store)
        spend = store.query("SELECT * FROM ad_spend")
        if len(spend):
            day = int(spend["day"].max())
            self.day = day
            for row in spend.itertuples(index=False):
                c = self.book.index.get(str(row.campaign_id))
                if c is None:
                    continue
                self.spend_total[c] = float(row.spend_total)
                self.spend_today[c] = float(row.spend_today) if int(row.day) == day else 0.0
        imps = store.query("SELECT user_id, campaign_id, ts FROM ad_impressions "
                           "WHERE ts > (SELECT coalesce(max(ts), 0) FROM ad_impressions) - ? "
                           "ORDER BY ts", [self.keep_s])
        for u, cid, ts in zip(imps["user_id"], imps["campaign_id"], imps["ts"], strict=True):
            c = self.book.index.get(str(cid))
            if c is not None:
                self.freq[str(u)].setdefault(c, deque()).append(float(ts))
            self.exposure[str(u)].append(float(ts))


# ---------------------------------------------------------------------------- auction
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


def pacing_pass_probability(book: CampaignBook, state: AdState, now_s: float,
                            band: float, min_pass: float) -> np.ndarray:
    """Throttle pass probability per campaign from spend-to-date vs. an even daily schedule.

    A campaign that has spent no more than ``daily_budget × fraction of the day elapsed``
    always passes; beyond that, the probability falls linearly to ``min_pass`` over
    ``band × daily_budget`` of over-delivery.
    """
    frac = (now_s % DAY_S) / DAY_S
    daily = book.daily_budget
    finite = np.isfinite(daily)
    ahead = np.where(finite, state.spend_today - daily * frac, -1.0)
    width = np.where(finite, band * daily, 1.0)
    p = 1.0 - (1.0 - min_pass) * np.clip(ahead / width, 0.0, 1.0)
    return np.where(finite, p, 1.0)
