"""``feedwise ingest FILE``: validate and land events."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, emit, open_store
from feedwise.errors import DataError, FeedwiseError

if TYPE_CHECKING:
    from feedwise.store import EventStore

#: Rejects printed per file (the rest: ``rejects`` table).
SHOWN_REJECTS = 5
#: Ignored column names printed per file.
SHOWN_COLUMNS = 20


def ingest(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Event files: CSV, TSV, Parquet or JSONL, each read literally (quote a name with "
             "*, ? or [ for the shell; it is no pattern).", show_default=False)] = None,
    mapping: Annotated[str | None, typer.Option(
        help="field=column pairs (field==constant gives every row that value, e.g. "
             "ts==2024-01-01 or kind==click), or a preset: events movielens-100k, "
             "movielens-latest; --items movielens-100k, movielens-latest, lastfm; --users "
             "movielens-100k.")] = None,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated column names for a headerless file.")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter.")] = None,
    ts_unit: Annotated[str, typer.Option(help="Unit of numeric timestamps: s, ms, us.")]
    = "s",
    ts_default: Annotated[str | None, typer.Option(
        "--ts-default", help="Time of every event of a file with no ts column (data without "
        "time), e.g. 2024-01-01; the same as --mapping ts==2024-01-01.")] = None,
    items: Annotated[list[Path] | None, typer.Option(
        "--items", help="Items file (posts and ad creatives): item_id, kind, author_id, "
        "created_at, title, text, tags, campaign_id (README: Loading data sets).")] = None,
    users: Annotated[list[Path] | None, typer.Option(
        "--users", help="Users file: user_id, consent_*, timezone, attributes (other "
        "columns become attributes).")] = None,
    campaigns: Annotated[list[Path] | None, typer.Option(
        "--campaigns", help="Campaigns as a table: one row per campaign, checked like "
        "`campaigns add`; creatives are its items of kind ad (load --items first).")] = None,
    edges: Annotated[bool, typer.Option(
        "--edges", help="The files are social-graph edges (src_id, dst_id, kind: follow, "
        "unfollow, friend, unfriend, block, unblock, trust; optional ts, edge_id), not "
        "events; --mapping presets: lastfm-friends, filmtrust-trust (docs/graph.md).")]
    = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Validate and land events (or items, users, campaigns, edges); bad rows (and lines
    that are no rows) go to the rejects table naming file, row, field and fix; columns no
    field reads are named.

    Example: feedwise ingest --items u.item --mapping movielens-100k

    Example: feedwise ingest --edges user_friends.dat --mapping lastfm-friends
    """
    files = files or []
    records = [(k, f) for k, given in (("users", users), ("items", items),
                                       ("campaigns", campaigns)) for f in given or []]
    kinds = {k for k, _ in records} | ({"events"} if files else set())
    if not kinds:
        raise DataError("nothing to ingest: name event files, or --items/--users/"
                        "--campaigns FILE (see feedwise ingest --help)")
    if len(kinds) > 1 and (mapping or columns or delimiter):
        raise DataError(f"--mapping/--columns/--delimiter apply to one kind of file, but "
                        f"this call has {sorted(kinds)}: run one ingest per kind")
    cols = columns.split(",") if columns else None
    rows = []
    with open_store(db) as store:
        for kind, f in records:  # users, items, then campaigns (their creatives are items)
            check = _campaign_check(store) if kind == "campaigns" else None
            rr = store.ingest_records(kind, f, mapping=mapping, columns=cols,
                                      delimiter=delimiter, check=check)
            rows.append({"source": rr.source, "kind": kind, "accepted": rr.accepted,
                         "duplicates": rr.duplicates, "rejected": rr.rejected,
                         "erased_users_skipped": rr.erased,
                         "ignored_columns": list(rr.ignored_columns),
                         "seconds": round(rr.seconds, 3)})
            if fmt == Format.table:
                for note in rr.notes:
                    typer.echo(f"  note: {note}", err=True)
                _notes(store, rr.source, rr.ignored_columns, rr.rejected, kind)
        for f in files:
            if edges:
                r = store.ingest_edges(f, mapping=mapping, ts_unit=ts_unit,
                                       delimiter=delimiter, columns=cols)
            else:
                r = store.ingest(f, mapping=mapping, ts_unit=ts_unit, delimiter=delimiter,
                                 columns=cols, ts_default=ts_default)
            rows.append({"source": r.source, "kind": "edges" if edges else "events",
                         "accepted": r.accepted,
                         "duplicates": r.duplicates, "rejected": r.rejected,
                         "erased_users_skipped": r.erased,
                         "ignored_columns": list(r.ignored_columns),
                         "seconds": round(r.seconds, 3)})
            if fmt == Format.table:
                _notes(store, r.source, r.ignored_columns, r.rejected,
                       "edges" if edges else "event")
    if fmt == Format.table:
        for row in rows:  # the table shows how many; the note above which
            row["ignored_columns"] = len(row["ignored_columns"])
    emit(rows, fmt, title="ingest")


def _notes(store: EventStore, source: str, ignored: tuple[str, ...], rejected: int, what: str
           ) -> None:
    """The ignored columns and the first rejects of one file, on stderr."""
    if ignored:
        names = ", ".join(ignored[:SHOWN_COLUMNS])
        more = len(ignored) - SHOWN_COLUMNS
        typer.echo(f"  note: {source}: ignored column(s) {names}"
                   f"{f' and {more} more' if more > 0 else ''}: no {what.rstrip('s')} field "
                   "reads them (map one with --mapping field=column)", err=True)
    if rejected:
        bad = store.rejects(source).head(SHOWN_REJECTS)
        for b in bad.itertuples():
            typer.echo(f"  rejected {source} row {b.row} [{b.field}]: {b.reason}", err=True)


def _campaign_check(store: EventStore) -> Callable[[dict[str, Any]], tuple[str, str] | None]:
    """A campaigns-table row checked by the rules of ``campaigns add``; its creatives are the
    stored items of kind ``ad`` with its ``campaign_id``. Fills in the row's ``spec``."""
    from pydantic import ValidationError

    from feedwise.feed.campaigns import Campaign

    creatives: dict[str, list[dict[str, Any]]] = {}
    for it in store.items().to_dict(orient="records"):
        if it.get("kind") == "ad" and it.get("campaign_id"):
            tags = it.get("tags")
            creatives.setdefault(it["campaign_id"], []).append(
                {"item_id": it["item_id"], "title": it.get("title"), "text": it.get("text"),
                 "tags": [str(t) for t in tags] if tags is not None else []})

    def check(row: dict[str, Any]) -> tuple[str, str] | None:
        cid = row["campaign_id"]
        if cid not in creatives:
            return ("campaign_id", f"campaign {cid!r} has no creative: load its ads first "
                    f"(--items FILE with kind=ad and campaign_id={cid}) or add it with "
                    "feedwise campaigns add FILE.yaml (docs/campaigns.md)")
        d = {k: v for k, v in row.items() if v is not None and k != "spec"}
        d["creatives"] = creatives[cid]
        try:
            c = Campaign.model_validate(d)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(x) for x in err["loc"]) or "campaign"
            return field, f"{err['msg']} (docs/campaigns.md lists the fields)"
        except FeedwiseError as e:
            return "campaign", str(e)
        row.clear()
        row.update(c.to_row())
        return None

    return check


def register(app: typer.Typer) -> None:
    app.command()(ingest)
