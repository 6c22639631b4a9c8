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
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from feedwise.errors import ConfigError, NotFoundError
from feedwise.models.base import Recommender

_VERSION = re.compile(r"^v(\d{4,})$")


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
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

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
            config=config or {}, git_sha=git_sha(), notes=notes)
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

    def load(self, version: str) -> Recommender:
        """The model of ``version``."""
        self.get(version)
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

    def decisions(self) -> list[dict[str, Any]]:
        p = self.root / "decisions.jsonl"
        if not p.exists():
            return []
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
