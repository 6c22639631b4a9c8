"""One deployment is one folder: the store, its model registry, campaigns, keys, the applied
feed policy and, while ``feedwise serve`` runs, the server's state file.

Layout of a deployment made by ``feedwise init DIR`` (a store given by path, e.g.
``--db data/x.duckdb``, defines the same layout with ``x`` for ``feedwise``)::

    DIR/feedwise.duckdb          the store (DuckDB)
    DIR/feedwise.models/         the model registry (versions, promoted.json, decisions)
    DIR/feedwise.policy.json     the applied feed policy (frontier --apply)
    DIR/feedwise.keys.json       the service's hashed API keys
    DIR/feedwise.serve.json      written by a running ``feedwise serve``: url, pid,
                                 admin key file; removed when it stops
    DIR/campaigns/               campaign files

Nothing here reads the working directory: every path hangs off the store's folder. This
module is paths and small JSON files only (layer 1): it imports no store or registry.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedwise.errors import ConfigError

#: The store file's name in a folder made by :meth:`Deployment.init`.
STORE_FILE = "feedwise.duckdb"


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); fix or delete it") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return doc


@dataclass(frozen=True)
class Deployment:
    """The paths of one deployment (see the module docstring)."""

    dir: Path
    store_path: Path

    @classmethod
    def for_store(cls, db_path: str | os.PathLike) -> Deployment:
        """The deployment a store file defines: its folder is the file's parent (a store at
        ``./x.duckdb`` lives in ``.``), its other files are named after the file's stem."""
        path = Path(db_path).expanduser()
        if str(db_path) == ":memory:":
            raise ConfigError("an in-memory store has no deployment folder; give a file")
        return cls(dir=path.parent, store_path=path)

    @classmethod
    def init(cls, folder: str | os.PathLike) -> Deployment:
        """Create the folder of a new deployment (``feedwise init DIR``): the folder, its
        registry and campaigns folders. The store file itself is created by its first
        read-write open (``feedwise init`` does that)."""
        folder = Path(folder).expanduser()
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} exists and is not a folder; give a folder path")
        d = cls(dir=folder, store_path=folder / STORE_FILE)
        for p in (d.dir, d.registry_dir, d.campaigns_dir):
            p.mkdir(parents=True, exist_ok=True)
        return d

    @property
    def stem(self) -> str:
        return self.store_path.stem

    @property
    def registry_dir(self) -> Path:
        """The model registry of this store (never ``./models`` of the working directory)."""
        return self.dir / f"{self.stem}.models"

    @property
    def policy_path(self) -> Path:
        return self.dir / f"{self.stem}.policy.json"

    @property
    def campaigns_dir(self) -> Path:
        return self.dir / "campaigns"

    @property
    def keys_path(self) -> Path:
        return self.dir / f"{self.stem}.keys.json"

    @property
    def state_path(self) -> Path:
        return self.dir / f"{self.stem}.serve.json"

    # ------------------------------------------------------------------ policy
    def read_policy(self) -> dict | None:
        """The applied feed policy (``None``: none applied, the defaults serve)."""
        return _read_json(self.policy_path)

    def write_policy(self, doc: dict) -> None:
        """Replace the applied policy atomically (a reader sees the old or the new one)."""
        _atomic_write(self.policy_path, json.dumps(doc, indent=2, default=str))

    # ------------------------------------------------------------------ server
    def write_server_state(self, doc: dict[str, Any]) -> None:
        """Written by ``feedwise serve`` once it listens (url, pid, admin key file)."""
        _atomic_write(self.state_path, json.dumps(doc, indent=2, default=str))
        try:
            os.chmod(self.state_path, 0o600)
        except OSError:
            pass

    def clear_server_state(self, pid: int | None = None) -> None:
        """Remove the state file (only if it is ``pid``'s, when given)."""
        if pid is not None:
            try:
                doc = _read_json(self.state_path)
            except ConfigError:
                doc = None
            if doc is not None and doc.get("pid") != pid:
                return
        self.state_path.unlink(missing_ok=True)

    def server(self) -> dict | None:
        """The state file of a live server holding this store (its process runs), else
        ``None``; a stale file (its process is gone) is ignored."""
        try:
            doc = _read_json(self.state_path)
        except ConfigError:
            return None
        if not doc:
            return None
        try:
            pid = int(doc.get("pid", 0))
        except (TypeError, ValueError):
            return None
        if not pid_alive(pid):
            return None
        db = doc.get("db")
        if db and Path(db) != self.store_path.resolve():  # a file copied with the folder
            return None
        return doc


__all__ = ["STORE_FILE", "Deployment", "pid_alive"]
