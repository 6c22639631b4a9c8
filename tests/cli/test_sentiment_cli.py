"""``feedwise sentiment score`` / ``train``: one output row per input row, bad rows get a
reason, errors are one ``error:`` line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from feedwise.cli import app

runner = CliRunner()


def _jsonl(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_score_text_file_with_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "comments.txt"
    lines = [b"I love this!", b"", "这家外卖太难吃了".encode(), b"\xff\xfe\x00\x01binary",
             ("x" * 1_048_576).encode(), "😀😀".encode(), "I love 这个 app 真的很好用".encode(),
             b"terrible service\r"]
    f.write_bytes(b"\n".join(lines) + b"\n")
    r = runner.invoke(app, ["sentiment", "score", str(f), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = _jsonl(r.stdout)
    assert [x["row"] for x in rows] == list(range(1, 9))
    assert [x["label"] for x in rows] == ["positive", None, "negative", None, None, "positive",
                                          "positive", "negative"]
    assert [(x["reason"] or "").split(":")[0] for x in rows] == [
        "", "empty", "", "binary", "too long", "", "", ""]
    assert rows[6]["language"] == "mixed"
    assert rows[1]["positive"] is None  # JSON null, not NaN


def test_score_csv_and_jsonl_columns(tmp_path: Path) -> None:
    pd.DataFrame({"id": [1, 2, 3], "body": ["great", "", "awful"]}).to_csv(
        tmp_path / "c.csv", index=False)
    r = runner.invoke(app, ["sentiment", "score", str(tmp_path / "c.csv"), "--column", "body",
                            "--format", "csv"])
    assert r.exit_code == 0, r.output
    out = pd.read_csv(pd.io.common.StringIO(r.stdout))
    assert out["label"].fillna("").tolist() == ["positive", "", "negative"]
    (tmp_path / "c.jsonl").write_text('{"text": "love it"}\nnot json\n{"other": 1}\n'
                                      '{"text": "hate it"}\n')
    r = runner.invoke(app, ["sentiment", "score", str(tmp_path / "c.jsonl")])
    rows = _jsonl(r.stdout)
    assert [x["label"] for x in rows] == ["positive", None, None, "negative"]
    assert rows[1]["reason"].startswith("binary") and rows[2]["reason"] == "empty"


def test_score_errors_are_one_line(tmp_path: Path) -> None:
    pd.DataFrame({"body": ["x"]}).to_csv(tmp_path / "c.csv", index=False)
    for args, msg in [
        (["score", str(tmp_path / "nope.txt")], "no such file"),
        (["score", str(tmp_path / "c.csv")], "no column 'text'"),
        (["score", str(tmp_path / "c.csv"), "--column", "body", "--model", "v0007",
          "--registry", str(tmp_path / "reg")], "no trained sentiment model"),
    ]:
        r = runner.invoke(app, ["sentiment", *args])
        assert r.exit_code == 2, r.output
        assert "error:" in r.output and msg in r.output


def test_train_then_score_with_the_model(tmp_path: Path) -> None:
    pos = ["great product love it", "excellent service very happy", "wonderful works well"]
    neg = ["terrible product hate it", "awful service very angry", "broken does not work"]
    rows = [{"review": t + f" {i}", "stars": 1} for i in range(15) for t in pos]
    rows += [{"review": t + f" {i}", "stars": 0} for i in range(15) for t in neg]
    pd.DataFrame(rows).to_csv(tmp_path / "lab.csv", index=False)
    (tmp_path / "new.txt").write_text("love it, excellent\nhate it, broken\n")
    r = runner.invoke(app, ["sentiment", "train", str(tmp_path / "lab.csv"), "--text-column",
                            "review", "--label-column", "stars", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m" / "sentiment.json").is_file()
    r = runner.invoke(app, ["sentiment", "score", str(tmp_path / "new.txt"), "--model",
                            str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    got = _jsonl(r.stdout)
    assert [x["label"] for x in got] == ["positive", "negative"]
    assert all(x["neutral"] == 0 for x in got)
    reg = tmp_path / "reg"
    r = runner.invoke(app, ["sentiment", "train", str(tmp_path / "lab.csv"), "--text-column",
                            "review", "--label-column", "stars", "--registry", str(reg),
                            "--no-validate"])
    assert r.exit_code == 0, r.output
    meta = json.loads((reg / "versions" / "v0001" / "meta.json").read_text())
    assert meta["model"] == "sentiment"
    r = runner.invoke(app, ["sentiment", "score", str(tmp_path / "new.txt"), "--model",
                            "latest", "--registry", str(reg), "--format", "json"])
    assert r.exit_code == 0, r.output
    assert [x["label"] for x in json.loads(r.stdout)] == ["positive", "negative"]
    r = runner.invoke(app, ["sentiment", "train", str(tmp_path / "lab.csv"), "--text-column",
                            "nope"])
    assert r.exit_code == 2 and "no column 'nope'" in r.output


def test_score_table_shows_reasons_not_none(tmp_path: Path) -> None:
    f = tmp_path / "comments.txt"
    f.write_bytes(b"I love this!\n\n\xff\xfe\x00\x01binary\n")
    r = runner.invoke(app, ["sentiment", "score", str(f), "--format", "table"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "None" not in r.stdout and "nan" not in r.stdout
    assert r.stdout.count("not scored") == 2
    assert "empty" in r.stdout and "binary" in r.stdout and "positive" in r.stdout


def test_train_with_group_column_fits_the_mix_on_unseen_groups(tmp_path: Path) -> None:
    pos = ["great product love it", "excellent service very happy", "wonderful works well"]
    neg = ["terrible product hate it", "awful service very angry", "broken does not work"]
    rows = [{"review": f"{t} {g}{i}", "stars": s, "shop": f"shop{g}"}
            for g in range(4) for i in range(20)
            for ts, s in ((pos, 1), (neg, 0)) for t in ts]
    pd.DataFrame(rows).to_csv(tmp_path / "lab.csv", index=False)
    args = ["sentiment", "train", str(tmp_path / "lab.csv"), "--text-column", "review",
            "--label-column", "stars", "--no-validate"]
    r = runner.invoke(app, [*args, "--group-column", "shop", "--out", str(tmp_path / "g")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "g" / "sentiment.json").read_text())["stack_fit"] == (
        "held-out groups")
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "n")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "n" / "sentiment.json").read_text())["stack_fit"] != (
        "held-out groups")
    r = runner.invoke(app, [*args, "--group-column", "nope"])
    assert r.exit_code == 2 and "no column 'nope'" in r.output and "--group-column" in r.output
