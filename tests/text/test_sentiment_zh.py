"""Chinese sentiment: the default analyser's HowNet lexicon beside snownlp's model, and the
trainable analyser's blend with it (issue 22)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feedwise.errors import ConfigError, DataError
from feedwise.text import sentiment as S
from feedwise.text.sentiment import DefaultAnalyser, TrainedAnalyser, load_analyser

#: the combiner's column of the default analyser's log-odds (after the classifier's two)
DEFAULT = 2


@pytest.fixture(scope="module")
def ana() -> DefaultAnalyser:
    return S.default_analyser()


@pytest.fixture(scope="module")
def snow_only() -> DefaultAnalyser:
    return DefaultAnalyser(chinese="snownlp")


def test_lexicon_negation_and_degree(ana) -> None:
    lex = ana.lexicon
    assert lex is not None and len(lex.pos) > 5000 and len(lex.neg) > 10000
    assert lex.score("好") == 1.0 and lex.score("难吃") == -1.0
    assert lex.score("不好") == -1.0  # a negator reverses the next sentiment word
    assert lex.score("非常好") == 3.0 and lex.score("有点好") == 0.5  # degree adverbs
    assert lex.score("不是很好") == -2.0
    assert lex.score("今天星期三") == 0.0


def test_chinese_logit_is_snownlp_plus_lexicon(ana, snow_only) -> None:
    for t in ["这家外卖太难吃了，送得又慢又冷", "味道很好，送餐很快", "没有想象中好", "一般"]:
        want = ana.zh.logit(t) + S.ZH_LEXICON_WEIGHT * ana.lexicon.score(t) - S.ZH_OFFSET
        assert ana.zh_logit(t) == pytest.approx(want)
        assert snow_only.zh_logit(t) == pytest.approx(ana.zh.logit(t))
        c = ana.compound(t, "zh")
        assert c == pytest.approx(2.0 / (1.0 + math.exp(-want)) - 1.0)
    with pytest.raises(ConfigError):
        DefaultAnalyser(chinese="hownet")


def test_without_the_lexicon_packages_snownlp_reads_alone(monkeypatch) -> None:
    monkeypatch.setattr(S, "_hownet", lambda: None)
    a = DefaultAnalyser()
    assert a.lexicon is None
    t = "质量很好，物流也快"
    assert a.zh_logit(t) == pytest.approx(a.zh.logit(t))
    assert a.analyse([t])["label"][0] == "positive"


def test_word_lists_are_read_without_running_code(tmp_path: Path) -> None:
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps(["好", "棒"]))
    assert S._NoGlobals.load(ok) == ["好", "棒"]
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(Path("x")))  # a class reference
    with pytest.raises(pickle.UnpicklingError, match="only plain word lists"):
        S._NoGlobals.load(bad)


def test_lexicon_lifts_accuracy_on_product_reviews(shared_data: Path, ana, snow_only) -> None:
    """On 240 short reviews of online_shopping_10_cats (the validation domain; the
    acceptance figure on waimai is benchmarks/listening.py), snownlp with the lexicon
    beats snownlp alone."""
    shop = pd.read_csv(shared_data / "chinese-reviews" / "online_shopping_10_cats.csv")
    shop = shop.dropna(subset=["review"])
    shop = shop[shop["review"].str.len() < 80].sample(240, random_state=1)
    y = shop["label"].to_numpy()

    def acc(a: DefaultAnalyser) -> float:
        out = a.analyse(shop["review"].tolist())
        return float(((out["positive"] > out["negative"]).astype(int).to_numpy() == y).mean())

    both, alone = acc(ana), acc(snow_only)
    assert both > alone and both > 0.8


def _zh_toy() -> tuple[list[str], list[int]]:
    pos = ["味道很好，送餐很快", "非常满意，下次还来", "好吃又实惠，推荐", "服务态度好，很喜欢",
           "质量不错，物流也快", "包装完好，很新鲜"]
    neg = ["太难吃了，送得又慢", "非常失望，不会再来", "又贵又难吃，差评", "态度很差，很生气",
           "质量太差，不推荐", "等了两个小时，饭都凉了"]
    texts = [(pos if i % 2 else neg)[(i // 2) % 6] + f"{i}号" for i in range(80)]
    return texts, [i % 2 for i in range(80)]


def test_chinese_trainable_combines_with_the_default_logit(tmp_path: Path) -> None:
    texts, y = _zh_toy()
    m = TrainedAnalyser().fit(texts, y)
    assert m.features_ == "chars" and m.stack_features_ == "logit+nb"
    assert m.stack_coef_ is not None and m.stack_coef_.shape == (2, 4)
    # columns: the classifier's two log-probabilities, the default analyser's log-odds and
    # naive Bayes' log-odds; both log-odds weigh towards positive
    assert m.stack_coef_[1, DEFAULT] > m.stack_coef_[0, DEFAULT]
    assert m.stack_coef_[1, -1] > m.stack_coef_[0, -1]
    new = ["很好吃，很满意", "难吃，失望", "", "物流太慢了"]
    df = m.analyse(new)
    assert df["label"].tolist()[:3] == ["positive", "negative", None]
    m.save(tmp_path / "zh")
    assert not list((tmp_path / "zh").glob("*.pkl"))
    back = load_analyser(tmp_path / "zh")
    assert back.stack_features_ == "logit+nb"
    pd.testing.assert_frame_equal(back.analyse(new), df)


def test_naive_bayes_reads_the_ngrams_and_older_models_still_load(tmp_path: Path) -> None:
    texts, y = _zh_toy()
    m = TrainedAnalyser().fit(texts, y)
    z = m.classifier_.nb_logit(["味道很好，送餐很快", "太难吃了，送得又慢", "的"])
    assert z[0] > 1 > -1 > z[1] and abs(z[2]) < abs(z[0])
    # a model saved before the naive Bayes column (three combiner columns, no ratios)
    # still loads and scores as it did
    old = TrainedAnalyser().fit(texts, y)
    old.stack_features_ = "logit"
    old._fit_stack(texts, ["positive" if v else "negative" for v in y])  # 3 columns again
    assert old.stack_coef_.shape == (2, 3)
    old.classifier_.nb_r_ = None
    old.save(tmp_path / "old")
    with np.load(tmp_path / "old" / "classifier.npz") as saved:
        assert "nb_r" not in saved.files
    back = load_analyser(tmp_path / "old")
    assert back.stack_features_ == "logit" and back.classifier_.nb_r_ is None
    new = ["很好吃，很满意", "难吃，失望"]
    pd.testing.assert_frame_equal(back.analyse(new), old.analyse(new))
    assert back.analyse(new)["label"].tolist() == ["positive", "negative"]


def test_default_logits_match_the_default_analyser(ana) -> None:
    texts = ["味道很好", "I love it", "I love 这个 app", "Das ist gut"]
    z = S._default_logits(texts)
    assert z[0] == pytest.approx(ana.zh_logit(texts[0]))
    c = ana.compound(texts[1], "en")
    assert z[1] == pytest.approx(math.log((1 + c) / (1 - c))) and z[1] > 0
    assert z[2] > 0 and z[3] == 0.0  # mixed read; German not read by the default


def _zh_grouped() -> tuple[list[str], list[int], list[str]]:
    """Four groups (say, products) of 40 reviews: in each, a group's own mark (a character
    no other group uses) gives the label away, while the sentiment phrase (which the
    default analyser reads) agrees with the label in 80% of the reviews only."""
    pos = ["味道很好，很满意", "非常满意，推荐", "好吃又实惠", "服务态度好，很喜欢"]
    neg = ["太难吃了，很失望", "非常失望，差评", "又贵又难吃", "态度很差，很生气"]
    marks = ["甲乙", "丙丁", "戊己", "庚辛"]
    texts, y, groups = [], [], []
    for g, mark in enumerate(marks):
        for i in range(40):
            label = i % 2
            says = label if i % 10 not in (3, 6) else 1 - label
            phrase = (pos if says else neg)[(i // 2) % 4]
            texts.append(f"{phrase}{mark[label]}")
            y.append(label)
            groups.append(f"p{g}")
    return texts, y, groups


def test_groups_fit_the_combiner_on_groups_the_classifier_did_not_see(tmp_path: Path) -> None:
    """Within a group the classifier learns the group's marks and looks perfect on a random
    validation share; on groups it was not trained on it knows only the phrases, so the
    combiner fitted there trusts it less, and the readers of phrases (the default analyser
    and naive Bayes) more."""
    texts, y, groups = _zh_grouped()
    plain = TrainedAnalyser().fit(texts, y)
    grouped = TrainedAnalyser().fit(texts, y, groups=groups)
    assert plain.stack_fit_ == "validation share"
    assert grouped.stack_fit_ == "held-out groups"

    def weights(m: TrainedAnalyser) -> tuple[float, float]:
        """The classifier's weight (its log-probability of positive) and the phrase
        readers' (the default's and naive Bayes' log-odds), per unit of the classifier's."""
        w = m.stack_coef_[1] - m.stack_coef_[0]
        return float(w[1]), float((w[DEFAULT] + w[-1]) / abs(w[1]))

    (own_plain, readers_plain), (own_grouped, readers_grouped) = weights(plain), weights(grouped)
    assert 0 < 2 * own_grouped < own_plain
    assert readers_grouped > max(readers_plain, 0.0)
    # a new group: only the phrase says anything, and the phrase readers read it
    new = ["味道很好，很满意壬癸", "太难吃了，很失望壬癸"]
    assert grouped.analyse(new)["label"].tolist() == ["positive", "negative"]
    grouped.save(tmp_path / "g")
    back = load_analyser(tmp_path / "g")
    assert back.stack_fit_ == "held-out groups"
    pd.testing.assert_frame_equal(back.analyse(new), grouped.analyse(new))
    # fewer than MIN_GROUPS groups: the random validation share, as without groups
    two = TrainedAnalyser().fit(texts, y, groups=[g if g == "p0" else "rest" for g in groups])
    assert two.stack_fit_ == "validation share"
    with pytest.raises(DataError, match="groups"):
        TrainedAnalyser().fit(texts, y, groups=groups[:-1])
