"""Item 8: a revoked key kept working until the server restarted.

Now the keys file is checked (one ``stat``) at most every ``keys_reload_s`` (0.5 s) and
re-read when it changed: ``feedwise keys revoke`` takes effect on a running server within
a second, a key created meanwhile starts working, a deleted keys file revokes its keys, and
a keys file broken by a half-finished edit keeps the keys read before (logged).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
from service_world import LiveServer, make_world
from typer.testing import CliRunner

from feedwise.cli import app as cli
from feedwise.server.app import create_app
from feedwise.server.auth import KeyRing, create_key, hash_key, revoke_key


def _status_within(c: httpx.Client, key: str, want: int, seconds: float) -> float:
    """Poll a feed with ``key`` until it answers ``want``; how long that took."""
    t0 = time.monotonic()
    while True:
        r = c.get("/v1/users/u1/feed?n=3", headers={"Authorization": f"Bearer {key}"})
        waited = time.monotonic() - t0
        if r.status_code == want:
            return waited
        if waited > seconds:
            pytest.fail(f"still {r.status_code} (wanted {want}) after {waited:.2f} s")
        time.sleep(0.02)


def test_revoked_key_stops_working_within_a_second_on_a_live_server(tmp_path):
    world = make_world(tmp_path)
    keys = Path(world.settings.keys_file)
    key, rec = create_key(keys, ["read"], name="to revoke")
    srv = LiveServer(create_app(world.settings)).start()
    try:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            _status_within(c, key, 200, 0.0)
            # revoked with the CLI, as an operator would
            res = CliRunner().invoke(cli, ["keys", "revoke", rec.key_id,
                                           "--keys-file", str(keys)])
            assert res.exit_code == 0, res.output
            waited = _status_within(c, key, 401, 1.0)
            print(f"revocation effective after {waited * 1000:.0f} ms")
            for _ in range(5):  # and stays revoked
                r = c.get("/v1/users/u1/feed?n=3", headers={"Authorization": f"Bearer {key}"})
                assert r.status_code == 401
            # the other keys were never interrupted
            assert c.get("/v1/users/u1/feed?n=3",
                         headers=world.headers(world.read)).status_code == 200
            new, _ = create_key(keys, ["read"])  # a key created while serving works
            _status_within(c, new, 200, 1.0)
    finally:
        srv.stop()


def test_key_ring_follows_the_file(tmp_path, caplog):
    keys = tmp_path / "keys.json"
    ring = KeyRing.load(keys, [f"{hash_key('fixed-key')}:read"], reload_s=0.05)
    assert ring.authenticate("fixed-key").allows("read")  # no file yet: the fixed keys
    a, rec_a = create_key(keys, ["read"])
    time.sleep(0.06)
    assert ring.authenticate(a).key_id == rec_a.key_id  # the file appeared
    b, rec_b = create_key(keys, ["ingest"])
    revoke_key(keys, rec_a.key_id)
    time.sleep(0.06)
    with pytest.raises(Exception, match="invalid API key"):
        ring.authenticate(a)
    assert ring.authenticate(b).key_id == rec_b.key_id
    # a half-written file keeps the keys read before, and says so
    keys.write_text('{"keys": [')
    time.sleep(0.06)
    with caplog.at_level(logging.ERROR, logger="feedwise.server.auth"):
        assert ring.authenticate(b).key_id == rec_b.key_id
    assert "still accepting" in caplog.text
    # a deleted keys file revokes its keys; the fixed ones stay
    keys.unlink()
    time.sleep(0.06)
    with pytest.raises(Exception, match="invalid API key"):
        ring.authenticate(b)
    assert ring.authenticate("fixed-key").allows("read")
