"""``feedwise abtest``: analyse experiments in the store, sample sizes, SRM checks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    console,
    emit,
    fails_on,
    open_store,
)
from feedwise.errors import ConfigError


def _expected(shares: str | None) -> dict[str, float] | None:
    if not shares:
        return None
    try:
        return {k.strip(): float(v) for k, v in (p.split("=") for p in shares.split(","))}
    except ValueError:
        raise ConfigError(f"--expected {shares!r}: use 'control=0.5,treatment=0.5'") from None


abtest_app = typer.Typer(help="A/B test statistics over experiment events in the store.",
                         no_args_is_help=True)


@abtest_app.command("analyze")
@fails_on(ValueError)
def analyze(
    experiment: Annotated[str, typer.Argument(help="Experiment name in events' context.")],
    metric: Annotated[str, typer.Option(
        help="engagements, clicks, impressions, hides, revenue, dwell_s, sessions, "
             "events (means) or engaged, clicked, converted (proportions).")
    ] = "engagements",
    control: Annotated[str, typer.Option(help="Control variant name.")] = "control",
    cuped: Annotated[bool, typer.Option(help="Also report CUPED-adjusted results.")] = True,
    pre_days: Annotated[float, typer.Option(help="CUPED pre-period length (days).")
                        ] = 14.0,
    alpha: Annotated[float, typer.Option(help="1 - confidence level.")] = 0.05,
    expected: Annotated[str | None, typer.Option(
        help="Expected shares for the SRM check, e.g. 'control=0.5,treatment=0.5' "
             "(default: the arms' shares of an experiment started with `abtest start`, "
             "else equal).")
    ] = None,
    db: DbOption = None, fmt: FormatOption = Format.table,
) -> None:
    """Treatment vs control with confidence intervals (Welch t / two-proportion z,
    CUPED) and a sample-ratio-mismatch check.

    Example: feedwise abtest analyze lam1 --metric clicked --db deploy/feedwise.duckdb
    """
    from feedwise.evidence.abtest import analyze_experiment

    shares = _expected(expected) or _configured_shares(experiment, db)
    with open_store(db) as store:
        out = analyze_experiment(store, experiment, metric, control=control,
                                 use_cuped=cuped, pre_days=pre_days, alpha=alpha,
                                 expected=shares)
    emit(out["results"], fmt, title=f"{experiment}: {metric}")
    if fmt == Format.table:
        srm = out["srm"]
        if srm:
            flag = "[bold red]MISMATCH[/]" if srm["srm"] else "ok"
            console.print(f"SRM check: {flag} (chi2={srm['chi2']:.2f}, "
                          f"p={srm['p_value']:.4g}, observed {srm['observed']})")
        for v, r in out["variance_reduction"].items():
            console.print(f"CUPED variance reduction for {v}: {r:.1%}")


@abtest_app.command("sample-size")
@fails_on(ValueError)
def sample_size_cmd(
    baseline: Annotated[float, typer.Option(help="Control mean or proportion.")],
    mde: Annotated[float, typer.Option(help="Minimum detectable effect.")],
    kind: Annotated[str, typer.Option(help="proportion or mean.")] = "proportion",
    sd: Annotated[float | None, typer.Option(help="Metric sd (kind=mean).")] = None,
    relative: Annotated[bool, typer.Option(help="MDE relative to the baseline.")] = False,
    alpha: Annotated[float, typer.Option()] = 0.05,
    power: Annotated[float, typer.Option()] = 0.8,
    ratio: Annotated[float, typer.Option(help="Treatment units per control unit.")] = 1.0,
    fmt: FormatOption = Format.table,
) -> None:
    """Units per group needed to detect MDE.

    Example: feedwise abtest sample-size --baseline 0.05 --mde 0.1 --relative
    """
    from feedwise.evidence.abtest import sample_size

    n = sample_size(baseline, mde, kind=kind, sd=sd, alpha=alpha, power=power,
                    relative=relative, ratio=ratio)
    emit([n], fmt, title="Sample size")


@abtest_app.command("srm")
@fails_on(ValueError)
def srm(
    experiment: Annotated[str, typer.Argument(help="Experiment name in events' context.")],
    expected: Annotated[str | None, typer.Option(
        help="Expected shares, e.g. 'control=0.5,treatment=0.5' (default equal).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Flag below this p-value.")] = 0.001,
    db: DbOption = None, fmt: FormatOption = Format.table,
) -> None:
    """Sample-ratio-mismatch check of an experiment's assignment counts.

    Example: feedwise abtest srm ranking-v2 --expected 0.5,0.5
    """
    from feedwise.evidence.abtest import experiment_users, srm_check

    with open_store(db) as store:
        users = experiment_users(store, experiment, "events")
    res = srm_check(users["variant"].value_counts().to_dict(), _expected(expected),
                    threshold)
    if fmt == Format.table:
        emit([{"variant": k, "observed": v, "expected": res["expected"][k]}
              for k, v in res["observed"].items()], fmt, title=f"SRM: {experiment}")
        console.print(f"chi2={res['chi2']:.3f} p={res['p_value']:.4g} -> "
                      + ("[bold red]sample ratio mismatch[/]" if res["srm"] else "ok"))
    else:
        emit([{k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in res.items()}],
             fmt)


def _deployment(db: str | None):
    from feedwise.deployment import Deployment
    from feedwise.store.base import default_db_path

    return Deployment.for_store(db if db is not None else default_db_path())


def _configured_shares(experiment: str, db: str | None) -> dict[str, float] | None:
    from feedwise.evidence.rollout import read_experiments

    for e in read_experiments(_deployment(db)):
        if e.name == experiment:
            return e.expected
    return None


@abtest_app.command("start")
@fails_on(ValueError)
def start(
    experiment: Annotated[str, typer.Argument(help="Experiment name (letters, digits, ._-).")],
    arms: Annotated[str, typer.Option(
        help="Arms as NAME=SHARE[:FIELD=VALUE,...] separated by ';'; FIELD is ux_lambda, "
             "max_ad_load, first_ad_slot, min_ad_gap or model_version. The first arm is "
             "the control.")] = "control=0.5;treatment=0.5",
    salt: Annotated[str | None, typer.Option(
        help="Assignment salt (default: random; the same salt gives the same split).")
    ] = None,
    db: DbOption = None, fmt: FormatOption = Format.table,
) -> None:
    """Roll a policy or model version out to a share of users: sticky hash-based
    assignment, logged with every feed the service (or `feed`) composes.

    Example: feedwise abtest start lam1 --arms 'control=0.5;treatment=0.5:ux_lambda=0.02'
    --db deploy/feedwise.duckdb
    """
    from feedwise.evidence.rollout import experiments_path, parse_arms, start_experiment

    dep = _deployment(db)
    exp = start_experiment(dep, experiment, parse_arms(arms), salt=salt)
    emit([{"arm": a.name, "share": a.share, **a.overrides(),
           "model_version": a.model_version or ""} for a in exp.arms], fmt,
         title=f"experiment {exp.name} started")
    if fmt == Format.table:
        console.print(f"written to {experiments_path(dep)}; a running `feedwise serve` picks "
                      "it up within its reload interval")


@abtest_app.command("stop")
@fails_on(ValueError)
def stop(experiment: Annotated[str, typer.Argument(help="Experiment name.")],
         db: DbOption = None) -> None:
    """Stop an experiment: everyone is served the applied policy again (its logged events
    stay analysable).

    Example: feedwise abtest stop lam1 --db deploy/feedwise.duckdb
    """
    from feedwise.evidence.rollout import stop_experiment

    e = stop_experiment(_deployment(db), experiment)
    console.print(f"stopped {e.name} at {e.stopped_at.isoformat()}")


@abtest_app.command("list")
@fails_on(ValueError)
def list_(db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """The deployment's experiments with their arms and status.

    Example: feedwise abtest list --db deploy/feedwise.duckdb
    """
    from feedwise.evidence.rollout import read_experiments

    rows = [{"experiment": e.name, "status": e.status, "started_at": e.started_at,
             "stopped_at": e.stopped_at,
             "arms": "; ".join(f"{a.name}={a.share:g}" + "".join(
                 f" {k}={v}" for k, v in {**a.overrides(),
                                          **({"model_version": a.model_version}
                                             if a.model_version else {})}.items())
                 for a in e.arms)} for e in read_experiments(_deployment(db))]
    emit(rows, fmt, title="experiments")


def register(app: typer.Typer) -> None:
    app.add_typer(abtest_app, name="abtest")
