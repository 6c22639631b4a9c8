"""``feedwise demo``: the whole spine end to end on the embedded store.

On the synthetic social world: ingest; train the default model (``auto``: it says what it
picked and why) and promote it; the replay evaluation of the logged feed requests after a
temporal cut against the baselines (docs/evaluation.md); one user's feed with ads placed
under the guardrails at the deployment's λ (the applied ``frontier --apply`` policy, else
``FeedConfig``'s default, chosen by the frontier: docs/evidence_defaults.md); the
off-policy estimate of the new feed against the logged policy with 95% intervals; the HTML
report. Every sentence it prints about quality quotes the figure it rests on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress

from feedwise.cli._common import DbOption, Format, console, emit, open_store
from feedwise.cli.train import DEFAULT_MODEL, data_end, say_choice

if TYPE_CHECKING:
    import pandas as pd

    from feedwise.store import EventStore


def demo(
    dataset: Annotated[str, typer.Option(
        help="synthetic (generated social feed log) or movielens-100k.")] = "synthetic",
    data_dir: Annotated[str | None, typer.Option(
        help="Local folder holding the public datasets (skips the download).")] = None,
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 2000,
    days: Annotated[int, typer.Option(help="Synthetic days of activity.")] = 14,
    posts: Annotated[int, typer.Option(help="Synthetic organic posts.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
    requests: Annotated[int, typer.Option(
        help="Logged feed requests the replay scores (a seeded sample).")] = 300,
    report: Annotated[Path | None, typer.Option(
        help="HTML report to write (default: STORE.report.html beside the store).")]
    = None,
    reset: Annotated[bool, typer.Option(
        help="Empty the store first (it may hold another data set).")] = False,
    db: DbOption = None,
) -> None:
    """Generate (or load) data, ingest it, train the default model, replay the logged
    feeds against the baselines, compose one feed with ads under the guardrails, estimate
    the new feed off-policy and write the HTML report.

    Example: feedwise demo --dataset synthetic --users 500 --days 14
    """
    import pandas as pd
    t0 = time.perf_counter()
    with open_store(db) as store, Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading data", total=6)
        if reset:
            store.reset()
        elif store.count_events():
            console.print(f"[yellow]note:[/] {store.path} already holds "
                          f"{store.count_events():,} events; they are evaluated too "
                          "(use --reset for a clean run)")
        if dataset == "synthetic":
            from feedwise.datasets import synthetic_social

            world = synthetic_social(n_users=users, n_days=days, n_posts=posts, seed=seed)
            reports = world.load_into(store)
            what = f"synthetic social feed: {len(world.events):,} events"
        else:
            from feedwise.datasets import load

            ds = load(dataset, data_dir=data_dir)
            reports = ds.load_into(store)
            what = f"{dataset}: {len(ds.events):,} events"
        console.print(f"[bold]feedwise demo[/] — {what} into {store.path} "
                      f"({time.perf_counter() - t0:.1f} s)")
        rep = reports.get("report") if isinstance(reports, dict) else reports
        if rep is not None:
            console.print(f"ingested {rep.accepted:,} events ({rep.duplicates:,} duplicates, "
                          f"{rep.rejected:,} rejected) in {rep.seconds:.1f} s")
        bar.advance(task)
        step = _Steps(bar, task)
        step.took.append(("data", time.perf_counter() - t0))
        synthetic = dataset == "synthetic" and not store.posts().empty
        cut = None
        events = store.events() if synthetic else None  # read once, used by every step
        if events is not None:  # the replay's temporal cut: the default is trained before it
            ts = pd.to_datetime(events["ts"], utc=True)
            cut = ts.quantile(0.8).to_pydatetime()
        model = _train_default(store, db, step, cut)
        if not synthetic:
            _split_table(store, model, step)
            return
        res = _replay(store, requests, seed, step, cut, model, events)
        _feed_with_ads(store, db, model, step, events)
        _offpolicy(store, res, seed, step, max(20, min(300, requests // 2)), events)
        path = _report(store, db, report, step)
    console.print(f"HTML report written to {path}")
    console.print(f"demo done in {time.perf_counter() - t0:.0f} s ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in step.took) + ")")


class _Steps:
    """Progress, and the seconds of each finished step (printed at the end)."""

    def __init__(self, bar: Progress, task: Any) -> None:
        self.bar, self.task = bar, task
        self.t = time.perf_counter()
        self.took: list[tuple[str, float]] = []

    def __call__(self, text: str, advance: bool = False) -> None:
        self.bar.update(self.task, description=text)
        if advance:
            now = time.perf_counter()
            self.took.append((text, now - self.t))
            self.t = now
            self.bar.advance(self.task)


def _train_default(store: EventStore, db: str | None, step: _Steps, cut: Any = None) -> Any:
    """Fit the default model on the events before ``cut`` (all when ``None``), register
    and promote it (what ``feedwise train --promote`` does) and say what ``auto``
    picked."""
    from feedwise.deployment import Deployment
    from feedwise.models import get_model
    from feedwise.models.base import side_data
    from feedwise.registry import ModelRegistry
    from feedwise.store.base import default_db_path

    step(f"training the default model ({DEFAULT_MODEL})")
    t = time.perf_counter()
    model = get_model(DEFAULT_MODEL)
    data = store.interactions(until=cut)
    model.fit(data, **side_data(model, items=store.posts(), edges=store.edges_as_of(
        cut or data_end(data), exclude_objectors=True)))
    reg = ModelRegistry(Deployment.for_store(db or default_db_path()).registry_dir,
                        store_id=store.store_id())
    meta = reg.register(model, notes="feedwise demo")
    reg.promote(meta.version, reason="feedwise demo")
    console.print(f"trained the default model, {DEFAULT_MODEL}, on {data.n_users:,} users x "
                  f"{data.n_items:,} items in {time.perf_counter() - t:.0f} s; registered "
                  f"and promoted {meta.version}"
                  + (f" (trained on the events before {str(cut)[:16]}, the first 80% of "
                     "the log's time: the replay below tests it on what came after)"
                     if cut is not None else ""))
    say_choice(model)
    step("train", advance=True)
    return model


def _split_table(store: EventStore, model: Any, step: _Steps) -> None:
    """A catalogue without posts (e.g. MovieLens): the temporal split table."""
    import pandas as pd

    from feedwise.evaluation import evaluate, temporal_split
    from feedwise.models import ItemKNN, Popularity, get_model
    from feedwise.models.base import side_data

    split = temporal_split(store.interactions(), test_fraction=0.2)
    tables = []
    for m in (get_model(DEFAULT_MODEL), Popularity(half_life_days=3.0), ItemKNN(k=100)):
        step(f"evaluating {m.name}")
        tables.append(evaluate(m, split, k=10, fit_kwargs=side_data(m, items=store.posts())))
    table = pd.concat(tables).pivot(index="metric", columns="model", values="value")
    emit(table.reset_index(), Format.table,
         title="temporal split, k=10 (test = the newest 20% of user-item pairs)")


def _replay(store: EventStore, requests: int, seed: int, step: _Steps, cut: Any, model: Any,
            events: pd.DataFrame) -> Any:
    from feedwise.evidence.replay_eval import BASELINES, fit_model, ratios, replay_evaluate

    # the Hybrid baseline as it comes, without its random-split calibration (its default
    # on a catalogue: the slowest fit of the demo, and off on a feed, as ``auto`` runs it);
    # benchmarks/feed_quality.py scores the calibrated default
    step("fitting hybrid (calibrate=False) on the events before the cut")
    hybrid = fit_model("hybrid", store, cut, store.posts(), {"calibrate": False})
    step("replaying the logged feed requests")
    res = replay_evaluate(store, models=[DEFAULT_MODEL], cut=cut, max_requests=requests,
                          seed=seed, engine_model=DEFAULT_MODEL,
                          fitted={DEFAULT_MODEL: model, "hybrid": hybrid}, progress=step,
                          events=events)
    f = res.facts
    table = res.table.drop(columns=["seconds"])
    emit(table, Format.table,
         title=f"replay of {f['requests_scored']} logged feed requests after the cut "
               f"{str(f['cut'])[:16]} (model frozen at the cut, posts available at request "
               "time)")
    console.print("hybrid: the Hybrid blend without its random-split calibration "
                  "(calibrate=False, as auto runs it on a feed; benchmarks/feed_quality.py "
                  "scores the calibrated default).")
    console.print(f"{f['engaged_on_posts_created_after_cut']:.0%} of the engagements in "
                  "these requests are on posts created after the cut: a model that ranks "
                  "only posts with past engagement cannot reach them.")
    for who in (DEFAULT_MODEL, "feed engine"):
        r = ratios(res.table, who, BASELINES)
        parts = [f"{mt} {v['value']:.4f} vs {v['baseline_value']:.4f} for the best "
                 f"baseline ({v['best_baseline']}): {v['ratio']:.2f}x"
                 for mt, v in r.items()]
        console.print(f"{who}: " + "; ".join(parts))
    knn = ratios(res.table, DEFAULT_MODEL, ["itemknn"], ("open_ndcg@10",))["open_ndcg@10"]
    console.print(f"{DEFAULT_MODEL} vs itemknn on open-retrieval NDCG@10: "
                  f"{knn['value']:.4f} vs {knn['baseline_value']:.4f} ({knn['ratio']:.1f}x)")
    step("replay", advance=True)
    return res


def _feed_with_ads(store: EventStore, db: str | None, model: Any, step: _Steps,
                   ev: pd.DataFrame) -> None:
    """One user's feed at the log's end, at the deployment's λ and guardrails."""
    import pandas as pd

    from feedwise.cli.feed import feed_policy
    from feedwise.feed.engine import FeedEngine
    from feedwise.feed.types import FeedRequest

    step("composing a feed with ads")
    u = store.users()
    cfg, arm, _ = feed_policy(str(u["user_id"].iloc[0]), db, None, None)
    applied = arm.version if getattr(arm, "version", None) else None
    engine = FeedEngine.from_store(store, model, cfg)
    ads_seen = pd.to_datetime(ev.loc[ev["kind"] == "ad_impression", "ts"], utc=True)
    # the time of the log's last ad impression: its campaigns were in flight then
    now = (ads_seen.max() if len(ads_seen) else pd.Timestamp(store.last_event_time())
           ).to_pydatetime()
    consent = u[u["consent_ads"].fillna(True) & u["consent_personalization"].fillna(True)]
    feed = None
    tried = 0
    for uid in consent["user_id"].astype(str).head(200):
        tried += 1
        f = engine.compose(FeedRequest(user_id=uid, n=20, now=now, context={"seed": 0}),
                           record=False)
        if any(s.kind == "ad" for s in f.slots):
            feed = f
            break
    where = (f"the deployment's applied policy {applied}" if applied and applied != "default"
             else "FeedConfig's default, the frontier's recommendation "
                  "(docs/evidence_defaults.md)")
    console.print(f"λ = {cfg.ux_lambda:g} from {where}; guardrails: ad load <= "
                  f"{cfg.max_ad_load:g}, first ad slot {cfg.first_ad_slot}, gap "
                  f">= {cfg.min_ad_gap}")
    if feed is None:
        console.print(f"no ad was placed in the feeds of the first {tried} users at this λ")
        step("feed", advance=True)
        return
    violations = engine.check(feed)
    ads = [s for s in feed.slots if s.kind == "ad"]
    rows = [{"slot": i, "kind": s.kind, "item": s.item_id,
             "why": "; ".join(s.reasons) if s.reasons else ""}
            for i, s in enumerate(feed.slots)]
    emit(rows, Format.table, title=f"feed for {feed.request.user_id} at {str(now)[:16]}")
    console.print(f"{len(ads)} ad(s) in {len(feed.slots)} slots (ad load "
                  f"{len(ads) / len(feed.slots):.2f}); guardrail violations: "
                  f"{len(violations)}" + (f" ({violations})" if violations else ""))
    step("feed", advance=True)


def _offpolicy(store: EventStore, res: Any, seed: int, step: _Steps, sessions: int,
               events: pd.DataFrame) -> None:
    import pandas as pd

    from feedwise.evidence.replay_eval import EnginePolicy, PostTable
    from feedwise.evidence.replay_ope import new_feed_estimate, session_log

    step("estimating the new feed off-policy")
    engine = next(p for p in res.policies if isinstance(p, EnginePolicy))
    log = session_log(events, PostTable.from_frame(store.posts()),
                      pd.Timestamp(res.facts["cut"]).to_pydatetime(), max_sessions=sessions,
                      seed=seed)
    est = new_feed_estimate(engine, log, seed=seed)
    t = est["table"]
    emit(t.round(4), Format.table,
         title=f"engagements per slot, {est['sessions']} logged sessions after the cut "
               f"({est['rows']} slots; 95% bootstrap intervals by session)")
    logged = t.iloc[0]
    dr = t[t["estimator"].str.endswith("DR")]
    console.print(f"the new feed shows the logged post at the logged slot in "
                  f"{est['match_rate']:.1%} of the slots (SNIPS effective sample size "
                  f"{float(t.iloc[1]['ess']):.0f}).")
    if len(dr):
        d = dr.iloc[0]
        overlap = not (d["ci_low"] > logged["ci_high"] or d["ci_high"] < logged["ci_low"])
        verdict = ("the intervals overlap: no difference is shown" if overlap else
                   ("above the logged policy" if d["value"] > logged["value"] else
                    "below the logged policy"))
        console.print(f"DR: {d['value']:.4f} [{d['ci_low']:.4f}, {d['ci_high']:.4f}] vs "
                      f"logged {logged['value']:.4f} [{logged['ci_low']:.4f}, "
                      f"{logged['ci_high']:.4f}]: {verdict}.")
    step("off-policy", advance=True)


def _report(store: EventStore, db: str | None, out: Path | None, step: _Steps) -> Path:
    from feedwise.cli._insight import resolve_window
    from feedwise.report.builder import ReportConfig, build_report
    from feedwise.report.html import write_html
    from feedwise.store.base import default_db_path

    step("writing the HTML report")
    start, end = resolve_window(store, None, None)
    rep = build_report(store, start, end, ReportConfig())
    base = Path(db or default_db_path())
    path = write_html(rep, out or base.with_suffix(".report.html"), title="feedwise demo")
    step("report", advance=True)
    return Path(path)


def register(app: typer.Typer) -> None:
    app.command()(demo)
