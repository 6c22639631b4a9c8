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
        help="Expected shares for the SRM check, e.g. 'control=0.5,treatment=0.5'.")
    ] = None,
    db: DbOption = None, fmt: FormatOption = Format.table,
) -> None:
    """Treatment vs control with confidence intervals (Welch t / two-proportion z,
    CUPED) and a sample-ratio-mismatch check."""
    from feedwise.evidence.abtest import analyze_experiment

    with open_store(db) as store:
        out = analyze_experiment(store, experiment, metric, control=control,
                                 use_cuped=cuped, pre_days=pre_days, alpha=alpha,
                                 expected=_expected(expected))
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
    """Units per group needed to detect MDE."""
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
    """Sample-ratio-mismatch check of an experiment's assignment counts."""
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


def register(app: typer.Typer) -> None:
    app.add_typer(abtest_app, name="abtest")
