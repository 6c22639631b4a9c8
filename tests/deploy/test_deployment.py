"""Issue 19: a deployment is one folder; models are tied to the store they were trained on;
read-only commands never take the write lock; a lock nothing explains is one line, exit 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_world import world_events
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.deployment import Deployment
from feedwise.models import get_model
from feedwise.registry import ModelRegistry
from feedwise.store import EventStore

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src" / "feedwise"


def cli(*args: str, code: int = 0):  # noqa: ANN201 - click Result
    res = runner.invoke(app, list(args))
    assert res.exit_code == code, f"feedwise {' '.join(args)} -> {res.exit_code}\n{res.output}"
    return res


def make_store(folder: Path, *, prefix: str = "i", seed: int = 0) -> Deployment:
    cli("init", str(folder))
    dep = Deployment.for_store(folder / "feedwise.duckdb")
    ev = world_events(n_users=40, n_items=24, per_user=4, seed=seed)
    ev["item_id"] = ev["item_id"].str.replace("i", prefix, n=1)
    with EventStore(dep.store_path) as s:
        s.upsert_items([{"item_id": f"{prefix}{i}", "kind": "post", "title": f"post {i}"}
                        for i in range(24)])
        s.ingest(ev)
    return dep


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for var in ("FEEDWISE_DB", "FEEDWISE_REGISTRY"):
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------ the folder
def test_a_deployment_is_one_folder(tmp_path) -> None:
    res = cli("init", "dep", "-f", "json")
    rows = {r["what"]: r["path"] for r in json.loads(res.stdout)}
    dep = Deployment.for_store(tmp_path / "dep" / "feedwise.duckdb")
    assert Path(rows["store"]) == Path("dep/feedwise.duckdb") and dep.store_path.is_file()
    assert dep.registry_dir == tmp_path / "dep" / "feedwise.models" and dep.registry_dir.is_dir()
    assert dep.campaigns_dir.is_dir()
    assert dep.policy_path.name == "feedwise.policy.json"
    assert dep.keys_path.name == "feedwise.keys.json"
    assert dep.state_path.name == "feedwise.serve.json"
    with EventStore(dep.store_path, read_only=True) as s:
        assert s.store_id() == rows["store id"] and re.fullmatch(r"[0-9a-f-]{36}", s.store_id())
    other = Deployment.for_store("x.duckdb")
    assert other.dir == Path(".") and other.registry_dir == Path("x.models")
    assert dep.read_policy() is None
    dep.write_policy({"version": "p1", "lambda": 0.01})
    assert dep.read_policy() == {"version": "p1", "lambda": 0.01}


def test_server_state_is_ignored_when_its_process_is_gone(tmp_path) -> None:
    dep = Deployment.init(tmp_path / "d")
    assert dep.server() is None
    dep.write_server_state({"url": "http://127.0.0.1:1", "pid": os.getpid()})
    assert dep.server()["pid"] == os.getpid()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dep.write_server_state({"url": "http://127.0.0.1:1", "pid": int(dead.stdout)})
    assert dep.server() is None
    dep.clear_server_state(pid=12345678)  # another server's: kept
    assert dep.state_path.exists()
    dep.clear_server_state()
    assert not dep.state_path.exists()


def test_the_store_id_is_kept_and_recorded_by_the_registry(tmp_path) -> None:
    dep = make_store(tmp_path / "a")
    with EventStore(dep.store_path) as s:
        sid = s.store_id()
        s.snapshot(tmp_path / "snap.duckdb")
    with EventStore(dep.store_path, read_only=True) as s:
        assert s.store_id() == sid
    with EventStore(tmp_path / "snap.duckdb", read_only=True) as s:
        assert s.store_id() == sid and s.count_events() == 160
    cli("train", "--model", "popularity", "--db", str(dep.store_path), "--promote")
    meta = ModelRegistry(dep.registry_dir).promoted()
    assert meta is not None and meta.store_id == sid


# ------------------------------------------------------------------ models tied to stores
def test_recommend_refuses_a_model_of_another_store(tmp_path) -> None:
    a, b = make_store(tmp_path / "a"), make_store(tmp_path / "b", seed=1)
    cli("train", "--model", "itemknn", "--db", str(a.store_path), "--promote")
    with EventStore(a.store_path, read_only=True) as s:
        id_a = s.store_id()
    with EventStore(b.store_path, read_only=True) as s:
        id_b = s.store_id()
    res = cli("recommend", "u1", "--db", str(b.store_path), "--registry",
              str(a.registry_dir), code=2)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output
    assert (f"error: model v0001 was trained on store {id_a}, this is store {id_b}: train "
            "one here (feedwise train --db") in " ".join(res.output.split())
    # the same refusal for feed, and the version loads on its own store
    cli("feed", "u1", "--db", str(b.store_path), "--registry", str(a.registry_dir), code=2)
    res = cli("serve", "--db", str(b.store_path), "--registry", str(a.registry_dir), code=2)
    assert "was trained on store" in res.output and "Traceback" not in res.output
    cli("recommend", "u1", "--db", str(a.store_path), "-f", "json")
    with pytest.raises(Exception, match="was trained on store"):
        ModelRegistry(a.registry_dir, store_id=id_b).load("v0001")


def test_no_command_reads_models_of_the_working_folder(tmp_path) -> None:
    # ./models holds models trained on another catalogue (items x0..): never used
    foreign = world_events(n_users=40, n_items=24, per_user=4)
    foreign["item_id"] = foreign["item_id"].str.replace("i", "x", n=1)
    with EventStore(":memory:") as s:
        s.ingest(foreign)
        data = s.interactions()
    for name in ("itemknn", "popularity"):
        get_model(name).fit(data).save(tmp_path / "models" / name)
    dep = make_store(tmp_path / "dep")
    db = str(dep.store_path)
    recs = json.loads(cli("recommend", "u1", "--db", db, "-f", "json").stdout)
    assert recs and all(r["item_id"].startswith("i") for r in recs)
    recs = json.loads(cli("recommend", "u1", "--model", "popularity", "--db", db,
                          "-f", "json").stdout)
    assert recs and all(r["item_id"].startswith("i") for r in recs)
    slots = json.loads(cli("feed", "u2", "--db", db, "-f", "json").stdout)
    assert slots and all(s["item_id"].startswith("i") for s in slots if s["kind"] != "ad")
    cli("train", "--model", "popularity", "--db", db)
    # what was trained went to the store's registry; ./models is as it was
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["itemknn", "popularity"]
    # (the default model, trained by the first `recommend`, is `auto`)
    assert [v.model for v in ModelRegistry(dep.registry_dir).versions()] == [
        "auto", "popularity", "popularity"]
    # and no source file names ./models as a default
    hits = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if re.search(r"""Path\(\s*["']models["']\s*\)""", line)]
    assert hits == []


def test_a_read_command_on_a_missing_store_is_an_error(tmp_path) -> None:
    for args in (["kpis"], ["recommend", "u1"], ["users", "export", "u1"]):
        res = cli(*args, "--db", str(tmp_path / "nope.duckdb"), code=2)
        assert res.output.startswith("error: ") and "no store here" in res.output
        assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "nope.duckdb").exists()


# ------------------------------------------------------------------ locks
def _holder(db: Path, read_only: bool) -> subprocess.Popen:
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only="
            f"{read_only}); print('ready', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_read_commands_never_take_the_write_lock(tmp_path) -> None:
    dep = make_store(tmp_path / "dep")
    db = str(dep.store_path)
    reader = _holder(dep.store_path, read_only=True)  # another reader, e.g. a report
    try:
        export = json.loads(cli("users", "export", "u1", "--db", db).stdout)
        assert len(export["tables"]["events"]) == 4
        assert json.loads(cli("kpis", "--db", db, "-f", "json").stdout)
        # a write cannot run beside a reader of another process: one line, exit 2
        res = cli("users", "erase", "u1", "--yes", "--db", db, code=2)
        assert len(res.output.strip().splitlines()) == 1
        assert f"locked by process {reader.pid}" in res.output
    finally:
        reader.kill()
        reader.wait()


def test_a_lock_held_by_another_process_is_one_line(tmp_path) -> None:
    dep = make_store(tmp_path / "dep")
    db = str(dep.store_path)
    writer = _holder(dep.store_path, read_only=False)
    try:
        for args in (["kpis"], ["ingest", str(tmp_path / "x.csv")], ["serve"]):
            res = cli(*args, "--db", db, code=2)
            out = " ".join(res.output.split())
            assert len(res.output.strip().splitlines()) <= 2, res.output  # wrapped: one line
            assert out.startswith("error: ") and "Traceback" not in out
            assert f"locked by process {writer.pid}" in out
            assert "not a feedwise service" in out and "stop it" in out
    finally:
        writer.kill()
        writer.wait()


def test_a_service_that_does_not_answer_is_one_line(tmp_path) -> None:
    import socket

    dep = make_store(tmp_path / "dep")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dep.write_server_state({"url": f"http://127.0.0.1:{port}", "pid": os.getpid(),
                            "db": str(dep.store_path.resolve())})
    for args in (["kpis"], ["users", "erase", "u1", "--yes"]):
        res = cli(*args, "--db", str(dep.store_path), code=2)
        out = " ".join(res.output.split())
        assert out.startswith("error: a feedwise service (pid") and "does not answer" in out
        assert "Traceback" not in out
    # the store was not touched: u1's events are still there
    dep.clear_server_state()
    export = json.loads(cli("users", "export", "u1", "--db", str(dep.store_path)).stdout)
    assert len(export["tables"]["events"]) == 4
