"""`ModelRegistry`: versioned model artifacts on disk, promotion, and the promoted version.

Layout of a registry folder (no pickle anywhere; a server can load it safely)::

    registry/
      versions/v0001/model.npz    the model's arrays   (Recommender.save)
      versions/v0001/model.json   class and hyperparameters
      versions/v0001/meta.json    ModelVersion: data window, metrics, config, git sha
      promoted.json               {"version": "v0001", "promoted_at": ..., "reason": ...}
      decisions.jsonl             one line per retraining decision (promoted or not)

Versions are numbered in creation order; a version folder is claimed with an atomic
``mkdir`` and ``promoted.json`` is replaced atomically, so a reader always sees either the
old or the new promotion, never half of one.

Erasure: :meth:`ModelRegistry.forget_users` rewrites every version that holds an erased
user without them (:func:`forget_in_artifact`: the model's ``forget_user``, then
``model.npz`` replaced atomically), or retires a version it cannot rewrite (its model
files deleted, ``meta.json`` marked ``retired_at``); :func:`forget_in_folder` does the same
for every saved model under any folder (``models/`` of the CLI).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from feedwise.errors import ConfigError, NotFoundError
from feedwise.models.base import Recommender

_VERSION = re.compile(r"^v(\d{4,})$")
#: The files of a saved model (:meth:`Recommender.save`).
MODEL_FILES = ("model.npz", "model.json")

log = logging.getLogger("feedwise.registry")


class DataWindow(BaseModel):
    """The events a model was trained on: ``[since, until)`` and how many."""

    since: datetime | None = None
    until: datetime | None = None
    n_events: int | None = None
    n_users: int | None = None
    n_items: int | None = None


class ModelVersion(BaseModel):
    """Registry metadata of one artifact (``meta.json``)."""

    version: str
    model: str
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    data_window: DataWindow = Field(default_factory=DataWindow)
    metrics: dict[str, float] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    git_sha: str | None = None
    notes: str = ""
    #: Users removed from the artifact after training (erasure; counts only, never ids).
    erased_users: int = 0
    #: Set when the artifact held an erased user and could not be rewritten: its model
    #: files are deleted and the version can no longer be loaded.
    retired_at: datetime | None = None
    #: The id of the store it was trained on (``EventStore.store_id``); a registry bound
    #: to another store refuses to load it (``None``: recorded before stores had ids).
    store_id: str | None = None


def git_sha() -> str | None:
    """The commit of the running code (``$FEEDWISE_GIT_SHA`` or ``git rev-parse``), if known."""
    if os.environ.get("FEEDWISE_GIT_SHA"):
        return os.environ["FEEDWISE_GIT_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class ModelRegistry:
    """A folder of versioned model artifacts.

    Args:
        root: The registry folder (created on first write).
        store_id: The store this registry serves (``EventStore.store_id()``): each new
            version records it, and loading a version trained on another store raises a
            :class:`ConfigError` (``None``: no check, e.g. ``feedwise registry list``).
        db: How the store is named in that error (its path), for the fix it suggests.
    """

    def __init__(self, root: str | os.PathLike, *, store_id: str | None = None,
                 db: str | os.PathLike | None = None) -> None:
        self.root = Path(root)
        self.store_id = store_id
        self.db = str(db) if db is not None else None

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    # ------------------------------------------------------------------ write
    def register(self, model: Recommender, *, data_window: DataWindow | dict | None = None,
                 metrics: dict[str, float] | None = None, config: dict[str, Any] | None = None,
                 notes: str = "", now: datetime | None = None) -> ModelVersion:
        """Save a fitted model as the next version (not promoted)."""
        model._check_fitted()
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        path = self._claim()
        model.save(path)
        meta = ModelVersion(
            version=path.name, model=model.name, params=model.get_params(),
            created_at=(now or datetime.now(UTC)).astimezone(UTC),
            data_window=DataWindow.model_validate(data_window or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            config=config or {}, git_sha=git_sha(), notes=notes, store_id=self.store_id)
        _atomic_write(path / "meta.json", meta.model_dump_json(indent=2))
        return meta

    def _claim(self) -> Path:
        existing = [int(m.group(1)) for p in self.versions_dir.iterdir()
                    if (m := _VERSION.match(p.name))]
        n = max(existing, default=0) + 1
        while True:
            path = self.versions_dir / f"v{n:04d}"
            try:
                path.mkdir()
                return path
            except FileExistsError:
                n += 1

    def promote(self, version: str, *, reason: str = "", now: datetime | None = None
                ) -> ModelVersion:
        """Make ``version`` the one servers load."""
        meta = self.get(version)
        rec = {"version": meta.version,
               "promoted_at": (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
               "reason": reason}
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / "promoted.json", json.dumps(rec, indent=2))
        with open(self.root / "promotions.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        return meta

    def record_decision(self, decision: dict[str, Any]) -> None:
        """Append one retraining decision (promoted or not, with its figures)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "decisions.jsonl", "a") as f:
            f.write(json.dumps(decision, default=str) + "\n")

    # ------------------------------------------------------------------ read
    def versions(self) -> list[ModelVersion]:
        """Every complete version, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        out = []
        for p in sorted(self.versions_dir.iterdir(), key=lambda p: p.name):
            if _VERSION.match(p.name) and (p / "meta.json").exists():
                out.append(self.get(p.name))
        return out

    def get(self, version: str) -> ModelVersion:
        """Metadata of ``version``; :class:`NotFoundError` if unknown."""
        if not _VERSION.match(version or ""):
            raise NotFoundError(f"unknown model version {version!r} (versions look like v0001)")
        p = self.versions_dir / version / "meta.json"
        try:
            return ModelVersion.model_validate_json(p.read_text())
        except FileNotFoundError:
            raise NotFoundError(f"unknown model version {version!r} in {self.root}") from None

    def check_store(self, meta: ModelVersion) -> None:
        """Raise unless ``meta`` was trained on this registry's store (when both are known).

        Raises:
            ConfigError: ``model vNNNN was trained on store <id>, this is store <id>: ...``.
        """
        if self.store_id is None or meta.store_id is None or meta.store_id == self.store_id:
            return
        db = self.db or "STORE"
        raise ConfigError(
            f"model {meta.version} was trained on store {meta.store_id}, this is store "
            f"{self.store_id}: train one here (feedwise train --db {db} --promote) or point "
            f"--registry at the registry of store {self.store_id} (its deployment's "
            "<store>.models folder)")

    def load(self, version: str) -> Recommender:
        """The model of ``version`` (:meth:`check_store` first)."""
        meta = self.get(version)
        self.check_store(meta)
        if meta.retired_at is not None:
            raise NotFoundError(f"model version {version} was retired at {meta.retired_at} "
                                "(it held an erased user and could not be rewritten); "
                                "promote another version or retrain")
        return Recommender.load(self.versions_dir / version)

    def promoted_version(self) -> str | None:
        """The promoted version id, or ``None`` if nothing was promoted."""
        try:
            rec = json.loads((self.root / "promoted.json").read_text())
        except FileNotFoundError:
            return None
        except ValueError as e:
            raise ConfigError(f"{self.root / 'promoted.json'} is corrupt: {e}") from None
        return rec.get("version")

    def promoted(self) -> ModelVersion | None:
        v = self.promoted_version()
        return self.get(v) if v else None

    def load_promoted(self) -> tuple[ModelVersion, Recommender]:
        """Metadata and model of the promoted version."""
        meta = self.promoted()
        if meta is None:
            raise NotFoundError(f"no promoted model in {self.root}; train one and run "
                                f"`feedwise retrain` (or promote a version)")
        return meta, self.load(meta.version)

    # ------------------------------------------------------------------ erasure
    def forget_users(self, user_ids: Iterable[str], *, now: datetime | None = None
                     ) -> dict[str, list[str]]:
        """Remove users (stored ids) from every version on disk (erasure).

        Each complete version that holds one of them is rewritten without them
        (:func:`forget_in_artifact`) and its ``meta.json`` counts the removal; a version
        that cannot be rewritten (an unknown model class, a damaged file, a model whose
        ``forget_user`` leaves an id behind) is retired: its model files are deleted and
        ``meta.json`` records ``retired_at``. A version still being written by a concurrent
        training run (no ``meta.json`` yet) is not touched: erase again after it finishes.

        Returns:
            ``{"rewritten": [versions], "retired": [versions]}``.
        """
        ids = [str(u) for u in user_ids]
        out: dict[str, list[str]] = {"rewritten": [], "retired": []}
        for meta in self.versions():
            if meta.retired_at is not None:
                continue
            path = self.versions_dir / meta.version
            try:
                n = forget_in_artifact(path, ids)
            except ArtifactError:
                retire_artifact(path)
                meta.retired_at = (now or datetime.now(UTC)).astimezone(UTC)
                _atomic_write(path / "meta.json", meta.model_dump_json(indent=2))
                out["retired"].append(meta.version)
                continue
            if n:
                meta.erased_users += n
                _atomic_write(path / "meta.json", meta.model_dump_json(indent=2))
                out["rewritten"].append(meta.version)
        if out["rewritten"] or out["retired"]:
            log.info("erasure: rewrote %d and retired %d registry version(s)",
                     len(out["rewritten"]), len(out["retired"]))
        return out

    def decisions(self) -> list[dict[str, Any]]:
        p = self.root / "decisions.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


class ArtifactError(Exception):
    """A saved model that holds an erased user cannot be rewritten without them."""


def artifact_holds(path: Path, user_ids: Iterable[str]) -> bool:
    """Whether the saved model in ``path`` holds one of ``user_ids``: in a text array of
    user ids (``base.user_ids`` and every other text array whose name says ``user``, e.g.
    a hybrid's ``interest_users``; item ids that happen to equal a user id do not count).
    Only those arrays are read. :class:`ArtifactError` if the file cannot be read (it
    cannot be shown not to hold them)."""
    ids = {str(u) for u in user_ids}
    try:
        with np.load(path / "model.npz", allow_pickle=False) as z:
            for name in z.files:
                if "user" not in name.lower():
                    continue
                a = z[name]
                if a.dtype.kind in "US" and a.size and not ids.isdisjoint(a.ravel().tolist()):
                    return True
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable model ({e})") from None
    return False


def forget_in_artifact(path: str | os.PathLike, user_ids: Iterable[str]) -> int:
    """Rewrite the saved model in folder ``path`` without ``user_ids`` (stored ids).

    When the model holds one of them, it is loaded, :meth:`Recommender.forget_user` removes
    each (their id, row of seen items and negatives, factors, social edges, declared
    interests), and it is saved into a fresh folder beside ``path`` whose ``model.npz``
    then replaces the old one atomically (a server loading it sees the old or the new
    file, never half of one). The rewritten file is checked to hold none of the ids.

    Returns:
        How many of the users the model held (0: nothing was rewritten).

    Raises:
        ArtifactError: The model holds one of them and cannot be rewritten (an unknown
            class, a damaged file, or ids left behind); the caller retires it.
    """
    path = Path(path)
    ids = [str(u) for u in user_ids]
    if not artifact_holds(path, ids):
        return 0
    try:
        model = Recommender.load(path)
        n = sum(bool(model.forget_user(u)) for u in ids)
    except MemoryError:  # not the artifact's fault: fail the erasure, run it again later
        raise
    except Exception as e:  # noqa: BLE001 - the artifact cannot be loaded or rewritten
        raise ArtifactError(f"{path}: cannot rewrite the model ({type(e).__name__})") from None
    tmp = path.with_name(f".{path.name}.forget-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save(tmp)
        if artifact_holds(tmp, ids):
            raise ArtifactError(f"{path}: {model.name}.forget_user leaves an id behind")
        for name in reversed(MODEL_FILES):  # model.json first: it does not change
            os.replace(tmp / name, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return max(n, 1)


def retire_artifact(path: str | os.PathLike) -> None:
    """Delete the model files of the saved model in ``path`` (it can no longer be loaded)."""
    for name in MODEL_FILES:
        (Path(path) / name).unlink(missing_ok=True)


def forget_in_folder(root: str | os.PathLike, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """Remove users (stored ids) from every saved model under ``root`` (a folder with
    ``model.json``, at any depth, e.g. ``models/itemknn``), as
    :meth:`ModelRegistry.forget_users` does for a registry: rewritten, or retired (model
    files deleted) when it cannot be rewritten.

    Returns:
        ``{"rewritten": [folders], "retired": [folders]}`` (paths as text).
    """
    root = Path(root)
    ids = [str(u) for u in user_ids]
    out: dict[str, list[str]] = {"rewritten": [], "retired": []}
    if not root.is_dir():
        return out
    for meta in sorted(root.rglob("model.json")):
        folder = meta.parent
        if any(part.startswith(".") for part in folder.relative_to(root).parts):
            continue  # a rewrite in progress (ours or a concurrent one)
        try:
            if forget_in_artifact(folder, ids):
                out["rewritten"].append(str(folder))
        except ArtifactError:
            retire_artifact(folder)
            out["retired"].append(str(folder))
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
