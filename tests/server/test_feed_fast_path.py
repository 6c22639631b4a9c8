"""The feed route's fast path (``routes/feed.py`` ``FastFeed``): a well-formed request is
answered without FastAPI's dependency solving, as the route answers it; anything else goes
on to the documented route, whose answers (422, 401, 403, 405) are unchanged."""

from __future__ import annotations

import json

import pytest

from feedwise.server.routes import feed as feed_routes


@pytest.fixture
def fast_calls(monkeypatch):
    """The scopes of the keys the fast path checked (one per request it answered or tried)."""
    calls: list[str] = []
    real = feed_routes.bearer_key

    def spy(state, header, scope):  # noqa: ANN001, ANN202
        calls.append(scope)
        return real(state, header, scope)

    monkeypatch.setattr(feed_routes, "bearer_key", spy)
    return calls


def test_well_formed_request_is_answered_by_the_fast_path_as_the_route_answers(
        client, world, fast_calls):
    h = world.headers(world.read)
    q = "n=5&surface=home&session_id=s1"
    fast = client.get(f"/v1/users/u1/feed?{q}&utm=x",  # unknown parameters are ignored
                      headers={**h, "X-Request-ID": "fast-1"})
    assert fast.status_code == 200 and fast_calls == ["read"]
    # the same request with a parameter repeated goes on to the documented route
    slow = client.get(f"/v1/users/u1/feed?{q}&n=5", headers={**h, "X-Request-ID": "slow-1"})
    assert slow.status_code == 200 and fast_calls == ["read"]
    a, b = fast.json(), slow.json()
    assert a.keys() == b.keys() and a["request_id"] == "fast-1" and b["request_id"] == "slow-1"
    assert (a["user_id"], a["model_version"], a["policy"]) == \
        (b["user_id"], b["model_version"], b["policy"])
    assert len(a["slots"]) == len(b["slots"]) == 5
    assert [s.keys() for s in a["slots"]] == [s.keys() for s in b["slots"]]
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    # both logged their slots as impressions, with the surface and the session
    client.app.state.feedwise.writer.call(lambda s: None).result(10)
    imp = client.app.state.feedwise.store.query(
        "SELECT context, surface, session_id FROM events WHERE kind IN "
        "('impression', 'ad_impression') ORDER BY ts, position")
    rids = [json.loads(c)["request_id"] for c in imp["context"]]
    assert rids.count("fast-1") == rids.count("slow-1") == 5
    assert set(imp["surface"]) == {"home"} and set(imp["session_id"]) == {"s1"}


@pytest.mark.parametrize("query", ["n=0", "n=1001", "n=abc", "n=%2B5", "n=", "surface=",
                                   "surface=" + "s" * 65, "session_id=" + "x" * 300])
def test_requests_the_route_would_refuse_or_read_otherwise_go_on_to_it(
        client, world, fast_calls, query):
    r = client.get(f"/v1/users/u1/feed?{query}", headers=world.headers(world.read))
    assert fast_calls == []  # the fast path read nothing into a key check
    if r.status_code == 422:  # FastAPI's own validation answer
        assert r.json()["detail"][0]["loc"][0] == "query"
    else:  # "+5" and an empty surface are valid for the route: answered by it
        assert query in ("n=%2B5", "surface=") and r.status_code == 200


def test_missing_or_wrong_keys_get_the_routes_answers(client, world, fast_calls):
    r = client.get("/v1/users/u1/feed")
    assert r.status_code == 401 and r.json() == {"detail": "unauthorized"}
    r = client.get("/v1/users/u1/feed", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = client.get("/v1/users/u1/feed", headers=world.headers(world.ingest))
    assert r.status_code == 403
    assert fast_calls == ["read", "read", "read"]  # tried, then handed on


def test_other_methods_and_paths_are_not_taken(client, world, fast_calls):
    h = world.headers(world.read)
    assert client.post("/v1/users/u1/feed", headers=h).status_code == 405
    assert client.get("/v1/users/u1/feed/x", headers=h).status_code == 404
    assert client.get("/v1/users/u1/recommendations?n=2", headers=h).status_code == 200
    assert fast_calls == []


def test_a_limit_below_the_routes_goes_on_to_the_route(client, world, fast_calls):
    client.app.state.feedwise.settings.max_n = 3
    r = client.get("/v1/users/u1/feed?n=4", headers=world.headers(world.read))
    assert r.status_code == 422 and "above the limit 3" in r.text
    assert fast_calls == []


def test_the_route_stays_documented(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/users/{user_id}/feed"]) == {"get"}
    params = {p["name"] for p in paths["/v1/users/{user_id}/feed"]["get"]["parameters"]}
    assert {"user_id", "n", "surface", "session_id"} <= params
