"""``feedwise registry``: list versions, show one, add a trained artifact, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import Format, FormatOption, console, emit

RegistryOption = Annotated[str | None, typer.Option(
    "--registry", envvar="FEEDWISE_REGISTRY",
    help="Model registry folder (default: the registry of the store in $FEEDWISE_DB or "
         "./feedwise.duckdb, STORE.models beside it).")]


def registry_path(registry: str | None) -> str:
    """``--registry``, or the deployment registry of the default store."""
    if registry:
        return registry
    from feedwise.deployment import Deployment
    from feedwise.store.base import default_db_path

    return str(Deployment.for_store(default_db_path()).registry_dir)

registry_app = typer.Typer(help="Versioned model artifacts and promotion.", no_args_is_help=True)


@registry_app.command("list")
def list_(registry: RegistryOption = None, fmt: FormatOption = Format.table) -> None:
    """Every version with its window, NDCG and whether it is promoted.

    Example: feedwise registry list
    """
    from feedwise.registry import ModelRegistry

    r = ModelRegistry(registry_path(registry))
    promoted = r.promoted_version()
    rows = [{"version": v.version, "model": v.model, "created_at": v.created_at,
             "until": v.data_window.until, "n_events": v.data_window.n_events,
             "ndcg@10": v.metrics.get("ndcg@10"), "promoted": v.version == promoted,
             "git_sha": (v.git_sha or "")[:10]} for v in r.versions()]
    emit(rows, fmt, title=f"registry {registry_path(registry)}")


@registry_app.command("add")
def add(path: Annotated[Path, typer.Argument(help="A folder written by feedwise train.")],
        registry: RegistryOption = None,
        promote: Annotated[bool, typer.Option(help="Promote it too.")] = False) -> None:
    """Register a model saved by ``feedwise train`` as a new version.

    Example: feedwise registry add models/itemknn --promote
    """
    from feedwise.models.base import Recommender
    from feedwise.registry import ModelRegistry

    r = ModelRegistry(registry_path(registry))
    meta = r.register(Recommender.load(path), notes=f"added from {path}")
    if promote:
        r.promote(meta.version, reason="cli add --promote")
    console.print(f"registered {meta.version}{' (promoted)' if promote else ''}")


@registry_app.command("promote")
def promote_(version: Annotated[str | None, typer.Argument(
                 help="Version to promote (or give --experiment).")] = None,
             registry: RegistryOption = None,
             experiment: Annotated[str | None, typer.Option(
                 help="Promote the winner of this experiment: the arm whose interval on "
                      "--metric lies above control's (read from the store's logged feeds); "
                      "a model arm's version is promoted, a policy arm's λ and guardrails "
                      "become the applied policy; the experiment is then stopped.")] = None,
             metric: Annotated[str, typer.Option(
                 help="With --experiment: the metric (see `abtest analyze`).")
             ] = "engagements",
             alpha: Annotated[float, typer.Option(help="With --experiment: 1 - confidence.")
                              ] = 0.05,
             db: Annotated[str | None, typer.Option(
                 "--db", envvar="FEEDWISE_DB", help="With --experiment: the store.")] = None
             ) -> None:
    """Promote a version; running servers swap to it within their reload interval.

    Example: feedwise registry promote --experiment lam1 --metric clicked --db
    deploy/feedwise.duckdb
    """
    from feedwise.errors import ConfigError
    from feedwise.registry import ModelRegistry

    if experiment is not None:
        _promote_winner(experiment, metric, alpha, db, registry)
        return
    if version is None:
        raise ConfigError("give a VERSION to promote, or --experiment NAME")
    ModelRegistry(registry_path(registry)).promote(version, reason="cli")
    console.print(f"promoted {version}")


def _promote_winner(name: str, metric: str, alpha: float, db: str | None,
                    registry: str) -> None:
    from feedwise.cli._common import open_store
    from feedwise.deployment import Deployment
    from feedwise.evidence.rollout import pick_winner, policy_doc, stop_experiment
    from feedwise.registry import ModelRegistry
    from feedwise.store.base import default_db_path

    dep = Deployment.for_store(db if db is not None else default_db_path())
    with open_store(db) as store:
        win = pick_winner(dep, store, name, metric, alpha=alpha)
    arm, r = win["arm"], win["result"]
    figures = {k: r[k] for k in ("test", "control_mean", "treatment_mean", "diff", "ci_low",
                                 "ci_high", "p_value", "n_control", "n_treatment")}
    what = []
    if arm.model_version is not None:
        root = registry if registry != "registry" else dep.registry_dir
        ModelRegistry(root).promote(arm.model_version,
                                    reason=f"experiment {name}: {arm.name} won on {metric}")
        what.append(f"model {arm.model_version}")
    if arm.overrides():
        doc = policy_doc(arm.overrides(), source=f"experiment:{name}/{arm.name}",
                         previous=dep.read_policy(),
                         evidence={"method": "A/B test (feedwise registry promote "
                                             "--experiment)", "experiment": name,
                                   "arm": arm.name, "metric": metric, "alpha": alpha,
                                   **{k: float(v) if not isinstance(v, str) else v
                                      for k, v in figures.items()}})
        dep.write_policy(doc)
        what.append(f"policy {doc['version']} (λ={doc['ux_lambda']:g})")
    stop_experiment(dep, name)
    console.print(f"{name}: {arm.name} wins on {metric} ({r['diff']:+.4g}, "
                  f"{1 - alpha:.0%} interval [{r['ci_low']:.4g}, {r['ci_high']:.4g}]); "
                  f"promoted {' and '.join(what) or 'nothing (a control-like arm)'}; "
                  "experiment stopped")


@registry_app.command("decisions")
def decisions(registry: RegistryOption = None,
              fmt: FormatOption = Format.table) -> None:
    """Every retraining decision with its figures.

    Example: feedwise registry decisions --format json
    """
    from feedwise.registry import ModelRegistry

    rows = ModelRegistry(registry_path(registry)).decisions()
    for row in rows:
        row.pop("window", None)
    emit(rows, fmt, title="retrain decisions")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
