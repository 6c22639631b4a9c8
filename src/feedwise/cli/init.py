"""``feedwise init DIR``: a new deployment folder (store, registry, campaigns, keys, policy)."""

from __future__ import annotations

from typing import Annotated

import typer

from feedwise.cli._common import Format, FormatOption, emit
from feedwise.deployment import Deployment


def init(folder: Annotated[str, typer.Argument(help="The deployment folder (created).")],
         fmt: FormatOption = Format.table) -> None:
    """Create a deployment: one folder holds the store, its model registry, campaigns,
    API keys and the applied feed policy; every command given its store finds the rest.

    Example: `feedwise init deploy && feedwise ingest events.csv --db deploy/feedwise.duckdb`
    """
    from feedwise.privacy import PrivacySettings
    from feedwise.store import EventStore

    dep = Deployment.init(folder)
    with EventStore(dep.store_path, pseudonymizer=PrivacySettings().pseudonymizer()) as store:
        store_id = store.store_id()
    emit([{"what": "store", "path": str(dep.store_path)},
          {"what": "store id", "path": store_id or ""},
          {"what": "model registry", "path": str(dep.registry_dir)},
          {"what": "campaigns", "path": str(dep.campaigns_dir)},
          {"what": "API keys (feedwise keys create --file ...)", "path": str(dep.keys_path)},
          {"what": "applied feed policy (frontier --apply)", "path": str(dep.policy_path)}],
         fmt, title=f"deployment {dep.dir}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
