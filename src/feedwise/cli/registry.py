"""``feedwise registry``: list versions, show one, add a trained artifact, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import Format, FormatOption, console, emit

RegistryOption = Annotated[str, typer.Option("--registry", envvar="FEEDWISE_REGISTRY",
                                             help="Model registry folder.")]

registry_app = typer.Typer(help="Versioned model artifacts and promotion.", no_args_is_help=True)


@registry_app.command("list")
def list_(registry: RegistryOption = "registry", fmt: FormatOption = Format.table) -> None:
    """Every version with its window, NDCG and whether it is promoted."""
    from feedwise.registry import ModelRegistry

    r = ModelRegistry(registry)
    promoted = r.promoted_version()
    rows = [{"version": v.version, "model": v.model, "created_at": v.created_at,
             "until": v.data_window.until, "n_events": v.data_window.n_events,
             "ndcg@10": v.metrics.get("ndcg@10"), "promoted": v.version == promoted,
             "git_sha": (v.git_sha or "")[:10]} for v in r.versions()]
    emit(rows, fmt, title=f"registry {registry}")


@registry_app.command("add")
def add(path: Annotated[Path, typer.Argument(help="A folder written by feedwise train.")],
        registry: RegistryOption = "registry",
        promote: Annotated[bool, typer.Option(help="Promote it too.")] = False) -> None:
    """Register a model saved by ``feedwise train`` as a new version."""
    from feedwise.models.base import Recommender
    from feedwise.registry import ModelRegistry

    r = ModelRegistry(registry)
    meta = r.register(Recommender.load(path), notes=f"added from {path}")
    if promote:
        r.promote(meta.version, reason="cli add --promote")
    console.print(f"registered {meta.version}{' (promoted)' if promote else ''}")


@registry_app.command("promote")
def promote_(version: str, registry: RegistryOption = "registry") -> None:
    """Promote a version; running servers swap to it within their reload interval."""
    from feedwise.registry import ModelRegistry

    ModelRegistry(registry).promote(version, reason="cli")
    console.print(f"promoted {version}")


@registry_app.command("decisions")
def decisions(registry: RegistryOption = "registry",
              fmt: FormatOption = Format.table) -> None:
    """Every retraining decision with its figures."""
    from feedwise.registry import ModelRegistry

    rows = ModelRegistry(registry).decisions()
    for row in rows:
        row.pop("window", None)
    emit(rows, fmt, title="retrain decisions")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
