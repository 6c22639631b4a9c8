"""``EventStore`` implements the storage protocol, method for method."""

from __future__ import annotations

import inspect

from feedwise.store import EventStore
from feedwise.store.protocol import Storage


def _protocol_methods() -> list[str]:
    return [n for n, v in vars(Storage).items() if not n.startswith("_") and callable(v)]


def test_event_store_has_every_method_with_the_same_parameters():
    names = _protocol_methods()
    assert len(names) > 40
    for name in names:
        want = inspect.signature(getattr(Storage, name))
        got = inspect.signature(getattr(EventStore, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in want.parameters.values()], name


def test_an_event_store_is_a_storage(store):
    assert isinstance(store, Storage)


def test_every_public_named_method_of_the_store_is_in_the_protocol():
    generic = {"cursor", "query", "scalar", "transaction", "reset", "events"}
    public = {n for cls in EventStore.__mro__ if cls is not object for n, v in vars(cls).items()
              if not n.startswith("_") and callable(v)}
    assert public - generic - set(_protocol_methods()) == set()
