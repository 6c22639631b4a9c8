"""The knowledge base of answers: FAQ entries loaded from CSV or YAML, versioned in the store.

An entry: ``answer_id``, ``questions`` (the ways customers ask it), ``answer``, ``intent``
(optional: the trained intent it answers), ``tags`` and ``language`` (default ``en``).

YAML: a list of entries (or ``{"answers": [...]}``)::

    - answer_id: card-arrival
      intent: card_arrival
      questions: ["Where is my card?", "My card hasn't arrived"]
      answer: Cards arrive within 5 working days; track it under Cards > Delivery.
      tags: [cards]

CSV: columns ``answer_id`` (or ``id``), ``question`` or ``questions`` (variants separated by
``|``), ``answer``, and optionally ``intent``, ``tags`` (separated by ``;`` or ``|``),
``language``. Rows with the same ``answer_id`` are one entry (their questions joined), so a
file may hold one variant per row.

Bad rows are reported with file, row, field and fix and left out; the good rows of the same
file are kept (:class:`LoadedAnswers`). Each ``store.add_answers`` call is a new version of
the knowledge base; ``store.answers(version)`` reads any version back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from feedwise.errors import DataError

COLUMNS = ["answer_id", "intent", "questions", "answer", "tags", "language"]


@dataclass
class LoadedAnswers:
    """Entries read from a file, and the rows left out with why."""

    entries: pd.DataFrame
    problems: list[str] = field(default_factory=list)


def _split(value: Any, seps: str) -> list[str]:
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    for s in seps[1:]:
        text = text.replace(s, seps[0])
    return [p.strip() for p in text.split(seps[0]) if p.strip()]


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    s = str(value).strip()
    return s or None


def load_answers(path: str | Path) -> LoadedAnswers:
    """Read FAQ entries from a ``.csv``, ``.yaml``/``.yml`` (or ``.json``) file."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file; give a CSV or YAML file of answers")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: not valid YAML ({exc}); fix the file") from exc
        if isinstance(doc, dict) and "answers" in doc:
            doc = doc["answers"]
        if not isinstance(doc, list):
            raise DataError(f"{p}: expected a list of answers (or a mapping with 'answers')")
        records = [r if isinstance(r, dict) else {"_bad": r} for r in doc]
        where = "entry"
    elif suffix in (".csv", ".tsv"):
        try:
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                             keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: cannot read as CSV ({exc}); fix the file") from exc
        if "id" in df.columns and "answer_id" not in df.columns:
            df = df.rename(columns={"id": "answer_id"})
        missing = [c for c in ("answer_id", "answer") if c not in df.columns]
        if "question" not in df.columns and "questions" not in df.columns:
            missing.append("question")
        if missing:
            raise DataError(f"{p}: missing column(s) {', '.join(missing)}; the columns are "
                            "answer_id, question (or questions), answer[, intent, tags, "
                            "language]")
        records = df.to_dict("records")
        where = "row"
    else:
        raise DataError(f"{p}: unknown format {suffix!r}; use .csv, .tsv, .yaml or .yml")
    return _entries(records, p, where)


def _entries(records: list[dict], p: Path, where: str) -> LoadedAnswers:
    problems: list[str] = []
    merged: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(records, start=1):
        if "_bad" in r:
            problems.append(f"{p}: {where} {i}: not a mapping; write answer_id, questions, "
                            "answer")
            continue
        aid = _text(r.get("answer_id", r.get("id")))
        answer = _text(r.get("answer"))
        questions = _split(r.get("questions", r.get("question")), "|")
        bad = [f for f, v in (("answer_id", aid), ("answer", answer),
                              ("questions", questions)) if not v]
        if bad:
            problems.append(f"{p}: {where} {i}: field {bad[0]!r} is empty; give a value "
                            "(row left out)")
            continue
        e = merged.setdefault(aid, {"answer_id": aid, "intent": None, "questions": [],
                                    "answer": answer, "tags": [], "language": "en"})
        if e["answer"] != answer:
            problems.append(f"{p}: {where} {i}: answer_id {aid!r} has two different answers; "
                            "the first is kept (give each answer its own id)")
        e["questions"] += [q for q in questions if q not in e["questions"]]
        e["intent"] = e["intent"] or _text(r.get("intent"))
        e["tags"] += [t for t in _split(r.get("tags"), ";|,") if t not in e["tags"]]
        e["language"] = _text(r.get("language")) or e["language"]
    entries = pd.DataFrame(list(merged.values()), columns=COLUMNS)
    return LoadedAnswers(entries, problems)
