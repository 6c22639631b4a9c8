import math

import pandas as pd

from feedwise.analytics.suppression import suppress, suppress_matrix


def test_suppress_blanks_small_rows_only():
    df = pd.DataFrame({"g": ["a", "b", "c"], "users": [12, 3, 0], "rate": [0.5, 0.9, 0.0]})
    out = suppress(df, "users", 10)
    assert list(out["suppressed"]) == [False, True, False]
    assert math.isnan(out.loc[1, "rate"]) and math.isnan(out.loc[1, "users"])
    assert out.loc[0, "rate"] == 0.5 and out.loc[2, "rate"] == 0.0
    assert df.loc[1, "rate"] == 0.9  # input untouched


def test_suppress_matrix():
    vals = pd.DataFrame([[1.0, 2.0], [3.0, 4.0]])
    users = pd.DataFrame([[10, 9], [0, 50]])
    out = suppress_matrix(vals, users, 10)
    assert out.isna().to_numpy().tolist() == [[False, True], [False, False]]
