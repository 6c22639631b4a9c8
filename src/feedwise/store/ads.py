"""Ad state: served ad impressions and campaign spend."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from feedwise.store.base import StoreBase
from feedwise.store.privacy import TOMBSTONE_PREFIX


class AdLedger(StoreBase):
    """Ad state (part of :class:`~feedwise.store.EventStore`): the ``ad_impressions`` and
    ``ad_spend`` tables the feed's frequency caps and budgets are rebuilt from."""

    def ad_state_writable(self) -> bool:
        """Whether ad state can be saved here (``False`` for a read-only database)."""
        return not self.scalar("SELECT readonly FROM duckdb_databases() "
                               "WHERE database_name = current_database()")

    def save_ad_state(self, impressions: pa.Table | pd.DataFrame,
                      spend: pa.Table | pd.DataFrame) -> int:
        """Append served impressions and replace campaign spend, in one transaction.

        Impressions of erased (tombstoned) users are skipped: an erased user stays erased.

        Args:
            impressions: Rows of ``ad_impressions`` (its columns, in its order). Arrow is
                scanned without the GIL, so concurrent requests are not stalled.
            spend: Rows of ``ad_spend`` (its columns, in its order), one per campaign.

        Returns:
            Impressions written.
        """
        n = 0
        with self.transaction() as c:
            if len(impressions):
                c.register("_fw_adimp", impressions)
                try:
                    n = c.execute(f"""INSERT INTO ad_impressions SELECT * FROM _fw_adimp a
                        WHERE NOT EXISTS (SELECT 1 FROM tombstones t WHERE t.digest =
                            sha256('{TOMBSTONE_PREFIX}' || a.user_id))""").fetchone()[0]
                finally:
                    c.unregister("_fw_adimp")
            c.register("_fw_adspend", spend)
            try:
                c.execute("INSERT OR REPLACE INTO ad_spend SELECT * FROM _fw_adspend")
            finally:
                c.unregister("_fw_adspend")
        return int(n)

    def ad_spend(self) -> pd.DataFrame:
        """Every row of ``ad_spend`` (campaign_id, day, spend_today, spend_total, updated_at)."""
        return self.query("SELECT * FROM ad_spend")

    def recent_ad_impressions(self, window_s: float) -> pd.DataFrame:
        """Impressions (user_id, campaign_id, ts) of the last ``window_s`` seconds before the
        newest one, oldest first."""
        return self.query("SELECT user_id, campaign_id, ts FROM ad_impressions "
                          "WHERE ts > (SELECT coalesce(max(ts), 0) FROM ad_impressions) - ? "
                          "ORDER BY ts", [window_s])

    def campaign_spend(self) -> pd.DataFrame:
        """Spend per campaign: campaign_id, spend_today, spend_total (no rows if none)."""
        return self.query("SELECT campaign_id, spend_today, spend_total FROM ad_spend")
