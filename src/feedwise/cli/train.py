"""``feedwise train`` and ``feedwise evaluate``."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from feedwise.cli._common import DbOption, Format, FormatOption, console, emit, open_store
from feedwise.errors import ConfigError, FeedwiseError

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. itemknn.")]
#: The model ``train``, ``recommend``, ``feed``, ``serve`` and ``retrain`` use when none is
#: named: ``auto`` picks the blend for a fresh feed or a static catalogue from the data.
DEFAULT_MODEL = "auto"
ModelsOption = Annotated[str, typer.Option(
    "--model", "-m", help="Model name, or several separated by commas (one table), e.g. "
                          "auto,hybrid,itemknn.")]
ParamsOption = Annotated[str | None, typer.Option(
    "--params", help='Hyperparameters as JSON, e.g. \'{"k": 100}\'.')]


def model_dir(name: str, db: str | None = None) -> Path:
    """Default artifact folder of a model trained by the CLI outside the registry (Spark):
    under the store's deployment (``STORE.models/artifacts/NAME``), never ``./models``."""
    from feedwise.deployment import Deployment
    from feedwise.store.base import default_db_path

    return Deployment.for_store(db or default_db_path()).registry_dir / "artifacts" / name


def _utc(seconds: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(seconds), UTC)


def data_end(data):  # noqa: ANN001, ANN201 - Interactions -> datetime | None
    """The time of the latest interaction in ``data`` (``None``: no times): what the social
    graph is read as of, so an edge made after the training data is not used."""
    ts = data.last_ts.data if data.last_ts is not None else []
    return _utc(float(ts.max())) if len(ts) else data.until


def parse_params(params: str | None) -> dict:
    """``--params`` as a dict; a clear ``ConfigError`` when it is not a JSON object."""
    if not params:
        return {}
    try:
        out = json.loads(params)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--params is not valid JSON ({e.msg} at char {e.pos}); write it "
                          'like \'{"k": 100}\'') from None
    if not isinstance(out, dict):
        raise ConfigError(f"--params must be a JSON object such as '{{\"k\": 100}}', "
                          f"not {params!r}")
    return out


def build(name: str, params: str | None):
    from feedwise.models import get_model

    kwargs = parse_params(params)
    try:
        return get_model(name, **kwargs)
    except TypeError as e:
        raise ConfigError(f"--params {params!r} does not fit model {name!r}: {e}") from None


def say_choice(model, out=None) -> str | None:  # noqa: ANN001 - a fitted Recommender
    """Print what an ``auto`` model picked and why (``choice_``, ``reason_``); the line."""
    choice = getattr(model, "choice_", None)
    if choice is None:
        return None
    line = f"auto picked {choice}: {getattr(model, 'reason_', '')}".rstrip(": ")
    (out or console).print(line, markup=False, highlight=False)
    return line


def _train_spark(events: str | None, master: str | None, params: str | None,
                 out: Path | None) -> None:
    from feedwise.engines.spark import train_spark
    from feedwise.models.spark_als import SparkALS

    if not events:
        raise FeedwiseError("--engine spark needs --events PATH (run feedwise export "
                            "--format parquet --out PATH first)")
    model = SparkALS(**parse_params(params))
    path = out or model_dir("spark_als")
    with console.status("training Spark MLlib ALS"):
        fitted = train_spark(events, out=path, master=master, model=model)
    console.print(f"trained {fitted!r} on Spark -> {path}")


def train(model: ModelOption = DEFAULT_MODEL, params: ParamsOption = None,
          out: Annotated[Path | None, typer.Option(
              help="Also save the artifact to this folder.")] = None,
          registry: Annotated[str | None, typer.Option(
              envvar="FEEDWISE_REGISTRY",
              help="Register the model as a new version of this registry (default: the "
                   "store's, STORE.models beside it).")] = None,
          promote: Annotated[bool, typer.Option(
              help="Promote the registered version (servers swap to it).")] = False,
          engine: Annotated[str, typer.Option(
              help="embedded (the DuckDB store) or spark (MLlib ALS over --events).")]
          = "embedded",
          events: Annotated[str | None, typer.Option(
              help="With --engine spark: export root (path or hdfs://, s3a:// URI) "
                   "written by feedwise export.")] = None,
          master: Annotated[str | None, typer.Option(
              envvar="FEEDWISE_SPARK_MASTER", help="Spark master (default local[*]).")]
          = None,
          db: DbOption = None) -> None:
    """Train a model on the store's events and write its artifact (npz + JSON).

    The model is registered as a new version of the store's registry (``STORE.models``
    beside the store, or ``--registry``), tied to the store it was trained on;
    ``--promote`` makes it the one ``recommend``, ``feed`` and ``serve`` use.

    The events of users who objected to profiling (personalization consent withdrawn)
    are left out, as in every training path.

    Without ``--model`` the default, ``auto``, is trained: it picks the blend for a fresh
    feed or for a static catalogue from the data and says what it picked and why.

    Example: `feedwise train --model itemknn --db deploy/feedwise.duckdb --promote`

    With ``--engine spark`` the interactions are built with Spark SQL from an exported
    Parquet layout and Spark MLlib ALS is trained; the artifact serves unchanged.
    """
    if engine == "spark":
        _train_spark(events, master, params, out)
        return
    if engine != "embedded":
        raise FeedwiseError(f"unknown engine {engine!r}: use embedded or spark")
    estimator = build(model, params)
    with open_store(db) as store, console.status(f"training {model}") as status:
        data = store.interactions()  # without users who objected to profiling
        n_events = store.count_events()
        n_objectors = len(store.opted_out_users())
        from feedwise.models.base import side_data

        # the posts table feeds models that read it (content, hybrid: text, tags,
        # and posts nobody has engaged with yet)
        kwargs = side_data(estimator, items=store.posts(),  # the graph as of the data's end
                           edges=store.edges_as_of(data_end(data), exclude_objectors=True))
        if "progress" in inspect.signature(estimator.fit).parameters:
            kwargs["progress"] = lambda step: status.update(f"training {model}: {step}")
        m = estimator.fit(data, **kwargs)
        path = m.save(out) if out is not None else None
        store_id = store.store_id()
    # every trained model lands in the store's registry, tied to the store
    from feedwise.deployment import Deployment
    from feedwise.registry import ModelRegistry
    from feedwise.store.base import default_db_path

    registry = registry or str(Deployment.for_store(db or default_db_path()).registry_dir)
    reg = ModelRegistry(registry, store_id=store_id)
    ts = data.last_ts.data if data.last_ts is not None else []
    window = {"since": data.since or (_utc(ts.min()) if len(ts) else None),
              "until": data.until or (_utc(ts.max()) if len(ts) else None),
              "n_events": n_events, "n_users": data.n_users,
              "n_items": data.n_items}
    meta = reg.register(m, data_window=window, config={"params": params},
                        notes="feedwise train")
    if promote:
        reg.promote(meta.version, reason="feedwise train --promote")
    path = path or reg.versions_dir / meta.version
    console.print(f"trained {m!r} on {data.n_users} users x {data.n_items} items "
                  f"({data.nnz} pairs) -> {path}")
    say_choice(m)
    if n_objectors:
        console.print(f"left out the events of {n_objectors} user(s) who objected to "
                      "profiling (personalization consent withdrawn)")
    cal = getattr(m, "calibration_", None)
    if cal is not None:
        blend = ", ".join(f"{n} {w:g}" + (f" {p}" if p else "") for n, w, p in cal.components)
        console.print(f"calibrated the blend on {cal.splits} validation split(s) of the "
                      f"data ({cal.validation_users} users each, {cal.seconds:.0f} s): "
                      f"{cal.metric} {cal.given:.4f} as given -> {cal.chosen:.4f} with "
                      f"{blend}")
    console.print(f"registered {meta.version} in {registry}"
                  f"{' and promoted it' if promote else ''}")
    if promote:
        from feedwise.cli._live import ask_reload

        ask_reload(db)  # a service on this store swaps to it now


def evaluate(model: ModelsOption = DEFAULT_MODEL, params: ParamsOption = None,
             split: Annotated[str, typer.Option(
                 help="temporal | random | last-n")] = "temporal",
             protocol: Annotated[str, typer.Option(
                 help="split (fit on the split's train part, rank its test pairs) or "
                      "replay (the logged feed requests after a temporal cut, with "
                      "baselines and the FeedEngine: docs/evaluation.md).")] = "split",
             k: Annotated[int, typer.Option(help="List length.")] = 10,
             seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 42,
             test_fraction: Annotated[float, typer.Option(
                 help="With --protocol replay: the newest share of time held out.")] = 0.2,
             max_requests: Annotated[int, typer.Option(
                 help="With --protocol replay: requests scored (a seeded sample; 0: all).")
             ] = 2000,
             baselines: Annotated[bool, typer.Option(
                 "--baselines/--no-baselines",
                 help="With --protocol replay: also score the baselines and the engine.")
             ] = True,
             db: DbOption = None, fmt: FormatOption = Format.table) -> None:
    """Train on the split's train part and report ranking metrics on its test part; several
    models (``--model a,b,c``) in one table, one column each.

    ``--protocol replay`` replays the logged feed requests after a temporal cut: each
    policy ranks the request's logged candidates (AUC, MRR, nDCG@5/10) and every post
    available then (open retrieval NDCG@10, recall@50), beside the baselines (newest,
    newest followed, decayed popularity, ItemKNN, Content, Hybrid) and the FeedEngine.

    Example: feedwise evaluate --model auto,hybrid,itemknn --split random --k 10

    Example: feedwise evaluate --protocol replay --model auto --db feedwise.duckdb
    """
    names = [m.strip() for m in model.split(",") if m.strip()]
    if not names:
        raise ConfigError("--model names no model; write e.g. --model auto,itemknn")
    if params and len(names) > 1:
        raise ConfigError("--params applies to one model; name one --model with it")
    if protocol == "replay":
        _evaluate_replay(names, test_fraction, max_requests, baselines, db, fmt)
        return
    if protocol != "split":
        raise ConfigError(f"unknown protocol {protocol!r}; use split or replay")
    from feedwise.evaluation import evaluate as run
    from feedwise.evaluation import last_n_split, random_split, temporal_split
    from feedwise.models.base import side_data

    splitters = {"temporal": temporal_split, "random": lambda d: random_split(d, seed=seed),
                 "last-n": last_n_split}
    if split not in splitters:
        raise FeedwiseError(f"unknown split {split!r}; use {sorted(splitters)}")
    estimators = [build(n, params) for n in names]
    with open_store(db) as store:
        s = splitters[split](store.interactions())
        posts = store.posts()
        # the social graph standing when the training part ends (replay-safe)
        edges = store.edges_as_of(data_end(s.train), exclude_objectors=True)
    tables = []
    for name, estimator in zip(names, estimators, strict=True):
        with console.status(f"training and evaluating {name}"):
            t = run(estimator, s, k, fit_kwargs=side_data(estimator, items=posts,
                                                          edges=edges))
        if fmt == Format.table:
            say_choice(estimator)
        tables.append(t.assign(model=name))
    if len(tables) == 1:
        emit(tables[0], fmt, title=f"{names[0]} on {s.name} split, k={k}")
        return
    import pandas as pd

    both = pd.concat(tables)
    wide = both.pivot_table(index="metric", columns="model", values="value",
                            aggfunc="first", sort=False)[names]
    emit(wide.reset_index(), fmt, title=f"{', '.join(names)} on {s.name} split, k={k}")


def _evaluate_replay(names: list[str], test_fraction: float, max_requests: int,
                     baselines: bool, db: str | None, fmt: Format) -> None:
    from feedwise.evidence.replay_eval import replay_evaluate

    with open_store(db) as store, console.status("replaying the logged requests") as st:
        res = replay_evaluate(store, models=names, test_fraction=test_fraction,
                              max_requests=max_requests or None, baselines=baselines,
                              engine=baselines, engine_model=names[0],
                              progress=lambda m: st.update(m))
    f = res.facts
    if fmt == Format.table:
        for name in names:
            say_choice(res.fitted.get(name))
        console.print(f"replay: cut {f['cut']}, {f['requests_scored']} of "
                      f"{f['requests_after_cut']} logged requests after it; "
                      f"{f['engaged_on_posts_created_after_cut']:.0%} of their engagements "
                      "on posts created after the cut; "
                      f"{f['protocol']}")
    table = res.table.drop(columns=["seconds"])
    emit(table, fmt, title=f"replay of the logged feed requests ({', '.join(names)})")


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(evaluate)
