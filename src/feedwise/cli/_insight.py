"""Window options shared by the insight commands (report, kpis, profiles)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from feedwise.errors import ConfigError

if TYPE_CHECKING:
    from feedwise.store import EventStore

FromOption = Annotated[str | None, typer.Option(
    "--from", help="Start (ISO date/time, UTC; default: 28 days before --to).")]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="End, exclusive (ISO; default: midnight after the last event).")]
KOption = Annotated[int, typer.Option("--k", min=1, help="Suppress cells describing fewer "
                                      "than k users.")]


def parse_when(value: str, name: str) -> datetime:
    """An ISO date/time option as a tz-aware UTC datetime."""
    from feedwise.schema import utc

    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not a date or time; use ISO format such as "
                          "2026-01-31 or 2026-01-31T18:00:00Z") from None


def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """Parse --from/--to (before touching the store, so typos fail fast)."""
    return (parse_when(start, "--from") if start else None,
            parse_when(end, "--to") if end else None)


def resolve_window(store: EventStore, start: datetime | None, end: datetime | None,
                   days: int = 28) -> tuple[datetime, datetime]:
    """Fill a missing end with the midnight after the last event, a missing start with
    ``days`` before the end."""
    if end is None:
        last = store.last_event_time()
        if last is None:
            raise ConfigError("the store has no events; ingest some first "
                              "(feedwise ingest FILE)")
        end = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (start or end - timedelta(days=days)), end
