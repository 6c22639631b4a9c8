"""``feedwise care``: customer-care analytics.

Examples::

    feedwise care kpis
    feedwise care kpis --by channel --format json
"""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, fails_on, open_store
from feedwise.cli._insight import parse_window

FromOption = Annotated[str | None, typer.Option(
    "--from", help="Messages that arrived from (ISO date/time, UTC; default: all).")]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="Messages that arrived before (ISO, exclusive; default: all).")]

care_app = typer.Typer(help="Customer care: response times, automation, escalation, "
                       "satisfaction.", no_args_is_help=True)


@care_app.command("kpis")
@fails_on(ValueError)
def kpis(
    by: Annotated[str | None, typer.Option("--by", help="Group by channel, intent or agent "
                                           "(default: all messages).")] = None,
    start: FromOption = None,
    end: ToOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """First-response and resolution times, share answered automatically, share escalated,
    satisfaction; in total or per channel, intent or agent.

    Example: feedwise care kpis --by channel
    """
    from feedwise.care.kpis import care_kpis

    since, until = parse_window(start, end)
    with open_store(db) as store:
        df = care_kpis(store, since=since, until=until, by=by)
    emit(df.reset_index(), fmt, title="care KPIs")


def register(app: typer.Typer) -> None:
    app.add_typer(care_app, name="care")
