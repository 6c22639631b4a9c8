"""``feedwise keys``: create, list, revoke and hash API keys (only hashes are stored)."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import Format, FormatOption, console, emit
from feedwise.errors import FeedwiseError

KeysFile = Annotated[str, typer.Option("--keys-file", envvar="FEEDWISE_KEYS_FILE",
                                       help="The hashed keys file the server reads.")]

keys_app = typer.Typer(help="API keys of the service (scopes: read, ingest, metrics, admin).",
                       no_args_is_help=True)


@keys_app.command("create")
def create(scope: Annotated[list[str], typer.Option(
               "--scope", "-s", help="read, ingest, metrics or admin (repeat for several).")],
           name: Annotated[str, typer.Option(help="A label for the key.")] = "",
           keys_file: KeysFile = "keys.json") -> None:
    """Create a key; it is printed once and only its sha256 is stored.

    Example: feedwise keys create --scope read --name dashboard
    """
    from feedwise.server.auth import create_key

    key, rec = create_key(keys_file, scope, name=name)
    console.print(f"key id {rec.key_id}, scopes {sorted(rec.scopes)} -> {keys_file}",
                  highlight=False)
    console.print("store this key now; it cannot be shown again:", style="bold")
    typer.echo(key)


@keys_app.command("list")
def list_(keys_file: KeysFile = "keys.json", fmt: FormatOption = Format.table) -> None:
    """Key ids, names and scopes (never keys or hashes).

    Example: feedwise keys list
    """
    from feedwise.server.auth import read_keys_file

    rows = [{"key_id": k.key_id, "name": k.name, "scopes": "+".join(sorted(k.scopes)),
             "created_at": k.created_at} for k in read_keys_file(keys_file)]
    emit(rows, fmt, title="API keys")


@keys_app.command("revoke")
def revoke(key_id: str, keys_file: KeysFile = "keys.json") -> None:
    """Remove a key (a running server stops accepting it within half a second).

    Example: feedwise keys revoke KEY_ID
    """
    from feedwise.server.auth import revoke_key

    if not revoke_key(keys_file, key_id):
        raise FeedwiseError(f"no key {key_id!r} in {keys_file}; see feedwise keys list")
    console.print(f"revoked {key_id}")


@keys_app.command("hash")
def hash_(scope: Annotated[list[str], typer.Option("--scope", "-s")]) -> None:
    """Read a key from stdin and print its FEEDWISE_API_KEYS entry (hash:scopes).

    Example: echo "$KEY" | feedwise keys hash --scope ingest
    """
    import sys

    from feedwise.server.auth import hash_key, parse_key_spec

    key = sys.stdin.readline().strip()
    spec = f"{hash_key(key)}:{'+'.join(scope)}"
    parse_key_spec(spec)
    typer.echo(spec)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
