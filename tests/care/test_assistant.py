"""Default intents, answer retrieval, threshold choice, routing, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from care_world import examples, knowledge

from feedwise.care.answers import AnswerIndex
from feedwise.care.assistant import CareAssistant
from feedwise.care.intents import DefaultIntentModel, train_intents
from feedwise.care.knowledge import load_answers
from feedwise.care.routing import RoutingPolicy, choose_threshold
from feedwise.errors import ConfigError, DataError


def test_default_model_classes():
    m = DefaultIntentModel()
    got = m.predict(["How do I reset my password?",
                     "This is the worst service ever, my parcel never arrived",
                     "Thanks so much, love the new app!",
                     "FREE crypto giveaway click here http://win.xyz",
                     "ok"])
    assert got == ["question", "complaint", "praise", "spam", "other"]
    p = m.predict_proba(["Thanks so much, love the new app!", "ok"])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0].max() > p[1].max()  # more cues, more confident
    assert m.explain("Thanks, great job") != []


def test_answer_index_bm25_and_intent_bonus():
    idx = AnswerIndex(knowledge(), use_embeddings=False)
    s = idx.search("my card has still not arrived", k=2)
    assert s[0].answer_id == "card-arrival" and "BM25" in s[0].why
    assert s[0].score > (s[1].score if len(s) > 1 else 0)
    plain = idx.search("help", k=3)
    boosted = idx.search("help", k=3, intent="pin", confidence=0.9)
    assert plain == [] and boosted[0].answer_id == "pin"
    assert "predicted intent 'pin'" in boosted[0].why


def test_choose_threshold_meets_target_on_its_data():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 2000)
    correct = (rng.uniform(0, 1, 2000) < conf).astype(float)  # calibrated confidences
    t = choose_threshold(conf, correct, 0.9)
    hit = conf >= t
    assert 0.7 < t < 1.0 and correct[hit].mean() >= 0.9  # (1 + t) / 2 >= 0.9 near t = 0.8
    assert choose_threshold([0.5] * 5, [1.0] * 5, 0.9) == 1.01  # too few to trust
    with pytest.raises(ConfigError):
        choose_threshold(conf, correct, 1.5)


@pytest.fixture(scope="module")
def assistant():
    texts, labels = examples()
    model = train_intents(texts * 3, labels * 3, target_precision=0.9)
    return CareAssistant(intents=model, index=AnswerIndex(knowledge()),
                         policy=RoutingPolicy(threshold=0.5))


def test_routing_auto_question_and_human_complaint(assistant):
    d = assistant.handle("Where is my card? It has not arrived")
    assert d["intent"] == "card_arrival"
    assert [t["intent"] for t in d["top"]][0] == "card_arrival" and len(d["top"]) == 3
    assert d["routing"]["decision"] == "auto", d["routing"]
    assert d["reply"] == "Cards arrive within 5 working days."
    assert d["suggestions"][0]["why"]
    c = assistant.handle("Terrible service, my card never arrived and nobody helps. Useless!")
    assert c["routing"]["decision"] == "human" and c["routing"]["queue"] == "complaints"
    assert any("complaint" in r or "negative" in r for r in c["routing"]["reasons"])


def test_low_confidence_goes_to_a_person():
    texts, labels = examples()
    strict = CareAssistant(intents=train_intents(texts, labels), index=AnswerIndex(knowledge()),
                           policy=RoutingPolicy(threshold=1.01))
    d = strict.handle("where is my card?")
    assert d["routing"]["decision"] == "human"
    assert any("below the auto-reply threshold" in r for r in d["routing"]["reasons"])


@pytest.mark.parametrize("text,why", [
    ("", "empty"), ("   ", "empty"), (None, "empty"), ("x" * 1_000_000, "too long"),
    (b"\x00\x01\x02\xff\xfe", "binary"), ("a\x00b\x01c\x02d\x03", "binary"), (12, "not text")])
def test_bad_input_goes_to_a_person_with_the_reason(assistant, text, why):
    d = assistant.handle(text)
    assert d["routing"]["decision"] == "human" and d["problem"].startswith(why)
    assert d["reply"] is None


def test_unsupported_language_goes_to_a_person(assistant):
    for text in ("Wo ist meine Karte? Sie ist noch nicht angekommen und ich warte",
                 "Где моя карта?", "我的卡什么时候到"):
        d = assistant.handle(text)
        assert d["routing"]["decision"] == "human"
        assert any("not answered automatically" in r for r in d["routing"]["reasons"]), d


def test_knowledge_from_csv_and_yaml_keeps_good_rows(tmp_path):
    csv = tmp_path / "faq.csv"
    csv.write_text("answer_id,question,answer,intent,tags\n"
                   "card,Where is my card?,Cards arrive in 5 days.,card_arrival,cards;post\n"
                   "card,My card has not arrived,Cards arrive in 5 days.,,\n"
                   ",Orphan question,No id,,\n"
                   "pin,How do I change my PIN?,,pin,\n")
    got = load_answers(csv)
    assert list(got.entries["answer_id"]) == ["card"]
    assert got.entries["questions"].iloc[0] == ["Where is my card?", "My card has not arrived"]
    assert got.entries["tags"].iloc[0] == ["cards", "post"]
    assert len(got.problems) == 2
    assert "row 3" in got.problems[0] and "'answer_id'" in got.problems[0]
    assert "row 4" in got.problems[1] and "'answer'" in got.problems[1]
    yml = tmp_path / "faq.yaml"
    yml.write_text("- answer_id: pin\n  questions: [\"How do I change my PIN?\"]\n"
                   "  answer: Under Cards > PIN.\n  intent: pin\n- just text\n")
    got = load_answers(yml)
    assert list(got.entries["answer_id"]) == ["pin"] and "entry 2" in got.problems[0]
    with pytest.raises(DataError, match="missing column"):
        bad = tmp_path / "bad.csv"
        bad.write_text("a,b\n1,2\n")
        load_answers(bad)


def test_default_model_read_matches_predict_proba():
    m = DefaultIntentModel()
    for t in ["Thanks, great job", "where is it?", "FREE crypto http://a.xyz", "ok"]:
        p, cues = m.read(t)
        np.testing.assert_allclose(p, m.predict_proba([t])[0])
        assert cues == m.explain(t)
