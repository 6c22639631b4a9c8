"""Recommenders. Every model derives from :class:`Recommender` and is found by name."""

from feedwise.models.als import ALS
from feedwise.models.auto import Auto
from feedwise.models.base import Recommender
from feedwise.models.bpr import BPR
from feedwise.models.content import Content
from feedwise.models.ease import EASE
from feedwise.models.filters import BusinessFilter
from feedwise.models.fresh import Fresh
from feedwise.models.gf_cf import GFCF
from feedwise.models.hybrid import Hybrid
from feedwise.models.itemknn import ItemKNN
from feedwise.models.norm_ease import NormEASE
from feedwise.models.popularity import Popularity
from feedwise.models.rp3beta import RP3beta
from feedwise.models.social import Social
from feedwise.models.spark_als import SparkALS
from feedwise.models.time_ease import TimeEASE

__all__ = ["ALS", "Auto", "BPR", "EASE", "BusinessFilter", "Content", "Fresh", "GFCF",
           "Hybrid", "ItemKNN", "NormEASE", "Popularity",
           "RP3beta", "Recommender", "Social", "SparkALS", "TimeEASE", "get_model"]


def get_model(name: str, **params):
    """Instantiate a registered model by name (``popularity``, ``itemknn``, ...)."""
    from feedwise.errors import ConfigError

    try:
        klass = Recommender.registry[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of "
                          f"{sorted(Recommender.registry)}") from None
    return klass(**params)
