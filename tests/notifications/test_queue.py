"""The notification queue: planning, consent, quiet hours, claiming, outcomes, retries and
privacy (erasure, export, retention) of the ``notifications`` table."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from notify_world import NOW

from feedwise.errors import DataError
from feedwise.localtime import local_hours
from feedwise.notifications import NotificationRules, claim_due, plan, record, violations
from feedwise.privacy import erase_user, export_user
from feedwise.privacy.retention import purge


def test_plan_respects_consent_quiet_hours_and_names_zone_fallbacks(nstore):
    rules = NotificationRules()
    df = plan(nstore, NOW, rules)
    users = set(df["user_id"])
    assert users == {"tokyo", "berlin", "ny", "nozone", "badzone"}  # no objector, no optout
    # every send on the user's clock outside 22-8, within the next 24 hours
    local = local_hours(df["ts"], list(df["timezone"]))
    assert np.array_equal(local, df["local_hour"].to_numpy())
    assert not rules.quiet(local).any()
    ts = pd.to_datetime(df["ts"], utc=True)
    assert (ts >= pd.Timestamp(NOW)).all() and (ts < pd.Timestamp(NOW + timedelta(hours=24))).all()
    reasons = df.set_index("user_id")["tz_reason"]
    assert reasons["nozone"] == "missing" and "Mars/Olympus" in reasons["badzone"]
    assert pd.isna(reasons["tokyo"])
    assert set(df.set_index("user_id").loc[["nozone", "badzone"], "timezone"]) == {"UTC"}
    assert ((df["propensity"] > 0) & (df["propensity"] <= 1)).all()
    assert df["item_ids"].map(len).eq(3).all()


def test_planning_twice_queues_once_and_caps_hold(nstore):
    first = plan(nstore, NOW, write=True)
    assert len(nstore.notifications()) == len(first) > 0
    # the same plan written again adds nothing (the id is the user and the local day)
    assert nstore.add_notifications(first) == 0
    # planning again over the same horizon only finds slots on another local day, at
    # least min_gap_hours away: the caps hold over everything queued
    again = plan(nstore, NOW, write=True)
    assert set(again["notification_id"]).isdisjoint(first["notification_id"])
    rules = NotificationRules()
    allq = nstore.notifications()
    ts = (pd.to_datetime(allq["ts"], utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    days = [int(i.split("/")[2]) for i in allq["notification_id"]]
    sends = pd.DataFrame({"user_id": allq["user_id"], "ts_s": ts,
                          "local_hour": allq["local_hour"], "local_day": days})
    assert violations(sends, rules).empty
    assert plan(nstore, NOW + timedelta(hours=1), write=True, seed=3)["notification_id"].isin(
        allq["notification_id"]).sum() == 0


def test_claim_is_idempotent_per_batch_and_outcomes_are_recorded(nstore):
    plan(nstore, NOW, write=True)
    rules = NotificationRules(quiet_start=0, quiet_end=0)  # send whenever due
    later = NOW + timedelta(hours=24)
    got = claim_due(nstore, later, batch="b1", rules=rules)
    assert len(got) == 5 and (got["status"] == "sent").all() and (got["attempts"] == 1).all()
    again = claim_due(nstore, later, batch="b1", rules=rules)
    assert list(again["notification_id"]) == list(got["notification_id"])
    assert (again["attempts"] == 1).all()
    assert claim_due(nstore, later, batch="b2", rules=rules).empty  # nothing sent twice
    ids = list(got["notification_id"])
    assert record(nstore, ids[:2], "opened", later) == 2
    assert record(nstore, ids[:2], "opened", later) == 0  # idempotent
    assert record(nstore, ids[2:3], "delivered", later) == 1
    st = nstore.notifications().set_index("notification_id")["status"]
    assert list(st[ids[:2]]) == ["opened", "opened"] and st[ids[2]] == "acked"
    with pytest.raises(DataError):
        record(nstore, ids, "exploded", later)


def test_failed_sends_are_retried_with_backoff_then_dead(nstore):
    plan(nstore, NOW, write=True)
    rules = NotificationRules(quiet_start=0, quiet_end=0, max_attempts=2, retry_backoff_s=600)
    t = NOW + timedelta(hours=24)
    one = claim_due(nstore, t, batch="a", rules=rules).iloc[:1]
    nid = one["notification_id"].iloc[0]
    assert record(nstore, [nid], "failed", t, rules=rules) == 1
    row = nstore.notifications().set_index("notification_id").loc[nid]
    assert row["status"] == "failed"
    assert pd.Timestamp(row["next_attempt_at"]) == pd.Timestamp(t + timedelta(seconds=600))
    assert nid not in set(claim_due(nstore, t + timedelta(seconds=599), batch="c",
                                    rules=rules)["notification_id"])
    retried = claim_due(nstore, t + timedelta(seconds=600), batch="d", rules=rules)
    assert nid in set(retried["notification_id"])
    assert record(nstore, [nid], "failed", t, rules=rules) == 1  # second failure: dead
    assert nstore.notifications().set_index("notification_id").loc[nid, "status"] == "dead"


def test_withdrawn_consent_cancels_at_send_time_and_quiet_hours_wait(nstore):
    plan(nstore, NOW, write=True)
    nstore.record_consent("tokyo", {"personalization": False, "ads": None, "analytics": None},
                          changed=["personalization"], now=NOW, source="test")
    t = NOW + timedelta(hours=24)  # 06:00 UTC: 15:00 Tokyo, 07:00 Berlin (quiet), 01:00 NY
    got = claim_due(nstore, t, batch="x")
    st = nstore.notifications().set_index("user_id")["status"]
    assert st["tokyo"] == "cancelled" and "tokyo" not in set(got["user_id"])
    assert st["berlin"] == "queued" and st["ny"] == "queued"  # their clocks are in the night
    assert set(got["user_id"]) <= {"nozone", "badzone"}  # 06:00 on the UTC fallback: quiet
    assert got.empty


def test_erasure_export_and_retention_cover_notifications(nstore):
    plan(nstore, NOW, write=True)
    ex = export_user(nstore, "berlin", now=NOW)
    assert len(ex["tables"]["notifications"]) == 1
    assert ex["tables"]["notifications"][0]["user_id"] == "berlin"
    erase_user(nstore, "berlin", now=NOW)
    assert nstore.notifications(user_id="berlin").empty
    assert not nstore.notifications(user_id="tokyo").empty
    out = purge(nstore, 1, now=NOW + timedelta(days=5))
    assert out["notifications"] == 4
    assert nstore.notifications().empty


def test_bad_rows_and_statuses_are_refused_with_the_fix(nstore):
    with pytest.raises(DataError, match="needs 'ts'"):
        nstore.add_notifications([{"notification_id": "n1", "user_id": "u"}])
    with pytest.raises(DataError, match="unknown columns"):
        nstore.add_notifications([{"notification_id": "n1", "user_id": "u", "ts": NOW,
                                   "colour": "red"}])
    with pytest.raises(DataError, match="not one of"):
        nstore.mark_notifications(["n1"], "teleported", now=NOW)
