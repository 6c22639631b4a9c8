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
                                            help="Do not ask for confirmation.")] = False,
          registry: Annotated[str | None, typer.Option(
              "--registry", envvar="FEEDWISE_REGISTRY",
              help="Model registry whose versions are rewritten without the user "
                   "(default: the store's, STORE.models beside it).")
          ] = None,
          models: Annotated[list[Path] | None, typer.Option(
              "--models", help="Also clean the saved models under this folder (repeatable; "
              "FEEDWISE_ERASURE_PATHS, default ./models, is always cleaned).")] = None,
          exports: Annotated[list[Path] | None, typer.Option(
              "--exports", help="Also clean the exports under this folder: Parquet exports "
              "(feedwise export) are rewritten, the user's exports (feedwise users export "
              "--out) deleted (repeatable).")] = None,
          compact: Annotated[bool | None, typer.Option(
              "--compact/--no-compact", help="Rewrite the database file afterwards so "
              "deleted rows leave no bytes behind (default: FEEDWISE_ERASURE_COMPACT, on).")
          ] = None) -> None:
    """Delete everything about a user and block re-ingestion of their events.

    Deletes the user's rows in every table, the posts they authored, their id in other
    users' follow lists and event contexts, rewrites every registry version and saved
    model (./models, --models) without them, cleans exports (--exports), and rewrites the
    database file (docs/privacy.md lists each place). A running server is reached through
    DELETE /v1/users/{id} instead (it holds the store).

    Example: feedwise users erase u42 --yes
    """
    from feedwise.deployment import Deployment
    from feedwise.privacy import PrivacySettings, erase_user
    from feedwise.registry import ModelRegistry
    from feedwise.store.base import default_db_path

    if not yes and not typer.confirm("erase every record of this user?"):
        raise typer.Exit(1)
    settings = PrivacySettings()
    folders = [*settings.erasure_folders(), *(models or []), *(exports or [])]
    registry = registry or str(Deployment.for_store(db or default_db_path()).registry_dir)
    with open_store(db) as store:
        rep = erase_user(store, user_id, now=datetime.now(UTC),
                         registries=[ModelRegistry(registry)], folders=folders,
                         compact=settings.erasure_compact if compact is None else compact)
    f = rep.files
    rows = [{"table": t, "deleted": n, "rewritten": 0} for t, n in sorted(rep.deleted.items())]
    rows += [{"table": t, "deleted": 0, "rewritten": n} for t, n in sorted(rep.scrubbed.items())]
    rows += [{"table": "saved models (registry, model folders)", "deleted": f.models_retired,
              "rewritten": f.models_rewritten},
             {"table": "export files", "deleted": f.user_exports,
              "rewritten": f.export_files}]
    emit(rows, fmt, title=f"erased: {rep.rows} rows; tombstone recorded; store file "
                          f"{'rewritten' if rep.compacted else 'not compacted'}")


@users_app.command("export")
def export(user_id: UserArg, db: DbOption = None,
           fmt: Annotated[Format, typer.Option(
               "--format", "-f", help="json: the full export; jsonl: one row per line "
               "with its table; csv / table: rows per table.")] = Format.json,
           out: Annotated[Path | None, typer.Option(
               "--out", "-o", help="Write the JSON export to this file.")] = None) -> None:
    """Everything held about a user (the right of access).

    Example: feedwise users export u42 --out u42.json
    """
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
    """Show a user's consent, or change some flags (recorded with time and source).

    Example: feedwise users consent u42 --no-ads
    """
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
