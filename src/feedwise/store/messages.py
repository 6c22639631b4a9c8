"""Customer care: messages, the replies sent to them, and the knowledge base of answers.

Tables (``store/tables.py``): ``messages`` (keyed by ``message_id``), ``replies`` (keyed by
``reply_id``) and ``answers`` (keyed by ``answer_id`` and ``version``).

Both ``messages`` and ``replies`` have the customer's stored ``user_id`` and a ``ts``
column, so erasure deletes them, export includes them and retention purges them by ``ts``
with no code of their own (``store/privacy.py`` covers every such table). Writes are
idempotent: a message or reply whose id is already stored is not written again, and the
stored row is returned, so a client retrying a request doubles nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from feedwise.errors import DataError, NotFoundError
from feedwise.schema import utc
from feedwise.store.base import StoreBase
from feedwise.store.privacy import tombstone_digest
from feedwise.store.tables import ANSWER_COLUMNS, MESSAGE_COLUMNS, REPLY_COLUMNS


def _now() -> datetime:
    return pd.Timestamp.now(tz="UTC").to_pydatetime()


def _required(row: Mapping[str, Any], what: str, cols: Iterable[str]) -> None:
    for col in cols:
        v = row.get(col)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise DataError(f"{what}: field {col!r} is missing or empty; give a value")


class Messages(StoreBase):
    """Care messages, replies and answers (part of :class:`~feedwise.store.EventStore`)."""

    # ------------------------------------------------------------------ messages
    def add_message(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store one message (the ``messages`` columns; ``message_id``, ``user_id`` and
        ``ts`` required; ``user_id`` is the external id, stored as its pseudonym). A
        message id already stored is left as it is. Returns the stored row and whether it
        was written now."""
        _required(row, "message", ("message_id", "user_id", "ts"))
        values = {c: row.get(c) for c in MESSAGE_COLUMNS}
        values["user_id"] = self.user_key(str(row["user_id"]))
        values["ts"] = utc(row["ts"])
        values["created_at"] = utc(row["created_at"]) if row.get("created_at") else _now()
        values["message_id"] = str(row["message_id"])
        cols = list(MESSAGE_COLUMNS)
        names = ", ".join(f'"{k}"' for k in cols)
        marks = ", ".join("?" for _ in cols)
        with self.transaction() as c:
            n = c.execute(f"INSERT OR IGNORE INTO messages ({names}) VALUES ({marks})",
                          [values[k] for k in cols]).fetchone()[0]
        if n:
            return values, True
        stored = self.get_message(values["message_id"])
        assert stored is not None
        return stored, False

    def add_messages(self, rows: Sequence[Mapping[str, Any]],
                     replies: Sequence[Mapping[str, Any] | None] = ()
                     ) -> list[tuple[dict[str, Any] | None, bool]]:
        """Store several messages in one transaction (the service's batches), each as
        :meth:`add_message` does, and ``replies[i]`` (if given and not ``None``) with
        message ``i`` when that message is written now (a resolving reply sets the
        message's ``resolved_at``). Messages of erased users are not stored: their result
        is ``(None, False)``; within the batch the first row of an id wins. Returns
        ``(stored row, written now)`` per message, in order."""
        if not rows:
            return []
        for r in rows:
            _required(r, "message", ("message_id", "user_id", "ts"))
        keys = [self.user_key(str(r["user_id"])) for r in rows]
        digests = {tombstone_digest(k): k for k in set(keys)}
        ids = [str(r["message_id"]) for r in rows]
        cols, rcols = list(MESSAGE_COLUMNS), list(REPLY_COLUMNS)
        now = _now()
        out: list[tuple[dict[str, Any] | None, bool]] = [(None, False)] * len(rows)
        reply_ids = sorted({str(rep["reply_id"]) for rep in replies if rep is not None})
        with self.transaction() as c:
            # the ids already stored and the erased users, looked up in one statement under
            # the write lock, so the inserts below are plain ones (no conflict check per
            # row: half the cost of OR IGNORE)
            lookups = [("m", "message_id", "messages", sorted(set(ids))),
                       ("r", "reply_id", "replies", reply_ids),
                       ("t", "digest", "tombstones", sorted(digests))]
            # IN lists of parameters: the key's index answers them (a join with unnest()
            # costs half as much again)
            found = c.execute(" UNION ALL ".join(
                f"SELECT '{tag}', {col} FROM {table} WHERE {col} IN "
                f"({', '.join('?' for _ in keys_)})"
                for tag, col, table, keys_ in lookups if keys_),
                [k for *_, keys_ in lookups for k in keys_]).fetchall()
            stored = {v for k, v in found if k == "m"}
            replied = {v for k, v in found if k == "r"}
            erased = {digests[v] for k, v in found if k == "t"}
            new_rows, new_replies, seen = [], [], set()
            for i, r in enumerate(rows):
                if keys[i] in erased or ids[i] in stored or ids[i] in seen:
                    continue
                seen.add(ids[i])
                values = {k: r.get(k) for k in cols}
                values.update(message_id=ids[i], user_id=keys[i], ts=utc(r["ts"]),
                              created_at=utc(r["created_at"]) if r.get("created_at") else now)
                rep = replies[i] if i < len(replies) else None
                if rep is not None and str(rep["reply_id"]) not in replied:
                    replied.add(str(rep["reply_id"]))
                    rv = {k: rep.get(k) for k in rcols}
                    rv.update(message_id=ids[i], user_id=keys[i], ts=utc(rep["ts"]),
                              auto=bool(rep.get("auto") or False),
                              resolves=True if rep.get("resolves") is None
                              else bool(rep["resolves"]))
                    if rv["resolves"]:
                        values["resolved_at"] = rv["ts"]
                    new_replies.append(rv)
                new_rows.append(values)
                out[i] = (values, True)
            for table, columns, batch in (("messages", cols, new_rows),
                                          ("replies", rcols, new_replies)):
                if not batch:
                    continue
                names = ", ".join(f'"{k}"' for k in columns)
                one = "(" + ", ".join("?" for _ in columns) + ")"
                c.execute(f"INSERT INTO {table} ({names}) VALUES "
                          + ", ".join([one] * len(batch)),
                          [v[k] for v in batch for k in columns])
        for i in range(len(rows)):
            if not out[i][1] and keys[i] not in erased:
                out[i] = (self.get_message(ids[i]), False)
        return out

    def get_message(self, message_id: str) -> dict[str, Any] | None:
        """The stored row of a message (``None``: no such message)."""
        rows = self._dicts("SELECT * FROM messages WHERE message_id = ?", [str(message_id)])
        return rows[0] if rows else None

    def messages(self, since: datetime | None = None, until: datetime | None = None
                 ) -> pd.DataFrame:
        """Messages with ``since <= ts < until``, oldest first (the ``messages`` columns)."""
        where, params = [], []
        if since is not None:
            where.append("ts >= ?")
            params.append(utc(since))
        if until is not None:
            where.append("ts < ?")
            params.append(utc(until))
        sql = "SELECT * FROM messages" + (" WHERE " + " AND ".join(where) if where else "")
        return self.query(sql + " ORDER BY ts, message_id", params)

    def rate_message(self, message_id: str, rating: float, *, now: datetime) -> bool:
        """Record a follow-up satisfaction rating (1 to 5) of a message; the first rating
        stands (a repeated one changes nothing). Returns whether it was written."""
        r = float(rating)
        if not 1.0 <= r <= 5.0:
            raise DataError(f"rating {rating!r} of message {message_id!r}: use 1 to 5")
        with self.transaction() as c:
            row = c.execute("SELECT rating FROM messages WHERE message_id = ?",
                            [str(message_id)]).fetchone()
            if row is None:
                raise NotFoundError(f"no message {message_id!r}")
            if row[0] is not None:
                return False
            c.execute("UPDATE messages SET rating = ?, rated_at = ? WHERE message_id = ?",
                      [r, utc(now), str(message_id)])
        return True

    # ------------------------------------------------------------------ replies
    def add_reply(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Store a reply to a stored message (``reply_id``, ``message_id``, ``agent``,
        ``text``, ``ts`` required; ``auto`` and ``resolves`` default to false and true).
        The reply carries the message's customer id. A reply that resolves sets the
        message's ``resolved_at`` (the first one stands). A reply id already stored is
        left as it is. Returns the stored reply and whether it was written now."""
        _required(row, "reply", ("reply_id", "message_id", "agent", "ts"))
        if row.get("text") is None:
            raise DataError("reply: field 'text' is missing; give the text that was sent")
        values = {c: row.get(c) for c in REPLY_COLUMNS}
        values["ts"] = utc(row["ts"])
        values["auto"] = bool(row.get("auto") or False)
        values["resolves"] = True if row.get("resolves") is None else bool(row["resolves"])
        cols = list(REPLY_COLUMNS)
        with self.transaction() as c:
            msg = c.execute("SELECT user_id FROM messages WHERE message_id = ?",
                            [str(row["message_id"])]).fetchone()
            if msg is None:
                raise NotFoundError(f"no message {row['message_id']!r} to reply to")
            values["user_id"] = msg[0]
            values["reply_id"] = str(row["reply_id"])
            values["message_id"] = str(row["message_id"])
            names = ", ".join(f'"{k}"' for k in cols)
            marks = ", ".join("?" for _ in cols)
            n = c.execute(f"INSERT OR IGNORE INTO replies ({names}) VALUES ({marks})",
                          [values[k] for k in cols]).fetchone()[0]
            if n and values["resolves"]:
                c.execute("UPDATE messages SET resolved_at = ? WHERE message_id = ? "
                          "AND (resolved_at IS NULL OR resolved_at > ?)",
                          [values["ts"], values["message_id"], values["ts"]])
        if n:
            return values, True
        rows = self._dicts("SELECT * FROM replies WHERE reply_id = ?", [values["reply_id"]])
        return rows[0], False

    def replies(self, message_id: str | None = None) -> pd.DataFrame:
        """Replies (of one message, or all), oldest first (the ``replies`` columns)."""
        if message_id is None:
            return self.query("SELECT * FROM replies ORDER BY ts, reply_id")
        return self.query("SELECT * FROM replies WHERE message_id = ? ORDER BY ts, reply_id",
                          [str(message_id)])

    # ------------------------------------------------------------------ answers
    def add_answers(self, rows: pd.DataFrame | Iterable[Mapping[str, Any]], *,
                    now: datetime) -> int:
        """Add knowledge-base entries as one new version (``answer_id``, ``questions``,
        ``answer`` required; ``intent``, ``tags``, ``language`` (default ``en``),
        ``active`` (default true)). An entry supersedes the earlier versions of its
        ``answer_id``. Returns the new version number (the previous one when no row)."""
        df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        with self.transaction() as c:
            version = int(c.execute("SELECT coalesce(max(version), 0) FROM answers"
                                    ).fetchone()[0])
            if df.empty:
                return version
            version += 1
            cols = list(ANSWER_COLUMNS)
            names = ", ".join(f'"{k}"' for k in cols)
            marks = ", ".join("?" for _ in cols)
            for i, r in enumerate(df.to_dict("records"), start=1):
                _required(r, f"answer row {i}", ("answer_id", "answer"))
                qs = r.get("questions")
                if qs is None or isinstance(qs, str) or not len(qs):
                    raise DataError(f"answer row {i} ({r['answer_id']!r}): 'questions' must "
                                    "be a non-empty list of question variants")
                tags = r.get("tags")
                tags = [] if tags is None or (isinstance(tags, float)) else list(tags)
                intent = r.get("intent")
                active = r.get("active")
                c.execute(f"INSERT OR REPLACE INTO answers ({names}) VALUES ({marks})", [
                    str(r["answer_id"]), version,
                    None if intent is None or intent != intent else str(intent),
                    [str(q) for q in qs], str(r["answer"]), [str(t) for t in tags],
                    str(r.get("language") or "en"),
                    True if active is None or active != active else bool(active), utc(now)])
        return version

    def answers(self, version: int | None = None) -> pd.DataFrame:
        """The knowledge base as of ``version`` (default: the latest): the newest row of
        each ``answer_id`` at or below it, inactive ones included (column ``active``)."""
        v = self.answers_version() if version is None else int(version)
        return self.query("""SELECT * EXCLUDE (k) FROM (
                SELECT *, row_number() OVER (PARTITION BY answer_id ORDER BY version DESC) k
                FROM answers WHERE version <= ?) WHERE k = 1 ORDER BY answer_id""", [v])

    def answers_version(self) -> int:
        """The latest knowledge-base version (0: empty)."""
        return int(self.scalar("SELECT coalesce(max(version), 0) FROM answers") or 0)
