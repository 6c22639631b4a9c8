"""Planning notifications, handing out the due ones, and recording what became of them.

:func:`plan` decides who gets what when: for every user who may get notifications
(:func:`~feedwise.notifications.rules.consents`), one digest of posts in the next
``horizon_hours`` at the local hour a :class:`SendTimeBandit` picks among the hours the
rules leave open, logged with the propensity of that pick. :func:`claim_due` hands the due
ones to a sender (re-checking consent and quiet hours at send time) and :func:`record`
stores the outcome: delivered, opened, or failed (retried with backoff, ``dead`` after
``max_attempts``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.localtime import local_hours, zone
from feedwise.notifications.rules import NotificationRules, consents
from feedwise.notifications.schedule import first_slot_of_hour, open_hours, open_slots, slots
from feedwise.notifications.sendtime import SendTimeBandit
from feedwise.schema import utc
from feedwise.store import EventStore
from feedwise.store.notifications import COUNTED

POLICY = "sendtime-thompson"
OUTCOMES = {"delivered": "acked", "opened": "opened", "failed": "failed"}


def _users(store: EventStore, activity: pd.DataFrame) -> pd.DataFrame:
    users = store.users()
    seen = set(users["user_id"].astype(str)) if len(users) else set()
    extra = sorted(set(activity["user_id"].astype(str)) - seen) if len(activity) else []
    if extra:
        users = pd.concat([users, pd.DataFrame({"user_id": extra})], ignore_index=True)
    if "timezone" not in users.columns:
        users["timezone"] = None
    return users.reset_index(drop=True)


def local_activity(activity: pd.DataFrame, zones: pd.Series, fallback: str = "UTC"
                   ) -> pd.DataFrame:
    """``user_id, hour, n`` (UTC hour buckets) -> ``user_id, local_hour, n`` on each
    user's clock (``zones``: user id -> zone name)."""
    if activity.empty:
        return pd.DataFrame({"user_id": [], "local_hour": [], "n": []})
    z = activity["user_id"].astype(str).map(zones).to_numpy(dtype=object)
    h = local_hours(activity["hour"], z, fallback=fallback)
    return pd.DataFrame({"user_id": activity["user_id"].astype(str).to_numpy(),
                         "local_hour": h, "n": activity["n"].to_numpy(np.float64)})


def outcomes_of(notes: pd.DataFrame) -> pd.DataFrame:
    """``user_id, local_hour, opened`` of the notifications that went out."""
    out = notes[notes["status"].isin(["sent", "acked", "opened"])
                & notes["local_hour"].notna()]
    return pd.DataFrame({"user_id": out["user_id"].astype(str).to_numpy(),
                         "local_hour": out["local_hour"].to_numpy(np.int64),
                         "opened": (out["status"] == "opened").to_numpy()})


def fit_bandit(store: EventStore, now: datetime, rules: NotificationRules | None = None,
               bandit: SendTimeBandit | None = None, *, activity_days: int = 28
               ) -> SendTimeBandit:
    """A bandit fitted on the users' activity of the last ``activity_days`` days and every
    logged notification outcome before ``now``."""
    rules = rules or NotificationRules()
    now = utc(now)
    act = store.activity_hours(now - timedelta(days=activity_days), now)
    users = _users(store, act)
    zones = pd.Series(users["timezone"].to_numpy(dtype=object),
                      index=users["user_id"].astype(str).to_numpy())
    notes = store.notifications(until=now)
    return (bandit or SendTimeBandit()).fit(
        local_activity(act, zones, rules.fallback_zone), outcomes_of(notes))


def _digest(store: EventStore, now: datetime, users: pd.Series, k: int) -> dict[str, list[str]]:
    """Top ``k`` posts per user: popularity, boosted by the user's stored interests."""
    posts = store.posts()
    if posts.empty:
        return {}
    pop = store.engagement_counts(now)
    ids = posts["item_id"].astype(str).to_numpy()
    score = np.log1p(np.array([float(pop.get(i, 0.0)) for i in ids]))
    tags = [list(t) if t is not None and not isinstance(t, float) else []
            for t in posts.get("tags", pd.Series([None] * len(posts)))]
    prof = store.profiles()
    interests: dict[str, dict[str, float]] = {}
    for u, text in zip(prof["user_id"].astype(str), prof["interests"], strict=True):
        try:
            d = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            d = {}
        interests[u] = d if isinstance(d, dict) else {}
    base_top = list(ids[np.argsort(-score, kind="stable")[:k]])
    out: dict[str, list[str]] = {}
    for u in users:
        w = interests.get(u)
        if not w:
            out[u] = base_top
            continue
        boost = np.array([sum(float(w.get(t, 0.0)) for t in tl) for tl in tags])
        out[u] = list(ids[np.argsort(-(score * (1.0 + 4.0 * boost)), kind="stable")[:k]])
    return out


def plan(store: EventStore, now: datetime, rules: NotificationRules | None = None, *,
         bandit: SendTimeBandit | None = None, digest_size: int = 3, write: bool = False,
         seed: int = 0) -> pd.DataFrame:
    """Who gets what when: one digest per consenting user in the next
    ``rules.horizon_hours`` (none for a user the caps or quiet hours leave no slot for).

    Returns one row per planned notification (the ``notifications`` columns); with
    ``write`` they are queued in the store (planning the same day again adds nothing: the
    id is the user and the local day).
    """
    rules = rules or NotificationRules()
    now = utc(now)
    fitted = bandit if bandit is not None and hasattr(bandit, "alpha_") else fit_bandit(
        store, now, rules, bandit)
    act = store.activity_hours(now - timedelta(days=28), now)
    users = _users(store, act)
    ok = consents(users)
    users = users[users["user_id"].astype(str).map(ok).fillna(True).to_numpy(bool)]
    cols = list(store.notifications().columns)
    if users.empty:
        return pd.DataFrame(columns=cols)
    uids = users["user_id"].astype(str).to_numpy()
    s = slots(now.timestamp(), list(users["timezone"]), rules.horizon_hours,
              rules.fallback_zone)
    notes = store.notifications()
    notes = notes[notes["status"].isin(COUNTED)]
    epoch = pd.Timestamp(0, tz="UTC")
    by_user = {u: (pd.to_datetime(g["ts"], utc=True) - epoch).dt.total_seconds().to_numpy()
               for u, g in notes.groupby(notes["user_id"].astype(str))}
    history = [by_user.get(u, np.empty(0)) for u in uids]
    open_ = open_slots(s, rules, history)
    hours, prop = fitted.choose(uids, open_hours(s, open_), np.random.default_rng(seed))
    idx = first_slot_of_hour(s, open_, hours)
    keep = idx >= 0
    rows = np.flatnonzero(keep)
    ts = s.ts_s[rows, idx[keep]]
    day = s.local_day[rows, idx[keep]]
    digest = _digest(store, now, pd.Series(uids[keep]), digest_size)
    out = pd.DataFrame({
        "notification_id": [f"ntf/{u}/{d}/digest" for u, d in zip(uids[keep], day,
                                                                 strict=True)],
        "user_id": uids[keep], "kind": "digest",
        "item_ids": [digest.get(u, []) for u in uids[keep]],
        "title": [f"{len(digest.get(u, []))} posts you may like" for u in uids[keep]],
        "ts": pd.to_datetime(ts, unit="s", utc=True), "local_hour": hours[keep],
        "timezone": s.zones[keep], "tz_reason": s.tz_reason[keep], "policy": POLICY,
        "propensity": prop[keep], "status": "queued", "attempts": 0,
        "created_at": pd.Timestamp(now)})
    for c in cols:
        if c not in out.columns:
            out[c] = None
    out = out[cols]
    if write and len(out):
        store.add_notifications(out)
    return out


def claim_due(store: EventStore, now: datetime, *, batch: str,
              rules: NotificationRules | None = None, limit: int = 1000) -> pd.DataFrame:
    """Hand out the notifications due at ``now`` as ``batch`` (marked sent; the same
    ``batch`` again returns the same notifications and sends nothing twice).

    At send time: a user who withdrew consent has theirs cancelled; one whose local clock
    is in quiet hours keeps theirs queued (a retry that would land in the night waits);
    one tried ``max_attempts`` times is marked dead.
    """
    rules = rules or NotificationRules()
    now = utc(now)
    due = store.due_notifications(now, limit=limit)
    if len(due):
        users = store.users()
        ok = consents(users)
        uids = due["user_id"].astype(str)
        refused = ~uids.map(ok).fillna(True).to_numpy(bool)
        if refused.any():
            store.mark_notifications(list(due["notification_id"][refused]), "cancelled",
                                     now=now, reason="consent withdrawn")
        spent = due["attempts"].fillna(0).to_numpy(np.int64) >= rules.max_attempts
        if (spent & ~refused).any():
            store.mark_notifications(list(due["notification_id"][spent & ~refused]), "dead",
                                     now=now, reason=f"{rules.max_attempts} attempts failed")
        tz = [zone(z, fallback=rules.fallback_zone)[0].key for z in due["timezone"]]
        quiet = rules.quiet(local_hours([now] * len(due), tz)) if len(due) else np.zeros(0)
        send = ~refused & ~spent & ~np.asarray(quiet, bool)
        ids = list(due["notification_id"][send])
    else:
        ids = []
    return store.claim_notifications(ids, batch=batch, now=now)


def record(store: EventStore, ids: list[str], outcome: str, now: datetime, *,
           rules: NotificationRules | None = None) -> int:
    """Record what became of sent notifications: ``delivered``, ``opened`` or ``failed``
    (retried after a backoff, or ``dead`` after ``max_attempts``). Idempotent: a
    notification already in that state is left alone. Returns the notifications changed."""
    if outcome not in OUTCOMES:
        raise DataError(f"notification outcome {outcome!r} is not one of {sorted(OUTCOMES)}")
    rules = rules or NotificationRules()
    now = utc(now)
    if outcome != "failed":
        return store.mark_notifications(ids, OUTCOMES[outcome], now=now)
    sent = store.notifications(status="sent")
    sent = sent[sent["notification_id"].isin(set(map(str, ids)))]
    n = 0
    for nid, attempts in zip(sent["notification_id"], sent["attempts"].fillna(0),
                             strict=True):
        a = int(attempts)
        if a >= rules.max_attempts:
            n += store.mark_notifications([nid], "dead", now=now,
                                          reason=f"{a} attempts failed")
        else:
            retry = datetime.fromtimestamp(rules.retry_at_s(a, now.timestamp()), tz=UTC)
            n += store.mark_notifications([nid], "failed", now=now, retry_at=retry)
    return n
