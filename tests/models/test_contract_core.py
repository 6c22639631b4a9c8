from feedwise.models import ItemKNN, Popularity
from feedwise.testing import RecommenderContract


class TestPopularity(RecommenderContract):
    def make_model(self):
        return Popularity()


class TestDecayedPopularity(RecommenderContract):
    def make_model(self):
        return Popularity(half_life_days=1.0)


class TestItemKNN(RecommenderContract):
    def make_model(self):
        return ItemKNN(k=10)
