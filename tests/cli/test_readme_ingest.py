"""The README's ingest commands (MovieLens-100k, Last.fm, a generic CSV) run as written, and
land what the files hold."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from readme_blocks import feedwise_calls, readme_block
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

HEADING = "## Loading data sets: MovieLens, Last.fm, a generic CSV"


def test_readme_ingest_commands_run_as_written(shared_data: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    block = readme_block(HEADING)
    assert block.count("feedwise ingest") == 7
    env = {**os.environ, "FEEDWISE_SHARED_DATA": str(shared_data),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FEEDWISE_DB", None)
    env.pop("FEEDWISE_PSEUDONYM_KEY", None)
    commands, exe = feedwise_calls(block, tmp_path, env)
    assert exe == str(Path(sys.executable).parent / "feedwise")
    assert len(commands) == 7 and all(c[0] == "ingest" for c in commands)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDWISE_DB", raising=False)
    monkeypatch.delenv("FEEDWISE_PSEUDONYM_KEY", raising=False)
    runner = CliRunner()
    for argv in commands:
        res = runner.invoke(app, argv)
        assert res.exit_code == 0, (argv, res.output[-3000:])
        assert res.exception is None or isinstance(res.exception, SystemExit), argv
        assert "Traceback" not in res.output
    with EventStore(str(tmp_path / "ml.duckdb"), read_only=True) as s:
        assert s.count_events() == 100_000
        items = s.items()
        assert len(items) == 1682
        toy = items.set_index("item_id").loc["1"]
        assert toy["title"] == "Toy Story (1995)"
        assert sorted(toy["tags"]) == ["Animation", "Children's", "Comedy"]
        users = s.users()
        assert len(users) == 943 and '"occupation": "technician"' in \
            users.set_index("user_id").loc["1", "attributes"]
        # every rated film is an item now
        assert s.scalar("SELECT count(DISTINCT item_id) FROM events WHERE item_id NOT IN "
                        "(SELECT item_id FROM items)") == 0
        assert s.scalar("SELECT count(*) FROM rejects") == 0
    with EventStore(str(tmp_path / "lfm.duckdb"), read_only=True) as s:
        assert s.count_events() == 92_834
        assert s.scalar("SELECT count(DISTINCT ts) FROM events") == 1
        assert str(s.scalar("SELECT min(ts) FROM events"))[:10] == "2011-01-01"
        assert s.scalar("SELECT max(value) FROM events") == 352_698  # the top play count
        assert len(s.items()) == 17_632
        assert s.get_item("51")["title"] == "Duran Duran"
    with EventStore(str(tmp_path / "csv.duckdb"), read_only=True) as s:
        assert s.count_events() == 100_836
        assert len(s.items()) == 9_742
        assert "Animation" in list(s.get_item("1")["tags"])
