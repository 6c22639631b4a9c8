"""Small-group suppression of aggregate tables.

Any reported cell computed from fewer than ``k`` distinct users is blanked (set to NaN)
and marked, so no chart or table lets a reader single out a small group. Rates are
judged by their base: a retention rate over a cohort describes the cohort; a count of
users describes those users.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: The marker shown in place of a suppressed value.
SUPPRESSED = "<k"


def suppress(df: pd.DataFrame, users: str, k: int, columns: Sequence[str] | None = None,
             *, flag: str = "suppressed") -> pd.DataFrame:
    """Blank the cells of rows computed from 1 to ``k - 1`` users and mark those rows.

    Args:
        df: An aggregate table with one row per group.
        users: Column holding the number of distinct users each row is computed from.
        k: Smallest group size that may be shown.
        columns: Columns to blank in small rows (default: every numeric column, including
            ``users`` itself).
        flag: Name of the boolean column added to mark suppressed rows.

    Returns:
        A copy of ``df`` with small rows blanked and ``flag`` set.
    """
    n = df[users].fillna(0).to_numpy()
    small = (n > 0) & (n < k)  # a row of zero users describes nobody
    cols = list(columns) if columns is not None else [
        c for c, t in df.dtypes.items() if pd.api.types.is_numeric_dtype(t) and c != flag]
    if small.any() and df.columns.is_unique and set(cols) <= set(df.columns):
        # one new frame: each blanked column as float64 with NaN in the small rows (the
        # values the column-by-column assignments below give, without their per-column cost)
        blank = set(cols)
        data = {}
        for c in df.columns:
            if c in blank:
                v = df[c].astype("float64").to_numpy(copy=True)
                v[small] = np.nan
                data[c] = v
            else:
                data[c] = df[c]
        out = pd.DataFrame(data, index=df.index)
        out.columns = df.columns
        out.attrs = dict(df.attrs)
    else:
        out = df.copy()
        for c in cols if small.any() else ():
            out[c] = out[c].astype("float64")
            out.loc[small, c] = np.nan
    out[flag] = small
    return out


def suppress_matrix(values: pd.DataFrame, users: pd.DataFrame, k: int) -> pd.DataFrame:
    """Blank the cells of a pivoted matrix describing 1 to ``k - 1`` users (0 stays 0)."""
    u = users.reindex_like(values).fillna(0)
    mask = (u > 0) & (u < k)
    return values.astype("float64").mask(mask)
