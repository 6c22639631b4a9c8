"""``feedwise profiles``: build user profiles and segments; store them for the feed."""

from __future__ import annotations

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
def profiles(
    start: FromOption = None,
    end: ToOption = None,
    segments: Annotated[int, typer.Option("--segments", min=1, help="Behavioural "
                                          "segments (k-means).")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Clustering seed.")] = 0,
    half_life: Annotated[float, typer.Option("--half-life", help="Half-life of interest "
                                             "weights, days.")] = 14.0,
    write: Annotated[bool, typer.Option("--write/--dry-run", help="Store the profiles in "
                                        "the user_profiles table.")] = True,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Profile every consenting user (interests, active hours, engagement level, ad
    sensitivity, lifecycle, segment), store them in user_profiles and print the
    segments with their descriptions (groups under k users suppressed).

    Example: feedwise profiles --from 2026-01-01 --to 2026-02-01 --write
    """
    from feedwise.analytics.profiles import UserProfiler
    from feedwise.analytics.scope import Scope
    from feedwise.analytics.segments import Segmenter, segment_table

    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        with Scope(store, t_start, t_end, k=k) as scope:
            prof = UserProfiler(half_life_days=half_life).fit(scope)
        seg = Segmenter(n_clusters=segments, seed=seed).fit(prof.profiles_)
        prof.profiles_["segment"] = seg.predict(prof.profiles_).to_numpy()
        n = prof.write(store) if write else 0
    if write:
        err_console.print(f"stored {n:,} profiles in user_profiles")
    table = segment_table(prof.profiles_, seg, k)
    emit(table.drop(columns=["suppressed"]), fmt, title="segments")


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles)
