"""``feedwise frontier``: sweep ad policies in the attention simulator (revenue ↔ UX)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    console,
    emit,
    err_console,
    fails_on,
)
from feedwise.errors import ConfigError

#: λ values the real FeedEngine is played at by ``--apply`` without ``--engine-lambdas``.
APPLY_ENGINE_LAMBDAS = "0.001,0.002,0.003,0.005,0.007,0.01,0.015,0.02,0.03,0.05"
#: The default UX budget: session depth and D7 return within 5 % of the no-ads policy
#: (1 % placed no ads at all on the default simulator world; docs/evidence_defaults.md).
DEFAULT_BUDGET = 0.05


@fails_on(ValueError)
def frontier(
    users: Annotated[int, typer.Option(help="Simulated users.")] = 2000,
    days: Annotated[int, typer.Option(help="Simulated days (>= 8 for D7).")] = 8,
    seed: Annotated[int, typer.Option(help="Behaviour seed (shared by all policies).")] = 0,
    seeds: Annotated[str | None, typer.Option(
        help="Comma-separated behaviour seeds; each policy's metrics are averaged over "
             "them (overrides --seed; shrinks seed-to-seed revenue noise).")] = None,
    lambdas: Annotated[str | None, typer.Option(
        help="Comma-separated λ values (default: a built-in grid).")] = None,
    guardrails: Annotated[str | None, typer.Option(
        help="Semicolon-separated 'max_ad_load,first_ad_slot,min_gap' settings, "
             "e.g. '0.25,2,2;0.2,3,3'.")] = None,
    engine_lambdas: Annotated[str | None, typer.Option(
        help="Also play the real FeedEngine at these λ values (comma-separated; per "
             "request, much slower), with the first guardrail setting.")] = None,
    fixed: Annotated[str, typer.Option(help="Fixed-slot periods k (comma-separated).")
                     ] = "5,4,3",
    budget: Annotated[float, typer.Option(
        help="UX budget: depth and D7 within this share of no ads.")] = DEFAULT_BUDGET,
    world_seed: Annotated[int | None, typer.Option(
        help="Seed of the simulated world (users, posts, ads; default: the config's).")
    ] = None,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Write the recommended FeedEngine setting (λ and guardrails, a new "
                        "version, the evidence) into the deployment's policy file, which "
                        "`feed` and `serve` use. Plays the real FeedEngine (--engine-lambdas, "
                        "default a built-in grid) and recommends among those rows only.")
    ] = False,
    db: DbOption = None,
    config: Annotated[Path | None, typer.Option(
        help="YAML/JSON file of simulator parameters.")] = None,
    chart: Annotated[Path | None, typer.Option(
        help="Write the Plotly chart here (.html; a .png beside it when kaleido "
             "works).")] = None,
    png: Annotated[bool, typer.Option(help="Also write a PNG beside the chart "
                                            "(needs kaleido and Chromium).")] = True,
    all_rows: Annotated[bool, typer.Option("--all", help="Print every setting, not "
                                           "just baselines, Pareto and recommended.")
                        ] = False,
    logs: Annotated[Path | None, typer.Option(
        help="Estimate the frontier off-policy from this logged-bandit file instead of "
             "simulating: timestamp, item_id, position, reward, propensity, revenue, "
             "engagement and one target_propensity_NAME column per candidate policy "
             "[, target_item_id_NAME (enables DR), session_id, context features].")
    ] = None,
    item_context: Annotated[Path | None, typer.Option(
        help="With --logs: item-context file (item_id + item feature columns).")] = None,
    revenue_column: Annotated[str, typer.Option(
        help="With --logs: the revenue column (falls back on 'reward').")] = "revenue",
    experience_column: Annotated[str, typer.Option(
        help="With --logs: the experience column (falls back on 'reward').")
    ] = "engagement",
    features: Annotated[str | None, typer.Option(
        help="With --logs: comma-separated numeric columns for the DR reward model.")
    ] = None,
    bootstrap: Annotated[int, typer.Option(
        help="With --logs: bootstrap resamples per estimate.")] = 200,
    fmt: FormatOption = Format.table,
) -> None:
    """Sweep λ and guardrails of the ad policy plus baselines in the simulator.

    With --logs, estimate each logged candidate policy's revenue and experience
    off-policy (SNIPS and DR, per-slot independence assumption) instead.

    Example: feedwise frontier --users 500 --engine-lambdas 0.003,0.01,0.03 --apply --db
    deploy/feedwise.duckdb
    """
    if logs is not None:
        if apply:
            raise ConfigError("--apply works on the simulated frontier, not with --logs")
        _offpolicy(logs, item_context, revenue_column, experience_column, features,
                   bootstrap, seed, fmt)
        return
    from rich.progress import Progress

    from feedwise.evidence.frontier import (
        DEFAULT_GUARDRAILS,
        DEFAULT_LAMBDAS,
        baseline_policies,
        frontier_figure,
        lambda_policies,
        recommend,
        sweep,
        write_chart,
    )
    from feedwise.evidence.simulator import Simulator, SimulatorConfig

    cfg = SimulatorConfig.from_file(config) if config else SimulatorConfig()
    over = {"n_users": users, "n_days": days}
    if world_seed is not None:
        over["world_seed"] = world_seed
    cfg = SimulatorConfig.model_validate({**cfg.model_dump(), **over})
    if apply and not engine_lambdas:
        engine_lambdas = APPLY_ENGINE_LAMBDAS
    lams = tuple(float(x) for x in lambdas.split(",")) if lambdas else DEFAULT_LAMBDAS
    grs = (tuple((float(a), int(b), int(c)) for a, b, c in
                 (g.split(",") for g in guardrails.split(";")))
           if guardrails else DEFAULT_GUARDRAILS)
    ks = [int(k) for k in fixed.split(",") if k.strip()]
    policies = baseline_policies(ks) + lambda_policies(lams, grs)
    sim = Simulator(cfg)
    if engine_lambdas:
        from feedwise.evidence.engine_policy import simulated_engine
        from feedwise.feed.config import FeedConfig

        load, first, gap = grs[0]
        policies += [simulated_engine(sim, FeedConfig(
            ux_lambda=float(x), max_ad_load=load, first_ad_slot=first, min_ad_gap=gap))
            for x in engine_lambdas.split(",") if x.strip()]
    with Progress(console=err_console, transient=True) as prog:
        task = prog.add_task("simulating policies", total=len(policies))
        df = sweep(sim, policies,
                   seed=[int(x) for x in seeds.split(",")] if seeds else seed,
                   progress=lambda d, t: prog.update(task, completed=d, total=t))
    rec = recommend(df, budget=budget, families=("feedengine",) if apply else
                    ("feedwise", "feedengine"))
    df["recommended"] = False
    if rec is not None:
        df.loc[rec.name, "recommended"] = True
    cols = ["policy", "revenue_per_user", "session_depth", "d7_return", "d1_return",
            "ad_load", "ad_ctr", "hide_rate", "pareto", "recommended"]
    out = df if all_rows else df[(df["family"] == "baseline") | df["pareto"]
                                 | df["recommended"]]
    emit(out[cols] if fmt == Format.table else out, fmt,
         title=f"Frontier: {cfg.n_users} users x {cfg.n_days} days")
    if chart is not None:
        note = write_chart(frontier_figure(df, rec), chart,
                           chart.with_suffix(".png") if png else None)
        err_console.print(f"chart written to {chart}" + (f" ({note})" if note else ""))
    if fmt == Format.table:
        if rec is None:
            console.print(f"no λ setting keeps depth and D7 within {budget:.1%} of no ads; "
                          "try larger λ values or a looser --budget")
        else:
            console.print(f"recommended: {rec['policy']} (revenue/user "
                          f"{rec['revenue_per_user']:.4f})")
    if apply:
        doc = _apply(df, rec, budget, cfg, seeds or str(seed), db)
        err_console.print(f"applied policy {doc['version']} (λ={doc['ux_lambda']:g}, ad load "
                          f"≤ {doc['max_ad_load']:g}, first slot {doc['first_ad_slot']}, gap "
                          f"{doc['min_ad_gap']}) to {doc['path']}")


def _apply(df, rec, budget: float, cfg, seeds: str, db: str | None) -> dict:
    """Write the recommended FeedEngine row into the deployment's policy file."""
    from feedwise.deployment import Deployment
    from feedwise.evidence.rollout import policy_doc
    from feedwise.feed.config import FeedConfig

    if rec is None:
        raise ConfigError(f"nothing to apply: no FeedEngine λ keeps session depth and D7 within "
                         f"{budget:.1%} of no ads; try larger --engine-lambdas or a looser "
                         "--budget")
    from feedwise.store.base import default_db_path

    dep = Deployment.for_store(db if db is not None else default_db_path())
    ref = df[df["policy"] == "no-ads"].iloc[0]
    settings = {"ux_lambda": float(rec["ux_lambda"]), "max_ad_load": float(rec["max_ad_load"]),
                "first_ad_slot": int(rec["first_ad_slot"]), "min_ad_gap": int(rec["min_gap"])}
    evidence = {"method": "simulated frontier (feedwise frontier --apply)",
                "policy": str(rec["policy"]), "budget": budget, "users": cfg.n_users,
                "days": cfg.n_days, "world_seed": cfg.world_seed, "seeds": seeds,
                "revenue_per_user": float(rec["revenue_per_user"]),
                "session_depth": float(rec["session_depth"]),
                "d7_return": float(rec["d7_return"]),
                "no_ads_session_depth": float(ref["session_depth"]),
                "no_ads_d7_return": float(ref["d7_return"]),
                "default_lambda": FeedConfig().ux_lambda}
    doc = policy_doc(settings, source="frontier", previous=dep.read_policy(),
                     evidence=evidence)
    dep.write_policy(doc)
    return {**doc, "path": str(dep.policy_path)}


def _offpolicy(logs: Path, item_context: Path | None, revenue: str, experience: str,
               features: str | None, bootstrap: int, seed: int, fmt: Format) -> None:
    from feedwise.evidence.frontier_ope import offpolicy_frontier
    from feedwise.evidence.logs import load_bandit_log

    log = load_bandit_log(logs, item_context)
    cols = [c.strip() for c in features.split(",") if c.strip()] if features else []
    df = offpolicy_frontier(log, revenue=revenue, experience=experience,
                            n_bootstrap=bootstrap, seed=seed, features=cols)
    if fmt == Format.table:
        show = ["policy"]
        for r in (revenue, experience):
            for e in ("snips", "dr"):
                if df[f"{r}_{e}"].notna().any():
                    show.append(f"{r}_{e}")
        emit(df[[*show, "ess", "pareto"]], fmt,
             title=f"Off-policy frontier: {len(log)} logged impressions (per impression; "
                   "intervals in --format json/csv)")
        if df["estimator"].eq("snips").all():
            console.print("no target_item_id_NAME columns: DR needs the target policy's item "
                          "per row; Pareto marked on SNIPS")
    else:
        emit(df, fmt)


def register(app: typer.Typer) -> None:
    app.command("frontier")(frontier)
