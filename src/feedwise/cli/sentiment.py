"""``feedwise sentiment score FILE`` / ``feedwise sentiment train FILE``: comment sentiment.

``score`` reads a plain text file (one text per line), or one column of a CSV, JSON Lines
or Parquet file, and prints one row per input row, in order: the label, the three
probabilities, the language and, for a text that could not be scored, the reason (empty,
binary, too long, unsupported language). A bad row never stops the run.

``train`` learns an analyser from labelled comments and writes it as a versioned artifact
in a registry folder (``registry/sentiment`` by default) or into ``--out PATH``; ``score
--model`` takes the version (``v0001``, ``latest``) or the path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from feedwise.cli._common import Format, FormatOption, emit, err_console
from feedwise.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

sentiment_app = typer.Typer(
    help="Sentiment of comments: score a file with the default analyser or a trained one; "
         "train one on labelled comments.", no_args_is_help=True)

RegistryOption = Annotated[str, typer.Option(
    "--registry", envvar="FEEDWISE_SENTIMENT_REGISTRY",
    help="Registry folder of trained sentiment models.")]
_VERSION = re.compile(r"^v\d{4,}$")
_TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".ndjson", ".parquet", ".pq"}
CHUNK = 5_000


def read_texts(path: Path, column: str | None) -> list[Any]:
    """The texts of ``path``, one per input row, in order.

    A ``.csv``/``.tsv``/``.jsonl``/``.ndjson``/``.parquet`` file gives its ``column``
    (default ``text``); any other file is plain text, one text per line. A line that is
    not UTF-8, or a JSON Lines line that is not a JSON object, stays in its place as
    bytes or ``None`` (scored as ``binary`` or ``empty``), so no row is lost.

    Raises:
        DataError: the file is missing or unreadable, or has no such column.
    """
    import pandas as pd
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        if column not in (None, "text"):
            raise ConfigError(f"{path}: --column {column!r} needs a CSV, JSON Lines or Parquet "
                              "file; a plain text file has one text per line")
        data = path.read_bytes()
        if not data:
            return []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        out: list[Any] = []
        for raw in lines:
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(bytes(raw))
        return out
    col = column or "text"
    if suffix in (".jsonl", ".ndjson"):
        out = []
        with open(path, "rb") as f:
            for raw in f:
                if not raw.strip():
                    out.append(None)
                    continue
                try:
                    rec = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    out.append(b"\x00")  # scored as binary: the line is not JSON
                    continue
                out.append(rec.get(col) if isinstance(rec, dict) else None)
        if out and not any(isinstance(r, str) for r in out):
            raise DataError(f"{path}: no row has a text field {col!r}; name the field with "
                            "--column")
        return out
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path, columns=None)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                             keep_default_na=False, na_values=[], encoding="utf-8",
                             encoding_errors="replace")
    except Exception as e:  # noqa: BLE001 - any parser error becomes one clean message
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if col not in df.columns:
        raise DataError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))}"
                        "); name the text column with --column")
    return df[col].tolist()


def _read_labelled(path: Path, text_column: str, label_column: str,
                   group_column: str | None = None) -> tuple[list, list, list | None]:
    import pandas as pd
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str,
                             keep_default_na=False, na_values=[""], encoding="utf-8",
                             encoding_errors="replace")
    except Exception as e:  # noqa: BLE001
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}); expected CSV, "
                        "JSON Lines or Parquet") from None
    named = [(text_column, "--text-column"), (label_column, "--label-column")]
    if group_column is not None:
        named.append((group_column, "--group-column"))
    for c, opt in named:
        if c not in df.columns:
            raise DataError(f"{path}: no column {c!r} (columns: "
                            f"{', '.join(map(str, df.columns))}); name it with {opt}")
    groups = df[group_column].fillna("").astype(str).tolist() if group_column else None
    return df[text_column].tolist(), df[label_column].tolist(), groups


def resolve_model(model: str, registry: str):
    """The analyser named by ``--model``: ``default``, a registry version (``v0001``) or
    ``latest`` in ``registry``, or a folder written by ``train --out``."""
    from feedwise.text.sentiment import TrainedAnalyser, default_analyser

    if model == "default":
        return default_analyser()
    if _VERSION.match(model) or model == "latest":
        versions = Path(registry) / "versions"
        found = sorted(p.name for p in versions.glob("v*") if (p / "sentiment.json").is_file()
                       ) if versions.is_dir() else []
        if not found:
            raise ConfigError(f"no trained sentiment model in {registry}; run `feedwise "
                              "sentiment train FILE` first (or pass --registry)")
        name = found[-1] if model == "latest" else model
        if name not in found:
            raise ConfigError(f"no sentiment model {model!r} in {registry} (versions: "
                              f"{', '.join(found)})")
        return TrainedAnalyser.load(versions / name)
    if Path(model).exists():
        return TrainedAnalyser.load(model)
    raise ConfigError(f"--model {model!r} is neither 'default', a version in {registry} "
                      "(v0001, latest) nor a folder written by `feedwise sentiment train --out`")


@sentiment_app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="Text file (one text per line), or a CSV, "
                                         "JSON Lines or Parquet file with a text column.")],
    column: Annotated[str | None, typer.Option(
        "--column", "-c", help="Text column of a CSV/JSONL/Parquet file (default: text).")] = None,
    model: Annotated[str, typer.Option(
        "--model", "-m", help="'default' (VADER + snownlp), a registry version (v0001, "
                              "latest) or a folder written by `train --out`.")] = "default",
    registry: RegistryOption = "registry/sentiment",
    fmt: FormatOption = Format.jsonl,
) -> None:
    """Score the sentiment of every text in FILE: one output row per input row, in order.

    Example: `feedwise sentiment score comments.csv --column text --format jsonl`
    """
    import pandas as pd
    analyser = resolve_model(model, registry)
    texts = read_texts(file, column)
    parts = []
    if len(texts) > CHUNK:
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("scoring", total=len(texts))
            for i in range(0, len(texts), CHUNK):
                parts.append(analyser.analyse(texts[i:i + CHUNK]))
                bar.update(task, advance=min(CHUNK, len(texts) - i))
    else:
        parts.append(analyser.analyse(texts))
    out = pd.concat(parts, ignore_index=True) if parts else analyser.analyse([])
    out.insert(0, "row", range(1, len(out) + 1))
    n_bad = int(out["reason"].notna().sum())
    if n_bad:
        err_console.print(f"{n_bad:,} of {len(out):,} rows not scored (see the reason column)")
    if fmt == Format.jsonl:
        out = out.astype(object).where(out.notna(), None)
    elif fmt == Format.table:
        out = table_view(out)
    emit(out, fmt, title=f"sentiment of {file.name}")


def table_view(out: pd.DataFrame) -> pd.DataFrame:
    """The score frame for people: an unscored row reads ``not scored`` with ``-`` for
    its probabilities, and a scored row's reason is blank (never ``None``/``nan``)."""
    view = out.copy()
    scored = view["label"].notna()
    view["label"] = view["label"].where(scored, "not scored")
    for name in ("negative", "neutral", "positive"):
        view[name] = [f"{v:.3f}" if ok else "-"
                      for v, ok in zip(view[name], scored, strict=True)]
    view["reason"] = view["reason"].where(view["reason"].notna(), "")
    view["language"] = view["language"].where(view["language"].notna(), "")
    return view


@sentiment_app.command("train")
def train(
    file: Annotated[Path, typer.Argument(help="Labelled comments: CSV, JSON Lines or "
                                         "Parquet.")],
    text_column: Annotated[str, typer.Option("--text-column", help="Column of the text.")
                           ] = "text",
    label_column: Annotated[str, typer.Option(
        "--label-column", help="Column of the label: negative/neutral/positive names, or "
                               "numbers (0/1: negative/positive; 0/1/2: negative/neutral/"
                               "positive).")] = "label",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the model into this folder instead of the registry.")] = None,
    registry: RegistryOption = "registry/sentiment",
    C: Annotated[float, typer.Option("--C", min=1e-6, help="Inverse regularisation.")] = 10.0,
    validate: Annotated[bool, typer.Option(
        "--validate/--no-validate", help="Hold out 20% to measure the model first (its "
                                         "figures go into the artifact), then refit on all."
    )] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and solver.")] = 0,
    group_column: Annotated[str | None, typer.Option(
        "--group-column", help="Column naming each text's group (product, category, "
                               "channel): with 3 or more groups the mix of the character "
                               "model and the lexicon is fitted on groups the model did not "
                               "see, which transfers better to a new domain.")] = None,
    adapt_to: Annotated[Path | None, typer.Option(
        "--adapt-to", help="Unlabelled texts of the domain the model will score (your own "
                           "channel's comments; a text file or a CSV/JSONL/Parquet column): "
                           "the model labels its most confident half and learns from it too "
                           "(self-training). Any label column there is ignored.")] = None,
    adapt_column: Annotated[str | None, typer.Option(
        "--adapt-column", help="Text column of the --adapt-to file (default: the "
                               "--text-column name).")] = None,
) -> None:
    """Train a sentiment analyser (word and character n-grams, a linear model, calibrated
    probabilities) on labelled comments and save it as a versioned artifact.

    Example: `feedwise sentiment train labelled.csv --text-column review --label-column label`

    Adapted to your own comments: `feedwise sentiment train labelled.csv --text-column
    review --adapt-to our_comments.csv --adapt-column text`
    """
    import numpy as np

    from feedwise.text.sentiment import TrainedAnalyser, normalise_labels

    texts, labels, groups = _read_labelled(file, text_column, label_column, group_column)
    adapt = None
    if adapt_to is not None:
        try:
            adapt = read_texts(adapt_to, adapt_column or text_column)
        except (DataError, ConfigError) as e:  # the option to fix is --adapt-column here
            raise type(e)(str(e).replace("--column", "--adapt-column")) from None
        err_console.print(f"adapting to {len(adapt):,} unlabelled texts of {adapt_to.name}")
    mapped, _ = normalise_labels(labels)
    metrics: dict[str, float] = {}
    if validate and len(texts) >= 20:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(texts))
        try:
            tr, va = train_test_split(idx, test_size=0.2, random_state=seed, stratify=mapped)
        except ValueError:
            tr, va = train_test_split(idx, test_size=0.2, random_state=seed)
        err_console.print(f"validating on {len(va):,} held-out rows ...")
        held = TrainedAnalyser(C=C, random_state=seed).fit(
            [texts[i] for i in tr], [labels[i] for i in tr],
            groups=None if groups is None else [groups[i] for i in tr], adapt_texts=adapt)
        pred = held.analyse([texts[i] for i in va])
        truth = np.array([mapped[i] for i in va], dtype=object)
        ok = pred["label"].notna().to_numpy()
        hit = pred["label"].to_numpy()[ok] == truth[ok]
        metrics["val_accuracy"] = float(hit.mean()) if ok.any() else float("nan")
        recalls = [float((pred["label"].to_numpy()[ok][truth[ok] == c] == c).mean())
                   for c in sorted(set(truth[ok]))]
        metrics["val_macro_recall"] = float(np.mean(recalls)) if recalls else float("nan")
    err_console.print(f"training on {len(texts):,} rows ...")
    model = TrainedAnalyser(C=C, random_state=seed).fit(texts, labels, groups=groups,
                                                        adapt_texts=adapt)
    model.metrics_ = metrics
    if out is not None:
        path = model.save(out)
        where = str(path)
    else:
        from feedwise.registry import ModelRegistry

        meta = ModelRegistry(registry).register(
            model, metrics=metrics, config={"file": str(file), "text_column": text_column,
                                            "label_column": label_column,
                                            "group_column": group_column,
                                            "adapt_to": None if adapt_to is None
                                            else str(adapt_to)},
            notes="feedwise sentiment train")
        where = f"{registry} version {meta.version}"
    emit([{"model": where, "classes": ",".join(model.classes_), "n_train": model.n_train_,
           "n_skipped": model.n_skipped_, **{k: round(v, 4) for k, v in metrics.items()}}],
         Format.table, title="sentiment model")


def register(app: typer.Typer) -> None:
    app.add_typer(sentiment_app, name="sentiment")
