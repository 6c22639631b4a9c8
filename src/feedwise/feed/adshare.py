"""Ad frequency caps, exposure, pacing and budgets shared by the processes of
``feedwise serve --workers N``.

Every process composes feeds against its own in-memory :class:`~feedwise.feed.adstate.AdState`
(no round trip on the feed path). They are kept in step through the two exchanges the
workers already make with the owner (the process that owns the store):

* **Up, with the impressions they hand back.** A worker's :class:`AdShare` is told of every
  ad it serves (the state's listener) and puts it in numbered batches that travel with
  its impressions (a :class:`~feedwise.server.relay.ServedBatch`, every
  ``impressions_flush_s``). The owner's
  :class:`AdLog` records them into the owner's state, charged (capped by what is left of
  the budget) and persisted with the owner's own ad impressions, and remembers the last
  batch it took from each worker (its *ack*); a batch sent twice is taken once.
* **Down, in the delta they already poll.** The owner's log numbers every ad impression its
  state records (its own feeds' and the workers') and every user it forgets (erasure).
  The delta a worker polls returns the entries after the worker's last one and the owner's
  merged spend (CPM charges and CPC clicks). The worker counts the other processes'
  impressions into its frequency and exposure windows and sets its spend to the owner's
  plus its own not yet acknowledged charges (so its own spend is never counted twice or
  missed); a forgotten user is forgotten by the worker too.

So a process decides with everything the others served up to one staleness window ago:
nominally ``S = impressions_flush_s + worker_poll_s``, plus the exchanges' latency under
load. A frequency cap can be exceeded only by ads of that campaign the *other* processes
served the user inside that window. A budget could be exceeded by what the others charged
inside it, so a worker also counts a reserve as spent (:meth:`AdShare.reserve`: a multiple
of the campaign's recent spend rate times the worker's measured lag), leaving the last
stretch of a budget to the owner; the owner's ledger never records more than the budget
(an excess is served, not charged). A worker that starts, rebuilds its engine or falls
behind the log takes a full copy of the owner's state (``GET /v1/workers/ads``) plus its own
unacknowledged impressions. docs/serving.md gives the measured figures.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from feedwise.feed.adstate import DAY_S, AdImpression, AdState, times, times_of
from feedwise.feed.campaigns import CampaignBook

FORGET = "-"  # origin of a log entry that says "forget this user"
RATE_WINDOW_S = 5  # seconds of spend the reserve's rate is measured over


class _Listen:
    """An :class:`AdState`'s listener: passes its impressions with its book's campaign ids."""

    def __init__(self, sink: AdLog | AdShare, book: CampaignBook) -> None:
        self.sink = sink
        self.ids = [str(x) for x in book.ids]

    def recorded(self, imp: AdImpression) -> None:
        self.sink.recorded(self.ids[imp.campaign], imp)

    def forgotten(self, user_id: str) -> None:
        self.sink.forgotten(user_id)


def spend_of(ads: AdState) -> dict[str, Any]:
    """The state's spend, by campaign id."""
    return {"day": int(ads.day), "campaigns": [str(x) for x in ads.book.ids],
            "today": ads.spend_today.tolist(), "total": ads.spend_total.tolist()}


class AdLog:
    """The owner's side: a numbered log of the ad impressions its state records and the
    users it forgets, what each worker's batches were taken up to, and the merge of those
    batches.

    Args:
        maxlen: Entries kept; a worker further behind resynchronises from a full copy.
        forget_keep_s: How long a forgotten user's id is kept so that impressions a worker
            served before the erasure (arriving later) are dropped, not recorded again.
        window_s: The nominal staleness window ``S`` (the workers' flush plus poll
            interval): the least lag a worker assumes for its reserve.
        reserve_factor: Workers leave ``reserve_factor x`` a campaign's recent spend rate
            ``x`` their lag of its budget to the owner (:meth:`terms`); 0 turns that off.
    """

    def __init__(self, maxlen: int = 200_000, forget_keep_s: float = 300.0,
                 window_s: float = 0.75, reserve_factor: float = 2.0) -> None:
        self._lock = threading.Lock()
        self.window_s = window_s
        self.reserve_factor = reserve_factor
        self._rate: dict[str, deque[list[float]]] = {}  # per campaign: [second, charged]
        self.entries: deque[tuple[int, str, str, str | None, float]] = deque(maxlen=maxlen)
        self.seq = 0
        self.acked: dict[str, int] = {}
        self.forget_keep_s = forget_keep_s
        self._forgot: dict[str, float] = {}
        self._dropped = 0  # the newest entry dropped from the full log
        self.merged = 0

    def attach(self, ads: AdState) -> AdState:
        """Log what ``ads`` records and forgets from now on."""
        ads.listener = _Listen(self, ads.book)
        return ads

    # -------------------------------------------------------------- listener
    def recorded(self, campaign_id: str, imp: AdImpression) -> None:
        with self._lock:
            self._append(imp.origin, imp.user_id, campaign_id, imp.ts)
            if imp.price > 0:
                sec = float(int(time.monotonic()))
                dq = self._rate.get(campaign_id)
                if dq is None:
                    dq = self._rate[campaign_id] = deque(maxlen=RATE_WINDOW_S + 1)
                if dq and dq[-1][0] == sec:
                    dq[-1][1] += imp.price
                else:
                    dq.append([sec, imp.price])

    def rates(self) -> dict[str, float]:
        """Spend per second of each campaign that spent in the last ``RATE_WINDOW_S``."""
        lo = int(time.monotonic()) - RATE_WINDOW_S
        with self._lock:
            spent = {c: sum(a for s, a in dq if s >= lo) for c, dq in self._rate.items()}
        return {c: v / RATE_WINDOW_S for c, v in spent.items() if v > 0}

    def terms(self) -> dict[str, Any]:
        """What a worker needs for its budget reserve (:meth:`AdShare.reserve`): the recent
        spend rates, the factor and the nominal window."""
        return {"rate": self.rates() if self.reserve_factor > 0 else {},
                "reserve_factor": self.reserve_factor, "window_s": self.window_s}

    def _append(self, origin: str, user_id: str, campaign_id: str | None, ts: float) -> None:
        e = self.entries
        if len(e) == e.maxlen:
            self._dropped = e[0][0]  # a worker behind this one resynchronises
        self.seq += 1
        e.append((self.seq, origin, user_id, campaign_id, ts))

    def forgotten(self, user_id: str) -> None:
        now = time.time()
        with self._lock:
            if any(e[2] == user_id for e in self.entries):
                kept = [e for e in self.entries if e[2] != user_id]
                self.entries.clear()
                self.entries.extend(kept)
            self._append(FORGET, user_id, None, now)
            self._forgot[user_id] = now
            for u in [u for u, t in self._forgot.items() if t < now - self.forget_keep_s]:
                del self._forgot[u]

    # -------------------------------------------------------------- workers
    def since(self, seq: int, limit: int = 200_000) -> tuple[list[list[Any]], int, bool]:
        """Entries after ``seq`` (at most ``limit``), the last one's number, and whether
        entries after ``seq`` were already dropped (the worker must resynchronise)."""
        with self._lock:
            e = self.entries
            gap = seq < self._dropped
            if not e or e[-1][0] <= seq:
                return [], seq, gap
            start = bisect.bisect_right(e, seq, key=lambda x: x[0])
            out = [list(e[k]) for k in range(start, min(start + limit, len(e)))]
        return out, out[-1][0], gap

    def merge(self, ads: AdState, body: dict[str, Any]) -> int:
        """Record a worker's batches (``{"worker": id, "batches": [[n, rows], ...]}``; a row
        is ``[user, campaign_id, item_id, ts, charge, request_id]``) into the owner's
        state; returns the impressions recorded. Call it where requests compose (the state
        is not locked here)."""
        worker = str(body["worker"])
        done = 0
        index = ads.book.index
        for n, rows in body.get("batches", ()):
            if int(n) <= self.acked.get(worker, 0):
                continue  # sent again after a lost answer: taken once
            for u, cid, item, ts, charge, rid in rows:
                gone = self._forgot.get(u)
                if gone is not None and float(ts) <= gone:
                    continue  # served before the user was erased
                c = index.get(str(cid))
                if c is None:
                    continue  # a campaign this state does not know (being rebuilt)
                ads.record(AdImpression(str(u), c, str(item), float(ts), 0.0, rid,
                                        origin=worker), float(charge))
                done += 1
            self.acked[worker] = int(n)
        self.merged += done
        return done

    def dump(self, ads: AdState, worker: str) -> dict[str, Any]:
        """A full copy of the owner's state for a worker that (re)starts: log position,
        the worker's ack, spend, and every impression held in the windows."""
        with self._lock:
            seq = self.seq
        ids = [str(x) for x in ads.book.ids]
        freq = [[u, ids[c], times(t)] for u, per in list(ads.freq.items())
                for c, t in list(per.items()) if t]
        exposure = [[u, times(t)] for u, t in list(ads.exposure.items()) if t]
        return {"ad_seq": seq, "ad_ack": self.acked.get(worker, 0), "spend": spend_of(ads),
                **self.terms(), "freq": freq, "exposure": exposure}


class AdShare:
    """A worker's side: its ads, in numbered batches for the owner, and the owner's log and
    spend applied to the worker's state.

    Args:
        worker: This worker's id (its pid), as the owner knows it.
    """

    def __init__(self, worker: str) -> None:
        self.worker = str(worker)
        self._lock = threading.Lock()
        self._outbox: list[list[Any]] = []
        self._outbox_t0 = 0.0  # when its oldest row was served (monotonic)
        self._unsent: list[tuple[int, list[list[Any]], float]] = []
        self._sent: list[tuple[int, list[list[Any]], float]] = []
        # served -> acknowledged back to this worker, recent batches (s): its real lag
        self.lags: deque[float] = deque(maxlen=32)
        self._batch = 0
        self.ad_seq = -1
        self.synced_at = 0.0

    def attach(self, ads: AdState) -> AdState:
        ads.listener = _Listen(self, ads.book)
        return ads

    # -------------------------------------------------------------- listener
    def recorded(self, campaign_id: str, imp: AdImpression) -> None:
        with self._lock:
            if not self._outbox:
                self._outbox_t0 = time.monotonic()
            self._outbox.append([imp.user_id, campaign_id, imp.item_id, imp.ts, imp.price,
                                 imp.request_id])

    def forgotten(self, user_id: str) -> None:
        with self._lock:
            self._outbox = [r for r in self._outbox if r[0] != user_id]
            self._unsent = [(n, [r for r in rows if r[0] != user_id], t)
                            for n, rows, t in self._unsent]
            self._sent = [(n, [r for r in rows if r[0] != user_id], t)
                          for n, rows, t in self._sent]

    # -------------------------------------------------------------- up
    def take(self) -> dict[str, Any] | None:
        """The batches to send (every one not sent yet, in order), or ``None``."""
        with self._lock:
            if self._outbox:
                self._batch += 1
                self._unsent.append((self._batch, self._outbox, self._outbox_t0))
                self._outbox = []
            if not self._unsent:
                return None
            return {"worker": self.worker,
                    "batches": [[n, rows] for n, rows, _ in self._unsent]}

    def sent(self, payload: dict[str, Any]) -> None:
        """The owner took ``payload`` (its batches now wait for the ack in a delta)."""
        last = payload["batches"][-1][0]
        with self._lock:
            self._sent += [b for b in self._unsent if b[0] <= last]
            self._unsent = [b for b in self._unsent if b[0] > last]

    def pending(self) -> int:
        """Impressions the owner has not acknowledged."""
        with self._lock:
            return len(self._outbox) + sum(len(r) for _, r, _ in self._unsent + self._sent)

    def _own(self, ack: int) -> list[list[Any]]:
        now = time.monotonic()
        with self._lock:
            done = [b for b in self._sent if b[0] <= ack]
            if done:
                self.lags.append(now - min(t for _, _, t in done))
            self._sent = [b for b in self._sent if b[0] > ack]
            return [r for _, rows, _ in self._sent + self._unsent for r in rows] + self._outbox

    def lag_s(self, window_s: float) -> float:
        """How stale this worker's view may be: the longest recent time from serving an ad
        to learning the owner has it (it stands for the others' impressions not seen yet),
        at least the nominal ``window_s``."""
        return max([window_s, *self.lags])

    def reserve(self, terms: dict[str, Any]) -> dict[str, float]:
        """Per campaign: ``reserve_factor x`` its recent spend per second ``x`` this
        worker's lag. Counted as spent, it leaves the last stretch of a budget to the owner
        (whose view lacks only the workers' last flush), so what the others spend unseen
        within the lag is covered unless the spend rate jumps above ``reserve_factor x``
        its level of the last few seconds."""
        k = float(terms.get("reserve_factor", 0.0)) * self.lag_s(
            float(terms.get("window_s", 0.0)))
        return {c: k * r for c, r in (terms.get("rate") or {}).items()} if k > 0 else {}

    # -------------------------------------------------------------- down
    def apply(self, delta: dict[str, Any], ads: AdState) -> int:
        """Take a delta's ads (``ads``, ``ad_seq``, ``ad_ack``, ``spend``) into ``ads``;
        hold the engine's lock (requests read the state). Returns the other processes'
        impressions counted."""
        index = ads.book.index
        n = 0
        for _, origin, u, cid, ts in delta["ads"]:
            if origin == FORGET:
                ads.forget_user(u)  # also drops this worker's rows of the user
            elif origin != self.worker:
                ads.observe(u, index.get(cid, -1), float(ts))
                n += 1
        self.ad_seq = int(delta["ad_seq"])
        self._spend(delta["spend"], int(delta["ad_ack"]), ads, delta)
        self.synced_at = time.monotonic()
        return n

    def resync(self, dump: dict[str, Any], ads: AdState) -> None:
        """Fill a fresh ``ads`` from the owner's full copy plus this worker's impressions the
        owner has not acknowledged."""
        index = ads.book.index
        ads.freq.clear()
        ads.exposure.clear()
        for u, cid, seen in dump["freq"]:
            c = index.get(cid)
            if c is not None:
                ads.freq[u][c] = times_of(sorted(seen))
        for u, seen in dump["exposure"]:
            ads.exposure[u] = times_of(sorted(seen))
        ack = int(dump["ad_ack"])
        for r in self._own(ack):
            ads.observe(r[0], index.get(r[1], -1), float(r[3]))
        self.ad_seq = int(dump["ad_seq"])
        self._spend(dump["spend"], ack, ads, dump)
        self.synced_at = time.monotonic()

    def _spend(self, sp: dict[str, Any], ack: int, ads: AdState,
               terms: dict[str, Any] | None = None) -> None:
        index = ads.book.index
        today, total = np.zeros(ads.book.n), np.zeros(ads.book.n)
        for cid, t, tot in zip(sp["campaigns"], sp["today"], sp["total"], strict=True):
            c = index.get(cid)
            if c is not None:
                today[c], total[c] = t, tot
        ads.set_spend(int(sp["day"]), today, total)
        own = self._own(ack)  # (measures the lag: call before the reserve)
        for r in own:  # own charges the owner has not counted yet
            c = index.get(r[1])
            if c is not None:
                ads.spend_total[c] += r[4]
                if int(float(r[3]) // DAY_S) == ads.day:
                    ads.spend_today[c] += r[4]
        for cid, amount in self.reserve(terms or {}).items():  # left to the owner
            c = index.get(cid)
            if c is not None:
                ads.spend_today[c] += amount
                ads.spend_total[c] += amount


__all__ = ["FORGET", "AdLog", "AdShare", "spend_of"]
