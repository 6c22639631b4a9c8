"""``feedwise intents``: train an intent model from labelled examples; predict intents.

Examples::

    feedwise intents train questions.csv --text-column text --label-column category --out intents
    feedwise intents predict messages.csv --column text --model intents --format jsonl
    feedwise intents predict messages.csv --format jsonl    # the default classes, no model
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from feedwise.cli._common import Format, emit, emit_jsonl, err_console, fails_on
from feedwise.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

intents_app = typer.Typer(help="Intent recognition for comments and messages: train a model "
                          "from labelled examples, predict intents in batch.",
                          no_args_is_help=True)


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    import pandas as pd
    if not path.exists():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                             keep_default_na=False, na_values=[])
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc}); give a CSV, TSV, JSONL or Parquet "
                        "file") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (columns: "
                        f"{', '.join(map(str, df.columns))}); name it with the option")
    return df


@intents_app.command("train")
@fails_on(ValueError)
def train(
    file: Annotated[Path, typer.Argument(help="Labelled examples (CSV, TSV, JSONL, Parquet).")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column of the text.")
                           ] = "text",
    label_column: Annotated[str, typer.Option("--label-column", help="Column of the intent "
                                              "label.")] = "label",
    out: Annotated[Path, typer.Option("--out", help="Model path (writes PATH.npz and "
                                      "PATH.json).")] = Path("intents"),
    features: Annotated[str, typer.Option("--features", help="tfidf, embeddings or both "
                                          "(embeddings need feedwise[text]).")] = "tfidf",
    target_precision: Annotated[float, typer.Option("--target-precision", help="Precision "
                                                    "the auto-reply threshold aims at.")
                                ] = 0.97,
    fine_tune: Annotated[int, typer.Option("--fine-tune", metavar="STEPS", help="Steps of "
                                           "contrastive tuning of the sentence encoder's top "
                                           "layers on same-intent pairs (SetFit-style; "
                                           "helps with few examples per intent; needs "
                                           "--features embeddings or both). 0: off.")] = 0,
    label_names: Annotated[bool, typer.Option("--label-names/--no-label-names", help="Add "
                                              "each intent's name as one more example of "
                                              "it.")] = False,
    recipe: Annotated[str | None, typer.Option("--recipe", help="Measured settings instead "
                                               "of --features/--fine-tune: few-shot (about 10 "
                                               "examples per intent; BANKING77 0.857) or "
                                               "all-data (BANKING77 0.931); both need "
                                               "feedwise[text] and cost MiniLM's time per "
                                               "message.")] = None,
) -> None:
    """Train an intent model; the auto-reply threshold is chosen on a validation share.

    Example: feedwise intents train banking.csv --text-column text --label-column category
    --out intents   (add `--recipe all-data` for the measured MiniLM model)
    """
    from feedwise.care.intents import RECIPES, train_intents

    params: dict = {"features": features, "encoder_steps": fine_tune,
                    "label_names": label_names}
    if recipe is not None:
        if recipe not in RECIPES:
            raise ConfigError(f"--recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
        if fine_tune or features != "tfidf" or label_names:
            raise ConfigError("--recipe sets the features and the tuning: leave out "
                              "--features, --fine-tune and --label-names")
        params = dict(RECIPES[recipe])
    if fine_tune < 0:
        raise ConfigError(f"--fine-tune {fine_tune}: give a number of steps >= 0 (0: off)")
    if fine_tune and features == "tfidf":
        raise ConfigError("--fine-tune tunes the sentence encoder: add --features embeddings "
                          "or --features both (they need feedwise[text])")

    df = _read(file, [text_column, label_column])
    texts = df[text_column].astype(object)
    labels = df[label_column].astype(object)
    bad = [i for i in range(len(df)) if not str(texts.iloc[i] or "").strip()
           or not str(labels.iloc[i] or "").strip()]
    for i in bad[:10]:
        err_console.print(f"{file}: row {i + 1}: empty {text_column!r} or {label_column!r}; "
                          "row left out of training")
    if len(bad) > 10:
        err_console.print(f"{file}: {len(bad) - 10} more rows left out (empty text or label)")
    keep = [i for i in range(len(df)) if i not in set(bad)]
    err_console.print(f"training on {len(keep):,} examples ...")
    clf = train_intents([str(texts.iloc[i]) for i in keep],
                        [str(labels.iloc[i]) for i in keep],
                        target_precision=target_precision, **params)
    clf.save(out)
    meta = clf.meta_
    emit([{"examples": len(keep), "left_out": len(bad), "intents": len(clf.classes_),
           "auto_reply_threshold": meta.get("auto_reply_threshold"),
           "validation_coverage": meta.get("validation_coverage"),
           "validation_precision": meta.get("validation_precision"),
           "model": f"{out}.npz"}], Format.table)


@intents_app.command("predict")
@fails_on(ValueError)
def predict(
    file: Annotated[Path, typer.Argument(help="Messages (CSV, TSV, JSONL, Parquet).")],
    column: Annotated[str, typer.Option("--column", help="Column of the text.")] = "text",
    model: Annotated[Path | None, typer.Option("--model", help="Model path from `intents "
                                               "train` (default: the default classes "
                                               "question, complaint, praise, spam, other)."
                                               )] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl (one line per input row, "
                                     "in order) or csv.")] = "jsonl",
    batch: Annotated[int, typer.Option("--batch", min=1, help="Rows per batch.")] = 2048,
) -> None:
    """Per input row, in order: the intent, its confidence and the top 3.

    Rows whose text cannot be read (empty, binary, too long) get intent null and a reason.
    Example: feedwise intents predict messages.csv --column text --model intents --format jsonl
    """
    from feedwise.care.intents import DefaultIntentModel, load_intents, top_k
    from feedwise.text.sentiment import check_text

    if fmt not in ("jsonl", "csv"):
        raise DataError(f"--format {fmt!r}: use jsonl or csv")
    clf = load_intents(model) if model is not None else DefaultIntentModel()
    df = _read(file, [column])
    values = df[column].tolist()
    out: list[dict] = []
    n = len(values)
    for start in range(0, n, batch):
        part = values[start:start + batch]
        checked = [check_text(v) for v in part]
        ok = [i for i, (_, why) in enumerate(checked) if why is None]
        rows: list[dict] = [{"row": start + i + 1, "intent": None, "confidence": None,
                             "top": [], "reason": why} for i, (_, why) in enumerate(checked)]
        if ok:
            proba = clf.predict_proba([checked[i][0] for i in ok])
            for i, top in zip(ok, top_k(proba, clf.classes_, 3), strict=True):
                rows[i].update(intent=top[0]["intent"], confidence=top[0]["confidence"],
                               top=top)
        if fmt == "jsonl":
            emit_jsonl(rows)
        else:
            out.extend(rows)
        if n > batch:
            err_console.print(f"{min(start + batch, n):,} / {n:,} rows")
    if fmt == "csv":
        flat = [{**{k: v for k, v in r.items() if k != "top"},
                 "top": "|".join(t["intent"] for t in r["top"])} for r in out]
        emit(flat, Format.csv)


def register(app: typer.Typer) -> None:
    app.add_typer(intents_app, name="intents")
