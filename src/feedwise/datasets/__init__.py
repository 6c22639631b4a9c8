"""Public datasets (MovieLens, Last.fm HetRec 2011, FilmTrust) and a synthetic social feed.

>>> from feedwise.datasets import load, synthetic_social  # doctest: +SKIP
>>> ml = load("movielens-100k", data_dir="data")  # doctest: +SKIP
>>> world = synthetic_social(n_users=500, seed=1)  # doctest: +SKIP
"""

from feedwise.datasets.loaders import DATASETS, Dataset, load
from feedwise.datasets.synthetic import SocialWorld, synthetic_social

__all__ = ["DATASETS", "Dataset", "SocialWorld", "load", "synthetic_social"]
