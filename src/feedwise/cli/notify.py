"""``feedwise notify``: plan notifications (who gets what when) and queue them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import ValidationError

from feedwise.cli._common import DbOption, Format, FormatOption, emit, err_console, open_store
from feedwise.cli._insight import parse_when
from feedwise.errors import ConfigError

notify_app = typer.Typer(help="Notifications: consent, caps, quiet hours in local time, "
                              "send-time optimisation (docs/notifications.md).")


def _quiet(text: str) -> tuple[int, int]:
    try:
        a, b = (int(x) for x in text.split("-"))
    except ValueError:
        raise ConfigError(f"--quiet {text!r}: give local hours as START-END, e.g. 22-8 "
                          "(none: 0-0)") from None
    return a, b


@notify_app.command("plan")
def plan_cmd(
    now: Annotated[str | None, typer.Option("--now", help="Plan from this time (ISO, UTC; "
                                            "default: the current time).")] = None,
    write: Annotated[bool, typer.Option("--write/--dry-run", help="Queue the plan in the "
                                        "store's notifications table.")] = False,
    max_per_day: Annotated[int, typer.Option("--max-per-day", min=1, help="Cap per local "
                                             "day.")] = 1,
    min_gap: Annotated[float, typer.Option("--min-gap", min=0, help="Hours between two "
                                           "notifications of a user.")] = 4.0,
    quiet: Annotated[str, typer.Option("--quiet", help="Quiet hours on the user's clock, "
                                       "START-END.")] = "22-8",
    fallback_zone: Annotated[str, typer.Option("--fallback-zone", help="Clock of users "
                                               "with a missing or unknown zone.")] = "UTC",
    digest_size: Annotated[int, typer.Option("--digest-size", min=1, help="Posts per "
                                             "digest.")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the send-time sampler.")] = 0,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Who gets what when: one digest per consenting user in the next 24 hours, at the
    local hour Thompson sampling picks from their activity and past opens, with its
    propensity, outside quiet hours and within the caps.

    Example: `feedwise notify plan --now 2026-03-02T06:00Z --quiet 22-8 --format json`
    """
    from feedwise.localtime import zone
    from feedwise.notifications import NotificationRules, plan

    start, end = _quiet(quiet)
    try:
        rules = NotificationRules(max_per_day=max_per_day, min_gap_hours=min_gap,
                                  quiet_start=start, quiet_end=end,
                                  fallback_zone=fallback_zone)
    except ValidationError as e:
        raise ConfigError("; ".join(str(x["msg"]).removeprefix("Value error, ")
                                    for x in e.errors())) from None
    zone(None, fallback=fallback_zone)  # a bad fallback zone fails here, naming the fix
    when = parse_when(now, "--now") if now else datetime.now(UTC)
    with open_store(db) as store:
        df = plan(store, when, rules, digest_size=digest_size, write=write, seed=seed)
    if write:
        err_console.print(f"queued {len(df):,} notifications")
    if df.empty:
        err_console.print("no notification planned (no consenting user with an open slot)")
    out = df[["user_id", "ts", "local_hour", "timezone", "tz_reason", "propensity",
              "item_ids", "notification_id"]].copy()
    out["ts"] = [t.strftime("%Y-%m-%d %H:%M") for t in out["ts"]]
    out["tz_reason"] = out["tz_reason"].fillna("")
    out["item_ids"] = [",".join(x) for x in out["item_ids"]]
    if fmt == Format.table:
        out = out.drop(columns=["notification_id"]).rename(
            columns={"ts": "send (UTC)", "local_hour": "local hour"})
    emit(out, fmt, title=f"notifications planned from {when:%Y-%m-%d %H:%M} UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
