"""Models are found by the name each class gives itself; a subclass that inherits a name
(a test double, a variant) does not take that name over."""

from __future__ import annotations

from feedwise.models import Popularity, Recommender, get_model


def test_a_subclass_inheriting_a_name_does_not_replace_its_parent() -> None:
    class Spy(Popularity):
        pass

    assert Recommender.registry["popularity"] is Popularity
    assert type(get_model("popularity")) is Popularity


def test_a_subclass_naming_itself_registers() -> None:
    class Renamed(Popularity):
        name = "popularity-renamed-for-a-test"

    try:
        assert type(get_model("popularity-renamed-for-a-test")) is Renamed
    finally:
        del Recommender.registry["popularity-renamed-for-a-test"]
