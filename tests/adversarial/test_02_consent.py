"""Item 2: consent given back.

``PUT /v1/users/u {"consent": {"ads": false}}`` (the docs' example) after withdrawing
personalization and analytics set both back to true, logged grants the user never gave and
wiped ``attributes``. Now: ``PATCH`` changes only the flags (and attribute keys) it names,
``PUT`` is a full replacement that needs every flag (422 naming the missing ones), and
``consent_log`` gets a row only for a flag whose value actually changed, with its source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from service_world import LiveServer

from feedwise.privacy import get_consent, set_consent
from feedwise.server.app import create_app
from feedwise.store import EventStore

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOW = datetime(2024, 3, 1, tzinfo=UTC)


def _log(client, user: str) -> list[tuple[str, bool, str]]:
    state = client.app.state.feedwise
    state.writer.call(lambda s: None).result(10)
    df = state.store.query("SELECT flag, granted, source FROM consent_log WHERE user_id = ? "
                           "ORDER BY recorded_at, flag", [state.user_key(user)])
    return [(f, bool(g), s) for f, g, s in df.itertuples(index=False)]


def _get(client, world, user: str) -> dict:
    r = client.get(f"/v1/users/{user}", headers=world.headers(world.admin))
    assert r.status_code == 200, r.text
    return r.json()


def test_patch_changes_one_flag_and_keeps_the_rest(client, world):
    h = world.headers(world.admin)
    r = client.put("/v1/users/u1", headers=h, json={
        "consent": {"personalization": False, "ads": True, "analytics": False},
        "attributes": {"city": "Oslo", "follows": ["u2"]}})
    assert r.status_code == 200, r.text
    first = _log(client, "u1")
    # the first record of each flag is logged: it is the proof of what was given
    assert sorted(first) == [("ads", True, "api"), ("analytics", False, "api"),
                             ("personalization", False, "api")]

    r = client.patch("/v1/users/u1", headers=h, json={"consent": {"ads": False}})
    assert r.status_code == 200, r.text
    got = _get(client, world, "u1")
    assert got["consent"] == {"personalization": False, "ads": False, "analytics": False}
    assert got["attributes"] == {"city": "Oslo", "follows": ["u2"]}
    assert _log(client, "u1") == first + [("ads", False, "api")]
    state = client.app.state.feedwise
    assert state.user_key("u1") in state.no_ads
    assert state.user_key("u1") in state.no_personalization

    # the same value again is no change: nothing logged
    assert client.patch("/v1/users/u1", headers=h,
                        json={"consent": {"ads": False, "analytics": False}}).status_code == 200
    assert len(_log(client, "u1")) == 4


def test_put_with_some_flags_is_422_naming_the_missing_ones_and_changes_nothing(client,
                                                                                 world):
    h = world.headers(world.admin)
    full = {"personalization": False, "ads": True, "analytics": False}
    assert client.put("/v1/users/u1", headers=h, json={
        "consent": full, "attributes": {"city": "Oslo"}}).status_code == 200
    before = _log(client, "u1")

    # the reproduction of the issue: the docs' old example
    r = client.put("/v1/users/u1", headers=h, json={"consent": {"ads": False}})
    assert r.status_code == 422, r.text
    text = r.text
    assert "personalization" in text and "analytics" in text and "PATCH" in text
    assert "missing" in text
    r = client.put("/v1/users/u1", headers=h, json={"attributes": {"a": 1}})
    assert r.status_code == 422 and "consent" in r.text
    got = _get(client, world, "u1")
    assert got["consent"] == full and got["attributes"] == {"city": "Oslo"}
    assert _log(client, "u1") == before


def test_put_replaces_attributes_and_logs_only_changed_flags(client, world):
    h = world.headers(world.admin)
    assert client.put("/v1/users/u2", headers=h, json={
        "consent": {"personalization": True, "ads": True, "analytics": True},
        "attributes": {"city": "Oslo", "lang": "no"}}).status_code == 200
    before = _log(client, "u2")
    r = client.put("/v1/users/u2", headers=h, json={
        "consent": {"personalization": True, "ads": True, "analytics": False},
        "attributes": {"lang": "en"}})
    assert r.status_code == 200, r.text
    assert r.json()["attributes"] == {"lang": "en"}
    assert _log(client, "u2") == before + [("analytics", False, "api")]
    # a full replacement without attributes leaves none
    r = client.put("/v1/users/u2", headers=h, json={
        "consent": {"personalization": True, "ads": True, "analytics": False}})
    assert r.status_code == 200 and r.json()["attributes"] == {}
    assert len(_log(client, "u2")) == len(before) + 1


def test_patch_merges_attributes_by_key(client, world):
    h = world.headers(world.admin)
    assert client.put("/v1/users/u3", headers=h, json={
        "consent": {"personalization": True, "ads": False, "analytics": True},
        "attributes": {"city": "Oslo", "follows": ["u2"]}}).status_code == 200
    before = _log(client, "u3")
    r = client.patch("/v1/users/u3", headers=h,
                     json={"attributes": {"lang": "no", "city": None}})
    assert r.status_code == 200, r.text
    got = _get(client, world, "u3")
    assert got["attributes"] == {"follows": ["u2"], "lang": "no"}
    assert got["consent"] == {"personalization": True, "ads": False, "analytics": True}
    assert _log(client, "u3") == before
    # the merged attributes keep the size limit of a PUT body
    r = client.patch("/v1/users/u3", headers=h,
                     json={"attributes": {f"k{i}": i for i in range(199)}})
    assert r.status_code == 422 and "200" in r.text, r.text
    assert _get(client, world, "u3")["attributes"] == {"follows": ["u2"], "lang": "no"}


@pytest.mark.parametrize("body", [{"consent": {"ads": None}}, {"consent": {"ads": "maybe"}},
                                  {"consent": {"tracking": False}}, {"nope": 1}])
def test_patch_refuses_null_flags_and_unknown_fields(client, world, body):
    r = client.patch("/v1/users/u1", headers=world.headers(world.admin), json=body)
    assert r.status_code == 422, r.text
    assert _log(client, "u1") == []


def test_patch_withdrawing_personalization_reaches_the_served_model(client, world):
    h = world.headers(world.admin)
    state = client.app.state.feedwise
    assert state.served.model.knows_user(state.user_key("u5"))
    r = client.patch("/v1/users/u5", headers=h, json={"consent": {"personalization": False}})
    assert r.status_code == 200, r.text
    assert r.json()["consent"] == {"personalization": False, "ads": True, "analytics": True}
    assert not state.served.model.knows_user(state.user_key("u5"))
    assert _log(client, "u5") == [("personalization", False, "api")]


def test_patch_of_an_erased_user_is_404(client, world):
    h = world.headers(world.admin)
    assert client.delete("/v1/users/u7", headers=h).status_code == 200
    r = client.patch("/v1/users/u7", headers=h, json={"consent": {"ads": False}})
    assert r.status_code == 404, r.text


def test_set_consent_logs_only_what_changed(tmp_path):
    with EventStore(tmp_path / "c.duckdb") as store:
        set_consent(store, "alice", ads=False, source="banner", now=NOW)
        rec = set_consent(store, "alice", ads=False, source="settings",
                          now=NOW + timedelta(hours=1))
        # nothing changed: the last change stays the banner's
        assert (rec.ads, rec.source, rec.updated_at) == (False, "banner", NOW)
        # a flag never set (granted by default) given for the first time is recorded
        set_consent(store, "alice", ads=False, personalization=True, source="settings",
                    now=NOW + timedelta(hours=2))
        set_consent(store, "alice", personalization=False, ads=False, source="settings",
                    now=NOW + timedelta(hours=3))
        rec = get_consent(store, "alice")
        assert (rec.personalization, rec.ads, rec.analytics) == (False, False, True)
        assert rec.updated_at == NOW + timedelta(hours=3)
        log = store.query("SELECT flag, granted, source FROM consent_log ORDER BY recorded_at")
        assert log.values.tolist() == [["ads", False, "banner"],
                                       ["personalization", True, "settings"],
                                       ["personalization", False, "settings"]]


def _doc_curls(section: str) -> list[str]:
    """The ``curl`` commands of ``docs/privacy.md``'s section ``section`` (continuations
    joined)."""
    text = (DOCS / "privacy.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    joined = body.replace("\\\n", " ")
    return [ln.strip() for ln in joined.splitlines() if ln.strip().startswith("curl ")]


def test_the_docs_examples_work_as_written(world):
    """Run the consent section's curl commands verbatim against a live server."""
    cmds = _doc_curls("Consent")
    assert any("PATCH" in c for c in cmds) and any("PUT" in c for c in cmds)
    srv = LiveServer(create_app(world.settings)).start()
    try:
        env = {**os.environ, "ADMIN": world.admin, "URL": srv.url}
        for cmd in cmds:
            out = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True,
                                 timeout=30)
            assert out.returncode == 0, out.stderr
            body = json.loads(out.stdout)
            assert "detail" not in body, (cmd, body)
            m = re.search(r"/v1/users/([\w-]+)", cmd)
            assert body["user_id"] == m.group(1)
            if "PATCH" in cmd and '"ads": false' in cmd:
                assert body["consent"]["ads"] is False
    finally:
        srv.stop()
