"""Recommenders. Every model derives from :class:`Recommender` and is found by name."""

from feedwise.models.base import Recommender
from feedwise.models.itemknn import ItemKNN
from feedwise.models.popularity import Popularity

__all__ = ["ItemKNN", "Popularity", "Recommender", "get_model"]


def get_model(name: str, **params):
    """Instantiate a registered model by name (``popularity``, ``itemknn``, ...)."""
    from feedwise.errors import ConfigError

    try:
        klass = Recommender.registry[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of "
                          f"{sorted(Recommender.registry)}") from None
    return klass(**params)
