"""The store's records: items (posts and ad creatives), users and campaigns."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import DataError
from feedwise.schema import CAMPAIGN_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, Item, User
from feedwise.store.base import StoreBase


class Records(StoreBase):
    """Items, users and campaigns (part of :class:`~feedwise.store.EventStore`)."""

    def item_titles(self) -> dict[str, str]:
        """Item id -> title of every item that has one (labels for reasons)."""
        df = self.query("SELECT item_id, title FROM items WHERE title IS NOT NULL")
        return dict(zip(df["item_id"], df["title"], strict=True))

    def _upsert(self, table: str, cols: Mapping[str, str], key: str, df: pd.DataFrame) -> int:
        if df.empty:
            return 0
        missing = [c for c in df.columns if c not in cols]
        if missing:
            raise DataError(f"{table}: unknown column(s) {missing}; columns are {list(cols)}")
        if df[key].isna().any():
            bad = int(np.flatnonzero(df[key].isna().to_numpy())[0])
            raise DataError(f"{table}: row {bad + 1} has no {key}")
        df = df.drop_duplicates(subset=[key], keep="last")
        names = ", ".join(f'"{c}"' for c in df.columns)
        casts = ", ".join(f'CAST("{c}" AS {cols[c]}) AS "{c}"' for c in df.columns)
        with self._lock:
            self.con.register("_fw_up", df)
            try:
                self.con.execute(f"INSERT OR REPLACE INTO {table} ({names}) "
                                 f"SELECT {casts} FROM _fw_up")
            finally:
                self.con.unregister("_fw_up")
        return len(df)

    def upsert_items(self, items: pd.DataFrame | Iterable[Item | Mapping[str, Any]]) -> int:
        """Insert or replace items (posts and ad creatives) by ``item_id``."""
        if not isinstance(items, pd.DataFrame):
            items = pd.DataFrame([Item.model_validate(i).model_dump() for i in items])
        return self._upsert("items", ITEM_COLUMNS, "item_id", items)

    def upsert_users(self, users: pd.DataFrame | Iterable[User | Mapping[str, Any]]) -> int:
        """Insert or replace users (consent flags and attributes) by ``user_id``."""
        if isinstance(users, pd.DataFrame) and self.pseudonymizer is not None and len(users):
            users = users.assign(user_id=[self.user_key(u) for u in users["user_id"]])
        if not isinstance(users, pd.DataFrame):
            now = pd.Timestamp.now(tz="UTC")
            rows = []
            for u in users:
                u = User.model_validate(u)
                rows.append({"user_id": self.user_key(u.user_id),
                             "consent_personalization": u.consent.personalization,
                             "consent_ads": u.consent.ads,
                             "consent_analytics": u.consent.analytics,
                             "consent_updated_at": now, "consent_source": "api",
                             "attributes": json.dumps(u.attributes),
                             "timezone": u.timezone})
            users = pd.DataFrame(rows)
        return self._upsert("users", USER_COLUMNS, "user_id", users)

    def upsert_campaigns(self, campaigns: pd.DataFrame) -> int:
        """Insert or replace campaigns by ``campaign_id``."""
        return self._upsert("campaigns", CAMPAIGN_COLUMNS, "campaign_id", campaigns)

    def items(self) -> pd.DataFrame:
        return self.query("SELECT * FROM items ORDER BY item_id")

    def posts(self) -> pd.DataFrame:
        """The organic items (not ad creatives): the catalogue recommenders learn from,
        including posts nobody has engaged with yet."""
        return self.query("SELECT * FROM items WHERE kind IS DISTINCT FROM 'ad' "
                          "ORDER BY item_id")  # a table upserted without kind: posts

    def users(self) -> pd.DataFrame:
        return self.query("SELECT * FROM users ORDER BY user_id")

    def campaigns(self) -> pd.DataFrame:
        return self.query("SELECT * FROM campaigns ORDER BY campaign_id")

    # ------------------------------------------------------------------ rows as dicts
    def get_item(self, item_id: str) -> dict[str, Any] | None:
        """The item's row, or ``None`` if there is no such item."""
        rows = self._dicts("SELECT * FROM items WHERE item_id = ?", [item_id])
        return rows[0] if rows else None

    def list_items(self, *, kind: str | None = None, limit: int = 100, offset: int = 0
                   ) -> list[dict[str, Any]]:
        """A page of items by id (only those of ``kind`` when given)."""
        where, params = ("WHERE kind = ?", [kind]) if kind else ("", [])
        return self._dicts(f"SELECT * FROM items {where} ORDER BY item_id LIMIT ? OFFSET ?",
                           [*params, limit, offset])

    def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        """The campaign's row, or ``None`` if there is no such campaign."""
        rows = self._dicts("SELECT * FROM campaigns WHERE campaign_id = ?", [campaign_id])
        return rows[0] if rows else None

    def list_campaigns(self, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every campaign by id (only those with ``status`` when given)."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        return self._dicts(f"SELECT * FROM campaigns {where} ORDER BY campaign_id", params)

    def get_user(self, stored_id: str) -> dict[str, Any] | None:
        """The user's row by stored id (see :meth:`user_key`), or ``None``."""
        rows = self._dicts("SELECT * FROM users WHERE user_id = ?", [stored_id])
        return rows[0] if rows else None

    def consent_flags(self) -> pd.DataFrame:
        """``user_id`` and the consent flags of every user (NULL: never set, granted)."""
        return self.query("SELECT user_id, consent_personalization, consent_ads, "
                          "consent_analytics FROM users")
