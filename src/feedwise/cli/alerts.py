"""``feedwise alerts``: bursts of negative sentiment or volume per tracked keyword."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    emit,
    emit_jsonl,
    err_console,
    open_store,
)
from feedwise.cli._insight import FromOption, KOption, ToOption, parse_window, resolve_window
from feedwise.cli.listen import KeywordOption


def alerts(
    start: FromOption = None,
    end: ToOption = None,
    keyword: KeywordOption = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", help="negative and/or volume (repeat; default both).")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", min=0.1, help="CUSUM threshold (higher: fewer, later alerts; default: "
                                     "the detector's, 12).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Folder of a trained sentiment model "
                                              "(default: the built-in analyser).")] = None,
    k: KOption = 10,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Detect bursts of negative comments (or of all comments) about each tracked keyword;
    each alert shows its window, the baseline (expected comments), the observed count and
    a sample comment (json/jsonl: up to five samples). The detector reads two days of
    history before --from to learn the baseline.

    Example: feedwise alerts --keyword Acme --keyword running --from 2025-01-10
    """
    from feedwise.analytics.alerts import METRICS, BurstDetector, alerts_frame
    from feedwise.analytics.listening import comments_from_scope, default_keywords, score_comments
    from feedwise.analytics.scope import Scope

    det = BurstDetector() if threshold is None else BurstDetector(threshold=threshold)
    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        warm = t_start - timedelta(hours=det.warmup_hours)
        with Scope(store, warm, t_end, k=k) as scope:
            comments = comments_from_scope(scope)
    analyser = None
    if model:
        from feedwise.text.sentiment import load_analyser

        analyser = load_analyser(model)
    err_console.print(f"scoring {len(comments):,} comments")
    scored = score_comments(comments, analyser)
    kws = list(keyword) if keyword else default_keywords(scored)
    found = [a for a in det.detect(scored, kws, metrics=list(metric or METRICS), start=warm,
                                   end=t_end) if a.detected_at >= t_start]
    err_console.print(f"{len(found)} alert(s) over {len(kws)} keyword(s): {', '.join(kws)}")
    if fmt in (Format.json, Format.jsonl):
        if fmt == Format.jsonl:
            emit_jsonl(a.as_dict() for a in found)
        else:
            sys.stdout.write(json.dumps([a.as_dict() for a in found], indent=2) + "\n")
        return
    t = alerts_frame(found)
    if fmt == Format.table and not len(t):
        why = ("no comments with text in the window: ingest comment events with a `text` "
               "field" if scored.empty else "no burst of negative comments or of volume")
        err_console.print(f"no alerts ({why})")
        return
    if fmt == Format.table and len(t):
        t = t.assign(detected_at=t["detected_at"].str[:16].str.replace("T", " "),
                     window=t["window_start"].str[11:16] + "-" + t["window_end"].str[11:16],
                     sample=t["sample"].str[:48])
        t = t[["detected_at", "keyword", "metric", "window", "baseline", "observed", "sample"]]
    emit(t, fmt, title="alerts")


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
