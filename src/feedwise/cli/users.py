"""``feedwise users``: the data-subject rights — erase, export, consent.

User ids are the external ids; with ``FEEDWISE_PSEUDONYM_KEY`` set they are pseudonymised
exactly as at ingestion, so the commands find the stored pseudonym. Output never repeats
the pseudonym or the key.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    console,
    emit,
    emit_jsonl,
    open_store,
)

UserArg = Annotated[str, typer.Argument(help="The user's external id.")]

users_app = typer.Typer(help="Data-subject rights: erase, export, consent.",
                        no_args_is_help=True)


@users_app.command("erase")
def erase(user_id: UserArg, db: DbOption = None, fmt: FormatOption = Format.table,
          yes: Annotated[bool, typer.Option("--yes", "-y",
                                            help="Do not ask for confirmation.")] = False
          ) -> None:
    """Delete everything about a user and block re-ingestion of their events.

    Running models pick the erasure up on their next load (the server removes the
    user from its loaded model at once through DELETE /v1/users/{id}).
    """
    from feedwise.privacy import erase_user

    if not yes and not typer.confirm(f"erase every record of user {user_id!r}?"):
        raise typer.Exit(1)
    with open_store(db) as store:
        rep = erase_user(store, user_id, now=datetime.now(UTC))
    rows = [{"table": t, "deleted": n} for t, n in sorted(rep.deleted.items())]
    emit(rows, fmt, title=f"erased: {rep.rows} rows; tombstone recorded")


@users_app.command("export")
def export(user_id: UserArg, db: DbOption = None,
           fmt: Annotated[Format, typer.Option(
               "--format", "-f", help="json: the full export; jsonl: one row per line "
               "with its table; csv / table: rows per table.")] = Format.json,
           out: Annotated[Path | None, typer.Option(
               "--out", "-o", help="Write the JSON export to this file.")] = None) -> None:
    """Everything held about a user (the right of access)."""
    from feedwise.privacy import dumps_export, export_user

    with open_store(db) as store:
        data = export_user(store, user_id, now=datetime.now(UTC))
    if out is not None:
        out.write_text(dumps_export(data))
        console.print(f"wrote {out}")
        return
    if fmt == Format.json:
        sys.stdout.write(dumps_export(data) + "\n")
    elif fmt == Format.jsonl:
        emit_jsonl({"table": t, **r} for t, rows in data["tables"].items() for r in rows)
    else:
        emit([{"table": t, "rows": len(r)} for t, r in data["tables"].items()], fmt,
             title="data held about the user")


@users_app.command("consent")
def consent(user_id: UserArg,
            personalization: Annotated[bool | None, typer.Option(
                "--personalization/--no-personalization",
                help="Personalised feed and profile.")] = None,
            ads: Annotated[bool | None, typer.Option(
                "--ads/--no-ads", help="Targeted ads (without: contextual ads only).")
            ] = None,
            analytics: Annotated[bool | None, typer.Option(
                "--analytics/--no-analytics", help="Events counted in reports.")] = None,
            source: Annotated[str, typer.Option(
                help="Where the consent was given (recorded with it).")] = "cli",
            db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """Show a user's consent, or change some flags (recorded with time and source)."""
    from feedwise.privacy import get_consent, set_consent

    with open_store(db) as store:
        if personalization is None and ads is None and analytics is None:
            rec = get_consent(store, user_id)
            if rec is None:
                console.print("no consent record: the defaults apply (all granted)")
                return
        else:
            rec = set_consent(store, user_id, now=datetime.now(UTC), source=source,
                              personalization=personalization, ads=ads,
                              analytics=analytics)
    emit([json.loads(rec.model_dump_json())], fmt, title="consent")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
