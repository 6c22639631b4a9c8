"""``feedwise kpis``: engagement KPIs of a window, or their series per period."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, fails_on, open_store
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window

if TYPE_CHECKING:
    import pandas as pd


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
    layout: Annotated[str | None, typer.Option(
        "--layout", help="Series layout: long (period, kpi, value: one row per figure) or "
                         "wide (one column per KPI, one row per period). Default: long.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """DAU/WAU/MAU, sessions, CTR, engagement, hide, ad load, revenue, eCPM for
    [--from, --to), with the change against the period before (consenting users only;
    figures over fewer than k users are blanked).

    Example: feedwise kpis --from 2026-01-01 --to 2026-02-01 --grain day
    """
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
                rows = _series_layout(rows, layout, fmt)
            else:
                cur = k_.kpi_summary(scope, sess)
                with scope.previous() as prev_scope:
                    prev = k_.kpi_summary(prev_scope, sess)
                change = k_.kpi_change(cur, prev)
                rows = [{"kpi": key, "label": KPI_LABELS.get(key, (key,))[0],
                         "value": cur[key], "previous": prev.get(key),
                         "change": change.get(key)} for key in cur]
    emit(rows, fmt, title=f"KPIs {t_start:%Y-%m-%d %H:%M} → {t_end:%Y-%m-%d %H:%M} UTC")


def _series_layout(wide: pd.DataFrame, layout: str | None, fmt: Format) -> pd.DataFrame:
    """The series as asked: ``long`` (period, kpi, label, value) or ``wide``."""
    from feedwise.analytics.kpis import KPI_LABELS

    layout = layout or "long"
    if layout not in ("long", "wide"):
        raise ValueError(f"--layout {layout!r}: use long or wide")
    if layout == "wide" or wide.empty:
        return wide
    key = "period" if "period" in wide.columns else wide.columns[0]
    long = wide.melt(id_vars=[key], var_name="kpi", value_name="value")
    order = {c: i for i, c in enumerate(wide.columns)}
    long["label"] = [KPI_LABELS.get(x, (x,))[0] for x in long["kpi"]]
    long = long.sort_values([key, "kpi"], key=lambda s: s.map(order) if s.name == "kpi"
                            else s, kind="stable")
    return long[[key, "kpi", "label", "value"]].reset_index(drop=True)


def register(app: typer.Typer) -> None:
    app.command("kpis")(kpis)
