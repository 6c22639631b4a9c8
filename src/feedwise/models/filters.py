"""`BusinessFilter`: business rules applied on top of any recommender.

Every :class:`~feedwise.models.base.Recommender` already drops seen items, an exclude list,
anything outside a candidate whitelist and the items a user hid or reported. This component
adds the author rules: it also drops every item by an author the user hid or reported
(derived from the model's hidden pairs and an item → author map) and any explicitly blocked
authors, then calls ``recommend`` with the merged exclusions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from feedwise.errors import NotFittedError
from feedwise.itemlist import ItemList
from feedwise.models.base import History, PerUser, Recommender


class BusinessFilter:
    """Author-level exclusions for any fitted recommender.

    Args:
        item_authors: Item id -> author id (e.g. the ``author_id`` column of the items table).
        blocked_authors: Authors no user should be shown (e.g. suspended accounts).
    """

    def __init__(self, item_authors: Mapping[str, str] | None = None,
                 blocked_authors: Iterable[str] = ()) -> None:
        self.item_authors = {str(k): str(v) for k, v in (item_authors or {}).items()
                             if v is not None}
        self.blocked_authors = frozenset(str(a) for a in blocked_authors)
        by_author: dict[str, list[str]] = {}
        for item, author in self.item_authors.items():
            by_author.setdefault(author, []).append(item)
        self._items_by_author = by_author

    def hidden_authors(self, model: Recommender, user_id: str) -> set[str]:
        """Authors of the items ``user_id`` hid or reported (per the model's training data)."""
        if not hasattr(model, "negatives_"):
            raise NotFittedError(f"{type(model).__name__} is not fitted: call fit(data) first")
        r = model.user_index_.get(str(user_id))
        if r is None:
            return set()
        row = model.negatives_[r]
        items = model.item_ids_[row.indices[row.data > 0]]
        return {self.item_authors[str(i)] for i in items if str(i) in self.item_authors}

    def exclusions(self, model: Recommender, user_ids: Sequence[str], *,
                   hidden_authors: Mapping[str, Iterable[str]] | None = None
                   ) -> dict[str, list[str]]:
        """Item ids to drop per user: items by blocked authors and by authors they hid.

        Args:
            model: A fitted recommender (its hidden/reported pairs are read).
            user_ids: The users of the request.
            hidden_authors: Extra per-user hidden authors (e.g. hidden after training).
        """
        out: dict[str, list[str]] = {}
        for u in user_ids:
            u = str(u)
            authors = set(self.blocked_authors) | self.hidden_authors(model, u)
            authors |= {str(a) for a in (hidden_authors or {}).get(u, ())}
            out[u] = [i for a in sorted(authors) for i in self._items_by_author.get(a, ())]
        return out

    def recommend(self, model: Recommender, user_ids: Sequence[str] | str, n: int = 10, *,
                  exclude: PerUser = None, candidates: PerUser = None,
                  history: History = None, exclude_seen: bool = True,
                  hidden_authors: Mapping[str, Iterable[str]] | None = None
                  ) -> list[ItemList]:
        """``model.recommend`` with the author rules merged into ``exclude``."""
        if isinstance(user_ids, str):
            user_ids = [user_ids]
        users = [str(u) for u in user_ids]
        merged = self.exclusions(model, users, hidden_authors=hidden_authors)
        for u in users:
            extra = exclude.get(u, ()) if isinstance(exclude, Mapping) else (exclude or ())
            merged[u] = list(np.unique(np.asarray([*merged[u], *map(str, extra)], dtype=str)))
        return model.recommend(users, n, exclude=merged, candidates=candidates,
                               history=history, exclude_seen=exclude_seen)
