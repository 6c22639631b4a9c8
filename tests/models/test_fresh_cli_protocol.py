"""The README's real-data protocol (Last.fm tags -> ingest -> evaluate --split temporal) runs
as written, on a slice of the tag file.

The block runs under bash as written (the ``awk`` conversion included); each ``feedwise``
command in it is captured with its arguments as bash expanded them and then run in-process
through the CLI app (one Python process instead of three: the test stays fast)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedwise.cli import app

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Fresh content on real data: the temporal protocol"
#: a bash function standing in for the ``feedwise`` executable: it records its argv
#: (NUL-separated, one file per call) for the test to replay in-process
CAPTURE = ('feedwise() { FW_N=$(( ${FW_N:-0} + 1 )); '
           'printf \'%s\\0\' "$@" > "$FW_CALLS/$(printf %03d "$FW_N")"; }\n')


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(HEADING):]
    section = section[:section.index("\n## ", 1)]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "the section has no bash block"
    return m.group(1)


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
    block = readme_block()
    work, calls = tmp_path / "work", tmp_path / "calls"
    work.mkdir()
    calls.mkdir()
    env = {**os.environ, "FEEDWISE_SHARED_DATA": str(tmp_path / "data"),
           "FW_CALLS": str(calls)}
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", CAPTURE + block], cwd=work,
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "tagged.tsv").read_text().startswith("user_id\titem_id\tts\n2\t52\t2009-04-01")
    argvs = [f.read_bytes().split(b"\0")[:-1] for f in sorted(calls.iterdir())]
    argvs = [[a.decode() for a in argv] for argv in argvs]
    assert [a[0] for a in argvs] == ["ingest", "ingest", "evaluate"]
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
