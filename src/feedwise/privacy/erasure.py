"""Erasure: delete a user everywhere, and keep erased or opted-out users out of models.

Where an id can live and what erasure does there is listed in docs/privacy.md
("Erasure: every place an id can live"); in code:

* the store (:meth:`EventStore.erase_user`): every table with a ``user_id`` column, the
  posts the user authored, other users' JSON (``events.context``, ``users.attributes``
  such as ``follows``, rejected rows' context), then :meth:`EventStore.compact` so deleted
  rows leave no bytes in the database file;
* loaded models and feed engines (``forget_user``);
* files on disk (:func:`forget_on_disk`): every registry version and every saved model
  under the given folders (rewritten without the user, or retired), every Parquet export
  written by ``feedwise export`` under them (rows rewritten), and every user export written
  by ``feedwise users export --out`` under them (deleted).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, Field

from feedwise.feed.engine import FeedEngine
from feedwise.models.base import Recommender
from feedwise.registry import ModelRegistry, forget_in_folder
from feedwise.schema import utc
from feedwise.store import EventStore
from feedwise.store.privacy import scrub_json

log = logging.getLogger("feedwise.privacy")

#: The first member of every user export (``export_user``): how erasure recognises one.
USER_EXPORT_FORMAT = "feedwise-user-export/1"
#: The manifest of a Parquet export written by ``feedwise export``.
EXPORT_MANIFEST = "_feedwise.json"


class DiskErasure(BaseModel):
    """What erasure did to files (counts only)."""

    #: Saved models (registry versions and model folders) rewritten without the user.
    models_rewritten: int = 0
    #: Saved models retired (model files deleted) because they could not be rewritten.
    models_retired: int = 0
    #: Parquet files of exports rewritten without the user's rows.
    export_files: int = 0
    #: User exports (``feedwise users export --out``) of the user deleted.
    user_exports: int = 0


class ErasureReport(BaseModel):
    """What an erasure removed (counts only: the report never repeats the id)."""

    #: Rows deleted per table (``items``: the posts the user authored).
    deleted: dict[str, int]
    #: Rows of other users rewritten without the id, per ``table.column``.
    scrubbed: dict[str, int] = Field(default_factory=dict)
    models: int = 0
    engines: int = 0
    files: DiskErasure = Field(default_factory=DiskErasure)
    #: Whether the database file was rewritten (:meth:`EventStore.compact`).
    compacted: bool = False
    erased_at: datetime

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def forget_in_engine(engine: FeedEngine, stored_id: str) -> bool:
    """Remove a user from a running :class:`~feedwise.feed.engine.FeedEngine` through
    :meth:`~feedwise.feed.engine.FeedEngine.forget_user` (its recommender, its user table
    row and its cross-request state).

    Returns:
        ``True`` if the engine held anything about the user.
    """
    return engine.forget_user(stored_id)


def erase_user(store: EventStore, user_id: str, *, now: datetime,
               models: Iterable[Recommender] = (), engines: Iterable[FeedEngine] = (),
               registries: Iterable[ModelRegistry] = (),
               folders: Iterable[str | os.PathLike] = (), compact: bool = False
               ) -> ErasureReport:
    """Erase a user everywhere (the right to erasure).

    Deletes every stored row about the user, rewrites other users' rows that name them and
    records a tombstone (:meth:`EventStore.erase_user`), removes the user from each loaded
    model (:meth:`Recommender.forget_user`) and engine (:func:`forget_in_engine`), so the
    next request is already non-personal, then from the files on disk
    (:func:`forget_on_disk`: registry versions, saved models, exports under ``folders``),
    and with ``compact`` rewrites the database file so no deleted byte remains
    (:meth:`EventStore.compact`). The next retrain excludes the user because their events
    are gone and cannot be re-ingested. Erasing an erased user again is harmless (and
    cleans files written since, e.g. by a training run that was under way).

    Args:
        store: The :class:`~feedwise.store.EventStore`.
        user_id: External id.
        now: Time of the erasure (tz-aware).
        models: Loaded recommenders to remove the user from.
        engines: Running feed engines to remove the user from.
        registries: Model registries whose versions are rewritten without the user.
        folders: Folders whose saved models and exports are cleaned (e.g. ``models``).
        compact: Rewrite the database file afterwards.
    """
    when = utc(now)
    key = store.user_key(user_id)
    out = store.erase_user(user_id, now=when)
    deleted = {t: n for t, n in out.items() if "." not in t}
    scrubbed = {t: n for t, n in out.items() if "." in t}
    n_models = sum(bool(m.forget_user(key)) for m in models if hasattr(m, "item_ids_"))
    n_engines = sum(forget_in_engine(e, key) for e in engines)
    files = forget_on_disk(_ids(key, user_id), registries=registries, folders=folders,
                           now=when)
    compacted = bool(compact and store.compact())
    report = ErasureReport(deleted=deleted, scrubbed=scrubbed, models=n_models,
                           engines=n_engines, files=files, compacted=compacted,
                           erased_at=when)
    log.info("erased a user: %d rows deleted, %d rewritten; removed from %d model(s) and "
             "%d engine(s); %d saved model(s) rewritten, %d retired; %d export file(s) "
             "rewritten, %d user export(s) deleted; store compacted: %s",
             report.rows, sum(scrubbed.values()), n_models, n_engines,
             files.models_rewritten, files.models_retired, files.export_files,
             files.user_exports, compacted)
    return report


def _ids(stored_id: str, user_id: str) -> list[str]:
    return list(dict.fromkeys([str(stored_id), str(user_id)]))


# ---------------------------------------------------------------------- files
def forget_on_disk(ids: Iterable[str], *, registries: Iterable[ModelRegistry] = (),
                   folders: Iterable[str | os.PathLike] = (), now: datetime | None = None
                   ) -> DiskErasure:
    """Remove a user from the files feedwise wrote: every version of each registry and,
    under each folder (at any depth), every saved model (both rewritten without the user,
    or retired when they cannot be), every Parquet export of ``feedwise export`` (its
    files rewritten without the user's rows) and every user export of the user
    (``feedwise users export --out``; deleted).

    Args:
        ids: The user's ids as they may be written: the stored id (pseudonym) and the id
            as given.
        registries: Registries to clean.
        folders: Folders to clean (missing ones are skipped).
        now: Time recorded on a retired registry version.
    """
    ids = list(dict.fromkeys(str(i) for i in ids))
    out = DiskErasure()
    for reg in registries:
        done = reg.forget_users(ids, now=now)
        out.models_rewritten += len(done["rewritten"])
        out.models_retired += len(done["retired"])
    for folder in dict.fromkeys(Path(f) for f in folders):
        if not folder.is_dir():
            continue
        done = forget_in_folder(folder, ids)
        out.models_rewritten += len(done["rewritten"])
        out.models_retired += len(done["retired"])
        for manifest in sorted(folder.rglob(EXPORT_MANIFEST)):
            out.export_files += forget_in_export(manifest.parent, ids)
        out.user_exports += _delete_user_exports(folder, ids)
    return out


def forget_in_export(root: str | os.PathLike, ids: Iterable[str]) -> int:
    """Rewrite a Parquet export (``feedwise export``: events, items, users, campaigns)
    without a user: their rows (``user_id``) and the posts they authored (``author_id``)
    are dropped, and other users' event contexts are rewritten without the ids
    (:func:`~feedwise.store.privacy.scrub_json`). Each file changed is replaced atomically;
    the manifest's counts are updated. Returns the number of files rewritten."""
    root = Path(root)
    gone = frozenset(str(i) for i in ids)
    removed: dict[str, int] = {}
    n_files = 0
    for f in sorted(root.rglob("*.parquet")):
        pf = pq.ParquetFile(f)  # the file alone: no partition column inferred from its path
        try:
            named = [c for c in ("user_id", "author_id", "context")
                     if c in pf.schema_arrow.names]
            if not named or _without(pf.read(columns=named), gone) is None:
                continue  # only the id columns read: the file does not name the user
            table = pf.read()
        finally:
            pf.close()
        new = _without(table, gone)
        if new is None:
            continue
        part = "events" if "events" in f.relative_to(root).parts[:-1] else f.stem
        removed[part] = removed.get(part, 0) + table.num_rows - new.num_rows
        tmp = f.with_name(f".{f.name}.erase-{os.getpid()}")
        pq.write_table(new, tmp)
        os.replace(tmp, f)
        n_files += 1
    manifest = root / EXPORT_MANIFEST
    if n_files and manifest.exists():
        try:
            meta = json.loads(manifest.read_text())
        except ValueError:
            meta = None
        if isinstance(meta, dict):
            for k, n in removed.items():
                if isinstance(meta.get(k), int):
                    meta[k] -= n
            meta["erased_users"] = int(meta.get("erased_users", 0)) + 1
            tmp = manifest.with_name(f".{manifest.name}.erase-{os.getpid()}")
            tmp.write_text(json.dumps(meta, indent=2))
            os.replace(tmp, manifest)
    return n_files


def _without(table: pa.Table, gone: frozenset[str]) -> pa.Table | None:
    """``table`` without the rows of ``gone`` and their posts, other rows' contexts
    scrubbed; ``None`` when nothing changes."""
    ids = pa.array(sorted(gone), pa.string())
    keep = None
    for col in ("user_id", "author_id"):
        if col in table.column_names:
            hit = pc.fill_null(pc.is_in(table[col].cast(pa.string()), value_set=ids), False)
            keep = pc.invert(hit) if keep is None else pc.and_(keep, pc.invert(hit))
    changed = False
    if keep is not None and not pc.all(keep).as_py():
        table = table.filter(keep)
        changed = True
    if "context" in table.column_names and table.num_rows:
        ctx = table["context"].to_pylist()
        new = [_scrub_text(c, gone) for c in ctx]
        if new != ctx:
            i = table.column_names.index("context")
            table = table.set_column(i, table.schema.field(i),
                                     pa.array(new, table.schema.field(i).type))
            changed = True
    return table if changed else None


def _scrub_text(text: Any, gone: frozenset[str]) -> Any:
    if not isinstance(text, str) or (not any(g in text for g in gone) and "\\" not in text):
        return text
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return text
    new = scrub_json(doc, gone)
    return text if new == doc else (None if new is None else json.dumps(new))


def _delete_user_exports(folder: Path, ids: list[str]) -> int:
    """Delete the user exports of the user under ``folder`` (recognised by their first
    member, ``"format": USER_EXPORT_FORMAT``, and their ``user_id`` / ``stored_id``)."""
    n = 0
    head = f'"format": "{USER_EXPORT_FORMAT}"'.encode()
    for f in sorted(folder.rglob("*.json")):
        try:
            with open(f, "rb") as fh:
                if head not in fh.read(256):
                    continue
            doc = json.loads(f.read_text())
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(doc, dict) and {str(doc[k]) for k in ("user_id", "stored_id")
                                      if doc.get(k) is not None} & set(ids):
            f.unlink()
            n += 1
    return n


def forget_erased(store: EventStore, model: Recommender, *, opted_out: bool = True) -> int:
    """Remove from a loaded model every user erased after it was trained (a registry
    version, a hot swap), checked against the store's tombstones, and (with
    ``opted_out``) every user who withdrew ``personalization`` consent, so no profile of
    theirs is used. Returns the number of users removed."""
    if not hasattr(model, "user_index_"):
        return 0
    users = list(model.user_index_)
    gone_ids = store.erased_ids(users) | (store.opted_out_users() if opted_out else set())
    gone = [u for u in users if u in gone_ids]
    for u in gone:
        model.forget_user(u)
    if gone:
        log.info("removed %d erased or opted-out user(s) from a loaded model", len(gone))
    return len(gone)
