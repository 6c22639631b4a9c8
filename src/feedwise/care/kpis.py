"""Care analytics: response and resolution times, automation, escalation, satisfaction.

Over the messages that arrived in ``[since, until)`` (``store.messages``) and their replies
(``store.replies``), per group (``channel``, ``intent``, ``agent``: the agent of the first
reply, ``auto`` for the assistant, ``(none)`` while unanswered) or in total:

- ``messages``: messages that arrived; ``answered``: those with at least one reply;
- ``first_response_s_median`` / ``_mean``: seconds from the message to its first reply,
  over answered messages;
- ``resolution_s_median`` / ``_mean``: seconds from the message to the first reply that
  resolved it (``resolved_at``), over resolved messages; ``resolved``: their count;
- ``auto_share``: share of messages whose first reply was sent automatically;
- ``escalated_share``: share routed to a person (``routing == "human"``);
- ``satisfaction``: mean follow-up rating (1-5) over ``rated`` messages.

Consent: the messages of users who withdrew ``analytics`` consent are left out of every
figure (they are still answered; answering a customer is not analytics).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.store import EventStore

GROUPS = ("channel", "intent", "agent")
COLUMNS = ["messages", "answered", "first_response_s_median", "first_response_s_mean",
           "resolved", "resolution_s_median", "resolution_s_mean", "auto_share",
           "escalated_share", "rated", "satisfaction"]


def care_frame(store: EventStore, since: datetime | None = None,
               until: datetime | None = None) -> pd.DataFrame:
    """One row per message with its first reply's time, agent and auto flag (consenting
    users only; see the module doc)."""
    msgs = store.messages(since, until)
    objectors = _objectors(store)
    if objectors:
        msgs = msgs[~msgs["user_id"].isin(objectors)]
    reps = store.replies()
    if len(reps):
        first = (reps.sort_values(["ts", "reply_id"]).groupby("message_id", as_index=False)
                 .first()[["message_id", "ts", "agent", "auto"]]
                 .rename(columns={"ts": "first_reply_at", "agent": "first_agent",
                                  "auto": "first_auto"}))
    else:
        first = pd.DataFrame(columns=["message_id", "first_reply_at", "first_agent",
                                      "first_auto"])
    df = msgs.merge(first, on="message_id", how="left")
    df["first_response_s"] = _seconds(df["first_reply_at"], df["ts"])
    df["resolution_s"] = _seconds(df["resolved_at"], df["ts"])
    df["agent"] = df["first_agent"].where(df["first_agent"].notna(), "(none)")
    df.loc[df["first_auto"].fillna(False).astype(bool), "agent"] = "auto"
    return df


def _objectors(store: EventStore) -> set[str]:
    users = store.users()
    if "consent_analytics" not in users.columns or users.empty:
        return set()
    flag = users["consent_analytics"]
    return set(users.loc[flag.notna() & (flag == False), "user_id"])  # noqa: E712


def _seconds(a: pd.Series, b: pd.Series) -> pd.Series:
    a = pd.to_datetime(a, utc=True)
    b = pd.to_datetime(b, utc=True)
    return (a - b).dt.total_seconds()


def _summary(g: pd.DataFrame) -> dict[str, float]:
    n = len(g)
    fr = g["first_response_s"].dropna()
    rs = g["resolution_s"].dropna()
    rated = g["rating"].dropna()
    return {
        "messages": n, "answered": int(fr.size),
        "first_response_s_median": float(fr.median()) if fr.size else np.nan,
        "first_response_s_mean": float(fr.mean()) if fr.size else np.nan,
        "resolved": int(rs.size),
        "resolution_s_median": float(rs.median()) if rs.size else np.nan,
        "resolution_s_mean": float(rs.mean()) if rs.size else np.nan,
        "auto_share": float(g["first_auto"].fillna(False).astype(bool).mean()) if n else np.nan,
        "escalated_share": float((g["routing"] == "human").mean()) if n else np.nan,
        "rated": int(rated.size),
        "satisfaction": float(rated.mean()) if rated.size else np.nan,
    }


def care_kpis(store: EventStore, *, since: datetime | None = None,
              until: datetime | None = None, by: str | None = None) -> pd.DataFrame:
    """The care KPIs (module doc) in total (one row, index ``all``) or per ``by`` group."""
    if by is not None and by not in GROUPS:
        raise ConfigError(f"care KPIs by {by!r}: use one of {', '.join(GROUPS)}")
    df = care_frame(store, since, until)
    if by is None:
        return pd.DataFrame([_summary(df)], index=pd.Index(["all"], name="group"),
                            columns=COLUMNS)
    keys = df[by].fillna("(none)").astype(str)
    rows = {k: _summary(g) for k, g in df.groupby(keys, sort=True)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS).rename_axis(by)
