"""feedwise: attention-aware social feeds.

Public names of the spine; the capabilities live in their subpackages
(``feedwise.models``, ``feedwise.feed``, ``feedwise.analytics``, ``feedwise.evaluation``,
``feedwise.selection``, ``feedwise.evidence``, ``feedwise.server``, ``feedwise.engines``).

The names are resolved on first use (PEP 562), so importing one light module of the
package (``feedwise.errors``, the command line's help) does not load the numerical stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ConfigError": "feedwise.errors", "ConsentError": "feedwise.errors",
    "DataError": "feedwise.errors", "FeedwiseError": "feedwise.errors",
    "NotFittedError": "feedwise.errors", "NotFoundError": "feedwise.errors",
    "Feed": "feedwise.feed.types", "FeedRequest": "feedwise.feed.types",
    "Slot": "feedwise.feed.types",
    "Interactions": "feedwise.interactions", "InteractionWeights": "feedwise.interactions",
    "ItemList": "feedwise.itemlist",
    "Recommender": "feedwise.models", "get_model": "feedwise.models",
    "EventStore": "feedwise.store", "IngestReport": "feedwise.store",
}

__all__ = [
    "ConfigError", "ConsentError", "DataError", "EventStore", "Feed", "FeedRequest",
    "FeedwiseError", "IngestReport", "InteractionWeights", "Interactions", "ItemList",
    "NotFittedError", "NotFoundError", "Recommender", "Slot", "get_model", "__version__",
]

if TYPE_CHECKING:
    from feedwise.errors import (
        ConfigError,
        ConsentError,
        DataError,
        FeedwiseError,
        NotFittedError,
        NotFoundError,
    )
    from feedwise.feed.types import Feed, FeedRequest, Slot
    from feedwise.interactions import Interactions, InteractionWeights
    from feedwise.itemlist import ItemList
    from feedwise.models import Recommender, get_model
    from feedwise.store import EventStore, IngestReport


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'feedwise' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
