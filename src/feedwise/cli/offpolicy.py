"""``feedwise offpolicy``: estimate a target policy's value from a logged-bandit file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import Format, FormatOption, console, emit, fails_on
from feedwise.errors import FeedwiseError


@fails_on(ValueError)
def offpolicy(
    log: Annotated[Path, typer.Argument(
        help="Logged-bandit file (CSV/TSV/Parquet/JSONL): timestamp, item_id, position, "
             "reward, propensity, target_propensity [, target_item_id, session_id, "
             "policy, context features].")],
    item_context: Annotated[Path | None, typer.Option(
        help="Item-context file: item_id + item feature columns.")] = None,
    target_column: Annotated[str, typer.Option(
        help="Column with the target policy's propensity of the logged item.")
    ] = "target_propensity",
    target_item: Annotated[str, typer.Option(
        help="Column with the target policy's item at that position (enables DM, DR, "
             "Switch-DR).")] = "target_item_id",
    features: Annotated[str | None, typer.Option(
        help="Comma-separated numeric feature columns for the reward model.")] = None,
    policy: Annotated[str | None, typer.Option(
        help="Only rows logged by this value of the 'policy' column.")] = None,
    by_position: Annotated[bool, typer.Option(
        help="Per-slot SNIPS estimates (independence assumption) instead.")] = False,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 200,
    tau: Annotated[float, typer.Option(help="Switch-DR weight threshold.")] = 10.0,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    fmt: FormatOption = Format.table,
) -> None:
    """DM, IPS, SNIPS, DR and Switch-DR estimates with bootstrap intervals and ESS.

    Example: feedwise offpolicy feeds.csv --policy default --bootstrap 200
    """
    from feedwise.evidence.estimators import SNIPSEstimator, estimate_all
    from feedwise.evidence.logs import RewardModel, load_bandit_log, log_to_data

    df = load_bandit_log(log, item_context)
    if policy is not None:
        if "policy" not in df.columns:
            raise FeedwiseError(f"{log}: --policy given but the file has no 'policy' "
                                "column")
        df = df[df["policy"].astype(str) == policy]
    model = None
    if target_item in df.columns:
        cols = [c.strip() for c in features.split(",")] if features else []
        model = RewardModel(cols).fit(df)
    data = log_to_data(df, target_propensity=target_column, target_item=target_item,
                       reward_model=model)
    if by_position:
        emit(SNIPSEstimator(0).estimate_by_position(data), fmt,
             title="Per-slot SNIPS (position -1 = whole feed)")
        return
    out = estimate_all(data, n_bootstrap=bootstrap, tau=tau, seed=seed)
    emit(out, fmt, title=f"Off-policy estimates ({len(data)} logged rows)")
    if fmt == Format.table and model is None:
        console.print(f"no {target_item!r} column: DM, DR and Switch-DR need the target "
                      "policy's item per row")


def register(app: typer.Typer) -> None:
    app.command("offpolicy")(offpolicy)
