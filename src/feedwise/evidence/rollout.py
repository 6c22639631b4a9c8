"""The policy a deployment serves: the applied policy file and the live experiments.

Two small JSON files beside the store (:class:`~feedwise.deployment.Deployment`) say how
feeds are composed:

* ``<store>.policy.json`` — the **applied policy**, written by ``feedwise frontier --apply``
  (or ``feedwise registry promote --experiment``): λ and the guardrails (``max_ad_load``,
  ``first_ad_slot``, ``min_ad_gap``), a ``version`` (``p0001``, ``p0002``, … one more on every
  write), its ``source`` and the evidence figures it was chosen on. Without the file the
  defaults of :class:`~feedwise.feed.config.FeedConfig` serve (version ``default``).
* ``<store>.experiments.json`` — **experiments** (``feedwise abtest start|stop``): each has a
  name, a salt and arms with shares; an arm may override λ and guardrails or serve another
  model version. A user's arm is a hash of ``salt + user id`` mapped onto the shares: sticky
  across requests and restarts, independent between experiments (each has its own salt),
  and no state is kept per user.

:class:`Rollout` reads both (again when a file changes), and for a user says which arm and
policy serves them (:class:`Arm`); :meth:`Rollout.compose` composes a feed under an arm's
settings on the served :class:`~feedwise.feed.engine.FeedEngine` (its ad state, caps and
budgets shared with every other arm). Every feed carries ``policy`` =
``{"version", "lambda", "source"}`` (``source``: ``default``, ``frontier`` or
``experiment:<name>/<arm>``), and the service logs ``experiment``, ``variant`` and
``policy_version`` in each impression's context, where ``feedwise abtest analyze`` reads the
assignment from (:mod:`feedwise.analytics.experiments`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from feedwise.deployment import Deployment
from feedwise.errors import ConfigError, NotFoundError
from feedwise.evidence.abtest import analyze_experiment
from feedwise.feed.candidates import CandidateGenerator, RecommenderSource
from feedwise.feed.config import FeedConfig
from feedwise.store import EventStore

#: The fields of :class:`FeedConfig` an applied policy or an experiment arm may set.
POLICY_FIELDS: tuple[str, ...] = ("ux_lambda", "max_ad_load", "first_ad_slot", "min_ad_gap")
DEFAULT_VERSION = "default"


def experiments_path(deployment: Deployment) -> Path:
    """``<dir>/<store stem>.experiments.json``: the experiments of the deployment."""
    return deployment.dir / f"{deployment.stem}.experiments.json"


# ----------------------------------------------------------------------------- documents
class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmSpec(_Doc):
    """One arm of an experiment: its share of users and what it changes (nothing: control)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    share: float = Field(gt=0, le=1)
    ux_lambda: float | None = Field(None, ge=0)
    max_ad_load: float | None = Field(None, ge=0, le=1)
    first_ad_slot: int | None = Field(None, ge=0)
    min_ad_gap: int | None = Field(None, ge=0)
    model_version: str | None = Field(None, pattern=r"^v\d{4,}$")

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in POLICY_FIELDS if getattr(self, k) is not None}


class ExperimentSpec(_Doc):
    """A live (or stopped) experiment of the deployment."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    salt: str = Field(min_length=1)
    arms: list[ArmSpec] = Field(min_length=2)
    status: str = Field("running", pattern=r"^(running|stopped)$")
    started_at: datetime
    stopped_at: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names repeat: {names}")
        total = sum(a.share for a in self.arms)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"arm shares sum to {total:g}, not 1")
        return self

    @property
    def expected(self) -> dict[str, float]:
        """Arm -> expected share (for the sample-ratio check)."""
        return {a.name: a.share for a in self.arms}


def read_experiments(deployment: Deployment) -> list[ExperimentSpec]:
    """Every experiment in the deployment's experiments file (``[]`` without one)."""
    path = experiments_path(deployment)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or delete it") from None
    try:
        return [ExperimentSpec.model_validate(x) for x in doc.get("experiments", [])]
    except (ValidationError, AttributeError) as e:
        raise ConfigError(f"{path}: not an experiments file ({_first_error(e)})") from None


def write_experiments(deployment: Deployment, experiments: list[ExperimentSpec]) -> None:
    """Replace the experiments file atomically (a running service reads it on its next tick)."""
    path = experiments_path(deployment)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"experiments": [e.model_dump(mode="json")
                                               for e in experiments]}, indent=2))
    os.replace(tmp, path)


def parse_arms(text: str) -> list[ArmSpec]:
    """Arms from ``control=0.5;treatment=0.5:ux_lambda=0.02,max_ad_load=0.25``
    (``NAME=SHARE[:FIELD=VALUE,...]``, ``;`` between arms)."""
    arms = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        head, _, rest = part.partition(":")
        name, eq, share = head.partition("=")
        if not eq:
            raise ConfigError(f"arm {part!r}: use NAME=SHARE[:FIELD=VALUE,...], e.g. "
                              "'control=0.5;treatment=0.5:ux_lambda=0.02'")
        fields: dict[str, Any] = {"name": name.strip(), "share": share.strip()}
        for kv in (x.strip() for x in rest.split(",") if x.strip()):
            k, eq, v = kv.partition("=")
            if not eq or k.strip() not in (*POLICY_FIELDS, "model_version"):
                raise ConfigError(f"arm {name.strip()!r}: {kv!r} is not FIELD=VALUE with FIELD "
                                  f"one of {', '.join((*POLICY_FIELDS, 'model_version'))}")
            fields[k.strip()] = v.strip()
        try:
            arms.append(ArmSpec.model_validate(fields))
        except ValidationError as e:
            raise ConfigError(f"arm {name.strip()!r}: {_first_error(e)}") from None
    return arms


def start_experiment(deployment: Deployment, name: str, arms: list[ArmSpec], *,
                     salt: str | None = None, now: datetime | None = None) -> ExperimentSpec:
    """Add a running experiment (a fresh random salt unless given); a name may not repeat
    (a stopped experiment keeps its name: its events stay analysable)."""
    exps = read_experiments(deployment)
    if any(e.name == name for e in exps):
        raise ConfigError(f"experiment {name!r} exists in {experiments_path(deployment)}; "
                          "choose another name")
    running = [e.name for e in exps if e.status == "running"]
    if running:
        raise ConfigError(f"experiment {running[0]!r} is running; stop it first (feedwise "
                          f"abtest stop {running[0]}): one experiment at a time")
    try:
        exp = ExperimentSpec(name=name, salt=salt or secrets.token_hex(8), arms=arms,
                             started_at=(now or datetime.now(UTC)).astimezone(UTC))
    except ValidationError as e:
        raise ConfigError(f"experiment {name!r}: {_first_error(e)}") from None
    write_experiments(deployment, [*exps, exp])
    return exp


def stop_experiment(deployment: Deployment, name: str, now: datetime | None = None
                    ) -> ExperimentSpec:
    """Stop a running experiment: every user is served the applied policy again."""
    exps = read_experiments(deployment)
    for i, e in enumerate(exps):
        if e.name == name:
            if e.status == "stopped":
                raise ConfigError(f"experiment {name!r} is already stopped")
            exps[i] = e.model_copy(update={
                "status": "stopped",
                "stopped_at": (now or datetime.now(UTC)).astimezone(UTC)})
            write_experiments(deployment, exps)
            return exps[i]
    raise NotFoundError(f"no experiment {name!r} in {experiments_path(deployment)}")


def get_experiment(deployment: Deployment, name: str) -> ExperimentSpec:
    for e in read_experiments(deployment):
        if e.name == name:
            return e
    raise NotFoundError(f"no experiment {name!r} in {experiments_path(deployment)}")


def bucket(salt: str, user_id: str) -> float:
    """A user's uniform position in ``[0, 1)`` for one experiment (SHA-256 of salt and id)."""
    h = hashlib.sha256(f"{salt}\x00{user_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def assign(experiment: ExperimentSpec, user_id: str) -> ArmSpec:
    """The arm of ``user_id`` in ``experiment`` (sticky: the same every time)."""
    u = bucket(experiment.salt, str(user_id))
    acc = 0.0
    for arm in experiment.arms:
        acc += arm.share
        if u < acc:
            return arm
    return experiment.arms[-1]


# ----------------------------------------------------------------------------- policy
def next_version(previous: dict | None) -> str:
    """The version after ``previous``'s (``p0001`` first)."""
    v = str((previous or {}).get("version", ""))
    n = int(v[1:]) if v.startswith("p") and v[1:].isdigit() else 0
    return f"p{n + 1:04d}"


def policy_doc(settings: dict[str, Any], *, source: str, previous: dict | None = None,
               evidence: dict[str, Any] | None = None, now: datetime | None = None
               ) -> dict[str, Any]:
    """An applied-policy document (see the module docstring) from ``settings`` (a subset of
    :data:`POLICY_FIELDS`), checked against :class:`FeedConfig`."""
    unknown = set(settings) - set(POLICY_FIELDS)
    if unknown:
        raise ConfigError(f"a policy sets only {', '.join(POLICY_FIELDS)}; not {sorted(unknown)}")
    try:
        cfg = FeedConfig().model_copy(update={})
        for k, v in settings.items():
            setattr(cfg, k, v)  # validate_assignment: a bad value is refused here
    except ValidationError as e:
        raise ConfigError(f"policy: {_first_error(e)}") from None
    return {"version": next_version(previous), "source": source,
            "applied_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
            **{k: getattr(cfg, k) for k in POLICY_FIELDS}, "evidence": evidence or {}}


def config_with(base: FeedConfig, settings: dict[str, Any]) -> FeedConfig:
    """``base`` with the policy fields of ``settings`` set (validated)."""
    upd = {k: settings[k] for k in POLICY_FIELDS if settings.get(k) is not None}
    if not upd:
        return base
    try:
        return FeedConfig.model_validate({**base.model_dump(), **upd})
    except ValidationError as e:
        raise ConfigError(f"policy: {_first_error(e)}") from None


@dataclass(frozen=True)
class Arm:
    """What serves one request: the policy descriptor every feed carries, and how.

    Attributes:
        version: The policy version (the applied policy's, or ``<experiment>/<arm>`` for a
            treatment arm).
        ux_lambda: λ of the feed.
        source: ``default``, ``frontier`` (any applied policy names its source) or
            ``experiment:<name>/<arm>``.
        experiment, variant: The experiment and arm (``None`` outside an experiment).
        overrides: FeedConfig fields this arm changes (empty: the served engine as it is).
        model_version: Another registry version this arm serves (``None``: the promoted).
    """

    version: str
    ux_lambda: float
    source: str
    experiment: str | None = None
    variant: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None

    def describe(self) -> dict[str, Any]:
        """The ``policy`` object of a feed's JSON."""
        out: dict[str, Any] = {"version": self.version, "lambda": self.ux_lambda,
                               "source": self.source}
        if self.experiment is not None:
            out["experiment"] = self.experiment
            out["variant"] = self.variant
        if self.model_version is not None:
            out["model_version"] = self.model_version
        return out

    def log_context(self) -> dict[str, Any]:
        """What an impression's ``context`` records about the policy (and the assignment)."""
        out: dict[str, Any] = {"policy_version": self.version, "policy_source": self.source}
        if self.experiment is not None:
            out["experiment"] = self.experiment
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class _Snapshot:
    applied: dict | None
    config: FeedConfig
    base: Arm
    experiment: ExperimentSpec | None
    arms: dict[str, Arm]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Rollout:
    """The deployment's applied policy and running experiment, re-read when they change.

    Args:
        deployment: The deployment (``None``: no files; the defaults serve everyone).
        base: The configuration the applied policy is laid over (default
            :class:`FeedConfig` ``()``; ``feed --config`` gives its own).
    """

    def __init__(self, deployment: Deployment | None, base: FeedConfig | None = None) -> None:
        self.deployment = deployment
        self.base_config = base if base is not None else FeedConfig()
        self._lock = threading.Lock()
        self._stamps: tuple[Any, Any] | None = None
        self._snap = self._read()

    @classmethod
    def for_store(cls, db_path: str | os.PathLike | None, base: FeedConfig | None = None
                  ) -> Rollout:
        """The rollout of the deployment the store file defines (none for ``None``)."""
        dep = Deployment.for_store(db_path) if db_path and str(db_path) != ":memory:" else None
        return cls(dep, base)

    # ------------------------------------------------------------------ reading
    def _files(self) -> tuple[Any, Any]:
        if self.deployment is None:
            return (None, None)
        return (_stamp(self.deployment.policy_path), _stamp(experiments_path(self.deployment)))

    def _read(self) -> _Snapshot:
        self._stamps = self._files()
        applied = self.deployment.read_policy() if self.deployment is not None else None
        cfg = config_with(self.base_config, applied or {})
        version = str((applied or {}).get("version", DEFAULT_VERSION))
        source = str((applied or {}).get("source", "default"))
        base = Arm(version, float(cfg.ux_lambda), source)
        exp = None
        if self.deployment is not None:
            exp = next((e for e in read_experiments(self.deployment)
                        if e.status == "running"), None)
        arms: dict[str, Arm] = {}
        if exp is not None:
            for a in exp.arms:
                over = a.overrides()
                lam = float(over.get("ux_lambda", cfg.ux_lambda))
                config_with(cfg, over)  # an invalid arm fails here, not per request
                changed = bool(over) or a.model_version is not None
                arms[a.name] = Arm(f"{exp.name}/{a.name}" if changed else version, lam,
                                   f"experiment:{exp.name}/{a.name}", exp.name, a.name,
                                   over, a.model_version)
        return _Snapshot(applied, cfg, base, exp, arms)

    def refresh(self) -> bool:
        """Re-read the files if either changed; ``True`` when the applied policy or the
        running experiment changed (the served engine is then rebuilt)."""
        stamps = self._files()
        if stamps == self._stamps:
            return False
        with self._lock:
            old = self._snap
            self._snap = self._read()
            return (self._snap.config != old.config or self._snap.arms != old.arms
                    or self._snap.base != old.base)

    # ------------------------------------------------------------------ serving
    @property
    def config(self) -> FeedConfig:
        """The served configuration: the base with the applied policy."""
        return self._snap.config

    @property
    def applied(self) -> dict | None:
        return self._snap.applied

    @property
    def experiment(self) -> ExperimentSpec | None:
        """The running experiment, if any."""
        return self._snap.experiment

    def model_versions(self) -> set[str]:
        """Registry versions the running experiment's arms serve."""
        return {a.model_version for a in self._snap.arms.values() if a.model_version}

    def arm(self, user_id: str) -> Arm:
        """The arm (and policy) that serves ``user_id`` now."""
        snap = self._snap
        if snap.experiment is None:
            return snap.base
        return snap.arms[assign(snap.experiment, user_id).name]

    def compose(self, policy: Any, request: Any, arm: Arm,
                arm_policies: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Compose ``request`` under ``arm`` on ``policy`` (the served engine).

        An arm with a model version composes on ``arm_policies[version]`` (see
        :func:`engine_for_model`); an arm that overrides λ or guardrails composes on the
        same engine with its configuration swapped for the one request (under the engine's
        lock, so caps and budgets stay shared and exact). A policy that is not a
        FeedEngine (the organic-only fallback) ignores the overrides.
        """
        if arm.model_version is not None and arm_policies and arm.model_version in arm_policies:
            policy = arm_policies[arm.model_version]
        if not arm.overrides or not hasattr(policy, "compose_under"):
            return policy.compose(request, **kwargs)
        return policy.compose_under(request, config_with(policy.config, arm.overrides),
                                    **kwargs)


def engine_for_model(engine: Any, model: Any) -> Any:
    """A view of ``engine`` whose personal candidates come from ``model`` instead: the same
    catalogue, campaigns, ad state, caps, budgets and lock (a shallow copy with its own
    recommender source), for an experiment arm that serves another model version."""
    view = copy.copy(engine)
    srcs = [RecommenderSource(model, engine.catalog) if s.name == "recommender" else s
            for s in engine.sources]
    if not any(s.name == "recommender" for s in engine.sources):
        srcs.insert(0, RecommenderSource(model, engine.catalog))
    view.sources = srcs
    view.personal_sources = frozenset(s.name for s in srcs if s.personal)
    view.generator = CandidateGenerator(srcs, engine.config.candidates, engine.catalog.n)
    return view


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"])
    return str(e)


__all__ = ["Arm", "ArmSpec", "ExperimentSpec", "POLICY_FIELDS", "Rollout", "assign", "bucket",
           "config_with", "engine_for_model", "experiments_path", "get_experiment",
           "next_version", "parse_arms", "policy_doc", "read_experiments", "start_experiment",
           "stop_experiment", "write_experiments"]


# ----------------------------------------------------------------------------- winner
def pick_winner(deployment: Deployment, store: EventStore, name: str, metric: str = "engagements",
                *, control: str | None = None, alpha: float = 0.05) -> dict[str, Any]:
    """The arm of experiment ``name`` that beats control on ``metric`` in the store.

    The assignment and outcomes are read from the store
    (:func:`~feedwise.evidence.abtest.analyze_experiment`, the SRM check against the arms'
    configured shares). The winner is the treatment arm with the largest difference whose
    ``1 - alpha`` interval lies above 0 (the CUPED interval where there is one).

    Returns:
        ``{"arm": ArmSpec, "result": row dict, "srm": dict, "experiment": ExperimentSpec}``.

    Raises:
        ConfigError: A sample-ratio mismatch (the assignment is broken: nothing to promote),
            or no arm's interval lies above 0.
    """
    exp = get_experiment(deployment, name)
    control = control or exp.arms[0].name
    out = analyze_experiment(store, name, metric, control=control, alpha=alpha,
                             expected=exp.expected)
    srm = out["srm"]
    if srm is not None and srm["srm"]:
        raise ConfigError(f"experiment {name!r} has a sample-ratio mismatch (p = "
                          f"{srm['p_value']:.3g}, observed {srm['observed']}): its assignment "
                          "is broken, so no arm is promoted; find the cause first")
    res = out["results"]
    if res.empty:
        raise ConfigError(f"experiment {name!r} has no treatment arm with data")
    best = None
    for _variant, rows in res.groupby("variant", sort=True):
        cuped = rows[rows["test"] == "cuped_welch_t"]
        row = (cuped if not cuped.empty else rows).iloc[0].to_dict()
        if row["ci_low"] > 0 and (best is None or row["diff"] > best["diff"]):
            best = row
    if best is None:
        show = "; ".join(f"{r['variant']}: {r['diff']:+.4g} [{r['ci_low']:.4g}, "
                         f"{r['ci_high']:.4g}]" for r in res.to_dict("records"))
        raise ConfigError(f"no arm of {name!r} beats {control!r} on {metric} at the "
                          f"{1 - alpha:.0%} level ({show}); nothing promoted")
    arm = next(a for a in exp.arms if a.name == best["variant"])
    return {"arm": arm, "result": best, "srm": srm, "experiment": exp}
