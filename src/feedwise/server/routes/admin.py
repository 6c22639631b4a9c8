"""``/v1/admin/...``: how the ``feedwise`` CLI works on a store that a running service holds.

DuckDB lets one process open a store file for writing, and no other process open it at
all meanwhile. While ``feedwise serve`` runs, the CLI finds it through the deployment's
state file (``<store>.serve.json``: url, pid, admin key file; see
:class:`feedwise.deployment.Deployment`) and

- reads a **snapshot**: ``POST /v1/admin/snapshot`` checkpoints the store and copies the
  file under the write lock (:meth:`EventStore.snapshot`) to a temporary path that the CLI
  opens read-only and deletes afterwards;
- **writes through the service**: ``POST /v1/admin/exec`` runs the CLI command (its argv)
  inside the service, on the writer thread, with the service's own store, then brings the
  service's state up to date (consent, erased users out of the served model, the feed
  policy rebuilt around the new catalogue and campaigns);
- asks for a **swap**: ``POST /v1/admin/reload`` serves a newly promoted model now (after
  ``retrain`` or ``registry promote``) instead of at the next watcher tick.

Every route needs an ``admin`` key. The command runner is given by ``feedwise serve``
(``app.state.admin_runner``): the service imports no CLI code; an app made without one
answers ``/exec`` with 409, which the CLI reports as a conflict it cannot resolve.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from feedwise.privacy import forget_erased
from feedwise.server.deps import AdminKey, ServiceState, State
from feedwise.store import EventStore

router = APIRouter(prefix="/v1/admin", tags=["admin"])
log = logging.getLogger("feedwise.server")

#: Where snapshots go; one older than this many seconds is deleted at the next request.
SNAPSHOT_TTL_S = 3600.0
#: Longest a command may run inside the service (an ingest of a large file, a report).
EXEC_TIMEOUT_S = 3600.0

#: ``runner(argv, store) -> {"exit_code": int, "stdout": str, "stderr": str}``.
Runner = Callable[[list[str], EventStore], dict[str, Any]]


def snapshot_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"feedwise-snapshots-{os.getuid()}"


def _sweep(folder: Path) -> None:
    cutoff = time.time() - SNAPSHOT_TTL_S
    for p in folder.glob("*.duckdb*"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            pass


class SnapshotOut(BaseModel):
    path: str
    store_id: str | None
    bytes: int


@router.post("/snapshot", response_model=SnapshotOut, summary="A consistent copy of the store")
def snapshot(state: State, key: AdminKey) -> SnapshotOut:
    """Checkpoint the store and copy its file under the write lock to a temporary path on
    this machine; the caller opens it read-only and deletes it when done."""
    folder = snapshot_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _sweep(folder)
    dest = folder / f"{uuid.uuid4().hex}.duckdb"
    path = state.store.snapshot(dest)
    os.chmod(path, 0o600)
    state.snapshots.add(Path(path))
    return SnapshotOut(path=str(path), store_id=state.store.store_id(),
                       bytes=path.stat().st_size)


class ExecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    argv: list[str] = Field(min_length=1, max_length=500)


class ExecOut(BaseModel):
    exit_code: int
    stdout: str
    stderr: str
    served_version: str | None = None


def refresh_after_write(state: ServiceState) -> None:
    """Bring the service up to date with what a command wrote to its store: consent, erased
    or objecting users out of the served model, the feed policy rebuilt (catalogue,
    campaigns, ad state), all before the command's answer returns."""
    with state.swaps_paused():
        state._load_consent()
        served = state.served
        if served is not None:
            forget_erased(state.store, served.model)
        state._dirty = True
        state.refresh_policy()


@router.post("/exec", response_model=ExecOut, summary="Run a CLI command on the service's store")
def exec_command(body: ExecBody, request: Request, state: State, key: AdminKey) -> ExecOut:
    """Run ``feedwise <argv>`` inside the service, on its writer thread, with its store
    (the CLI sends the commands that write while the service holds the store)."""
    runner: Runner | None = getattr(request.app.state, "admin_runner", None)
    if runner is None:
        raise HTTPException(409, "this service runs no CLI commands (start it with "
                                 "feedwise serve)")
    argv = list(body.argv)
    log.info("admin exec: feedwise %s", argv[0])
    with state.swaps_paused():
        job = state.writer.call(lambda store: runner(argv, store), timeout=EXEC_TIMEOUT_S)
        out = job.result(EXEC_TIMEOUT_S)
    refresh_after_write(state)
    served = state.served
    return ExecOut(exit_code=int(out.get("exit_code", 1)), stdout=str(out.get("stdout", "")),
                   stderr=str(out.get("stderr", "")),
                   served_version=served.version if served else None)


class ReloadOut(BaseModel):
    swapped: bool
    version: str | None


@router.post("/reload", response_model=ReloadOut, summary="Serve the promoted model now")
def reload(state: State, key: AdminKey) -> ReloadOut:
    """Load the registry's promoted version now if it is not the one served."""
    swapped = state.reload()
    served = state.served
    return ReloadOut(swapped=swapped, version=served.version if served else None)
