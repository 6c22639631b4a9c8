"""feedwise: attention-aware social feeds.

Public names of the spine; the capabilities live in their subpackages
(``feedwise.models``, ``feedwise.feed``, ``feedwise.analytics``, ``feedwise.evaluation``,
``feedwise.selection``, ``feedwise.evidence``, ``feedwise.server``, ``feedwise.engines``).
"""

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

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "ConsentError", "DataError", "EventStore", "Feed", "FeedRequest",
    "FeedwiseError", "IngestReport", "InteractionWeights", "Interactions", "ItemList",
    "NotFittedError", "NotFoundError", "Recommender", "Slot", "get_model", "__version__",
]
