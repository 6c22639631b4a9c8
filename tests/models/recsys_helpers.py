"""Side data matching ``feedwise.testing.contract_data``'s planted taste groups."""

from __future__ import annotations

import pandas as pd

from feedwise.interactions import Interactions
from feedwise.models import Recommender


def group_items(n_items: int = 40, n_groups: int = 4, extra: int = 0) -> pd.DataFrame:
    """Items whose tags name their taste block (as in ``contract_data``)."""
    block = n_items // n_groups
    ids = range(n_items + extra)
    return pd.DataFrame({"item_id": [f"i{i}" for i in ids],
                         "title": [f"Item {i}" for i in ids],
                         "tags": [[f"genre{min(i // block, n_groups - 1)}", "film"]
                                  for i in ids]})


def group_edges(n_users: int = 60, n_groups: int = 4) -> pd.DataFrame:
    """Each user follows the next two users of the same taste group."""
    src, dst = [], []
    for u in range(n_users):
        for step in (1, 2):
            src.append(f"u{u}")
            dst.append(f"u{(u + n_groups * step) % n_users}")
    return pd.DataFrame({"src": src, "dst": dst})


def planted_hit_rate(model: Recommender, data: Interactions) -> float:
    block = data.n_items // 4
    users = list(data.user_ids[:20])
    hits = 0
    for u, rec in zip(users, model.recommend(users, 3), strict=True):
        g = int(u[1:]) % 4
        hits += sum(g * block <= int(i[1:]) < (g + 1) * block for i in rec.ids)
    return hits / (3 * len(users))
