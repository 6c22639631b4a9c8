"""Language detection by character classes and function words (feedwise.text.language)."""

from __future__ import annotations

import pytest

from feedwise.text.language import detect, languages, script_runs


@pytest.mark.parametrize("text, lang", [
    ("这家店的菜很好吃，下次还来", "zh"),
    ("Loving the new update, great work!", "en"),
    ("ok", "en"),
    ("El servicio es muy malo y la comida no está bien", "es"),
    ("Der Kaffee ist nicht gut und das Essen auch nicht", "de"),
    ("Le service est très lent et la soupe est froide", "fr"),
    ("今日はとても楽しかったです", "ja"),
    ("정말 맛있어요", "ko"),
    ("Привет, как дела?", "ru"),
    ("😀👍🔥", "und"),
    ("12345 !!!", "und"),
    ("", "und"),
])
def test_detect(text: str, lang: str) -> None:
    assert detect(text) == lang


def test_english_with_a_shared_word_stays_english() -> None:
    # "a", "de", "la" are function words of other languages too
    assert detect("I had a coffee at La Casa de Pepe, the best in town") == "en"


def test_non_text_is_undetermined() -> None:
    assert detect(None) == "und"  # type: ignore[arg-type]
    assert languages(3.5) == {}  # type: ignore[arg-type]


def test_mixed_text_shares_and_runs() -> None:
    text = "I love 这个 app 真的很好用"
    shares = languages(text)
    assert set(shares) == {"en", "zh"}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert 0.3 < shares["zh"] < 0.7
    runs = script_runs(text)
    assert "".join(p for _, p in runs) == text
    assert [f for f, _ in runs] == ["other", "cjk", "other", "cjk"]
    assert [p for f, p in runs if f == "cjk"] == ["这个", "真的很好用"]


def test_latin_text_with_emoji_or_accents_is_one_fast_pass() -> None:
    assert detect("Café was great 😀 “really”") == "en"
    assert languages("naïve résumé 👍") == {"en": 1.0}
    assert detect("😀 — 👍") == "und"
    assert detect("très bon café, mais le service est lent") == "fr"
