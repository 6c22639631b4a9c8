"""``feedwise best-time``: when to post, adjusted for how many of the audience are online."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    emit,
    err_console,
    fails_on,
    open_store,
)
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window


@fails_on(ValueError)
def best_time(
    audience: Annotated[str, typer.Option(
        "--audience", help="all, segment:<label> (or a lifecycle stage) or "
                           "followers:<author_id>.")] = "all",
    tag: Annotated[str | None, typer.Option("--tag", help="Only posts with this tag, "
                                            "e.g. '#fitness'.")] = None,
    kind: Annotated[str, typer.Option("--kind", help="Item kind of the posts.")] = "post",
    clock: Annotated[str | None, typer.Option(
        "--clock", help="IANA zone the hours are reported in (default: the audience's most "
                        "common zone, else UTC).")] = None,
    page_csv: Annotated[Path | None, typer.Option(
        "--page-csv", help="Analyse page-level data instead of the store: a CSV with one "
                           "row per post (the UCI Facebook metrics layout; docs/timing.md).")
    ] = None,
    start: FromOption = None,
    end: ToOption = None,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Expected engagement of a post published at each weekday x hour, adjusted for the
    audience online, with 95% intervals and a recommendation in plain words.

    Examples:

        feedwise best-time --tag '#fitness' --audience all

        feedwise best-time --page-csv dataset_Facebook.csv

    Example: feedwise best-time --tag running --from 2026-01-01 --to 2026-02-01
    """
    if page_csv is not None:
        _page(page_csv, fmt)
        return
    from feedwise.analytics.besttime import best_time as fit_best_time
    from feedwise.analytics.scope import Scope

    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        err_console.print("fitting the publish-time model (choosing decay and smoothing on "
                          "a validation share of the posts)...")
        with Scope(store, t_start, t_end, k=k) as scope:
            res = fit_best_time(scope, audience=audience, tag=tag, kind=kind, clock=clock)
    if fmt == Format.json:
        sys.stdout.write(json.dumps(res.to_dict(), indent=2, default=str) + "\n")
        return
    cols = ["hour", "effect", "lo", "hi", "online", "raw_mean"]
    emit(res.hours[cols].round(4), fmt,
         title=f"publish-hour effect ({res.clock} clock; adjusted for the audience online)")
    err_console.print(f"{res.n_posts:,} posts; audience {res.audience}; hours on the "
                      f"{res.clock} clock")
    err_console.print(f"recommendation: {res.recommendation}")


def _page(path: Path, fmt: Format) -> None:
    from feedwise.analytics.pagetime import fit_page, read_page_posts

    df, dropped = read_page_posts(path)
    for r in dropped.itertuples(index=False):
        err_console.print(f"{path}: row {r.row}, field {r.field}: {r.reason}")
    fit = fit_page(df, dropped)
    if fmt == Format.json:
        sys.stdout.write(json.dumps(fit.to_dict(), indent=2, default=str) + "\n")
        return
    cols = ["term", "level", "coef", "lo", "hi", "p", "pct", "significant"]
    emit(fit.effects[cols].round(4), fmt,
         title="log(1 + engaged users) ~ type + paid + hour + weekday + month (OLS, 95% CI)")
    err_console.print(f"{fit.n} posts, R^2 {fit.r2:.3f}; not significant at 5%: "
                      f"{', '.join(fit.not_significant()) or 'none'}")
    err_console.print(f"recommendation: {fit.recommendation}")


def register(app: typer.Typer) -> None:
    app.command("best-time")(best_time)
