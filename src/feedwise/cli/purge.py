"""``feedwise purge``: delete events older than the retention period."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, open_store
from feedwise.errors import FeedwiseError


def purge(older_than_days: Annotated[float | None, typer.Option(
              "--older-than-days", help="Retention in days (default: "
              "FEEDWISE_RETENTION_DAYS).")] = None,
          db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """Delete events (and other per-user timed rows, rejects) older than N days.

    Example: feedwise purge --older-than-days 365
    """
    from feedwise.privacy import PrivacySettings
    from feedwise.privacy import purge as run_purge

    days = older_than_days if older_than_days is not None else \
        PrivacySettings().retention_days
    if days is None:
        raise FeedwiseError("give --older-than-days N (or set "
                            "FEEDWISE_RETENTION_DAYS)")
    with open_store(db) as store:
        out = run_purge(store, days, now=datetime.now(UTC))
    emit([{"table": t, "deleted": n} for t, n in sorted(out.items())], fmt,
         title=f"purged rows older than {days:g} days")


def register(app: typer.Typer) -> None:
    app.command("purge")(purge)
