"""Funnels: impression → click → engagement (like/comment/share) → purchase, per surface.

The unit is a (user, item) pair in the scope. A pair reaches a step when it has an event
of that step and of every step before it (organic and ad kinds alike: ``impression`` or
``ad_impression``; ``click`` or ``ad_click``; ``like``/``comment``/``share``;
``purchase`` or ``conversion``). A pair's surface is the surface of its first
impression (``"unknown"`` when none is recorded). Steps reached by fewer than ``k``
distinct users are blanked and marked.
"""

from __future__ import annotations

import pandas as pd

from feedwise.analytics.scope import STEPS, Scope
from feedwise.analytics.suppression import suppress


def funnel(scope: Scope, by_surface: bool = True) -> pd.DataFrame:
    """Pairs and users reaching each step, with step-to-step and overall conversion.

    Returns:
        Columns ``surface`` (``"all"`` when ``by_surface`` is false), ``step``,
        ``step_no``, ``pairs``, ``users``, ``rate_from_prev``, ``rate_from_start``,
        ``suppressed``.
    """
    surf = "surface" if by_surface else "'all'"
    aggs = []
    for i in range(len(STEPS)):
        cond = " AND ".join(f"f{j}" for j in range(i + 1))
        aggs.append(f"count(*) FILTER (WHERE {cond}) AS pairs{i}, "
                    f"count(DISTINCT user_id) FILTER (WHERE {cond}) AS users{i}")
    wide = scope.query(f"""SELECT {surf} AS surface, {', '.join(aggs)}
        FROM {scope.pairs_table()} GROUP BY 1 ORDER BY 1""")
    df = pd.DataFrame([{"surface": r["surface"], "step": name, "step_no": i,
                        "pairs": int(r[f"pairs{i}"]), "users": int(r[f"users{i}"])}
                       for r in wide.to_dict(orient="records")
                       for i, (name, _) in enumerate(STEPS)],
                      columns=["surface", "step", "step_no", "pairs", "users"])
    if df.empty:
        return df.assign(rate_from_prev=[], rate_from_start=[], suppressed=[])
    df = df[df["surface"].isin(df.loc[(df["step_no"] == 0) & (df["pairs"] > 0), "surface"])]
    df = df.reset_index(drop=True)
    g = df.groupby("surface")["pairs"]
    prev = g.shift(1)
    first = g.transform("first")
    df["rate_from_prev"] = (df["pairs"] / prev).where(prev > 0)
    df.loc[df["step_no"] == 0, "rate_from_prev"] = 1.0
    df["rate_from_start"] = (df["pairs"] / first).where(first > 0)
    return suppress(df, "users", scope.k,
                    ["pairs", "users", "rate_from_prev", "rate_from_start"])
