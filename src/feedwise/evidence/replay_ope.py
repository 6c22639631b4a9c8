"""Off-policy estimate of a new feed against the logged policy, on the sessions after a cut.

The logged feeds carry the logging policy's exact per-slot propensities (the probability of
the logged post at its slot given the posts above it). For each sampled logged session
after the cut, the new feed (a :class:`~feedwise.evidence.replay_eval.EnginePolicy`: the
FeedEngine as of the cut, ads off) is composed at the session's time, and its ``k``-th
organic post is compared with the logged ``k``-th organic post:

* ``reward``: 1 if the user engaged (click, like, comment, share, save) with the logged
  post in that session, else 0;
* ``propensity``: the logged propensity of the logged post;
* ``target_propensity``: the engine's own propensity of its ``k``-th post (its
  exploration) when that post is the logged one, else 0;
* ``target_item_id``: the engine's ``k``-th post (DR's reward model predicts its reward).

The estimators of :mod:`feedwise.evidence.estimators` (SNIPS and DR, bootstrap by whole
sessions, 95% intervals) then estimate the new feed's engagements per slot, beside the
logged policy's own (its mean reward, bootstrapped the same way). Per-slot independence
is assumed (the reward of a slot depends on its post only); when the new feed rarely
shows the logged post at the logged slot the effective sample size is small and SNIPS is
uninformative: DR then rests on its reward model (a gradient-boosted regression on the
slot and the post's mean reward in these sessions, :class:`~feedwise.evidence.logs.RewardModel`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.evidence.estimators import _bootstrap_indices, estimate_all
from feedwise.evidence.logs import RewardModel, log_to_data
from feedwise.schema import ENGAGEMENT_KINDS, utc


def session_log(events: pd.DataFrame, posts: Any, since: Any, *, max_sessions: int = 400,
                seed: int = 0) -> pd.DataFrame:
    """The organic impressions of up to ``max_sessions`` sampled logged sessions starting
    at or after ``since``: ``session_id, user_id, item_id, t, slot`` (organic rank in the
    session), ``propensity`` and ``reward`` (engaged in the session)."""
    if "session_id" not in events.columns or "propensity" not in events.columns:
        raise DataError("off-policy replay needs logged sessions with propensities "
                        "(events with session_id and propensity)")
    t = pd.to_datetime(events["ts"], utc=True)
    ev = events.assign(t=(t - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    ev = ev[ev["session_id"].notna()]
    ids = set(map(str, posts.item_ids))
    imp = ev[(ev["kind"] == "impression") & ev["item_id"].astype(str).isin(ids)
             & ev["propensity"].notna()]
    start = imp.groupby("session_id")["t"].min()
    start = start[start >= utc(since).timestamp()]
    if start.empty:
        return pd.DataFrame(columns=["session_id", "user_id", "item_id", "t", "slot",
                                     "propensity", "reward"])
    pick = start.index.to_numpy()
    if len(pick) > max_sessions:
        pick = np.random.default_rng(seed).choice(pick, max_sessions, replace=False)
    imp = imp[imp["session_id"].isin(set(pick))].sort_values(
        ["session_id", "position", "t"], kind="stable")
    eng = ev[ev["kind"].isin(ENGAGEMENT_KINDS) & ev["session_id"].isin(set(pick))]
    hit = set(zip(eng["session_id"], eng["item_id"].astype(str), strict=True))
    out = pd.DataFrame({"session_id": imp["session_id"].to_numpy(),
                        "user_id": imp["user_id"].astype(str).to_numpy(),
                        "item_id": imp["item_id"].astype(str).to_numpy(),
                        "t": imp["session_id"].map(start).to_numpy(np.float64),
                        "propensity": imp["propensity"].to_numpy(np.float64)})
    out["slot"] = out.groupby("session_id").cumcount()
    out["reward"] = [float((s, i) in hit) for s, i in zip(out["session_id"], out["item_id"],
                                                          strict=True)]
    return out


def new_feed_estimate(policy: Any, log: pd.DataFrame, *, n_bootstrap: int = 200,
                      seed: int = 0) -> dict[str, Any]:
    """Estimates of ``policy``'s engagements per slot on the logged sessions ``log`` (see
    :func:`session_log`) against the logged policy's, with 95% bootstrap intervals.

    Returns:
        ``table`` (rows: the logged policy, then SNIPS and DR of the new feed: ``value,
        ci_low, ci_high, ess, n``), ``match_rate`` (share of slots where the new feed
        shows the logged post), ``sessions``, ``rows``.
    """
    if log.empty:
        raise DataError("no logged session after the cut to estimate the new feed on")
    target_item, target_p = [], []
    for _sid, g in log.groupby("session_id", sort=False):
        feed = policy.engine.compose(policy._request(g["user_id"].iloc[0], g["t"].iloc[0],
                                                     len(g)), record=False)
        organic = [s for s in feed.slots if s.kind == "organic"]
        for k, item in zip(g["slot"], g["item_id"], strict=True):
            s = organic[k] if k < len(organic) else None
            target_item.append(s.item_id if s is not None else "")
            target_p.append(float(s.propensity) if s is not None and s.item_id == item
                            else 0.0)
    df = log.assign(position=log["slot"], target_item_id=target_item,
                    target_propensity=target_p, timestamp=log["t"])
    model = RewardModel().fit(df)
    data = log_to_data(df, reward_model=model)
    est = estimate_all(data, ["snips", "dr"], n_bootstrap=n_bootstrap, seed=seed)
    # the logged policy: its mean reward per slot, bootstrapped by session alike
    rng = np.random.default_rng(seed)
    r = df["reward"].to_numpy(np.float64)
    groups = df["session_id"].to_numpy()
    boots = [r[_bootstrap_indices(len(r), groups, rng)].mean() for _ in range(n_bootstrap)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    logged = {"estimator": "logged policy (on-policy mean)", "value": float(r.mean()),
              "ci_low": float(lo), "ci_high": float(hi), "ess": float(len(r)), "n": len(r)}
    est["estimator"] = "new feed, " + est["estimator"].str.upper()
    table = pd.concat([pd.DataFrame([logged]), est], ignore_index=True)
    return {"table": table, "match_rate": float(np.mean(np.asarray(target_p) > 0)),
            "sessions": int(log["session_id"].nunique()), "rows": len(df)}
