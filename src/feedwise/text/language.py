"""Language of a text, offline, from character classes and function words.

No model and no package: the script of each character decides between Chinese, Japanese,
Korean, Cyrillic, Arabic, Greek, Thai, Hebrew and Devanagari text; Latin text is English
unless the function words of another common Latin-script language clearly outnumber the
English ones (Spanish, French, German, Portuguese, Italian, Dutch). Short Latin text with
no function word at all is taken as English (most of it on an English-speaking platform
is). Codes are ISO 639-1; ``"und"`` (undetermined) is text with no letters (emoji, digits,
punctuation, empty).

>>> detect("这家店的菜很好吃")
'zh'
>>> detect("Loving the new update!")
'en'
>>> detect("😀👍")
'und'
"""

from __future__ import annotations

import re
from collections import Counter

__all__ = ["detect", "script_runs", "languages", "UNDETERMINED"]

UNDETERMINED = "und"

# script -> the characters of it (one regex each: counting with re is far faster than a
# Python loop over characters)
_SCRIPTS: dict[str, re.Pattern[str]] = {
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]"),
    "han": re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]"),
    "kana": re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]"),
    "ko": re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]"),
    "ru": re.compile(r"[\u0400-\u04ff]"),
    "el": re.compile(r"[\u0370-\u03ff]"),
    "he": re.compile(r"[\u0590-\u05ff]"),
    "ar": re.compile(r"[\u0600-\u06ff\u0750-\u077f]"),
    "hi": re.compile(r"[\u0900-\u097f]"),
    "th": re.compile(r"[\u0e00-\u0e7f]"),
}
_ASCII_LETTER = re.compile(r"[A-Za-z]")
# any character of a script other than Latin: text without one (the common case: English
# with emoji or curly quotes) needs one pass, not one per script
_NON_LATIN = re.compile("[" + "".join(rx.pattern[1:-1] for name, rx in _SCRIPTS.items()
                                      if name != "latin") + "]")

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and is are was were be to of in on for with at by this that it you i "
                    "we they he she my your our not no but have has had do does did will "
                    "would can could what when who how just so if me about from an a".split()),
    "es": frozenset("el la los las es son en de del que y por para con una un muy pero "
                    "como más mas este esta lo se su sus al hay yo".split()),
    "fr": frozenset("le la les est sont et de des du que qui une un pour avec dans pas "
                    "sur ce cette je nous vous il elle au aux très mais".split()),
    "de": frozenset("der die das ist sind und zu von mit nicht ein eine auf für den dem "
                    "ich wir sie es auch sehr aber wie".split()),
    "pt": frozenset("o a os as é são e de do da que não uma um para com muito mas em no "
                    "na eu você".split()),
    "it": frozenset("il lo la gli le è sono e di del che non una un per con molto ma in "
                    "sul io".split()),
    "nl": frozenset("de het een is zijn en van dat niet met voor op ik we ze ook maar "
                    "heel".split()),
}
_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words:
        _WORD_LANGS[_w] = (*_WORD_LANGS.get(_w, ()), _lang)
# the function words of the other languages that English does not share: a text with none
# of them is English without counting (the common case, kept fast: a set intersection)
_FOREIGN = frozenset({w for lang, ws in _STOPWORDS.items() if lang != "en" for w in ws}
                     - _STOPWORDS["en"])
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# a "run" is a maximal stretch of one script family; Latin runs keep the spaces and
# punctuation between their words, so "I love 这个 app" splits into three runs
_CJK_RUN = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                      r"\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
                      r"\u3000-\u303f\uff00-\uffef\U00020000-\U0002fa1f]+")


def _scripts(text: str) -> dict[str, int]:
    if text.isascii():
        return {"latin": 1} if _ASCII_LETTER.search(text) else {}
    if _NON_LATIN.search(text) is None:
        return {"latin": 1} if _SCRIPTS["latin"].search(text) else {}
    out = {}
    for name, rx in _SCRIPTS.items():
        n = len(rx.findall(text))
        if n:
            out[name] = n
    return out


def _latin_language(text: str) -> str:
    if _FOREIGN.isdisjoint(text.lower().split()):
        return "en"
    hits: Counter[str] = Counter()
    for w in _WORD.findall(text.lower()):
        langs = _WORD_LANGS.get(w)
        if langs:
            hits.update(langs)
    if not hits:
        return "en"
    best = max(hits, key=lambda k: hits[k])
    # another language only when it clearly beats English (shared words like "a", "de"
    # must not turn an English tweet Spanish)
    if best != "en" and hits[best] >= 2 and hits[best] >= 2 * hits["en"] + 1:
        return best
    return "en"


def languages(text: str) -> dict[str, float]:
    """Share of the letters of ``text`` in each language (shares sum to 1; ``{}`` when
    it has no letters). Han characters with kana count as Japanese."""
    if not isinstance(text, str):
        return {}
    counts = _scripts(text)
    if len(counts) == 1 and "latin" in counts:  # the common case, fast
        return {_latin_language(text): 1.0}
    total = sum(counts.values())
    if not total:
        return {}
    out: dict[str, float] = {}
    han = counts.pop("han", 0)
    kana = counts.pop("kana", 0)
    if kana:
        out["ja"] = (han + kana) / total
    elif han:
        out["zh"] = han / total
    latin = counts.pop("latin", 0)
    if latin:
        lang = _latin_language(text)
        out[lang] = out.get(lang, 0.0) + latin / total
    for name, n in counts.items():
        out[name] = out.get(name, 0.0) + n / total
    return out


def detect(text: str) -> str:
    """The main language of ``text``: an ISO 639-1 code (``"en"``, ``"zh"``, ``"ja"``, ...)
    or ``"und"`` for text without letters (empty, emoji, numbers) and non-text input.
    Mixed text gets the language of most of its letters (:func:`languages` gives the
    shares, :func:`script_runs` the parts)."""
    shares = languages(text)
    if not shares:
        return UNDETERMINED
    return max(shares, key=lambda k: shares[k])


def script_runs(text: str) -> list[tuple[str, str]]:
    """``text`` cut into ``(family, part)`` runs, in order: ``"cjk"`` for Chinese,
    Japanese and Korean characters (with their full-width punctuation), ``"other"`` for
    everything else (Latin words with the spaces, emoji and punctuation between them).
    Used to score mixed-language text part by part."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _CJK_RUN.finditer(text):
        if m.start() > pos:
            out.append(("other", text[pos:m.start()]))
        out.append(("cjk", m.group()))
        pos = m.end()
    if pos < len(text):
        out.append(("other", text[pos:]))
    return out
