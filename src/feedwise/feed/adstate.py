"""Ad state: per-user frequency and exposure, per-campaign spend.

:class:`AdState` is held in memory and persisted to the store's ``ad_impressions`` /
``ad_spend`` tables (restart-safe).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import duckdb
import numpy as np
import pyarrow as pa

from feedwise.feed.campaigns import CampaignBook
from feedwise.store import EventStore

DAY_S = 86400.0
log = logging.getLogger(__name__)
_TIME = struct.Struct("d")


def times_of(values: Iterable[float] = ()) -> bytes:
    """Impression times as the state keeps them: packed doubles, oldest first.

    Bytes hold no references, so the garbage collector never walks them, nor the per-user
    dicts that hold only them. Deques (one per user and campaign, and one per user) and
    their dicts were about half of what a middle-generation collection walked while a
    process served feeds: 22-27 ms of CPU that stalled every request in flight
    (docs/serving.md, session 23)."""
    v = list(values)
    return struct.pack(f"{len(v)}d", *v)


def times(packed: bytes) -> list[float]:
    """The times :func:`times_of` packed."""
    return memoryview(packed).cast("d").tolist()


def _after(packed: bytes, lo: float) -> bytes:
    """``packed`` without its times at or before ``lo``."""
    view = memoryview(packed).cast("d")
    k = 0
    while k < len(view) and view[k] <= lo:
        k += 1
    return packed[k * _TIME.size:] if k else packed


def _within(packed: bytes, lo: float, hi: float) -> int:
    """How many of the times are in ``(lo, hi]``."""
    return sum(1 for t in memoryview(packed).cast("d") if lo < t <= hi)


class AdListener(Protocol):
    """Told by :class:`AdState` of what it records and forgets."""

    def recorded(self, imp: AdImpression) -> None: ...

    def forgotten(self, user_id: str) -> None: ...


@dataclass
class AdImpression:
    """One served ad, as recorded in the state."""

    user_id: str
    campaign: int
    item_id: str
    ts: float
    price: float
    request_id: str | None = None
    origin: str = ""  # the process that served it ("" = this one; see feed/adshare.py)


class AdState:
    """Frequency, exposure and spend state, held in memory and persisted to the store.

    Per user: the times of recent ad impressions per campaign (for frequency caps) and
    overall (for the user's recent ad exposure). Per campaign: spend today (UTC day) and in
    total. :meth:`record` updates memory at once; :meth:`flush` writes the pending rows to
    the store (:meth:`EventStore.save_ad_state`), and :meth:`load` rebuilds the state after
    a restart. A read-only store leaves the state in memory.

    Args:
        book: The campaigns.
        store: The store, or ``None`` (memory only).
        exposure_window_s: Window of the recent-exposure count.
        flush_every: Flush automatically after this many recorded impressions (0 = only on
            explicit :meth:`flush`). The ``flush_every`` attribute may be changed at any
            time, e.g. to 0 where another thread flushes.
    """

    def __init__(self, book: CampaignBook, store: EventStore | None = None, *,
                 exposure_window_s: float = 3600.0, flush_every: int = 0) -> None:
        self.book = book
        self.store = store
        self.exposure_window_s = exposure_window_s
        self.flush_every = flush_every
        self.keep_s = max(book.max_cap_window, exposure_window_s)
        # per user, per campaign / overall: impression times (:func:`times_of`)
        self.freq: dict[str, dict[int, bytes]] = defaultdict(dict)
        self.exposure: dict[str, bytes] = defaultdict(bytes)
        self.spend_today = np.zeros(book.n, np.float64)
        self.spend_total = np.zeros(book.n, np.float64)
        self.day = -1
        self._pending: list[AdImpression] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        # told of every recorded impression and forgotten user (feed/adshare.py: caps and
        # budgets shared by the processes of ``feedwise serve --workers N``)
        self.listener: AdListener | None = None
        if store is not None and not store.ad_state_writable():
            log.warning("ad state not persisted (read-only store); keeping it in memory")
            self.store = None
        elif store is not None:
            try:
                self.load(store)
            except duckdb.Error as e:
                log.warning("ad state not persisted (%s); keeping it in memory", e)
                self.store = None

    def copy(self) -> AdState:
        """An independent copy in memory (same campaigns, no store)."""
        out = AdState(self.book, None, exposure_window_s=self.exposure_window_s)
        out.freq = defaultdict(dict, {u: dict(per) for u, per in self.freq.items()})
        out.exposure = defaultdict(bytes, self.exposure)
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
        seen = self.exposure.get(user_id)
        if not seen:
            return 0
        lo = now_s - self.exposure_window_s
        kept = _after(seen, lo - self.keep_s)
        if kept is not seen:
            self.exposure[user_id] = kept
        return _within(kept, lo, now_s)

    def capped(self, user_id: str, now_s: float) -> np.ndarray:
        """Boolean per campaign: one more impression now would break a frequency cap."""
        out = np.zeros(self.book.n, bool)
        per = self.freq.get(user_id)
        if not per:
            return out
        for c, seen in per.items():
            caps = self.book.caps[c]
            if not caps:
                continue
            for cap in caps:
                if _within(seen, now_s - cap.window_s, now_s) >= cap.max_impressions:
                    out[c] = True
                    break
        return out

    def count(self, user_id: str, campaign: int, window_s: float, now_s: float) -> int:
        return _within(self.freq.get(user_id, {}).get(campaign, b""), now_s - window_s, now_s)

    def remaining(self) -> tuple[np.ndarray, np.ndarray]:
        """Budget left today and in total per campaign."""
        return (self.book.daily_budget - self.spend_today,
                self.book.total_budget - self.spend_total)

    # -------------------------------------------------------------- updates
    def record(self, imp: AdImpression, charge: float = 0.0) -> None:
        """Record a served ad impression and charge ``charge`` (never beyond the budget)."""
        self.roll_day(imp.ts)
        self._seen(imp.user_id, imp.campaign, imp.ts)
        self.charge(imp.campaign, charge)
        imp.price = charge
        if self.store is not None:
            with self._lock:  # flush() may run in another thread (the service's writer)
                self._pending.append(imp)
                due = self.flush_every and len(self._pending) >= self.flush_every
            if due:
                self.flush()
        if self.listener is not None:
            self.listener.recorded(imp)

    def observe(self, user_id: str, campaign: int, ts: float) -> None:
        """Count an impression another process served (frequency and exposure only: no
        charge, not persisted here, the listener not told)."""
        self._seen(user_id, campaign, ts)

    def _seen(self, user_id: str, campaign: int, ts: float) -> None:
        """Add an impression at ``ts`` to the user's times (the campaign's unless it is
        negative), dropping the campaign's times that left the longest window."""
        if campaign >= 0:
            per = self.freq[user_id]
            per[campaign] = _after(per.get(campaign, b""), ts - self.keep_s) + _TIME.pack(ts)
        self.exposure[user_id] += _TIME.pack(ts)

    def set_spend(self, day: int, spend_today: np.ndarray, spend_total: np.ndarray) -> None:
        """Take spend merged elsewhere (the owner process's); today's spend of an earlier
        day than this state's counts as 0."""
        self.roll_day(day * DAY_S)
        self.spend_today[:] = spend_today if day == self.day else 0.0
        self.spend_total[:] = spend_total

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

    def forget_user(self, user_id: str) -> bool:
        """Drop a user's frequency and exposure history and pending (unsaved) impressions;
        ``True`` if there were any."""
        found = self.freq.pop(user_id, None) is not None
        found = (self.exposure.pop(user_id, None) is not None) or found
        with self._lock:
            kept = [p for p in self._pending if p.user_id != user_id]
            found = len(kept) != len(self._pending) or found
            self._pending = kept
        if self.listener is not None:
            self.listener.forgotten(user_id)
        return found

    # -------------------------------------------------------------- persistence
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
        return self.store.save_ad_state(rows, spend)  # erased users' rows are skipped

    def load(self, store: EventStore) -> None:
        """Rebuild frequency, exposure and spend from the store (after a restart)."""
        spend = store.ad_spend()
        if len(spend):
            day = int(spend["day"].max())
            self.day = day
            for row in spend.itertuples(index=False):
                c = self.book.index.get(str(row.campaign_id))
                if c is None:
                    continue
                self.spend_total[c] = float(row.spend_total)
                self.spend_today[c] = float(row.spend_today) if int(row.day) == day else 0.0
        imps = store.recent_ad_impressions(self.keep_s)
        for u, cid, ts in zip(imps["user_id"], imps["campaign_id"], imps["ts"], strict=True):
            c = self.book.index.get(str(cid))
            if c is not None:
                per = self.freq[str(u)]
                per[c] = per.get(c, b"") + _TIME.pack(float(ts))
            self.exposure[str(u)] += _TIME.pack(float(ts))
