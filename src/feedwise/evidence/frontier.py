"""The revenue ↔ user-experience frontier: sweep ad policies in the simulator.

:func:`sweep` plays the baselines (no ads, fixed ad slots every k-th position,
revenue-greedy) and a grid of the λ policy's settings (``ux_lambda`` × guardrails) against
the same simulated users with the same random numbers. :func:`pareto_mask` marks the
settings no other setting beats on revenue, session depth and D7 return at once;
:func:`recommend` picks the λ setting with the most revenue inside a user-experience budget
(by default: session depth and D7 return within 1 % of the no-ads policy);
:func:`match_baseline` finds the best λ setting that is at least as good as a given baseline
on depth and D7 return; :func:`frontier_figure` draws it all with Plotly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from feedwise.errors import ConfigError
from feedwise.evidence.policies import (
    FixedSlotPolicy,
    LambdaPolicy,
    NoAdsPolicy,
    RevenueGreedyPolicy,
)
from feedwise.evidence.simulator import Simulator

DEFAULT_LAMBDAS: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.01,
                                      0.013, 0.017, 0.022, 0.03, 0.04, 0.05, 0.07, 0.1)
#: Guardrail grid: (max_ad_load, first_ad_slot, min_gap).
DEFAULT_GUARDRAILS: tuple[tuple[float, int, int], ...] = ((0.25, 2, 2), (0.25, 1, 1),
                                                         (0.25, 0, 1), (0.25, 3, 3))
UX_METRICS: tuple[str, ...] = ("session_depth", "d7_return")
REVENUE = "revenue_per_user"


def baseline_policies(fixed_every: Sequence[int] = (5, 4, 3)) -> list[Any]:
    """No ads, fixed ad slots every k-th position, and revenue-greedy."""
    return [NoAdsPolicy(), *(FixedSlotPolicy(k) for k in fixed_every), RevenueGreedyPolicy()]


def lambda_policies(lambdas: Sequence[float] = DEFAULT_LAMBDAS,
                    guardrails: Sequence[tuple[float, int, int]] = DEFAULT_GUARDRAILS,
                    **kwargs: Any) -> list[LambdaPolicy]:
    """One :class:`LambdaPolicy` per (λ, guardrail setting)."""
    return [LambdaPolicy(lam, max_ad_load=load, first_ad_slot=first, min_gap=gap, **kwargs)
            for lam, (load, first, gap) in itertools.product(lambdas, guardrails)]


FEEDWISE_FAMILIES: tuple[str, ...] = ("feedwise", "feedengine")


def _describe(policy: Any) -> dict[str, Any]:
    engine = getattr(policy, "engine", None)
    if engine is not None and hasattr(engine, "config"):
        c = engine.config
        return {"family": "feedengine", "ux_lambda": c.ux_lambda, "max_ad_load": c.max_ad_load,
                "first_ad_slot": c.first_ad_slot, "min_gap": c.min_ad_gap,
                "policy": (f"FeedEngine λ={c.ux_lambda:g} [load≤{c.max_ad_load:g} "
                           f"first {c.first_ad_slot} gap {c.min_ad_gap}]")}
    if isinstance(policy, LambdaPolicy):
        tag = " adaptive" if getattr(policy, "tolerance", None) is not None else ""
        return {"family": "feedwise", "ux_lambda": policy.ux_lambda,
                "max_ad_load": policy.max_ad_load, "first_ad_slot": policy.first_ad_slot,
                "min_gap": policy.min_gap,
                "policy": (f"feedwise{tag} λ={policy.ux_lambda:g} [load≤{policy.max_ad_load:g} "
                           f"first {policy.first_ad_slot} gap {policy.min_gap}]")}
    name = getattr(policy, "name", type(policy).__name__)
    return {"family": "baseline", "ux_lambda": np.nan, "max_ad_load": np.nan,
            "first_ad_slot": np.nan, "min_gap": np.nan, "policy": name}


def sweep(simulator: Simulator, policies: Sequence[Any], seed: int | Sequence[int] = 0,
          progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Run every policy with the same seed(s) (common random numbers) and tabulate metrics.

    Args:
        simulator: The simulated world.
        policies: Policies to play.
        seed: Behaviour seed, or several: each policy is played once per seed and its
            metrics are averaged over the seeds (``sessions`` and ``seconds`` summed), which
            shrinks the seed-to-seed noise of revenue (dominated by rare clicks on high CPC
            bids) before policies are compared.
        progress: Called as ``progress(done, total)`` after every run.

    Returns:
        One row per policy: ``policy, family, ux_lambda, max_ad_load, first_ad_slot,
        min_gap``, every simulator metric, ``seconds`` and ``seeds`` (how many were played).
    """
    seeds = [seed] if isinstance(seed, int | np.integer) else list(seed)
    if not seeds:
        raise ConfigError("sweep needs at least one seed")
    rows = []
    total = len(policies) * len(seeds)
    for i, p in enumerate(policies):
        runs = []
        for j, s in enumerate(seeds):
            runs.append(simulator.run(p, seed=int(s)))
            if progress:
                progress(i * len(seeds) + j + 1, total)
        metrics = {k: float(np.mean([r.metrics[k] for r in runs])) for k in runs[0].metrics}
        metrics["sessions"] = float(sum(r.metrics["sessions"] for r in runs))
        rows.append({**_describe(p), **metrics, "seconds": sum(r.seconds for r in runs),
                     "seeds": len(seeds)})
    df = pd.DataFrame(rows)
    df["pareto"] = pareto_mask(df)
    return df


def pareto_mask(df: pd.DataFrame, maximize: Sequence[str] = (REVENUE, *UX_METRICS)
                ) -> np.ndarray:
    """True for rows that no other row matches or beats on every metric (and beats on one).

    Rows with a missing (NaN) metric cannot be compared: they are never marked efficient and
    dominate no other row. Rows tied on every metric are all efficient.
    """
    x = df[list(maximize)].to_numpy(np.float64)
    valid = ~np.isnan(x).any(axis=1)
    ge = (x[:, None, :] >= x[None, :, :]).all(axis=2)
    gt = (x[:, None, :] > x[None, :, :]).any(axis=2)
    dominated = (ge & gt).any(axis=0)
    return ~dominated & valid


def recommend(df: pd.DataFrame, reference: str = "no-ads", budget: float = 0.01,
              ux_metrics: Sequence[str] = UX_METRICS,
              families: Sequence[str] = FEEDWISE_FAMILIES) -> pd.Series | None:
    """The feedwise setting with the most revenue within ``budget`` of ``reference`` on UX.

    Args:
        df: Output of :func:`sweep`.
        reference: Policy name the budget is measured against.
        budget: Allowed relative loss on each UX metric (0.01 = 1 %).
        ux_metrics: The metrics the budget applies to.
        families: Which rows are candidates (``feedwise``: :class:`LambdaPolicy`;
            ``feedengine``: the real engine through
            :mod:`~feedwise.evidence.engine_policy`).

    Returns:
        The chosen row, or ``None`` when no λ setting that shows ads fits the budget.
    """
    if not budget >= 0:   # also catches NaN, which would silently reject every setting
        raise ConfigError(f"budget must be a relative loss >= 0 (0.01 = 1 %), got {budget!r}")
    ref = df[df["policy"] == reference]
    if ref.empty:
        raise ConfigError(f"reference policy {reference!r} is not in the sweep")
    ok = df["family"].isin(list(families)) & (df[REVENUE] > 0)
    for m in ux_metrics:
        ok &= df[m] >= (1 - budget) * float(ref[m].iloc[0])
    return _most_revenue(df[ok])


def _most_revenue(cand: pd.DataFrame) -> pd.Series | None:
    """The row of ``cand`` with the most revenue (first on ties; by position, so that a
    duplicated index label cannot return several rows)."""
    cand = cand[cand[REVENUE].notna()]
    return None if cand.empty else cand.iloc[int(np.argmax(cand[REVENUE].to_numpy()))]


def match_baseline(df: pd.DataFrame, baseline: str,
                   ux_metrics: Sequence[str] = UX_METRICS,
                   families: Sequence[str] = FEEDWISE_FAMILIES) -> pd.Series | None:
    """The feedwise setting with the most revenue that is at least as good on UX as ``baseline``."""
    base = df[df["policy"] == baseline]
    if base.empty:
        raise ConfigError(f"baseline {baseline!r} is not in the sweep")
    ok = df["family"].isin(list(families))
    for m in ux_metrics:
        ok &= df[m] >= float(base[m].iloc[0])
    return _most_revenue(df[ok])


def frontier_figure(df: pd.DataFrame, recommended: pd.Series | None = None,
                    title: str = "Revenue ↔ user experience frontier (simulated)"):
    """Plotly figure: revenue vs session depth and vs D7 return, Pareto settings marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("Revenue vs session depth",
                                                        "Revenue vs D7 return"))
    groups = [("feedwise λ policy", df["family"] == "feedwise", "#1f77b4", "circle"),
              ("FeedEngine", df["family"] == "feedengine", "#2ca02c", "diamond"),
              ("baselines", df["family"] == "baseline", "#d62728", "square")]
    for col, x in enumerate(UX_METRICS, start=1):
        for label, mask, color, symbol in groups:
            sub = df[mask]
            if sub.empty:
                continue
            fig.add_trace(go.Scatter(
                x=sub[x], y=sub[REVENUE], mode="markers", name=label, legendgroup=label,
                showlegend=col == 1, text=sub["policy"],
                marker={"color": color, "symbol": symbol, "size": 8, "opacity": 0.6},
                hovertemplate="%{text}<br>" + x + "=%{x:.3f}<br>revenue/user=%{y:.4f}"
                              "<extra></extra>"), row=1, col=col)
        par = df[df["pareto"]].sort_values(x)
        fig.add_trace(go.Scatter(
            x=par[x], y=par[REVENUE], mode="markers", name="Pareto-efficient",
            legendgroup="pareto", showlegend=col == 1, text=par["policy"],
            marker={"color": "rgba(0,0,0,0)", "size": 14,
                    "line": {"color": "black", "width": 2}},
            hovertemplate="%{text} (Pareto)<extra></extra>"), row=1, col=col)
        base = df[df["family"] == "baseline"]
        for _, r in base.iterrows():
            fig.add_annotation(x=r[x], y=r[REVENUE], text=r["policy"], showarrow=False,
                               yshift=12, font={"size": 9, "color": "#d62728"}, row=1, col=col)
        if recommended is not None:
            fig.add_trace(go.Scatter(
                x=[recommended[x]], y=[recommended[REVENUE]], mode="markers",
                name="recommended", legendgroup="rec", showlegend=col == 1,
                text=[recommended["policy"]],
                marker={"symbol": "star", "size": 18, "color": "gold",
                        "line": {"color": "black", "width": 1}},
                hovertemplate="%{text} (recommended)<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text=x.replace("_", " "), row=1, col=col)
        fig.update_yaxes(title_text="ad revenue per user", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white", width=1200, height=520)
    return fig


def write_chart(fig, html_path: str | Path, png_path: str | Path | None = None) -> str | None:
    """Write the chart as self-contained HTML (plotly.js bundled, no CDN) and try a PNG.

    Returns:
        ``None`` when the PNG was written (or not asked for), otherwise why it was not.
    """
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(html_path), include_plotlyjs=True, full_html=True)
    if png_path is None:
        return None
    try:
        fig.write_image(str(png_path))
    except Exception as e:  # noqa: BLE001 - kaleido/Chrome missing shows up in many forms
        return f"PNG not written ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
    return None
