"""``feedwise answers``, ``feedwise intents``, ``feedwise care``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd
from care_world import examples
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.store import EventStore

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_answers_add_and_list_versions(tmp_path):
    db = str(tmp_path / "c.duckdb")
    faq = tmp_path / "faq.csv"
    faq.write_text("answer_id,question,answer,intent\n"
                   "card,Where is my card?,Cards arrive in 5 days.,card_arrival\n"
                   "card,My card has not arrived,Cards arrive in 5 days.,\n"
                   "bad,,No question,\n")
    r = run("answers", "add", str(faq), "--db", db)
    assert r.exit_code == 0, r.output
    assert "row 3" in r.output and "version 1" in r.output
    yml = tmp_path / "faq.yaml"
    yml.write_text('- answer_id: card\n  questions: ["Where is my card?"]\n'
                   "  answer: Cards arrive in 3 days.\n")
    assert run("answers", "add", str(yml), "--db", db).exit_code == 0
    r = run("answers", "list", "--db", db, "--format", "json")
    got = json.loads(r.stdout)
    assert [a["answer"] for a in got] == ["Cards arrive in 3 days."] and got[0]["version"] == 2
    old = json.loads(run("answers", "list", "--db", db, "--version", "1", "--format",
                         "json").stdout)
    assert old[0]["answer"] == "Cards arrive in 5 days."
    missing = run("answers", "add", str(tmp_path / "nope.csv"), "--db", db)
    assert missing.exit_code == 2 and "error:" in missing.output


def test_intents_train_and_predict_in_order(tmp_path):
    texts, labels = examples()
    train = tmp_path / "train.csv"
    pd.DataFrame({"q": texts * 3, "intent": labels * 3}).to_csv(train, index=False)
    out = tmp_path / "model"
    r = run("intents", "train", str(train), "--text-column", "q", "--label-column", "intent",
            "--out", str(out))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "model.npz").exists() and (tmp_path / "model.json").exists()
    msgs = tmp_path / "messages.csv"
    pd.DataFrame({"text": ["where is my card", "", "refund please", "forgot my pin"]}).to_csv(
        msgs, index=False)
    r = run("intents", "predict", str(msgs), "--model", str(out), "--format", "jsonl")
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["row"] for x in rows] == [1, 2, 3, 4]
    assert [x["intent"] for x in rows] == ["card_arrival", None, "refund", "pin"]
    assert rows[1]["reason"] == "empty" and len(rows[0]["top"]) == 3
    assert rows[0]["top"][0]["confidence"] == rows[0]["confidence"]
    # the default classes need no model
    d = run("intents", "predict", str(msgs), "--format", "jsonl")
    assert json.loads(d.stdout.splitlines()[0])["intent"] in ("question", "other", "complaint")
    bad = run("intents", "train", str(train), "--text-column", "nope", "--out", str(out))
    assert bad.exit_code == 2 and "no column 'nope'" in bad.output


def test_care_kpis_command(tmp_path):
    db = str(tmp_path / "k.duckdb")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with EventStore(db) as st:
        st.add_message({"message_id": "m1", "user_id": "u1", "channel": "dm", "ts": t0,
                        "routing": "human", "intent": "card"})
        st.add_reply({"reply_id": "r1", "message_id": "m1", "agent": "ann", "text": "hi",
                      "ts": pd.Timestamp(t0) + pd.Timedelta(seconds=90)})
    r = run("care", "kpis", "--db", db, "--format", "json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    assert row["messages"] == 1 and row["first_response_s_median"] == 90
    r = run("care", "kpis", "--db", db, "--by", "agent", "--format", "json")
    assert json.loads(r.stdout)[0]["agent"] == "ann"
    bad = run("care", "kpis", "--db", db, "--by", "planet")
    assert bad.exit_code == 2 and "error:" in bad.output


def test_intents_fine_tune_option_is_checked(tmp_path):
    texts, labels = examples()
    train = tmp_path / "train.csv"
    pd.DataFrame({"q": texts, "intent": labels}).to_csv(train, index=False)
    common = ["intents", "train", str(train), "--text-column", "q", "--label-column", "intent",
              "--out", str(tmp_path / "m")]
    r = run(*common, "--fine-tune", "50")
    assert r.exit_code == 2 and "--features embeddings" in r.output
    r = run(*common, "--fine-tune", "-1", "--features", "both")
    assert r.exit_code == 2 and ">= 0" in r.output
    assert not (tmp_path / "m.npz").exists()


def test_intents_recipe_gives_the_measured_settings(tmp_path, monkeypatch):
    import feedwise.care.intents as intents

    texts, labels = examples()
    train = tmp_path / "train.csv"
    pd.DataFrame({"q": texts, "intent": labels}).to_csv(train, index=False)
    common = ["intents", "train", str(train), "--text-column", "q", "--label-column", "intent",
              "--out", str(tmp_path / "m")]
    r = run(*common, "--recipe", "huge")
    assert r.exit_code == 2 and "few-shot, all-data" in r.output
    r = run(*common, "--recipe", "all-data", "--fine-tune", "10")
    assert r.exit_code == 2 and "leave out" in r.output
    seen: dict = {}
    real = intents.train_intents

    def fake(texts, labels, *, target_precision, **params):  # records, then trains TF-IDF
        seen.update(params)
        return real(texts, labels, target_precision=target_precision)

    monkeypatch.setattr(intents, "train_intents", fake)
    r = run(*common, "--recipe", "all-data")
    assert r.exit_code == 0, r.output
    assert seen == intents.RECIPES["all-data"] and seen["encoder_steps"] == 300
