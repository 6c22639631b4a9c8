"""Every table of the store, in one place: columns, keys and the DDL that creates them.

Nothing outside ``feedwise.store`` creates a table; a new kind of data gets its table here
(and, if it is about a user, a ``user_id`` column, so erasure, export and retention cover it
the day it is added).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from feedwise.schema import (
    CAMPAIGN_COLUMNS,
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    PROFILE_COLUMNS,
    USER_COLUMNS,
)

#: Rows ingestion could not accept: where from, which row and field, why, the raw text, and
#: the (stored, i.e. pseudonymised when configured) user id parsed from the row (NULL when
#: the row had none): export and erasure find a user's rejects by this column only.
REJECT_COLUMNS = {"source": "VARCHAR", "row": "BIGINT", "field": "VARCHAR", "reason": "VARCHAR",
                  "raw": "VARCHAR", "rejected_at": "TIMESTAMPTZ", "user_id": "VARCHAR"}
#: Erased users: a one-way digest of the stored user id (never the id) and the erasure time.
TOMBSTONE_COLUMNS = {"digest": "VARCHAR", "erased_at": "TIMESTAMPTZ"}
#: Append-only record of every consent change (who, which flag, value, when, from where).
CONSENT_LOG_COLUMNS = {"user_id": "VARCHAR", "flag": "VARCHAR", "granted": "BOOLEAN",
                       "source": "VARCHAR", "recorded_at": "TIMESTAMPTZ"}
#: Ads served (frequency caps and pacing read them back after a restart).
AD_IMPRESSION_COLUMNS = {"user_id": "VARCHAR", "campaign_id": "VARCHAR", "item_id": "VARCHAR",
                         "ts": "DOUBLE", "price": "DOUBLE", "request_id": "VARCHAR"}
#: Spend per campaign: today's (``day`` is the unix day it counts) and in total.
AD_SPEND_COLUMNS = {"campaign_id": "VARCHAR", "day": "BIGINT", "spend_today": "DOUBLE",
                    "spend_total": "DOUBLE", "updated_at": "DOUBLE"}
#: Facts about the store itself, one row per name (e.g. the fingerprint of the pseudonym key
#: its user ids are under, see ``store/meta.py``); never a user id, never a secret.
META_COLUMNS = {"name": "VARCHAR", "value": "VARCHAR", "updated_at": "TIMESTAMPTZ"}
#: The social graph, one row per act (follow, unfollow, friend, unfriend, block, unblock,
#: trust) between two stored user ids, ``src_id`` acting on ``dst_id``; ``ts`` NULL: undated
#: (stands from the start). Not keyed by ``user_id``: erasure, export and retention find a
#: user's edges by ``src_id`` or ``dst_id`` (``store/privacy.py``); see ``store/edges.py``.
EDGE_COLUMNS = {"edge_id": "VARCHAR", "src_id": "VARCHAR", "dst_id": "VARCHAR",
                "kind": "VARCHAR", "ts": "TIMESTAMPTZ", "source": "VARCHAR"}
#: Notifications (digests, single-post pushes): one row each, from planned to opened.
#: ``ts`` is the planned send time (UTC; retention purges by it), ``local_hour`` the hour
#: on the user's clock it was planned for, ``propensity`` the probability the planning
#: policy gave that hour (off-policy estimates); see ``store/notifications.py``.
NOTIFICATION_COLUMNS = {
    "notification_id": "VARCHAR", "user_id": "VARCHAR", "kind": "VARCHAR",
    "item_ids": "VARCHAR[]", "title": "VARCHAR", "ts": "TIMESTAMPTZ", "local_hour": "INTEGER",
    "timezone": "VARCHAR", "tz_reason": "VARCHAR", "policy": "VARCHAR", "propensity": "DOUBLE",
    "status": "VARCHAR", "attempts": "INTEGER", "next_attempt_at": "TIMESTAMPTZ",
    "batch": "VARCHAR", "created_at": "TIMESTAMPTZ", "sent_at": "TIMESTAMPTZ",
    "acked_at": "TIMESTAMPTZ", "opened_at": "TIMESTAMPTZ", "reason": "VARCHAR"}

#: Customer-care messages (comments and direct messages to the brand), one row each, keyed
#: by ``message_id``; ``user_id`` is the customer's (stored) id, ``ts`` when the message
#: arrived (retention purges by it). ``decision`` is the assistant's answer as JSON (a
#: repeated POST returns it unchanged); ``rating`` a follow-up satisfaction rating (1-5).
#: See ``store/messages.py``.
MESSAGE_COLUMNS = {
    "message_id": "VARCHAR", "user_id": "VARCHAR", "channel": "VARCHAR", "text": "VARCHAR",
    "language": "VARCHAR", "ts": "TIMESTAMPTZ", "intent": "VARCHAR", "kind": "VARCHAR",
    "confidence": "DOUBLE", "routing": "VARCHAR", "reason": "VARCHAR", "answer_id": "VARCHAR",
    "decision": "VARCHAR", "resolved_at": "TIMESTAMPTZ", "rating": "DOUBLE",
    "rated_at": "TIMESTAMPTZ", "created_at": "TIMESTAMPTZ"}
#: Replies sent to a message: who (``agent``; ``auto`` for the assistant), what, when;
#: ``user_id`` is the customer's (stored) id, so erasure and export find replies to them.
REPLY_COLUMNS = {
    "reply_id": "VARCHAR", "message_id": "VARCHAR", "user_id": "VARCHAR", "agent": "VARCHAR",
    "text": "VARCHAR", "ts": "TIMESTAMPTZ", "auto": "BOOLEAN", "resolves": "BOOLEAN",
    "answer_id": "VARCHAR"}
#: The knowledge base of answers, versioned: each ``add_answers`` call is a new version;
#: a row supersedes the earlier rows of its ``answer_id``. No user data.
ANSWER_COLUMNS = {
    "answer_id": "VARCHAR", "version": "INTEGER", "intent": "VARCHAR", "questions": "VARCHAR[]",
    "answer": "VARCHAR", "tags": "VARCHAR[]", "language": "VARCHAR", "active": "BOOLEAN",
    "added_at": "TIMESTAMPTZ"}


@dataclass(frozen=True)
class Table:
    """One table: its name, columns (name -> DuckDB type) and primary key, if any."""

    name: str
    columns: Mapping[str, str]
    key: str | None = None

    def ddl(self) -> str:
        body = ", ".join(f'"{c}" {t}' for c, t in self.columns.items())
        pk = f", PRIMARY KEY ({self.key})" if self.key else ""
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({body}{pk})"


#: Every table, in creation order.
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("events", EVENT_COLUMNS),
    Table("items", ITEM_COLUMNS, "item_id"),
    Table("users", USER_COLUMNS, "user_id"),
    Table("campaigns", CAMPAIGN_COLUMNS, "campaign_id"),
    Table("rejects", REJECT_COLUMNS),
    Table("tombstones", TOMBSTONE_COLUMNS, "digest"),
    Table("consent_log", CONSENT_LOG_COLUMNS),
    Table("ad_impressions", AD_IMPRESSION_COLUMNS),
    Table("ad_spend", AD_SPEND_COLUMNS, "campaign_id"),
    Table("user_profiles", PROFILE_COLUMNS, "user_id"),
    Table("store_meta", META_COLUMNS, "name"),
    Table("edges", EDGE_COLUMNS, "edge_id"),
    Table("notifications", NOTIFICATION_COLUMNS, "notification_id"),
    Table("messages", MESSAGE_COLUMNS, "message_id"),
    Table("replies", REPLY_COLUMNS, "reply_id"),
    Table("answers", ANSWER_COLUMNS, "answer_id, version"),
)}


#: Columns added after their table was first released: (table, column), added by
#: :func:`create_all` to a store that lacks them (older rows get NULL).
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("rejects", "user_id"), ("events", "text"), ("events", "parent_id"), ("users", "timezone"),
    ("user_profiles", "timezone"), ("user_profiles", "timezone_source"),
    ("user_profiles", "timezone_confidence"))


def create_all(con) -> None:
    """Create every table that does not exist yet (an older store gains the new ones) and
    add the columns an older store lacks."""
    for table in TABLES.values():
        con.execute(table.ddl())
    for table, column in MIGRATIONS:
        con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" '
                    f"{TABLES[table].columns[column]}")
