"""The sentiment analysers: default (VADER + snownlp's model) and trainable; bad input gets
a reason, never an exception."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import DataError, NotFittedError
from feedwise.text.sentiment import (
    COLUMNS,
    TrainedAnalyser,
    check_text,
    default_analyser,
    load_analyser,
    normalise_labels,
)


@pytest.fixture(scope="module")
def ana():
    return default_analyser()


def test_columns_order_and_probabilities(ana) -> None:
    texts = ["I love this, best day ever!", "This is awful, I hate it.", "The shop opens at 9.",
             "这家外卖太难吃了，送得又慢又冷", "味道很好，送餐很快，非常满意"]
    df = ana.analyse(texts)
    assert list(df.columns) == COLUMNS and len(df) == len(texts)
    assert df["label"].tolist() == ["positive", "negative", "neutral", "negative", "positive"]
    assert df["language"].tolist() == ["en", "en", "en", "zh", "zh"]
    p = df[["negative", "neutral", "positive"]].to_numpy()
    assert np.allclose(p.sum(axis=1), 1.0) and (p >= 0).all()
    assert df["reason"].isna().all() and df["reason"].tolist() == [None] * 5
    # the label is the most probable class
    assert (p.argmax(axis=1) == df["label"].map(
        {"negative": 0, "neutral": 1, "positive": 2}).to_numpy()).all()


def test_rules_added_to_vader(ana) -> None:
    df = ana.analyse(["can't wait for the show tonight", "#NotHappy with the delay",
                      "😡😡", "💔"])
    assert df["label"].tolist() == ["positive", "negative", "negative", "negative"]


@pytest.mark.parametrize("value, reason", [
    ("", "empty"), ("   \n\t ", "empty"), (None, "empty"), (float("nan"), "empty"),
    ("x" * 1_048_576, "too long"), (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    ("\x00\x01\x02abc", "binary"), ("ab\x01\x02\x03\x04\x05", "binary"), (42, "not text"),
])
def test_bad_input_gets_a_reason_never_an_exception(ana, value, reason) -> None:
    df = ana.analyse([value, "great"])
    assert len(df) == 2
    assert df["reason"][0].startswith(reason)
    assert df["label"][0] is None and math.isnan(df["positive"][0])
    assert df["label"][1] == "positive" and df["reason"][1] is None


def test_emoji_only_mixed_and_unsupported(ana) -> None:
    df = ana.analyse(["😀😀👍", "I love 这个 app 真的很好用", "这个产品太差了 totally useless",
                      "今日はとても楽しかったです"])
    assert df["label"][0] == "positive" and df["language"][0] == "und"
    assert df["language"][1] == "mixed" and df["label"][1] == "positive"
    assert df["language"][2] == "mixed" and df["label"][2] == "negative"
    assert df["label"][3] is None and "unsupported language 'ja'" in df["reason"][3]


def test_check_text_accepts_utf8_bytes() -> None:
    assert check_text("好".encode()) == ("好", None)
    assert check_text(b"\xff\xfe\x00")[1].startswith("binary")


def test_empty_input_gives_an_empty_frame(ana) -> None:
    df = ana.analyse([])
    assert list(df.columns) == COLUMNS and len(df) == 0


@pytest.mark.parametrize("labels, want", [
    ([0, 1, 2, 1], ["negative", "neutral", "positive", "neutral"]),
    (["1", "0", "1"], ["positive", "negative", "positive"]),
    ([-1, 0, 1], ["negative", "neutral", "positive"]),
    (["POS", "neg", "Neutral"], ["positive", "negative", "neutral"]),
])
def test_normalise_labels(labels, want) -> None:
    assert normalise_labels(labels)[0] == want


@pytest.mark.parametrize("labels, msg", [
    ([0, 1, 2, 3], "4 numeric labels"), (["spam", "ham"], "neither sentiment names"),
    ([1, 1], "only one"), ([0, None, 1], "label missing in 1 row"),
])
def test_normalise_labels_errors(labels, msg) -> None:
    with pytest.raises(DataError, match=msg):
        normalise_labels(labels)


def _toy(n: int = 60) -> tuple[list[str], list[int]]:
    pos = ["great product love it", "excellent service very happy", "wonderful, works well",
           "amazing quality, recommend"]
    neg = ["terrible product hate it", "awful service very angry", "broken, does not work",
           "poor quality, avoid"]
    neu = ["the parcel arrived on tuesday", "it is blue and has two buttons",
           "the store is on main street", "order number is in the email"]
    texts, labels = [], []
    for i in range(n):
        k = i % 3
        texts.append([neg, neu, pos][k][i % 4] + f" {i}")
        labels.append(k)
    return texts, labels


def test_trained_analyser_three_classes_save_load(tmp_path: Path) -> None:
    texts, labels = _toy()
    with pytest.raises(NotFittedError):
        TrainedAnalyser().analyse(["x"])
    m = TrainedAnalyser(C=10.0).fit(texts + ["", None], labels + [0, 2])
    assert m.classes_ == ["negative", "neutral", "positive"] and m.n_skipped_ == 2
    new = ["love it, excellent", "hate it, broken", "arrived on tuesday", ""]
    df = m.analyse(new)
    assert df["label"].tolist()[:3] == ["positive", "negative", "neutral"]
    assert df["reason"][3] == "empty"
    assert np.allclose(df[["negative", "neutral", "positive"]].to_numpy()[:3].sum(axis=1), 1)
    m.save(tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.pkl"))
    back = load_analyser(tmp_path / "model")
    pd.testing.assert_frame_equal(back.analyse(new), df)


def test_trained_analyser_two_classes_has_zero_neutral() -> None:
    texts, labels = _toy()
    keep = [i for i, y in enumerate(labels) if y != 1]
    m = TrainedAnalyser().fit([texts[i] for i in keep], [str(labels[i] // 2) for i in keep])
    assert m.classes_ == ["negative", "positive"]
    df = m.analyse(["love it", "hate it"])
    assert (df["neutral"] == 0).all() and df["label"].tolist() == ["positive", "negative"]


def test_default_analyser_quality_on_real_samples(shared_data: Path, ana) -> None:
    """A smoke floor on a fixed sample (the acceptance figures are benchmarks/listening.py)."""
    d = shared_data / "tweeteval-sentiment"
    y = [int(v) for v in (d / "val_labels.txt").read_text().split()][:400]
    x = (d / "val_text.txt").read_text(encoding="utf-8").split("\n")[:400]
    pred = ana.analyse(x)["label"].map({"negative": 0, "neutral": 1, "positive": 2})
    y = np.array(y)
    recall = np.mean([(pred.to_numpy()[y == k] == k).mean() for k in range(3)])
    assert recall > 0.5
    w = pd.read_csv(shared_data / "chinese-reviews" / "waimai_10k.csv").sample(
        400, random_state=0)
    out = ana.analyse(w["review"].tolist())
    acc = ((out["positive"] > out["negative"]).astype(int).to_numpy() == w["label"]).mean()
    assert acc > 0.7


def test_chinese_words_are_snownlps_own(ana) -> None:
    """The numpy segmenter gives snownlp's words, and the label agrees with SnowNLP."""
    from snownlp import SnowNLP
    from snownlp import seg as snow_seg

    texts = ["这家外卖太难吃了，送餐还特别慢", "质量很好，物流也快，下次还会再来买",
             "屏幕有点暗但是电池很耐用", "酒店位置不错，服务态度一般般"]
    zh = ana.zh
    for t in texts:
        assert zh.words(t) == snow_seg.seg(t)
    got = ana.analyse(texts)
    want = ["positive" if SnowNLP(t).sentiments > 0.5 else "negative" for t in texts]
    assert [g if g != "neutral" else w for g, w in zip(got["label"], want, strict=True)] == want


def test_batch_frame_equals_row_by_row(ana) -> None:
    """The array-built frame of a batch holds the same rows as scoring one text at a time."""
    texts = ["great 😀", "", "这家外卖太难吃了", "Das ist nicht gut und sehr teuer", None,
             "I love 这个 app", "meh", "#NotHappy", "🙂", b"\xff\xfe"]
    df = ana.analyse(texts)
    for i, t in enumerate(texts):
        row = ana.score(t)
        got = df.iloc[i].tolist()
        assert got[0] == row[0] and got[4:] == list(row[4:])
        assert np.allclose(got[1:4], row[1:4], equal_nan=True)


def test_english_is_vader_and_afinn_averaged(ana) -> None:
    from feedwise.errors import ConfigError
    from feedwise.text.sentiment import DefaultAnalyser

    vader = DefaultAnalyser(english="vader")
    assert ana.english == "vader+afinn"
    t = "The update is bad and the app is terrible"
    c_v = vader.compound(t, "en")
    c_a = ana._en.afinn_compound(t)
    assert c_a < 0 and abs(ana.compound(t, "en") - (c_v + c_a) / 2) < 1e-12
    assert ana._en.afinn_compound("the box is blue") == 0.0
    with pytest.raises(ConfigError):
        DefaultAnalyser(english="afinn")


def test_trained_analyser_uses_characters_for_chinese(tmp_path: Path) -> None:
    pos = ["味道很好，送餐很快", "非常满意，下次还来", "好吃又实惠，推荐", "服务态度好，很喜欢"]
    neg = ["太难吃了，送得又慢", "非常失望，不会再来", "又贵又难吃，差评", "态度很差，很生气"]
    texts = [(pos if i % 2 else neg)[i % 4] + f"{i}号" for i in range(60)]
    labels = [i % 2 for i in range(60)]
    m = TrainedAnalyser().fit(texts, labels)
    assert m.features_ == "chars" and m.classes_ == ["negative", "positive"]
    new = ["很好吃，很满意", "难吃，失望", ""]
    df = m.analyse(new)
    assert df["label"].tolist() == ["positive", "negative", None]
    m.save(tmp_path / "zh")
    assert not list((tmp_path / "zh").glob("*.pkl"))
    pd.testing.assert_frame_equal(load_analyser(tmp_path / "zh").analyse(new), df)
    en, y = _toy()
    assert TrainedAnalyser().fit(en, y).features_ == "tfidf"


def test_chinese_negator_reverses_the_next_word(ana) -> None:
    """A negator reverses the model's weight of the next word (没有 is on snownlp's stop
    list, so without the rule 没有 问题 would read as 问题 alone)."""
    zh = ana.zh

    def logit(text: str) -> float:
        p = zh.p_positive(text)
        return math.log(p / (1 - p)) - zh.prior

    lo = zh.log_odds
    assert zh.words("没有惊喜") == ["没有", "惊喜"] and "没有" in zh.stop
    assert logit("惊喜") == pytest.approx(lo["惊喜"]) and lo["惊喜"] > 1
    assert logit("没有惊喜") == pytest.approx(-lo["惊喜"])
    # a negator with a weight of its own keeps it; stop words between do not end the scope
    assert logit("不满意") == pytest.approx(lo["不"] - lo["满意"]) and logit("不满意") < 0
    assert zh.words("没有失望") == ["没", "有", "失望"] and "有" in zh.stop
    assert logit("没有失望") == pytest.approx(lo["没"] - lo["失望"]) and logit("没有失望") > 0
    # only the next word: the one after it keeps its weight
    assert zh.words("没有效果满意") == ["没有", "效果", "满意"]
    assert logit("没有效果满意") == pytest.approx(-lo["效果"] + lo["满意"])
