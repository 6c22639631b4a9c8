"""Item 1: one request froze the service.

``parse_body`` ran ``json.loads`` on every NDJSON line on the event loop before checking
the batch size: 7,000,000 lines of ``x`` (14 MB, under ``max_body_bytes``) answered 413
after 70.9 s while a concurrent feed request took 70.0 s. Now the line and row limits are
checked while the body streams in (no decoding of a batch that is too large), the depth is
checked before decoding, and decoding and validation run on a worker thread.

On a live uvicorn (as a deployment runs it): while a worst-case body is being rejected,
feed requests on another connection keep answering in well under a second. The worst cases:
20,000,000 NDJSON lines (``x\\n``: 40 MB, so this test raises ``max_body_bytes`` to 48 MiB;
20M lines cannot fit under the default 16 MiB), a 100,000-deep JSON body and a JSON array
of 5,000,000 empty objects.
"""

from __future__ import annotations

import threading
import time
import tracemalloc

import httpx
import pytest
from fastapi import HTTPException
from service_world import LiveServer, make_world

from feedwise.server.app import create_app
from feedwise.server.routes.events import parse_body

MiB = 1 << 20
LINES = 20_000_000
FEED_LIMIT_S = 1.0


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    world = make_world(tmp_path_factory.mktemp("stall"), max_body_bytes=48 * MiB)
    srv = LiveServer(create_app(world.settings)).start()
    try:
        yield world, srv
    finally:
        srv.stop()


def _chunks(body: bytes, size: int = 1 * MiB):
    view = memoryview(body)
    for i in range(0, len(body), size):
        yield bytes(view[i:i + size])


def _while_posting(world, srv, body: bytes, content_type: str) -> tuple[httpx.Response,
                                                                        float, list[float]]:
    """POST ``body`` (streamed, chunked) from a thread; meanwhile time feed requests.

    Returns the POST's response, how long it took and the latency of every feed request
    that ran while it was in flight.
    """
    out: dict = {}

    def post() -> None:
        headers = {**world.headers(world.ingest), "Content-Type": content_type}
        t0 = time.perf_counter()
        try:
            with httpx.Client(base_url=srv.url, timeout=120) as c:
                out["response"] = c.post("/v1/events", content=_chunks(body), headers=headers)
        except httpx.HTTPError as e:  # pragma: no cover - reported by the assertion below
            out["error"] = repr(e)
        out["seconds"] = time.perf_counter() - t0

    latencies: list[float] = []
    with httpx.Client(base_url=srv.url, headers=world.headers(world.read), timeout=10) as c:
        assert c.get("/v1/users/u1/feed?n=5").status_code == 200  # connection warm
        t = threading.Thread(target=post, daemon=True)
        t.start()
        i = 0
        while t.is_alive() or len(latencies) < 5:
            t0 = time.perf_counter()
            try:
                r = c.get(f"/v1/users/u{i % 50}/feed?n=5")
            except httpx.TimeoutException:
                pytest.fail(f"a feed request took over 10 s while the {len(body):,}-byte "
                            "body was handled (the event loop is blocked)")
            latencies.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            i += 1
            time.sleep(0.005)
        t.join(120)
    assert "error" not in out, out.get("error")
    print(f"{len(body):,} bytes -> {out['response'].status_code} in {out['seconds']:.2f} s; "
          f"{len(latencies)} feed requests meanwhile, slowest {max(latencies) * 1000:.0f} ms")
    return out["response"], out["seconds"], latencies


def test_twenty_million_ndjson_lines_answer_413_and_feeds_keep_flowing(live):
    world, srv = live
    body = b"x\n" * LINES  # generated once: 40 MB
    r, seconds, lat = _while_posting(world, srv, body, "application/x-ndjson")
    del body
    assert r.status_code == 413, r.text[:300]
    assert "10000" in r.json()["detail"]  # names the limit
    assert max(lat) < FEED_LIMIT_S, f"slowest feed request {max(lat):.3f} s"
    # nothing was decoded: the answer costs about as much as reading 40 MB off the socket
    assert seconds < 15, f"413 after {seconds:.1f} s"


def test_a_100k_deep_json_body_is_refused_and_feeds_keep_flowing(live):
    world, srv = live
    body = b"[" * 100_000 + b"]" * 100_000
    r, _, lat = _while_posting(world, srv, body, "application/json")
    assert r.status_code == 400, r.text[:300]
    assert "deeper than 32" in r.json()["detail"]
    assert max(lat) < FEED_LIMIT_S, f"slowest feed request {max(lat):.3f} s"


def test_a_json_array_of_millions_of_rows_is_refused_before_decoding(live):
    world, srv = live
    body = b"[" + b"{}," * 5_000_000 + b"{}]"  # 15 MB: under the byte limit
    r, seconds, lat = _while_posting(world, srv, body, "application/json")
    assert r.status_code == 413, r.text[:300]
    assert "10000" in r.json()["detail"]
    assert max(lat) < FEED_LIMIT_S, f"slowest feed request {max(lat):.3f} s"


def test_an_oversized_array_is_refused_without_building_its_rows():
    """The 413 of a 5M-row array costs a few copies of the body, not 5M Python objects
    (decoding it first took ~400 MB)."""
    body = b"[" + b"{}," * 5_000_000 + b"{}]"
    tracemalloc.start()
    try:
        with pytest.raises(HTTPException) as e:
            parse_body(body, "application/json", 10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.status_code == 413
    print(f"peak {peak / MiB:.0f} MiB to refuse a {len(body) / MiB:.0f} MiB array")
    assert peak < 100 * MiB, f"peak {peak / MiB:.0f} MiB"


def test_the_line_limit_is_exact_and_other_routes_bodies_are_capped(live):
    world, srv = live
    h = {**world.headers(world.ingest), "Content-Type": "application/x-ndjson"}
    with httpx.Client(base_url=srv.url, timeout=60) as c:
        r = c.post("/v1/events", content=b"x\n" * 10_000, headers=h)  # at the limit: read
        assert r.status_code == 200 and r.json()["rejected"] == 10_000, r.text[:200]
        assert c.post("/v1/events", content=b"x\n" * 10_000 + b"x",
                      headers=h).status_code == 413
        # every other route's body is capped at max_json_body_bytes (1 MiB), key or not,
        # before FastAPI would decode it on the event loop
        big = b"[" + b"0," * 600_000 + b"0]"
        for headers in ({}, world.headers(world.admin)):
            r = c.put("/v1/items/i1", content=big,
                      headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == 413, r.text[:200]


def test_the_server_still_ingests_after_the_attacks(live):
    world, srv = live
    lines = b"\n".join(b'{"event_id":"after-%d","user_id":"u1","item_id":"i1",'
                       b'"kind":"click","ts":"2024-03-01T00:00:00Z"}' % i for i in range(3))
    with httpx.Client(base_url=srv.url, headers={**world.headers(world.ingest),
                                                 "Content-Type": "application/x-ndjson"},
                      timeout=30) as c:
        r = c.post("/v1/events", content=lines)
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
