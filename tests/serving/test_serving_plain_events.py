"""The plain-batch path of ``POST /v1/events`` makes exactly the rows the checked path
makes (as the writer's columns), and leaves every batch it cannot take whole to that path."""

from __future__ import annotations

import json

import pytest
from fastapi import HTTPException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedwise.schema import EVENT_COLUMNS
from feedwise.server.routes.events import _prepare, checked_rows, plain_columns
from feedwise.server.writer import columns_of

FIELDS = list(EVENT_COLUMNS)
JSON = "application/json"

scalars = st.one_of(
    st.none(), st.text(max_size=12), st.integers(-10**30, 10**30),
    st.floats(allow_nan=False), st.booleans(),
    st.sampled_from(["", "  ", " x ", "\ud800", "é" * 300, "x" * 256, "9" * 300]))
values = st.one_of(scalars, st.lists(scalars, max_size=2),
                   st.dictionaries(st.text(max_size=4), st.one_of(
                       scalars, st.dictionaries(st.text(max_size=2), scalars, max_size=1)),
                       max_size=3))
rows = st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.sampled_from(["bogus", "Kind"])),
                       values, max_size=6)
#: rows that are mostly plain, so that many batches take the plain path
plainish = st.dictionaries(st.sampled_from(FIELDS), st.one_of(
    st.none(), st.text(max_size=12), st.integers(-10**30, 10**30), st.floats(),
    st.sampled_from(["", " x ", "x" * 256, "x" * 257]),
    st.dictionaries(st.text(max_size=4), scalars, max_size=3)), max_size=8)


def encode(batch: list, ascii_only: bool) -> bytes:
    return json.dumps(batch, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def checked(body: bytes) -> tuple | str:
    try:
        return checked_rows(body, JSON, 10_000)
    except HTTPException as e:
        return f"{e.status_code}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.lists(rows, max_size=5), st.lists(plainish, max_size=5)), st.booleans())
def test_plain_columns_are_the_checked_rows(batch: list, ascii_only: bool) -> None:
    body = encode(batch, ascii_only)
    plain = plain_columns(body)
    if plain is not None:
        n, got, indices, errors = checked(body)
        assert errors == [] and n == len(plain["event_id"]) and indices == list(range(n))
        assert plain == columns_of(got)


def test_typical_batches_take_the_plain_path() -> None:
    batch = [{"event_id": f" e{i} ", "user_id": f"u{i}", "item_id": "i1", "kind": "click",
              "ts": "2026-12-06T10:00:00+00:00", "dwell_ms": 1200, "value": 0.5,
              "context": {"surface": "home", "rank": 3, "ok": True}} for i in range(3)]
    batch.append({"user_id": "u9", "item_id": "i2", "kind": "like", "ts": 1765000000,
                  "event_id": None})
    body = encode(batch, True)
    plain = plain_columns(body)
    assert plain is not None and plain == columns_of(checked(body)[1])
    assert plain["event_id"][0] == "e0" and plain["dwell_ms"][0] == "1200"
    assert plain["context"][0] == '{"surface":"home","rank":3,"ok":true}'
    assert plain["event_id"][3].startswith("api-") and plain["ts"][3] == "1765000000"


@pytest.mark.parametrize("row", [
    {"kind": "click", "bogus": 1},                      # an unknown field
    {"kind": True},                                      # a bool where text goes
    {"context": "not an object"},
    {"user_id": "x" * 257},                              # too long
    {"session_id": 10 ** 300},                           # too long once written out
])
def test_a_row_that_is_not_plain_sends_the_batch_to_the_checked_path(row: dict) -> None:
    body = encode([{"kind": "click", "user_id": "u1"}, row], True)
    assert plain_columns(body) is None
    n, rows_, indices, errors = _prepare(body, JSON, 10_000)
    assert (n, indices, [e.index for e in errors]) == (2, [0], [1])


def test_a_nested_context_is_stored_by_the_checked_path() -> None:
    body = encode([{"kind": "click", "context": {"deep": {"er": [1]}}}], True)
    assert plain_columns(body) is None
    assert _prepare(body, JSON, 10_000)[1]["context"] == ['{"deep":{"er":[1]}}']


def test_bodies_the_checked_path_refuses_are_refused_the_same() -> None:
    assert plain_columns(b"{not json") is None
    assert plain_columns(b'[{"kind": "\xff"}]') is None  # not UTF-8
    with pytest.raises(HTTPException) as e:
        _prepare(encode([{"kind": "click"}] * 3, True), JSON, 2)
    assert e.value.status_code == 413
    big = encode([{"kind": "click", "text": "x" * 5000}] * 60, True)  # over 256 KiB
    assert plain_columns(big) is None and _prepare(big, JSON, 10_000)[0] == 60
