"""Item 14: ``*`` in a file name was a wildcard.

``feedwise ingest 'ev*.csv'`` read every file the pattern matched (3 files). Now a path is
read literally, whatever characters its name (or its folders' names) holds: ``*``, ``?``
and ``[`` included, in every format; a path that does not exist is "file not found" even
when it would match other files as a pattern.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.errors import DataError
from feedwise.store import EventStore

runner = CliRunner()
TS = "2024-02-01T10:00:00Z"


def _write(path, ids: list[str]) -> None:
    df = pd.DataFrame({"event_id": ids, "user_id": "u1", "item_id": "i1", "kind": "click",
                       "ts": TS})
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")))
    else:
        df.to_csv(path, index=False)


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("name", ["ev*", "ev?", "ev[1]", "e[v]*"])
def test_a_name_with_glob_characters_is_one_file(tmp_path, store: EventStore, ext: str,
                                                 name: str) -> None:
    target = tmp_path / f"{name}.{ext}"
    _write(target, ["t1", "t2"])
    for other in ("ev1", "ev2", "evx", "ev"):  # files the name would match as a pattern
        _write(tmp_path / f"{other}.{ext}", [f"{other}-a"])
    rep = store.ingest(target)
    assert (rep.accepted, rep.rejected) == (2, 0)
    assert set(store.query("SELECT event_id FROM events")["event_id"]) == {"t1", "t2"}


def test_glob_characters_in_folder_names(tmp_path, store: EventStore) -> None:
    for d in ("data*", "data1", "data2"):
        (tmp_path / d).mkdir()
        _write(tmp_path / d / "ev.csv", [f"{d}-1"])
    assert store.ingest(tmp_path / "data*" / "ev.csv").accepted == 1
    assert list(store.query("SELECT event_id FROM events")["event_id"]) == ["data*-1"]


def test_a_pattern_that_names_no_file_is_not_found(tmp_path, store: EventStore) -> None:
    for i in (1, 2, 3):
        _write(tmp_path / f"ev{i}.csv", [f"e{i}"])
    with pytest.raises(DataError, match="file not found"):
        store.ingest(tmp_path / "ev*.csv")
    assert store.count_events() == 0


def test_cli_reads_the_literal_file(tmp_path) -> None:
    _write(tmp_path / "ev*.csv", ["star"])
    for i in (1, 2):
        _write(tmp_path / f"ev{i}.csv", [f"e{i}"])
    db = str(tmp_path / "fw.duckdb")
    res = runner.invoke(app, ["ingest", str(tmp_path / "ev*.csv"), "--db", db, "-f", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["accepted"] == 1
    with EventStore(db, read_only=True) as store:
        assert list(store.query("SELECT event_id FROM events")["event_id"]) == ["star"]
