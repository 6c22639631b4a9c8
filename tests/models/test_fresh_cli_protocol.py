"""The README's real-data protocol (Last.fm tags -> ingest -> evaluate --split temporal) runs
as written, on a slice of the tag file.

The block runs under bash as written (the ``awk`` conversion included); each ``feedwise``
command in it is captured with its arguments as bash expanded them and then run in-process
through the CLI app (one Python process instead of three: the test stays fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from readme_blocks import feedwise_calls, readme_block
from typer.testing import CliRunner

from feedwise.cli import app

HEADING = "## Fresh content on real data: the temporal protocol"


def test_readme_temporal_protocol_runs_on_a_slice(shared_data: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a slice of the data: the first 2,500 tag assignments and the artists they name
    src = shared_data / "lastfm-hetrec2011-2k"
    dst = tmp_path / "data" / "lastfm-hetrec2011-2k"
    dst.mkdir(parents=True)
    lines = (src / "user_taggedartists.dat").read_bytes().splitlines(keepends=True)
    (dst / "user_taggedartists.dat").write_bytes(b"".join(lines[:2500]))
    tagged = {ln.split(b"\t")[1] for ln in lines[1:2500]}
    artists = (src / "artists.dat").read_bytes().splitlines(keepends=True)
    (dst / "artists.dat").write_bytes(b"".join(
        [artists[0], *(ln for ln in artists[1:] if ln.split(b"\t")[0] in tagged)]))
    (dst / "user_friends.dat").write_bytes((src / "user_friends.dat").read_bytes())
    block = readme_block(HEADING)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "FEEDWISE_SHARED_DATA": str(tmp_path / "data")}
    argvs, _ = feedwise_calls(block, work, env)
    assert (work / "tagged.tsv").read_text().startswith("user_id\titem_id\tts\n2\t52\t2009-04-01")
    assert [a[0] for a in argvs] == ["ingest", "ingest", "ingest", "evaluate"]
    assert argvs[2][:2] == ["ingest", "--edges"]
    assert argvs[-1][:4] == ["evaluate", "--split", "temporal", "--model"]
    assert argvs[-1][4].startswith("auto,")
    # the feedwise commands, in-process, in the block's folder
    monkeypatch.chdir(work)
    for var in ("FEEDWISE_DB", "FEEDWISE_PSEUDONYM_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    runner = CliRunner()
    for argv in argvs[:-1]:
        out = runner.invoke(app, argv)
        assert out.exit_code == 0, (argv, out.output[-3000:])
    out = runner.invoke(app, [*argvs[-1], "-f", "json"])
    assert out.exit_code == 0, out.output[-3000:]
    assert out.exception is None
    table = json.loads(out.stdout)
    text = json.dumps(table)
    for model in ("auto", "popularity", "ease", "itemknn"):
        assert model in text
    assert "ndcg" in text
