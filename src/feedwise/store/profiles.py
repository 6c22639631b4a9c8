"""Per-user profiles the analytics write back (``user_profiles``)."""

from __future__ import annotations

import pandas as pd

from feedwise.schema import PROFILE_COLUMNS
from feedwise.store.base import StoreBase


class Profiles(StoreBase):
    """Stored user profiles (part of :class:`~feedwise.store.EventStore`)."""

    def save_profiles(self, df: pd.DataFrame) -> int:
        """Insert or replace the profiles of ``df`` (the ``user_profiles`` columns) and
        delete those of users who withdrew analytics consent, in one transaction; returns
        the rows written. Columns ``df`` lacks are stored as NULL."""
        have = {c: t for c, t in PROFILE_COLUMNS.items() if c in df.columns}
        cols = ", ".join(f'"{c}"' for c in have)
        casts = ", ".join(f'CAST("{c}" AS {t})' for c, t in have.items())
        with self.transaction() as c:
            c.register("_fw_profiles", df)
            try:
                c.execute("""DELETE FROM user_profiles WHERE user_id IN (
                    SELECT user_id FROM users WHERE consent_analytics = false)""")
                c.execute(f"INSERT OR REPLACE INTO user_profiles ({cols}) "
                          f"SELECT {casts} FROM _fw_profiles")
            finally:
                c.unregister("_fw_profiles")
        return len(df)

    def profiles(self) -> pd.DataFrame:
        """The stored profiles by user id (empty, with the columns, when there are none or
        a read-only store predates the table)."""
        if not self.scalar("SELECT count(*) FROM information_schema.tables "
                           "WHERE table_name = 'user_profiles'"):
            return pd.DataFrame(columns=list(PROFILE_COLUMNS))
        return self.query("SELECT * FROM user_profiles ORDER BY user_id")
