"""How a command finds its store while a ``feedwise serve`` may hold it (one owner of the data).

- **Without a service** the store is opened directly: read-only for a command that only
  reads (several may run at once; none takes the write lock), read-write otherwise.
- **With a live service** (the deployment's ``<store>.serve.json`` names a running process)
  a reading command opens a snapshot the service makes (``POST /v1/admin/snapshot``), and a
  writing command is sent whole to the service (``POST /v1/admin/exec``), which runs it on
  its own store, on its writer thread; its output is printed here and its exit code kept.
- **Inside the service** (the runner below) commands use the service's store.
- A lock nothing here explains (another process that is not a feedwise service, or a
  service without the admin API) ends the command with one line naming the holder (exit 2).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from feedwise.deployment import Deployment
from feedwise.errors import ConfigError, NotFoundError

try:  # typer >= 0.20 carries its own copy of click: its contexts and exceptions
    from typer._click import exceptions as _cx
    from typer._click.globals import get_current_context as _current_context
except ImportError:  # pragma: no cover - a typer on the click package
    from click import exceptions as _cx
    from click import get_current_context as _current_context

if TYPE_CHECKING:
    from feedwise.store import EventStore

#: Inside ``feedwise serve``: the service's store, used by the commands the admin API runs.
SERVED_STORE: ContextVar[Any] = ContextVar("feedwise_served_store", default=None)


def current_command() -> tuple[tuple[str, ...], dict[str, Any]]:
    """The running command's path (e.g. ``("users", "export")``) and its parameters."""
    ctx = _current_context(silent=True)
    names: list[str] = []
    params: dict[str, Any] = dict(ctx.params) if ctx is not None else {}
    while ctx is not None and ctx.parent is not None:
        names.append(str(ctx.info_name))
        ctx = ctx.parent
    return tuple(reversed(names)), params


def _always(params: dict[str, Any]) -> bool:
    return True


#: Commands that only read the store, each with a test of its parameters (an option such
#: as ``profiles --write`` makes it a write). Any other command opens the store for writing.
READ_ONLY: dict[tuple[str, ...], Callable[[dict[str, Any]], bool]] = {
    ("kpis",): _always,
    ("report",): lambda p: not p.get("write_profiles"),
    ("profiles",): lambda p: not p.get("write", True),
    ("campaigns", "list"): _always,
    ("users", "export"): _always,
    ("users", "consent"): lambda p: all(p.get(f) is None for f in
                                        ("personalization", "ads", "analytics")),
    ("recommend",): _always,
    ("feed",): lambda p: not p.get("record"),
    ("listen",): _always,
    ("alerts",): _always,
    ("best-time",): _always,
    ("creators",): _always,
    ("friends",): _always,
    ("abtest", "analyze"): _always,
    ("abtest", "srm"): _always,
    ("care", "kpis"): _always,
    ("answers", "list"): _always,
    ("export",): _always,
    ("train",): _always,
    ("evaluate",): _always,
    ("retrain",): _always,
    ("tune",): _always,
    ("notify", "plan"): lambda p: not p.get("write", True),
}


def writes_store() -> bool:
    """Whether the running command may write the store (unknown commands: yes)."""
    path, params = current_command()
    test = READ_ONLY.get(path)
    return test is None or not test(params)


def _db_path(db: str | None) -> str:
    from feedwise.store.base import default_db_path

    return str(db) if db is not None else default_db_path()


def open_for_command(db: str | None) -> EventStore:
    """The store for the running command (see the module docstring)."""
    from feedwise.privacy import PrivacySettings

    served = SERVED_STORE.get()
    if served is not None:
        return _Borrowed(served)
    path = _db_path(db)
    pseudonymizer = PrivacySettings().pseudonymizer()
    write = writes_store()
    if path == ":memory:":
        from feedwise.store import EventStore

        return EventStore(path, pseudonymizer=pseudonymizer)
    dep = Deployment.for_store(path)
    server = dep.server()
    if server is not None:
        if write:
            forward(server, dep)  # raises typer.Exit with the service's exit code
        return _open_snapshot(server, dep, pseudonymizer)
    if not write and not Path(path).is_file():
        raise NotFoundError(f"{path}: no store here (the file does not exist); give the "
                            "store's path with --db (or FEEDWISE_DB), or create one with "
                            "feedwise init DIR and feedwise ingest")
    try:
        return _open_file(path, pseudonymizer, read_only=not write)
    except _Locked as e:
        server = dep.server()  # it may have started meanwhile
        if server is not None:
            if write:
                forward(server, dep)
            return _open_snapshot(server, dep, pseudonymizer)
        raise ConfigError(conflict_message(path, e.pid, write)) from None


def check_servable(db: str, registry: str | None = None) -> None:
    """Before ``feedwise serve`` starts: one ``ConfigError`` line when another service or
    process holds the store, or the registry's promoted model was trained on another
    store (instead of a traceback from inside the app's start-up)."""
    from feedwise.privacy import PrivacySettings

    if db == ":memory:":
        return
    server = Deployment.for_store(db).server()
    if server is not None:
        raise ConfigError(f"{db} is already served by feedwise serve (pid {server.get('pid')}) "
                          f"at {server.get('url')}; use that service, or stop it first")
    try:
        with _open_file(db, PrivacySettings().pseudonymizer(), read_only=False) as store:
            store_id = store.store_id()
    except _Locked as e:
        raise ConfigError(conflict_message(db, e.pid, True)) from None
    if registry is not None:
        from feedwise.registry import ModelRegistry

        reg = ModelRegistry(registry, store_id=store_id, db=db)
        promoted = reg.promoted()
        if promoted is not None:
            reg.check_store(promoted)


class _Locked(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


def _lock_pid(err: Exception) -> int | None:
    import re

    m = re.search(r"\(PID (\d+)\)", str(err))
    return int(m.group(1)) if m else None


def _is_lock_error(err: Exception) -> bool:
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text


def _open_file(path: str, pseudonymizer: Any, *, read_only: bool) -> EventStore:
    import duckdb

    from feedwise.store import EventStore

    try:
        store = EventStore(path, read_only=read_only, pseudonymizer=pseudonymizer)
    except duckdb.IOException as e:
        if _is_lock_error(e):
            raise _Locked(_lock_pid(e)) from None
        raise ConfigError(f"{path}: cannot open the store ({e})") from None
    except duckdb.ConnectionException:
        if not read_only:
            raise
        # this process has the file open for writing already (a notebook, a test): DuckDB
        # shares that database with a connection of the same configuration only
        return EventStore(path, pseudonymizer=pseudonymizer)
    if read_only:
        try:
            missing = store.missing_tables()
        except duckdb.Error:
            missing = []
        if missing:  # an older store: a short read-write open adds the new tables
            store.close()
            try:
                EventStore(path, pseudonymizer=pseudonymizer).close()
            except duckdb.IOException:
                pass  # held by another reader: read what is there
            store = EventStore(path, read_only=True, pseudonymizer=pseudonymizer)
    return store


def _holder(pid: int | None) -> str:
    if pid is None:
        return "another process"
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cmd = " ".join(p.decode(errors="replace") for p in raw.split(b"\0") if p)
    except OSError:
        cmd = ""
    if len(cmd) > 80:
        cmd = cmd[:77] + "..."
    return f"process {pid} ({cmd})" if cmd else f"process {pid}"


def conflict_message(path: str, pid: int | None, write: bool) -> str:
    """One line: what holds the store and what to do."""
    holder = _holder(pid)
    if pid == os.getpid():
        return (f"{path} is already open for writing in this process; close that store "
                "before opening it again")
    if "serve" in holder and "feedwise" in holder:
        return (f"{path} is held by a feedwise service, {holder}, that left no state file "
                f"({Deployment.for_store(path).state_path.name}) to reach its admin API; "
                "stop it and start it again with feedwise serve, then run this again")
    what = "write to" if write else "read"
    return (f"{path} is locked by {holder}, which is not a feedwise service; cannot {what} "
            "the store while it runs: wait for it to finish or stop it, then run this again")


# ---------------------------------------------------------------------- the admin API
def _request(server: dict, route: str, body: dict | None = None, timeout: float = 3600.0
             ) -> tuple[int, dict]:
    url = str(server.get("url", "")).rstrip("/") + route
    headers = {"Content-Type": "application/json"}
    key_file = server.get("admin_key_file")
    if key_file:
        try:
            headers["Authorization"] = "Bearer " + Path(key_file).read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read the service's admin key {key_file} "
                              f"({e.strerror}); run this as the user who started feedwise "
                              "serve") from None
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), headers=headers,
                                 method="POST")
    for attempt in range(6):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - ours
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                doc = json.loads(e.read() or b"{}")
            except ValueError:
                doc = {}
            return e.code, doc
        except (urllib.error.URLError, OSError) as e:
            refused = isinstance(getattr(e, "reason", e), ConnectionRefusedError)
            if refused and attempt < 5:  # starting: it writes its state just before binding
                time.sleep(0.2)
                continue
            raise ConfigError(f"a feedwise service (pid {server.get('pid')}) holds the store but "
                              f"does not answer at {url} ({getattr(e, 'reason', e)}); wait for "
                              "it to start or stop it, then run this again (if it is gone, "
                              "delete its state file <store>.serve.json)") from None
    raise AssertionError("unreachable")


def _no_admin(server: dict, status: int, doc: dict) -> ConfigError:
    detail = doc.get("detail") if isinstance(doc, dict) else None
    return ConfigError(f"the feedwise service at {server.get('url')} (pid {server.get('pid')}) "
                       f"holds the store but refused its admin API ({status}: {detail}); "
                       "stop it and start it again with feedwise serve, then run this again")


def _open_snapshot(server: dict, dep: Deployment, pseudonymizer: Any) -> EventStore:
    status, doc = _request(server, "/v1/admin/snapshot", timeout=600)
    if status != 200 or "path" not in doc:
        raise _no_admin(server, status, doc)
    path = str(doc["path"])
    from feedwise.store import EventStore

    class SnapshotStore(EventStore):
        """A read-only snapshot, deleted when closed."""

        def close(self) -> None:
            try:
                super().close()
            finally:
                for p in (path, f"{path}.wal"):
                    with contextlib.suppress(OSError):
                        os.unlink(p)

    try:
        return SnapshotStore(path, read_only=True, pseudonymizer=pseudonymizer)
    except BaseException:
        for p in (path, f"{path}.wal"):
            with contextlib.suppress(OSError):
                os.unlink(p)
        raise


#: Options whose value is a path even before it exists (an output file or folder).
PATH_OPTIONS = {"--out", "-o", "--pdf", "--png", "--db", "--registry", "--models",
                "--exports", "--keys-file", "--config"}


def _absolute(argv: list[str]) -> list[str]:
    """Paths in the command line made absolute (the service runs in another folder): an
    argument naming an existing file or folder, and the value of a path option."""
    out: list[str] = []
    for i, tok in enumerate(argv):
        after_path_option = i > 0 and argv[i - 1] in PATH_OPTIONS
        if tok.startswith("--") and "=" in tok:
            opt, val = tok.split("=", 1)
            out.append(f"{opt}={os.path.abspath(val)}" if val and (
                opt in PATH_OPTIONS or os.path.exists(val)) else tok)
        elif not tok.startswith("-") and not os.path.isabs(tok) and (
                after_path_option or os.path.exists(tok)):
            out.append(os.path.abspath(tok))
        else:
            out.append(tok)
    return out


def _argv() -> list[str]:
    ctx = _current_context(silent=True)
    argv = ctx.meta.get("feedwise.argv") if ctx is not None else None
    if argv is None:
        argv = sys.argv[1:]
    return list(argv)


def forward(server: dict, dep: Deployment) -> None:
    """Run the current command inside the service that holds the store; print what it
    printed and end with its exit code (``typer.Exit``)."""
    argv = _absolute(_argv())
    if not any(t == "--db" or t.startswith("--db=") for t in argv):
        argv += ["--db", str(dep.store_path.resolve())]  # the store found here, not there
    if "--yes" not in argv and "-y" not in argv and tuple(argv[:2]) == ("users", "erase"):
        argv.append("--yes")  # confirmed here already
    status, doc = _request(server, "/v1/admin/exec", {"argv": argv})
    if status != 200:
        raise _no_admin(server, status, doc)
    sys.stdout.write(doc.get("stdout", ""))
    sys.stdout.flush()
    sys.stderr.write(doc.get("stderr", ""))
    sys.stderr.flush()
    raise typer.Exit(code=int(doc.get("exit_code", 1)))


def ask_reload(db: str | None) -> str | None:
    """Ask a live service on the store to serve the promoted model now (after a
    promotion); its served version, ``None`` without a service."""
    try:
        dep = Deployment.for_store(_db_path(db))
    except ConfigError:
        return None
    server = dep.server()
    if server is None:
        return None
    status, doc = _request(server, "/v1/admin/reload", timeout=600)
    return doc.get("version") if status == 200 else None


class _Borrowed:
    """The service's store lent to a command run inside it: closing it does nothing."""

    def __init__(self, store: EventStore) -> None:
        object.__setattr__(self, "_store", store)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store, name, value)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Borrowed:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


# ---------------------------------------------------------------------- the runner
_OUT: ContextVar[io.StringIO | None] = ContextVar("feedwise_exec_out", default=None)
_ERR: ContextVar[io.StringIO | None] = ContextVar("feedwise_exec_err", default=None)


class _Routed(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of the service: a command run by the admin API writes
    to its own buffer (a context variable of its thread), everything else to the stream."""

    def __init__(self, stream: Any, var: ContextVar[io.StringIO | None]) -> None:
        self._stream = stream
        self._var = var

    def _target(self) -> Any:
        return self._var.get() or self._stream

    def write(self, s: str) -> int:
        return self._target().write(s)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        t = self._target()
        return bool(getattr(t, "isatty", lambda: False)())

    def fileno(self) -> int:
        if self._var.get() is not None:
            raise io.UnsupportedOperation("fileno")
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8") or "utf-8"


def install_routing() -> None:
    """Route ``sys.stdout``/``sys.stderr`` through :class:`_Routed` (once per process)."""
    if not isinstance(sys.stdout, _Routed):
        sys.stdout = _Routed(sys.stdout, _OUT)
    if not isinstance(sys.stderr, _Routed):
        sys.stderr = _Routed(sys.stderr, _ERR)


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    t1, t2 = _OUT.set(out), _ERR.set(err)
    try:
        yield out, err
    finally:
        _OUT.reset(t1)
        _ERR.reset(t2)


#: Commands the admin API never runs inside the service.
NOT_IN_SERVICE = frozenset({"serve", "init", "keys"})


def run_command(argv: list[str], store: EventStore) -> dict[str, Any]:
    """Run ``feedwise <argv>`` in this process on ``store`` (the service's), capturing what
    it prints: the admin API's runner (``feedwise serve`` installs it)."""
    from feedwise.cli import app

    if argv and argv[0] in NOT_IN_SERVICE:
        return {"exit_code": 2, "stdout": "",
                "stderr": f"error: feedwise {argv[0]} does not run inside a service\n"}
    command = typer.main.get_command(app)
    token = SERVED_STORE.set(store)
    code = 0
    with _captured() as (out, err):
        try:
            rv = command.main(args=list(argv), prog_name="feedwise", standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except _cx.Exit as e:
            code = e.exit_code
        except _cx.ClickException as e:
            e.show(file=err)
            code = e.exit_code
        except _cx.Abort:
            err.write("aborted\n")
            code = 1
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except Exception as e:  # noqa: BLE001 - reported to the caller, the service goes on
            err.write(f"error: {type(e).__name__}: {e}\n")
            code = 1
        finally:
            SERVED_STORE.reset(token)
    return {"exit_code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
