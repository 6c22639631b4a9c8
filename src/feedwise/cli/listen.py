"""``feedwise listen``: what users say in comments, how they feel, how much they say it."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, err_console, open_store
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window

KeywordOption = Annotated[list[str] | None, typer.Option(
    "--keyword", "-w", help="A tracked keyword (repeat; default: the tags of the "
                            "most-commented posts).")]


def readable(table, grain: str):
    """The sentiment table for a terminal: shares as percentages with their intervals."""
    import pandas as pd

    if table.empty:
        return table
    out = pd.DataFrame({"group": table["group"]})
    if "period" in table:
        fmt = "%Y-%m-%d" if grain == "day" else "%Y-%m-%d %H:00"
        out["period"] = pd.to_datetime(table["period"], utc=True).dt.strftime(fmt)
    out["comments"] = table["comments"].astype(int)
    out["users"] = table["users"].astype(int)

    def pct(v, lo, hi) -> list[str]:
        return [f"{a:.0%} [{b:.0%}, {c:.0%}]" if pd.notna(a) else "-"
                for a, b, c in zip(v, lo, hi, strict=True)]

    out["negative (95% CI)"] = pct(table["negative_share"], table["negative_lo"],
                                   table["negative_hi"])
    out["net sentiment (95% CI)"] = [f"{a:+.2f} [{b:+.2f}, {c:+.2f}]" if pd.notna(a) else "-"
                                     for a, b, c in zip(table["net_sentiment"], table["net_lo"],
                                                        table["net_hi"], strict=True)]
    return out


def listen(
    start: FromOption = None,
    end: ToOption = None,
    keyword: KeywordOption = None,
    by: Annotated[str, typer.Option("--by", help="keyword, tag, brand, campaign or author.")
                  ] = "keyword",
    grain: Annotated[str, typer.Option("--grain", help="day, hour or all (the whole window)."
                                       )] = "all",
    top: Annotated[int, typer.Option("--top", min=0, help="Top positive and negative "
                                     "comments to list (by reach).")] = 3,
    model: Annotated[str | None, typer.Option("--model", help="Folder of a trained sentiment model "
                                              "(feedwise sentiment train; default: the "
                                              "built-in analyser).")] = None,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Sentiment and volume of comments per keyword (or tag, brand, campaign, author) with
    95% intervals, share of voice between the keywords, and the most-reached positive and
    negative comments. Groups under k users are suppressed.

    Example: feedwise listen --keyword running --keyword Acme --grain day
    """
    from feedwise.analytics.listening import (
        comments_from_scope,
        default_keywords,
        score_comments,
        sentiment_table,
        share_of_voice,
        top_comments,
    )
    from feedwise.analytics.scope import Scope
    from feedwise.errors import ConfigError

    if grain not in ("day", "hour", "all"):
        raise ConfigError(f"--grain must be day, hour or all, not {grain!r}")
    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        with Scope(store, t_start, t_end, k=k) as scope:
            comments = comments_from_scope(scope)
    analyser = None
    if model:
        from feedwise.text.sentiment import load_analyser

        analyser = load_analyser(model)
    err_console.print(f"scoring {len(comments):,} comments "
                      f"({t_start.date()} to {t_end.date()})")
    scored = score_comments(comments, analyser)
    if scored.empty and fmt == Format.table:
        err_console.print("no comments with text in the window: ingest comment events with "
                          "a `text` field (see docs/listening.md)")
        return
    kws = list(keyword) if keyword else default_keywords(scored)
    table = sentiment_table(scored, by, None if grain == "all" else grain, keywords=kws, k=k)
    if fmt != Format.table:
        emit(table, fmt)
        return
    emit(readable(table, grain), fmt, title=f"sentiment by {by}")
    if by == "keyword" and kws:
        emit(share_of_voice(scored, kws, k=k).drop(columns=["share_lo", "share_hi"]), fmt,
             title="share of voice")
    if top:
        for pol in ("negative", "positive"):
            t = top_comments(scored, pol, top, k=k)
            t["ts"] = t["ts"].astype(str).str[:16]
            emit(t, fmt, title=f"top {pol} comments (by reach of the post)")


def register(app: typer.Typer) -> None:
    app.command("listen")(listen)
