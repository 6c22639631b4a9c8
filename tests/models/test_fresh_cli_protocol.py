"""The README's real-data protocol (Last.fm tags -> ingest -> evaluate --split temporal) runs
as written, on a slice of the tag file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADING = "## Fresh content on real data: the temporal protocol"


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(HEADING):]
    section = section[:section.index("\n## ", 1)]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    assert m, "the section has no bash block"
    return m.group(1)


def test_readme_temporal_protocol_runs_on_a_slice(shared_data: Path, tmp_path: Path) -> None:
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
    # the last command's table as JSON, so the test can read it
    last = block.rstrip().splitlines()[-1]
    assert last.startswith("feedwise evaluate --split temporal --model auto,")
    block = block.rstrip()[:-len(last)] + last + " -f json > table.json\n"
    env = {**os.environ, "FEEDWISE_SHARED_DATA": str(tmp_path / "data"),
           "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FEEDWISE_DB", None)
    env.pop("FEEDWISE_PSEUDONYM_KEY", None)
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert (work / "tagged.tsv").read_text().startswith("user_id\titem_id\tts\n2\t52\t2009-04-01")
    table = json.loads((work / "table.json").read_text())
    text = json.dumps(table)
    for model in ("auto", "popularity", "ease", "itemknn"):
        assert model in text
    assert "ndcg" in text
