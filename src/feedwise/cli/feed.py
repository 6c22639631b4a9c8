"""``feedwise feed USER -n 20``: compose one feed from the store and print it with reasons."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedwise.cli._common import (
    DbOption,
    Format,
    FormatOption,
    emit,
    err_console,
    open_store,
)
from feedwise.cli._insight import parse_when
from feedwise.cli.recommend import load_or_train
from feedwise.errors import ConfigError, DataError, FeedwiseError

if TYPE_CHECKING:
    from feedwise.store import EventStore


def load_config(path: Path | None, ux_lambda: float | None):
    """A :class:`FeedConfig` from a YAML/JSON file (or the defaults), λ overridden."""
    import json

    from pydantic import ValidationError

    from feedwise.feed.config import FeedConfig

    data: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise DataError(f"{path}: no such config file")
        text = path.read_text()
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as e:  # noqa: BLE001 - any parse error becomes one clean message
            raise ConfigError(f"{path}: cannot parse ({e}); expected a YAML or JSON mapping "
                              "of FeedConfig fields") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a YAML or JSON mapping of FeedConfig fields, "
                              f"got {type(data).__name__}")
    if ux_lambda is not None:
        data["ux_lambda"] = ux_lambda
    try:
        return FeedConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{path or 'config'}: field {where!r}: {err['msg']}") from None


def train_engagement(store: EventStore, rec: Any, cfg: Any, holdout: float = 0.2):
    """Fit the engagement model on the store's impression log; returns (model, report).

    The features of the hold-out (the latest ``holdout`` share of impressions) are built from
    popularity, profiles and a recommender (``rec``'s class and parameters) fitted on the
    events before it begins, so nothing of the test period leaks.
    """
    import numpy as np
    import pandas as pd

    from feedwise.feed.engine import FeedEngine
    from feedwise.ranking.engagement import holdout_report, temporal_split
    from feedwise.ranking.features import impression_features, label_impressions

    ev = store.impression_log()
    imps = label_impressions(ev[ev["kind"] != "ad_impression"])
    secs = (pd.to_datetime(imps["ts"], utc=True) - pd.Timestamp(0, tz="UTC")
            ).dt.total_seconds().to_numpy()
    _, test = temporal_split(secs, holdout)
    first_us = int(np.floor(secs[test].min() * 1e6))
    cutoff = pd.Timestamp(first_us, unit="us", tz="UTC").to_pydatetime()
    engine = FeedEngine.from_store(store, None, cfg, until=cutoff)
    ads = ev[ev["kind"] == "ad_impression"]
    ad_times = {u: np.sort((pd.to_datetime(g["ts"], utc=True) - pd.Timestamp(0, tz="UTC")
                            ).dt.total_seconds().to_numpy()) for u, g in ads.groupby("user_id")}
    rec_score = None
    if rec is not None and hasattr(rec, "get_params"):
        # the same recommender, refitted on the events before the hold-out
        try:
            cut = type(rec)(**rec.get_params()).fit(store.interactions(until=cutoff))
        except FeedwiseError:
            cut = None
        if cut is not None:
            ids = engine.catalog.item_ids

            def rec_score(user: str, idx: np.ndarray) -> np.ndarray:
                return np.nan_to_num(cut.score(user, ids[idx]), nan=0.0)

    X, keep = impression_features(imps, engine.catalog, engine.users, rec_score=rec_score,
                                  ad_times=ad_times)
    labels = imps[keep].reset_index(drop=True)
    if len(labels) < 50:
        raise DataError(f"only {len(labels)} impressions of known posts; need at least 50 to "
                        "train the engagement model")
    ts = (pd.to_datetime(labels["ts"], utc=True) - pd.Timestamp(0, tz="UTC")
          ).dt.total_seconds().to_numpy()
    return holdout_report(X, labels, ts, holdout=holdout)


def feed(
    user: Annotated[str, typer.Argument(help="User id.")],
    n: Annotated[int, typer.Option("-n", help="Number of slots.")] = 20,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Recommender name (default: the promoted model of the "
                              "store's registry).")] = None,
    model_path: Annotated[Path | None, typer.Option(help="Recommender artifact folder "
                                                     "(default: the store's registry, "
                                                     "STORE.models; trained if absent).")
                          ] = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", envvar="FEEDWISE_REGISTRY",
        help="Model registry (default: the store's, STORE.models beside it).")] = None,
    config: Annotated[Path | None, typer.Option(help="FeedConfig as YAML/JSON.")] = None,
    ux_lambda: Annotated[float | None, typer.Option(
        "--lambda", help="λ: revenue per unit of UX cost (overrides the config).")] = None,
    engagement: Annotated[Path | None, typer.Option(
        help="Folder of a saved engagement model (engagement.json).")] = None,
    train_engagement_model: Annotated[bool, typer.Option(
        "--train-engagement", help="Train the engagement model on the store's impressions "
                                   "first and print its temporal hold-out report.")] = False,
    now: Annotated[str | None, typer.Option(help="Request time, ISO 8601 (default: now, "
                                                 "UTC).")] = None,
    record: Annotated[bool, typer.Option(help="Record the served feed in the store as `serve` "
                                              "does: its impressions (ads with their "
                                              "charge), caps and spend.")] = False,
    db: DbOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Compose USER's feed (organic posts and ads) and print each slot with its reasons.

    Example: feedwise feed u000001 -n 20 --format json
    """
    from feedwise.feed.engine import FeedEngine
    from feedwise.feed.types import FeedRequest
    from feedwise.ranking.engagement import MultiObjectiveModel
    from feedwise.schema import utc
    from feedwise.server.routes.feed import impression_rows

    try:
        cfg, arm, rollout = feed_policy(user, db, config, ux_lambda)
        when = parse_when(now, "--now") if now else utc(datetime.now().astimezone())
        rec = load_or_train(model, db, model_path, registry=registry)
        if arm.model_version is not None and model is None and model_path is None:
            # the user's experiment arm serves another registry version
            rec = load_or_train(None, db, _version_path(db, registry, arm.model_version),
                                registry=registry)
        with open_store(db) as store:
            eng_model = None
            if engagement is not None:
                if not (engagement / "engagement.json").is_file():
                    raise DataError(f"{engagement}: no engagement.json (not a saved "
                                    "engagement model); pass the folder a model was saved "
                                    "to, or use --train-engagement instead")
                eng_model = MultiObjectiveModel.load(engagement)
            elif train_engagement_model:
                with err_console.status("training the engagement model"):
                    eng_model, report = train_engagement(store, rec, cfg)
                err_console.print("engagement model, temporal hold-out:")
                err_console.print(report.to_string(index=False))
            engine = FeedEngine.from_store(store, rec, cfg, engagement=eng_model)
            request = FeedRequest(user, n=n, now=when, request_id=f"cli-{uuid.uuid4().hex}")
            result = rollout.compose(engine, request, arm, record=record)
            if record:  # as `serve` logs it: the impressions (ads with their charge) and
                # the ad state, in one transaction
                store.log_served(impression_rows(result, request.request_id,
                                                 arm.model_version or "cli", "cli", None,
                                                 arm.log_context()), (engine.flush,))
    except FeedwiseError:
        raise
    except ValueError as e:  # an option the feed's types reject (e.g. -n 0)
        raise ConfigError(str(e)) from None
    rows = [{"slot": i + 1, "kind": s.kind, "item_id": s.item_id,
             "title": engine_title(engine, s), "score": round(s.score, 6),
             "propensity": s.propensity, "campaign_id": s.campaign_id or "",
             "price": s.price, "source": s.source, "reasons": "; ".join(s.reasons)}
            for i, s in enumerate(result.slots)]
    if fmt in (Format.json, Format.jsonl):  # which policy version served the feed
        desc = {**arm.describe(), "name": result.policy}
        rows = [{**r, "policy": desc} for r in rows]
    emit(rows, fmt, title=f"feed for {user} ({result.policy}; policy {arm.version}, "
                          f"{arm.source})")


def feed_policy(user: str, db: str | None, config: Path | None, ux_lambda: float | None):
    """The configuration, arm and :class:`~feedwise.evidence.rollout.Rollout` that serve
    ``user``: ``--config`` (or the defaults) with the deployment's applied policy (λ and
    guardrails from ``frontier --apply``) laid over it, the user's experiment arm, and
    ``--lambda`` (or a λ / guardrail set in the ``--config`` file) over everything."""
    from feedwise.evidence.rollout import POLICY_FIELDS, Arm, Rollout
    from feedwise.store.base import default_db_path

    base = load_config(config, None)
    rollout = Rollout.for_store(db if db is not None else default_db_path(), base)
    arm = rollout.arm(user)
    explicit = {k: getattr(base, k) for k in POLICY_FIELDS if k in base.model_fields_set}
    if ux_lambda is not None:
        explicit["ux_lambda"] = ux_lambda
    if explicit:  # a setting given here wins over the deployment's policy and experiment
        cfg = load_config(config, ux_lambda)
        arm = Arm("override", float(cfg.ux_lambda), "override")
        return cfg, arm, Rollout(None, cfg)
    return rollout.config, arm, rollout


def _version_path(db: str | None, registry: str | None, version: str) -> Path:
    from feedwise.deployment import Deployment
    from feedwise.store.base import default_db_path

    root = Path(registry) if registry else Deployment.for_store(
        db if db is not None else default_db_path()).registry_dir
    path = root / "versions" / version
    if not (path / "model.json").is_file():
        raise ConfigError(f"the user's experiment arm serves model {version}, which is not in "
                          f"{root}; stop the experiment (feedwise abtest stop) or restore it")
    return path


def engine_title(engine: Any, slot: Any) -> str:
    if slot.kind == "ad":
        c = engine.book.index.get(slot.campaign_id)
        if c is not None:
            for cr in engine.book.campaigns[c].creatives:
                if cr.item_id == slot.item_id:
                    return cr.title or slot.item_id
        return slot.item_id
    k = engine.catalog.index.get(slot.item_id)
    return str(engine.catalog.titles[k]) if k is not None else slot.item_id


def register(app: typer.Typer) -> None:
    app.command()(feed)
