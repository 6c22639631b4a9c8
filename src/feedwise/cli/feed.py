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


def train_engagement(store: EventStore, rec: Any, cfg: Any, holdout: float = 0.2,
                     progress: Any = None):
    """Fit the engagement model on the store's impression log under the point-in-time
    protocol (:mod:`feedwise.ranking.pointintime`); returns ``(model, report)``.

    Every feature of a training impression comes from the events strictly before it; the
    recommender score from ``rec``'s class and parameters refitted at rolling cuts on the
    events before each cut (so it never saw the rows it scores). The report is measured on
    the hold-out, the latest ``holdout`` share of the log's time.
    """
    return point_in_time_engagement(store, rec, holdout=holdout, progress=progress)[:2]


def point_in_time_engagement(store: EventStore, rec: Any, *, holdout: float = 0.2,
                             progress: Any = None, **kwargs: Any):
    """``(model, report, result)`` of :func:`~feedwise.ranking.pointintime.fit_point_in_time`
    over the store: its posts, users (declared profile), impression log, and ``rec``
    (a fitted recommender or ``None``) refitted per fold."""
    import numpy as np
    import pandas as pd

    from feedwise.feed.engine import FeedEngine
    from feedwise.models.base import side_data
    from feedwise.ranking.pointintime import PointInTimeFeatures, fit_point_in_time

    ev = store.impression_log()
    posts = store.posts()
    base = FeedEngine(None, posts, users=store.users())  # declared profiles only
    features = PointInTimeFeatures(base.catalog, base.users, ev, store.edge_log())
    fit_rec = None
    if rec is not None and hasattr(rec, "get_params"):
        created = pd.to_datetime(posts["created_at"], utc=True) if "created_at" in posts \
            else None

        def fit_rec(cut_s: float):
            cut = pd.Timestamp(int(np.floor(cut_s * 1e6)), unit="us", tz="UTC"
                               ).to_pydatetime()
            known = posts if created is None else posts[(created < cut).to_numpy()]
            try:
                data = store.interactions(until=cut)
                model = type(rec)(**rec.get_params())
                model.fit(data, **side_data(model, items=known, edges=store.edges_as_of(
                    cut, exclude_objectors=True)))
            except FeedwiseError:  # too little data before this cut: no score
                return None
            return lambda users, items: pair_scores(model, users, items)

    res = fit_point_in_time(features, fit_recommender=fit_rec, holdout=holdout,
                            progress=progress, **kwargs)
    return res.model, res.report, res


def feed(
    user: Annotated[str, typer.Argument(help="User id.")],
    n: Annotated[int, typer.Option("-n", help="Number of slots.")] = 20,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="Recommender name (default: the promoted model of the "
                              "store's registry, else a new auto model: the blend for a fresh "
                              "feed or a static catalogue, picked from the data).")] = None,
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
                with err_console.status("training the engagement model") as status:
                    eng_model, report = train_engagement(
                        store, rec, cfg, progress=lambda m: status.update(
                            f"training the engagement model: {m}"))
                err_console.print(engagement_table(report))
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


def pair_scores(model: Any, users: Any, items: Any, batch: int = 256):
    """A fitted recommender's score of each ``(users[j], items[j])`` pair, scoring each
    distinct user once (in dense blocks of at most ``batch`` users that fit the model's
    memory budget); 0 for items the model does not know."""
    import numpy as np

    users = np.asarray(users, dtype=object)
    cols = model.item_columns(items)
    batch = model.batch_rows(batch)
    out = np.zeros(len(users))
    uniq, inv = np.unique(users.astype(str), return_inverse=True)
    for lo in range(0, len(uniq), batch):
        dense, _ = model._scores_for(list(uniq[lo:lo + batch]), None)
        sel = np.flatnonzero((inv >= lo) & (inv < lo + batch) & (cols >= 0))
        out[sel] = dense[inv[sel] - lo, cols[sel]]
    return np.nan_to_num(out, nan=0.0)


def engagement_table(report: Any) -> str:
    """The hold-out report as printed: one line per objective."""
    cols = ["objective", "positives", "rate", "base_rate", "mean_pred", "log_loss",
            "log_loss_const", "ece", "ece_over_rate", "auc"]
    fmt = {c: "{:.4f}".format for c in cols[2:]}
    fmt["rate"] = fmt["base_rate"] = fmt["mean_pred"] = fmt["ece"] = "{:.5f}".format
    return ("engagement model, point-in-time temporal hold-out (the last 20% of time; "
            "log_loss_const: the base rate of the earlier rows as a constant):\n"
            + report[cols].to_string(index=False, formatters=fmt))


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
