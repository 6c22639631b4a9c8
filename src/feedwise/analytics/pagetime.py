"""Best time to post from page-level data: one row per post with its publish slot and outcome.

The UCI Facebook metrics data set (``dataset_Facebook.csv``, ``;``-separated, 500 posts of
a cosmetics brand's page in 2014) is read with this **mapping** (docs/timing.md):

==================  ====================  =============================================
feedwise term       column                coding in the regression
==================  ====================  =============================================
outcome             ``Lifetime Engaged    ``log(1 + engaged users)`` (the counts are
                    Users`` (header        heavy-tailed; effects are then multiplicative:
                    ``Engaged_Users``)     ``exp(b) - 1`` is the % change)
post type           ``Type``              categorical, reference = first level (Link)
paid                ``Paid``              0/1
hour                ``Hour`` (1-23)       categorical, reference = first hour present
weekday             ``Weekday`` (1-7)     categorical, reference = 1 (codes as in the data
                                          set; the data set does not say which day 1 is)
month               ``Month`` (1-12)      categorical, reference = 1
==================  ====================  =============================================

The model is ordinary least squares of the outcome on these terms (treatment coding, the
same as the formula ``np.log1p(Engaged_Users) ~ C(Type) + Paid + C(Hour) + C(Weekday) +
C(Month)`` in statsmodels), solved with numpy; standard errors are the classical ones
(``s^2 (X'X)^-1``), intervals 95% Student-t. A row with a missing or unparsable value in
one of these columns is left out and reported (``PageFit.dropped``), never silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from feedwise.errors import DataError

#: The data set's column for each term of the regression.
FACEBOOK_MAPPING: dict[str, str] = {"outcome": "Engaged_Users", "type": "Type", "paid": "Paid",
                                    "hour": "Hour", "weekday": "Weekday", "month": "Month"}
#: Accepted spellings of each column (the short CSV header and the UCI long names).
_ALIASES: dict[str, tuple[str, ...]] = {
    "Engaged_Users": ("Engaged_Users", "Lifetime Engaged Users"),
    "Type": ("Type",), "Paid": ("Paid",), "Hour": ("Hour", "Post Hour"),
    "Weekday": ("Weekday", "Post Weekday"), "Month": ("Month", "Post Month")}
CATEGORICAL: tuple[str, ...] = ("type", "hour", "weekday", "month")


@dataclass
class PageFit:
    """An OLS fit of engaged users on the publish slot of page posts."""

    effects: pd.DataFrame   # term, level, coef, se, lo, hi, p, pct, significant
    n: int
    dropped: pd.DataFrame   # row (1-based data row), field, value, reason
    r2: float
    dof: int
    recommendation: str

    def not_significant(self) -> list[str]:
        """Terms none of whose levels differ from the reference at the 5% level."""
        eff = self.effects[self.effects["term"] != "Intercept"]
        return sorted(t for t, g in eff.groupby("term") if not g["significant"].any())

    def to_dict(self) -> dict:
        return {"n": self.n, "r2": round(self.r2, 4), "dof": self.dof,
                "dropped": self.dropped.to_dict(orient="records"),
                "not_significant": self.not_significant(),
                "recommendation": self.recommendation,
                "effects": self.effects.round(5).to_dict(orient="records")}


def read_page_posts(path: str | Path, mapping: dict[str, str] | None = None) -> tuple[
        pd.DataFrame, pd.DataFrame]:
    """Read a page-metrics CSV (``;`` or ``,`` separated); return (rows kept, rows dropped)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file; give the path of dataset_Facebook.csv")
    raw = pd.read_csv(path, sep=None, engine="python", dtype=str)
    mapping = dict(mapping or FACEBOOK_MAPPING)
    cols: dict[str, str] = {}
    for term, col in mapping.items():
        found = next((c for c in _ALIASES.get(col, (col,)) if c in raw.columns), None)
        if found is None:
            raise DataError(f"{path}: no column {col!r} for {term} (columns: "
                            f"{', '.join(raw.columns)}); pass a mapping naming it")
        cols[term] = found
    df = pd.DataFrame({t: raw[c].str.strip() for t, c in cols.items()})
    dropped = []
    num = {}
    for term in ("outcome", "paid", "hour", "weekday", "month"):
        v = pd.to_numeric(df[term], errors="coerce")
        for i in np.flatnonzero(v.isna().to_numpy()):
            dropped.append({"row": int(i) + 2, "field": cols[term],
                            "value": raw[cols[term]].iloc[i],
                            "reason": "missing or not a number; row left out"})
        num[term] = v
    bad_type = df["type"].isna() | (df["type"] == "")
    for i in np.flatnonzero(bad_type.to_numpy()):
        dropped.append({"row": int(i) + 2, "field": cols["type"], "value": None,
                        "reason": "missing post type; row left out"})
    keep = ~bad_type & pd.concat(num, axis=1).notna().all(axis=1)
    out = pd.DataFrame({"outcome": num["outcome"], "type": df["type"], "paid": num["paid"],
                        "hour": num["hour"], "weekday": num["weekday"],
                        "month": num["month"]})[keep]
    out[["hour", "weekday", "month"]] = out[["hour", "weekday", "month"]].astype(int)
    return out.reset_index(drop=True), pd.DataFrame(
        dropped, columns=["row", "field", "value", "reason"])


def _design(df: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]]]:
    cols = [np.ones(len(df))]
    names = [("Intercept", "")]
    for term in ("type", "paid", "hour", "weekday", "month"):
        if term == "paid":
            cols.append(df["paid"].to_numpy(dtype=np.float64))
            names.append(("paid", "1"))
            continue
        levels = sorted(df[term].unique())
        for lv in levels[1:]:  # treatment coding against the first level
            cols.append((df[term] == lv).to_numpy(dtype=np.float64))
            names.append((term, str(lv)))
    return np.column_stack(cols), names


def fit_page(df: pd.DataFrame, dropped: pd.DataFrame | None = None) -> PageFit:
    """OLS of ``log1p(outcome)`` on type, paid, hour, weekday and month (see module doc)."""
    if len(df) < 10:
        raise DataError(f"page regression needs at least 10 posts, got {len(df)}")
    x, names = _design(df)
    y = np.log1p(df["outcome"].to_numpy(dtype=np.float64))
    n, p = x.shape
    rank = np.linalg.matrix_rank(x)
    if rank < p:
        raise DataError(f"page regression: the terms are collinear (rank {rank} < {p}); "
                        "some level never varies independently — drop a term")
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    dof = n - p
    s2 = float(resid @ resid / dof)
    se = np.sqrt(np.diag(xtx_inv) * s2)
    tcrit = stats.t.ppf(0.975, dof)
    tval = beta / se
    pval = 2 * stats.t.sf(np.abs(tval), dof)
    eff = pd.DataFrame({"term": [t for t, _ in names], "level": [lv for _, lv in names],
                        "coef": beta, "se": se, "lo": beta - tcrit * se,
                        "hi": beta + tcrit * se, "t": tval, "p": pval})
    eff["pct"] = np.expm1(eff["coef"]) * 100
    eff["significant"] = eff["p"] < 0.05
    r2 = 1 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return PageFit(eff, n, dropped if dropped is not None else pd.DataFrame(
        columns=["row", "field", "value", "reason"]), r2, dof, _recommend(eff))


def _recommend(eff: pd.DataFrame) -> str:
    parts = []
    for term, label in (("hour", "hour"), ("weekday", "weekday"), ("type", "type")):
        g = eff[(eff["term"] == term) & eff["significant"] & (eff["coef"] > 0)]
        if len(g):
            best = g.loc[g["coef"].idxmax()]
            parts.append(f"{label} {best['level']} ({best['pct']:+.0f}% engaged users vs the "
                         f"reference, 95% CI {np.expm1(best['lo']) * 100:+.0f}% to "
                         f"{np.expm1(best['hi']) * 100:+.0f}%)")
    paid = eff[eff["term"] == "paid"].iloc[0]
    if paid["significant"]:
        parts.append(f"paid promotion {paid['pct']:+.0f}%")
    if not parts:
        return ("no publish slot, type or promotion differs significantly from the reference "
                "at the 5% level: timing is not what drives engagement on this page")
    return "best supported: " + "; ".join(parts)
