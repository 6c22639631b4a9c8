"""A representative flow logged at DEBUG holds no secret, API key or raw user id.

Captured: every record reaching the root logger and uvicorn's own loggers (access log
on) while the world is ingested with pseudonyms, the API serves consent, feed,
recommendation, event, export and erase requests (also a wrong key and a bad body), a live
uvicorn serves feed requests, and the CLI erases a user. Not captured: the test's own
HTTP client library (``httpx`` / ``httpx2`` / ``httpcore``), which logs the URLs it requests.
"""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest
from fastapi.testclient import TestClient
from privacy_service import make_service
from privacy_world import SECRET, TARGET, user_ids
from typer.testing import CliRunner

from feedwise.cli import app as cli
from feedwise.privacy import Pseudonymizer, RedactUserPaths
from feedwise.server.app import create_app

CLIENT_LOGGERS = ("httpx", "httpx2", "httpcore")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in CLIENT_LOGGERS:
            return
        self.names.add(record.name)
        text = record.getMessage()
        if record.exc_info:
            text += "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture()
def logs():
    h = Collect()
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(h)
        lg.setLevel(logging.DEBUG)
    yield h
    for lg, level in saved:
        lg.removeHandler(h)
        lg.setLevel(level)


def test_redaction_filter_hides_user_paths():
    r = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                          ("127.0.0.1:1", "GET", f"/v1/users/{TARGET}/feed?n=3", "1.1", 200),
                          None)
    RedactUserPaths().filter(r)
    assert TARGET not in r.getMessage() and "/v1/users/<user>/feed" in r.getMessage()


def test_logs_of_a_full_flow_hold_no_secret_or_raw_id(tmp_path, monkeypatch, logs):
    svc = make_service(tmp_path, monkeypatch)  # ingests the world with pseudonyms
    h = svc.headers
    with TestClient(create_app(svc.settings)) as client:
        client.patch(f"/v1/users/{TARGET}", json={"consent": {"ads": False}},
                     headers=h(svc.admin)).raise_for_status()
        for u in user_ids()[:4]:
            client.get(f"/v1/users/{u}/feed", headers=h(svc.read)).raise_for_status()
            client.get(f"/v1/users/{u}/recommendations", headers=h(svc.read)
                       ).raise_for_status()
        client.post("/v1/events", headers=h(svc.ingest), json=[
            {"user_id": TARGET, "item_id": "p1", "kind": "like", "ts": "2026-03-01T00:00:00Z"},
            {"user_id": "user-002", "item_id": "p1", "kind": "nope", "ts": "x"}])
        assert client.get("/v1/users/u/feed", headers=h(svc.admin + "x")).status_code == 401
        assert client.get(f"/v1/users/{TARGET}/export", headers=h(svc.admin)).status_code == 200
        assert client.delete(f"/v1/users/{TARGET}", headers=h(svc.admin)).status_code == 200
        client.get("/v1/reports/kpis", headers=h(svc.read))
    # a live uvicorn with its access log on
    from service_world import LiveServer

    with LiveServer(create_app(svc.settings), log_config=None, log_level="debug",
                    access_log=True) as srv:
        for u in user_ids()[4:7]:
            httpx.get(f"{srv.url}/v1/users/{u}/feed", headers=h(svc.read)).raise_for_status()
    res = CliRunner().invoke(cli, ["users", "erase", "user-003", "--yes", "--db",
                                   svc.settings.db], env={"FEEDWISE_PSEUDONYM_KEY": SECRET})
    assert res.exit_code == 0, res.output

    text = "\n".join(logs.lines)
    assert "uvicorn.access" in logs.names and "feedwise.privacy" in logs.names
    assert "/v1/users/<user>/feed" in text  # the access log was captured, redacted
    needles = {"secret": SECRET, "admin key": svc.admin, "read key": svc.read,
               "ingest key": svc.ingest, "pseudonym": Pseudonymizer(SECRET)(TARGET)}
    needles.update({f"raw id {u}": u for u in user_ids()})
    found = {name: v for name, v in needles.items() if v in text or v in res.output}
    assert not found, f"found in logs: {sorted(found)}"
