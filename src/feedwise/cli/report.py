"""``feedwise report``: the behaviour-insight report as one self-contained HTML file."""

from __future__ import annotations

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
from feedwise.cli.spark import emit_kpis
from feedwise.errors import FeedwiseError


@fails_on(ValueError)
def report(
    start: FromOption = None,
    end: ToOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path(
        "report.html"),
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also print a PDF here "
                                             "(needs Chromium).")] = None,
    png: Annotated[Path | None, typer.Option("--png", help="Also save a full-page PNG "
                                             "here (needs Chromium).")] = None,
    k: KOption = 10,
    grain: Annotated[str, typer.Option("--grain", help="Trend period: hour, day, week, "
                                       "month.")] = "day",
    segments: Annotated[int, typer.Option("--segments", min=1, help="Behavioural "
                                          "segments (k-means).")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Clustering seed.")] = 0,
    session_gap: Annotated[float, typer.Option("--session-gap", help="Minutes of "
                                               "inactivity that end a session.")] = 30.0,
    write_profiles: Annotated[bool, typer.Option(
        "--write-profiles/--no-write-profiles",
        help="Store user profiles in the user_profiles table for the feed.")] = False,
    title: Annotated[str, typer.Option("--title", help="Report title.")] =
        "Behaviour insight",
    engine: Annotated[str, typer.Option(
        "--engine", help="embedded (the DuckDB store: the HTML report) or spark (the KPI "
                         "tables as Spark SQL over an exported Parquet layout).")]
        = "embedded",
    events: Annotated[str | None, typer.Option(
        "--events", help="With --engine spark: export root (path or hdfs://, s3a:// URI) "
                         "written by feedwise export.")] = None,
    master: Annotated[str | None, typer.Option(
        "--master", envvar="FEEDWISE_SPARK_MASTER", help="Spark master.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Write the behaviour-insight report (KPIs, trends, retention, activity, funnel,
    segments, content, campaigns) for [--from, --to) as one offline HTML file; with
    ``--engine spark`` print the KPI tables computed on Spark instead.

    Example: feedwise report --from 2026-01-01 --to 2026-02-01 --out report.html
    """
    from feedwise.report.builder import SECTIONS, ReportConfig, build_report
    from feedwise.report.html import write_html

    if engine == "spark":
        from feedwise.engines.spark import report_spark

        if not events:
            raise FeedwiseError("--engine spark needs --events PATH (run "
                                "feedwise export --format parquet --out PATH first)")
        emit_kpis(report_spark(events, master=master, k=k), fmt)
        return
    if engine != "embedded":
        raise FeedwiseError(f"unknown engine {engine!r}: use embedded or spark")
    t_from, t_to = parse_window(start, end)
    with open_store(db) as store:
        t_start, t_end = resolve_window(store, t_from, t_to)
        cfg = ReportConfig(k=k, grain=grain, n_segments=segments, seed=seed,
                           session_gap_minutes=session_gap,
                           write_profiles=write_profiles)
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("report", total=len(SECTIONS) + 1)

            def step(name: str) -> None:
                bar.update(task, advance=1, description=name)

            rep = build_report(store, t_start, t_end, cfg, progress=step)
            bar.update(task, description="html")
            path = write_html(rep, out, title=title)
            bar.update(task, advance=1)
    written = [path]
    if pdf is not None or png is not None:
        from feedwise.report.export import export

        written += export(path, pdf=pdf, png=png)
    for p in written:
        err_console.print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    rows = [{"section": n, "seconds": round(t, 3)} for n, t in rep.timings.items()]
    rows.append({"section": "total", "seconds": round(sum(rep.timings.values()), 3)})
    emit(rows, fmt, title=f"report {t_start:%Y-%m-%d} → {t_end:%Y-%m-%d}: time per section")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
