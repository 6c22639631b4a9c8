"""The closed loop: retrain on the newest events, evaluate on the newest slice, promote or not.

One :func:`retrain` run:

1. The window is ``[now - window_days, now)`` (all history without ``window_days``). If a
   version is promoted and fewer than ``min_new_events`` events arrived since its window
   ended, nothing is trained (decision ``skip``).
   The window's training view (:meth:`EventStore.interactions`) leaves out the events of
   users who objected to profiling (``consent_personalization`` false), so neither the
   candidate nor its evaluation ever fits on them.
2. The window is split in time (:func:`~feedwise.evaluation.temporal_split`): the newest
   ``test_fraction`` of (user, item) pairs is the test slice.
3. The candidate (``model`` + ``params``) is fitted on the older part and scored on the
   newest slice (:func:`~feedwise.evaluation.evaluate`). The promoted version is scored on
   the same slice: its artifact as it is when it was trained before the slice began (it
   never saw the slice), otherwise its configuration refitted on the same older part.
4. Popularity (:class:`~feedwise.models.Popularity` at its defaults) is fitted on the same
   older part and scored on the same slice.
5. The gate: the candidate is promoted iff

   * it is within the **relative** ``tolerance`` of the promoted version on that slice,
     ``ndcg_candidate >= ndcg_current × (1 − tolerance)`` (no promoted version: passes), and
   * it **beats popularity** there, ``ndcg_candidate > ndcg_popularity`` (with
     ``beat_popularity``; a popularity candidate is the baseline itself and is held to the
     first rule only).

   A relative tolerance scales with the metric: an absolute 0.01 was larger than NDCG@10
   itself on sparse data and let a 0.0000 model replace a 0.0023 one. Either way the
   candidate is refitted on the whole window and registered (with the held-out figures,
   never training-data figures, and the gate's figures in its metadata), and the decision
   with every figure is appended to the registry's ``decisions.jsonl``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from feedwise.errors import DataError
from feedwise.evaluation import Split, evaluate, temporal_split
from feedwise.models import get_model
from feedwise.models.base import Recommender, side_data
from feedwise.registry import DataWindow, ModelRegistry, ModelVersion
from feedwise.schema import utc
from feedwise.store import EventStore


class RetrainConfig(BaseModel):
    """How the loop retrains and decides.

    Attributes:
        model: Registered model name (``itemknn``, ``popularity``, ...).
        params: Its hyperparameters.
        window_days: Train on the last ``window_days`` days only (``None``: all history).
        test_fraction: Share of the newest (user, item) pairs held out as the test slice.
        k: List length of the metric (NDCG@k).
        tolerance: Largest relative NDCG@k drop vs the promoted version still promoted
            (0.05: the candidate may score down to 95 % of the promoted version).
        beat_popularity: The candidate must also score above popularity on the slice.
        min_new_events: Skip the run when fewer events arrived since the last window.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "auto"  # the default model (docs/evaluation.md)
    params: dict[str, Any] = Field(default_factory=dict)
    window_days: float | None = Field(default=None, gt=0)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    k: int = Field(default=10, ge=1)
    tolerance: float = Field(default=0.05, ge=0, le=1)
    beat_popularity: bool = True
    min_new_events: int = Field(default=1, ge=0)


class RetrainDecision(BaseModel):
    """What one run decided, with the figures it decided on."""

    at: datetime
    action: str  # "promote" | "keep" | "skip"
    reason: str
    candidate_version: str | None = None
    current_version: str | None = None
    ndcg_candidate: float | None = None
    ndcg_current: float | None = None
    ndcg_popularity: float | None = None
    baseline: str | None = None  # "artifact" | "refit" | None
    tolerance: float
    k: int
    new_events: int
    window: DataWindow
    test_users: int = 0
    test_cut: datetime | None = None


def ndcg_on_split(model: Recommender, split: Split, k: int) -> float:
    """Mean NDCG@k of a fitted model on ``split.test`` (any id map).

    Items the user has in ``split.train`` are excluded from the list, so a model trained on
    older data is not penalised for recommending what the user has since seen.
    """
    table = evaluate(model, split, k, fit=False, metrics=("ndcg",), beyond=False,
                     exclude_train=True)
    return _metric(table, "ndcg")


def _metric(table: pd.DataFrame, name: str) -> float:
    return float(table.loc[table["metric"] == name, "value"].iloc[0])


def retrain(store: EventStore, registry: ModelRegistry, config: RetrainConfig,
            now: datetime) -> RetrainDecision:
    """Run the loop once (see the module docstring) and return the recorded decision."""
    now = utc(now)
    current: ModelVersion | None = registry.promoted()
    since = now - timedelta(days=config.window_days) if config.window_days else None
    last_until = current.data_window.until if current else None
    new_events = store.count_events(since=last_until, until=now)
    n_window = store.count_events(since=since, until=now)
    window = DataWindow(since=since, until=now, n_events=n_window)
    base = dict(at=now, tolerance=config.tolerance, k=config.k, new_events=new_events,
                current_version=current.version if current else None)
    if current is not None and new_events < config.min_new_events:
        d = RetrainDecision(action="skip", window=window, **base,
                            reason=f"{new_events} new events since {last_until} "
                                   f"(< {config.min_new_events})")
        registry.record_decision(d.model_dump(mode="json"))
        return d
    data = store.interactions(since, now)  # objectors to profiling left out
    window = window.model_copy(update={"n_users": data.n_users, "n_items": data.n_items})
    split = temporal_split(data, test_fraction=config.test_fraction)
    if split.test.nnz == 0 or split.train.nnz == 0:
        raise DataError("the window is too small to hold out a test slice; widen "
                        "--window-days or ingest more events")
    cut_s = float(split.test.last_ts.data.min()) if split.test.last_ts is not None else None
    cut = datetime.fromtimestamp(cut_s, UTC) if cut_s is not None else None
    candidate = get_model(config.model, **config.params)
    # the posts table feeds the models that read it (text, tags, posts without events yet)
    posts = store.posts()
    table = evaluate(candidate, split, config.k, fit_kwargs=side_data(candidate, items=posts))
    ndcg_cand = _metric(table, "ndcg")
    n_test = int(_metric(table, "users"))
    ndcg_cur, baseline = None, None
    if current is not None:
        trained_before = (current.data_window.until is not None and cut is not None
                          and current.data_window.until <= utc(cut))
        if trained_before:
            ndcg_cur = ndcg_on_split(registry.load(current.version), split, config.k)
            baseline = "artifact"
        else:
            refit = get_model(current.model, **current.params)
            refit.fit(split.train, **side_data(refit, items=posts))
            ndcg_cur = ndcg_on_split(refit, split, config.k)
            baseline = "refit"
    ndcg_pop = None
    if config.beat_popularity and config.model != "popularity":
        pop = get_model("popularity")
        pop.fit(split.train, **side_data(pop, items=posts))
        ndcg_pop = ndcg_on_split(pop, split, config.k)
    floor = None if ndcg_cur is None else ndcg_cur * (1.0 - config.tolerance)
    within = floor is None or ndcg_cand >= floor
    beats = ndcg_pop is None or ndcg_cand > ndcg_pop
    promote = within and beats
    final = get_model(config.model, **config.params)
    final.fit(data, **side_data(final, items=posts))
    metrics = {f"{row.metric}@{config.k}" if row.metric not in (
        "fit_seconds", "recommend_seconds", "users") else row.metric: row.value
        for row in table.itertuples()}
    gate = {"ndcg_candidate": ndcg_cand, "ndcg_current": ndcg_cur,
            "ndcg_popularity": ndcg_pop, "current_version": current.version if current else None,
            "tolerance": config.tolerance, "decision": "promote" if promote else "keep"}
    meta = registry.register(final, data_window=window, metrics=metrics,
                             config={**config.model_dump(), "gate": gate},
                             notes="held-out metrics on the newest "
                                   f"{config.test_fraction:.0%} of pairs")
    k = config.k
    parts = []
    if ndcg_cur is None:
        parts.append("no promoted version yet")
    elif within:
        parts.append(f"NDCG@{k} {ndcg_cand:.4f} >= {ndcg_cur:.4f} x (1 - {config.tolerance:g}) "
                     f"= {floor:.4f} ({current.version})")
    else:
        parts.append(f"NDCG@{k} {ndcg_cand:.4f} is below {ndcg_cur:.4f} ({current.version}) by "
                     f"more than the relative tolerance {config.tolerance:g} (floor "
                     f"{floor:.4f})")
    if ndcg_pop is not None:
        parts.append(f"{'beats' if beats else 'does not beat'} popularity "
                     f"({ndcg_cand:.4f} vs {ndcg_pop:.4f})")
    reason = "; ".join(parts)
    if promote:
        registry.promote(meta.version, reason=reason, now=now)
    d = RetrainDecision(action="promote" if promote else "keep", reason=reason, window=window,
                        candidate_version=meta.version, ndcg_candidate=ndcg_cand,
                        ndcg_current=ndcg_cur, ndcg_popularity=ndcg_pop, baseline=baseline,
                        test_users=n_test,
                        test_cut=cut, **base)
    registry.record_decision(d.model_dump(mode="json"))
    return d
