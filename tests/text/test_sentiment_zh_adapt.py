"""Chinese trainable sentiment adapted to a new domain with its unlabelled texts
(``TrainedAnalyser.fit(adapt_texts=...)``, ``feedwise sentiment train --adapt-to``; issue 22)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from feedwise.cli import app
from feedwise.errors import ConfigError
from feedwise.text.sentiment import TrainedAnalyser, load_analyser

FILLER = ["今天的", "这次的", "上周的", "刚到的"]
PRODUCTS = ["手机", "电脑", "衣服"]
# Planted words for good and bad that no lexicon knows: the labelled domain's (子丑 good,
# 午未 bad) and the new domain's own (甲乙 good, 丙丁 bad).
SRC = ("午未", "子丑")
NEW = ("丙丁", "甲乙")


def _source() -> tuple[list[str], list[int]]:
    """Product reviews: words of time, a product and the labelled domain's word."""
    texts, y = [], []
    for i in range(120):
        label = i % 2
        texts.append(FILLER[(i // 2) % 4] + PRODUCTS[i % 3] + SRC[label])
        y.append(label)
    return texts, y


def _target(seed: int) -> tuple[list[str], list[int], np.ndarray]:
    """The new domain (food orders) says good and bad with its own words; three in four of
    its texts also carry the labelled domain's word, the others its own word only
    (``only``)."""
    rng = np.random.default_rng(seed)
    texts, y, only = [], [], []
    for i in range(160):
        label = int(rng.integers(2))
        both = i % 4 != 0
        texts.append(FILLER[int(rng.integers(4))] + "外卖" + (SRC[label] if both else "")
                     + NEW[label])
        y.append(label)
        only.append(not both)
    return texts, y, np.array(only)


@pytest.fixture(scope="module")
def models() -> dict:
    src, ys = _source()
    a_texts, _, _ = _target(1)  # the adaptation half: texts only
    b_texts, b_y, b_only = _target(2)  # the scored half, never adapted on
    plain = TrainedAnalyser().fit(src, ys)
    adapted = TrainedAnalyser().fit(src, ys, adapt_texts=a_texts)
    return {"src": (src, ys), "a": a_texts, "b": (b_texts, np.array(b_y), b_only),
            "plain": plain, "adapted": adapted}


def _acc(m: TrainedAnalyser, texts: list[str], y: np.ndarray) -> float:
    lab = m.analyse(texts)["label"].to_numpy()
    return float(((lab == "positive").astype(int) == y).mean())


def test_adaptation_learns_the_new_domains_words(models) -> None:
    b_texts, b_y, only = models["b"]
    texts_only = [t for t, o in zip(b_texts, only, strict=True) if o]
    plain = _acc(models["plain"], texts_only, b_y[only])
    adapted = _acc(models["adapted"], texts_only, b_y[only])
    assert plain <= 0.7 and adapted >= 0.9  # the marks alone: unread before, read after
    # texts the source model read already stay read
    assert _acc(models["adapted"], [t for t, o in zip(b_texts, only, strict=True) if not o],
                b_y[~only]) >= 0.95
    info = models["adapted"].adapt_
    assert info["n_texts"] == len(models["a"]) and info["share"] == 0.5
    assert sum(info["used"].values()) == pytest.approx(0.5 * len(models["a"]), abs=2)
    assert models["plain"].adapt_ is None


def test_adaptation_takes_no_labels_and_is_deterministic(models) -> None:
    """The adapted model depends on the target texts only: the same texts in the same order
    give the same model, and the texts' true labels are never an input."""
    src, ys = models["src"]
    again = TrainedAnalyser().fit(src, ys, adapt_texts=list(models["a"]))
    b_texts = models["b"][0]
    pd.testing.assert_frame_equal(again.analyse(b_texts), models["adapted"].analyse(b_texts))
    with pytest.raises(ConfigError, match="adapt_share"):
        TrainedAnalyser(adapt_share=1.5).fit(src, ys, adapt_texts=models["a"])
    # nothing readable to adapt on: the plain model, and adapt_ says so
    none = TrainedAnalyser().fit(src, ys, adapt_texts=["", None, "\x00\x01"])
    assert none.adapt_["n_readable"] == 0
    pd.testing.assert_frame_equal(none.analyse(b_texts), models["plain"].analyse(b_texts))


def test_adapting_a_fitted_copy_is_fit_with_adapt_texts(models) -> None:
    """benchmarks/listening.py adapts copies of one plain model (``_adapt``) instead of
    fitting twice; that must be the same model as ``fit(adapt_texts=...)``."""
    src, ys = models["src"]
    m = copy.deepcopy(models["plain"])
    m._adapt(src, ["positive" if v else "negative" for v in ys], models["a"], calibrate=False)
    b_texts = models["b"][0]
    pd.testing.assert_frame_equal(m.analyse(b_texts), models["adapted"].analyse(b_texts))
    assert m.adapt_ == models["adapted"].adapt_


def test_save_and_load_keep_the_adapted_model(models, tmp_path: Path) -> None:
    m = models["adapted"]
    m.save(tmp_path / "ad")
    back = load_analyser(tmp_path / "ad")
    assert back.adapt_ == m.adapt_ and back.get_params() == m.get_params()
    b_texts = models["b"][0]
    pd.testing.assert_frame_equal(back.analyse(b_texts), m.analyse(b_texts))
    doc = json.loads((tmp_path / "ad" / "sentiment.json").read_text(encoding="utf-8"))
    assert doc["adapt"]["used"] == m.adapt_["used"]


def test_cli_adapt_to_reads_texts_only(models, tmp_path: Path) -> None:
    src, ys = models["src"]
    pd.DataFrame({"review": src, "label": ys}).to_csv(tmp_path / "src.csv", index=False)
    a = models["a"]
    wrong = [1 - v for v in _target(1)[1]]  # labels of the target, all wrong: must be ignored
    pd.DataFrame({"comment": a, "label": wrong}).to_csv(tmp_path / "with.csv", index=False)
    pd.DataFrame({"comment": a}).to_csv(tmp_path / "without.csv", index=False)
    run = CliRunner().invoke
    base = ["sentiment", "train", str(tmp_path / "src.csv"), "--text-column", "review",
            "--no-validate"]
    for name in ("with", "without"):
        r = run(app, [*base, "--adapt-to", str(tmp_path / f"{name}.csv"), "--adapt-column",
                      "comment", "--out", str(tmp_path / f"m_{name}")])
        assert r.exit_code == 0, r.output
    b_texts = models["b"][0]
    one = load_analyser(tmp_path / "m_with").analyse(b_texts)
    pd.testing.assert_frame_equal(one, load_analyser(tmp_path / "m_without").analyse(b_texts))
    pd.testing.assert_frame_equal(one, models["adapted"].analyse(b_texts))
    r = run(app, [*base, "--adapt-to", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and r.output.count("error:") == 1 and "nope.csv" in r.output
    r = run(app, [*base, "--adapt-to", str(tmp_path / "without.csv"), "--adapt-column", "text",
                  "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and r.output.count("error:") == 1 and "'text'" in r.output
