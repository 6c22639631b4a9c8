"""The feed policy the service serves, and the model it is built from.

The service composes feeds with :class:`feedwise.feed.engine.FeedEngine` when it can be
built for the served model; otherwise with :class:`ModelFeedPolicy`, a small
adapter that serves the model's ``recommend`` list as organic slots (propensity 1.0, a
deterministic choice). Both have the one policy shape, ``compose(FeedRequest) -> Feed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from feedwise.errors import FeedwiseError
from feedwise.feed.config import FeedConfig
from feedwise.feed.engine import engine_for_service
from feedwise.feed.types import Feed, FeedRequest, Policy, Slot
from feedwise.models.base import Recommender
from feedwise.registry import ModelVersion
from feedwise.store import EventStore

log = logging.getLogger("feedwise.server")


class ModelFeedPolicy:
    """Organic-only feed from a recommender's top-n.

    Args:
        model: A fitted recommender.

    A request whose context has ``consent_personalization=False`` gets the non-personal
    popularity list.
    """

    name = "model"

    def __init__(self, model: Recommender) -> None:
        self.model = model

    def compose(self, request: FeedRequest) -> Feed:
        personal = request.context.get("consent_personalization", True)
        user = request.user_id if personal else "\x00anonymous"
        items = self.model.recommend([user], request.n, exclude_seen=personal)[0]
        slots = tuple(Slot(item_id=str(i), kind="organic", score=float(s), propensity=1.0,
                           reasons=(items.reason(k),) if items.reason(k) else ())
                      for k, (i, s) in enumerate(zip(items.ids, items.scores, strict=True)))
        return Feed(request, slots, policy=f"{self.name}:{self.model.name}")


def build_policy(model: Recommender, store: EventStore | None = None, kind: str = "auto",
                 config: FeedConfig | None = None) -> Policy:
    """The policy for ``model``: the FeedEngine if it can be built (``auto``), else (or with
    ``kind="model"``) the model's list as organic slots. ``kind="engine"`` raises if the
    engine cannot be built. ``config``: the engine's settings (the deployment's applied
    policy, :class:`~feedwise.evidence.rollout.Rollout`; default ``FeedConfig()``)."""
    if kind == "model":
        return ModelFeedPolicy(model)
    try:
        return engine_for_service(model, store, config)
    except FeedwiseError as e:
        if kind == "engine":
            raise  # e.g. no posts in the catalogue yet
        log.warning("FeedEngine not built (%s); serving the model's list as organic slots", e)
    except Exception:  # noqa: BLE001 - a broken engine must not take the service down
        log.exception("FeedEngine could not be built; serving the model's list")
    return ModelFeedPolicy(model)


@dataclass(frozen=True)
class Served:
    """What requests read: one immutable snapshot, swapped whole on promotion.

    ``arms``: model version -> policy, for a running experiment's arms that serve another
    registry version (views of ``policy`` sharing its ad state, caps and budgets);
    ``arm_models``: their models (erasure and objection reach them too)."""

    meta: ModelVersion
    model: Recommender
    policy: Policy
    arms: dict[str, Policy] = field(default_factory=dict)
    arm_models: dict[str, Recommender] = field(default_factory=dict)

    @property
    def models(self) -> list[Recommender]:
        """The served model and every experiment arm's model."""
        return [self.model, *self.arm_models.values()]

    @property
    def version(self) -> str:
        return self.meta.version
