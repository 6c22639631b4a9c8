"""``feedwise kpis``: engagement KPIs of a window, or their series per period."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, fails_on, open_store
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window


@fails_on(ValueError)
def kpis(
    start: FromOption = None,
    end: ToOption = None,
    grain: Annotated[str | None, typer.Option(
        "--grain", help="Print the series per hour/day/week/month instead of the "
                        "window's summary.")] = None,
    session_gap: Annotated[float, typer.Option("--session-gap", help="Minutes of "
                                               "inactivity that end a session.")] = 30.0,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """DAU/WAU/MAU, sessions, CTR, engagement, hide, ad load, revenue, eCPM for
    [--from, --to), with the change against the period before (consenting users only;
    figures over fewer than k users are blanked)."""
    from feedwise.analytics import kpis as k_
    from feedwise.analytics.kpis import KPI_LABELS
    from feedwise.analytics.scope import Scope
    from feedwise.analytics.sessions import SessionConfig

    t_from, t_to = parse_window(start, end)
    sess = SessionConfig(gap_minutes=session_gap)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        with Scope(store, t_start, t_end, k=k) as scope:
            if grain:
                rows = k_.kpi_series(scope, grain, sess)  # type: ignore[arg-type]
            else:
                cur = k_.kpi_summary(scope, sess)
                with scope.previous() as prev_scope:
                    prev = k_.kpi_summary(prev_scope, sess)
                change = k_.kpi_change(cur, prev)
                rows = [{"kpi": key, "label": KPI_LABELS.get(key, (key,))[0],
                         "value": cur[key], "previous": prev.get(key),
                         "change": change.get(key)} for key in cur]
    emit(rows, fmt, title=f"KPIs {t_start:%Y-%m-%d %H:%M} → {t_end:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.command("kpis")(kpis)
