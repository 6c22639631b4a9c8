"""`Writer`: the one thread that writes to the store, batching what requests hand it.

DuckDB allows one writer per database, and each transaction has a fixed cost, so every write
of the service goes through one :class:`Writer`. Requests put jobs on a bounded queue and
(for API events) wait on a future; the writer drains whatever is queued, lands all pending
event rows in one ingest transaction (:meth:`EventStore.ingest_rows`), and answers each job
with its own accepted / duplicate / rejected rows. Readers use their own cursors and never
wait for it. :meth:`Writer.close` stops taking jobs and flushes everything queued (graceful
shutdown).

Served impressions skip the queue (:meth:`Writer.log_served`). With ``sync`` the writer is
woken for them at once, and each feed waits for the commit that holds its impressions and
the ad state it changed (group commit: every feed that arrived meanwhile shares it); without
it they land every ``poll_s`` and a ``kill -9`` loses what was not landed yet.
"""

from __future__ import annotations

import itertools
import logging
import operator
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from feedwise.errors import FeedwiseError
from feedwise.schema import EVENT_COLUMNS
from feedwise.server import priority
from feedwise.store import EventStore
from feedwise.store.serving import ServedRows

log = logging.getLogger("feedwise.server.writer")

#: Why a row of an erased user was not stored (an ingest-only key is never told: see
#: ``routes/events.py``).
ERASED_REASON = "the user was erased; their events are no longer stored"

#: One event ready for the store: every column as text (or None), ``event_id`` always set.
EventRow = dict[str, str | None]
#: Events ready for the store as columns: every event column -> one value per row (text or
#: None), ``event_id`` always set. What the writer lands (no per-row work on its thread).
EventColumns = dict[str, list[str | None]]


@dataclass(frozen=True)
class RowError:
    """Why one row of a batch was not stored."""

    index: int
    field: str
    reason: str


@dataclass
class EventsResult:
    """What the store did with one job's rows."""

    accepted: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass
class _EventJob:
    columns: EventColumns
    indices: Sequence[int]  # the position of each row in the client's batch
    future: Future


#: Events the service built itself (impressions), as columns: name -> one value per row.
Served = dict[str, list[Any]]


class ServedBuffer:
    """Served rows handed over feed by feed, kept as one list per column until they are
    taken (thread-safe), with each hand-over's ``then`` and future.

    A feed's rows join lists that live until the next landing: strings and numbers, which
    the garbage collector does not track. Kept as a dict of lists per feed, as before, they
    were thousands of tracked containers alive at once in every serving process: they ran
    the young collections about once a second, each holding the GIL for milliseconds while
    requests waited, and a landing then chained them column by column, holding it again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cols: Served = {}
        self._then: dict[Callable[[], Any], None] = {}  # distinct, in order
        self._futures: list[Future] = []
        #: Rows and hand-overs held.
        self.rows = 0
        self.parts = 0

    def add(self, columns: Served, then: Callable[[], Any] | None = None,
            future: Future | None = None) -> None:
        """Append ``columns`` (one value per row in each; a column earlier rows lack is
        None in them, and a column these lack is None in theirs)."""
        n = len(columns["event_id"])
        if any(len(v) != n for v in columns.values()):
            raise ValueError("every served column needs one value per row")
        with self._lock:
            self._append(columns, n)
            if then is not None:
                self._then[then] = None
            if future is not None:
                self._futures.append(future)

    def _append(self, columns: Served, n: int) -> None:
        cols, total = self._cols, self.rows + n
        for c, v in columns.items():
            col = cols.get(c)
            if col is None:
                cols[c] = col = [None] * self.rows
            col.extend(v)
        if len(cols) > len(columns):
            for col in cols.values():
                if len(col) < total:
                    col.extend([None] * n)
        self.rows, self.parts = total, self.parts + 1

    def take(self) -> tuple[Served, list[Callable[[], Any]], list[Future]]:
        """Everything held (columns, the distinct ``then``s, the futures), emptied."""
        with self._lock:
            got = self._cols, list(self._then), self._futures
            self._cols, self._then, self._futures = {}, {}, []
            self.rows = self.parts = 0
        return got

    def put_back(self, columns: Served) -> None:
        """Put ``columns`` (taken and not delivered) back before what came since."""
        n = len(columns.get("event_id", ()))
        if not n:
            return
        with self._lock:
            later, self._cols = self._cols, {}
            rows, parts, self.rows, self.parts = self.rows, self.parts, 0, 0
            self._append(columns, n)
            if rows:
                self._append(later, rows)
            self.parts = parts + 1


@dataclass
class _CallJob:
    fn: Callable[[EventStore], Any]
    future: Future


_ALL = operator.itemgetter(*EVENT_COLUMNS)  # a row's values in column order


def columns_of(rows: Sequence[EventRow]) -> EventColumns:
    """``rows`` as :data:`EventColumns` (a column a row lacks is None in it)."""
    if not rows:
        return {c: [] for c in EVENT_COLUMNS}
    try:  # rows with every column (the events route's): transposed in C
        return dict(zip(EVENT_COLUMNS, map(list, zip(*map(_ALL, rows), strict=True)),
                        strict=True))
    except (KeyError, ValueError):  # ...else each row's missing columns are None
        return {c: [r.get(c) for r in rows] for c in EVENT_COLUMNS}


_STOP = object()
_WAKE = object()  # served rows wait (sync mode): land them now


class WriterClosedError(FeedwiseError):
    """The writer is shut down (or shutting down) and takes no more jobs."""


class WriteFailedError(WriterClosedError):
    """Storing served rows failed (the request answers 503; a retry with the same request
    id stores nothing twice)."""


class Writer:
    """The single writer thread of a store.

    Args:
        store: The store written to; the service writes to it only from this thread.
        max_rows: Most event rows landed in one transaction.
        queue_size: Pending jobs before :meth:`submit_events` blocks.
        on_ingest: Optional callback ``(accepted, duplicates, rejected)`` after each batch
            (the service counts metrics with it).
        linger_s: How long the first event job of a batch waits for more to join it. Each
            transaction has a fixed cost (tens of ms), so a short wait buys large batches.
        poll_s: How often an idle writer looks for served rows (:meth:`log_served`).
        sync: :meth:`log_served` returns a future resolved once the rows (and what their
            ``then`` writes) are committed, and wakes the writer for them at once.
        on_events: Optional callback ``(columns, accepted positions)`` after each landed
            batch of client events (the service refreshes materialised lists with it).
        nice: Served rows landed on their own (no event batch waiting, no ``sync``) land
            on a thread this much nicer than the writer (:mod:`feedwise.server.priority`)
            while the writer waits for it: the same order, but the landing gives the cores
            to requests in flight. The writer builds their table itself (it holds the GIL,
            which a lowered thread would keep from the event loop while it waits for a
            core). Event batches, and served rows landed with them, stay on the writer at
            its priority, so ingest keeps its pace.
    """

    def __init__(self, store: EventStore, *, max_rows: int = 50_000, queue_size: int = 10_000,
                 on_ingest: Callable[[int, int, int], None] | None = None,
                 linger_s: float = 0.0, poll_s: float = 0.05, sync: bool = False,
                 on_events: Callable[[EventColumns, Sequence[int]], None] | None = None,
                 nice: int = 0) -> None:
        self.store = store
        # the served rows' landings, below the requests (one at a time: the writer waits)
        self._below = (ThreadPoolExecutor(1, "feedwise-writer-served",
                                          initializer=priority.lower_this_thread,
                                          initargs=(nice,)) if nice > 0 else None)
        self.on_events = on_events
        self.linger_s = linger_s
        self.poll_s = poll_s
        self.sync = sync
        self.max_rows = max_rows
        self.on_ingest = on_ingest
        self._q: queue.Queue = queue.Queue(maxsize=queue_size)
        # served rows skip the queue: appending to the buffer wakes no thread, and the writer
        # drains it on its own clock (every poll_s, or at once when woken in sync mode) and
        # before any call queued after it
        self._served = ServedBuffer()
        self._served_at = 0.0  # when served rows were last landed (monotonic)
        self._wake_pending = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="feedwise-writer", daemon=True)
        self._seq = itertools.count()
        self.batches = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Writer:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking jobs, land everything queued, and join the thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join(timeout)
        if self._below is not None:
            self._below.shutdown(wait=not self._thread.is_alive())
        for fut in self._served.take()[2]:  # handed over while the thread stopped
            if not fut.done():  # never answered stored
                fut.set_exception(WriterClosedError("the writer is shut down"))

    def pending(self) -> int:
        return self._q.qsize() + self._served.parts

    # ------------------------------------------------------------------ producers
    def _put(self, job: Any, timeout: float | None) -> None:
        if self._closed:
            raise WriterClosedError("the writer is shut down")
        try:
            self._q.put(job, timeout=timeout)
        except queue.Full:
            raise WriterClosedError("the writer queue is full; retry later") from None

    def submit_events(self, columns: EventColumns, indices: Sequence[int] | None = None,
                      timeout: float | None = 30.0) -> Future:
        """Queue events (:data:`EventColumns`; rows: :func:`columns_of`) for landing; the
        future resolves to an :class:`EventsResult`. ``indices``: each row's position in
        the client's batch, which its errors name (default: 0, 1, ...)."""
        fut: Future = Future()
        idx = indices if indices is not None else range(len(columns["event_id"]))
        self._put(_EventJob(columns, idx, fut), timeout)
        return fut

    def log_served(self, columns: Served, then: Callable[[], Any] | None = None
                   ) -> Future | None:
        """Hand over events the service built itself (impressions of served slots).

        ``columns`` maps event columns to one value per row. The rows are typed (``ts`` a UTC
        datetime, numbers as numbers), valid by construction and carry ``event_id``s in the
        service's namespace (``srv:``), so they skip row validation and land in one
        ``INSERT`` (:meth:`EventStore.log_served`): far cheaper than a validating ingest,
        which matters because every served feed logs one row per slot. Ids already stored
        (a client retrying with the same request id, even after a restart) are not stored
        again. They land within ``poll_s``, and before any :meth:`call` queued after this
        one (an erasure finds them), but not with every event batch: each landing has a
        fixed cost, and under heavy ingest pairing the two halved the events landed per
        second. ``then`` runs on the writer
        thread in the same transaction, right after they are inserted (each distinct
        callable once per landing): the service flushes the ad state of the feed engine that
        served them with it, so impressions and ad state commit together.

        Without ``sync`` this never blocks and wakes no thread: the writer lands them within
        ``poll_s`` and ``None`` is returned. With ``sync`` the writer is woken and the
        returned future resolves once they are committed and ``then`` has returned, or fails
        with :class:`WriteFailedError`.

        Raises:
            WriterClosedError: The writer is shut down, or ``queue_size`` batches are
                already waiting (the caller answers 503; a retry repeats nothing).
        """
        if self._closed:
            raise WriterClosedError("the writer is shut down")
        if self._served.parts >= self._q.maxsize > 0:
            raise WriterClosedError("the writer queue is full; retry later")
        if not self.sync:
            self._served.add(columns, then)
            return None
        fut: Future = Future()
        self._served.add(columns, then, fut)
        if not self._wake_pending:  # one wake-up serves every feed that arrives meanwhile
            self._wake_pending = True
            try:
                self._q.put_nowait(_WAKE)
            except queue.Full:  # the writer is busy: it lands served rows at its next batch
                self._wake_pending = False
        return fut

    def call(self, fn: Callable[[EventStore], Any], timeout: float | None = 30.0) -> Future:
        """Run ``fn(store)`` on the writer thread (upserts, read-modify-writes)."""
        fut: Future = Future()
        self._put(_CallJob(fn, fut), timeout)
        return fut

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                job = self._q.get(timeout=self.poll_s)
            except queue.Empty:
                if self._served.parts:
                    self._land([])
                continue
            batch: list[_EventJob] = []
            rows = 0
            deadline = time.monotonic() + self.linger_s
            while True:
                if job is _STOP:
                    stop = True
                elif job is _WAKE:  # feeds wait on their impressions: no lingering for them
                    self._wake_pending = False
                    self._land_served()
                elif isinstance(job, _EventJob):
                    batch.append(job)
                    rows += len(job.indices)
                else:
                    self._land(batch)
                    batch, rows = [], 0
                    self._do_call(job)
                if rows >= self.max_rows:
                    self._land(batch, self._served_due())
                    batch, rows = [], 0
                if stop:
                    break
                try:
                    wait = deadline - time.monotonic() if batch else 0.0
                    job = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                except queue.Empty:
                    break
            self._land(batch, self._served_due())
        # anything put after the stop marker (a race with close) is still landed
        rest = []
        while True:
            try:
                j = self._q.get_nowait()
            except queue.Empty:
                break
            if isinstance(j, _EventJob):
                rest.append(j)
            elif isinstance(j, _CallJob):
                self._land(rest)
                rest = []
                self._do_call(j)
        self._land(rest)

    def _do_call(self, job: _CallJob) -> None:
        try:
            job.future.set_result(job.fn(self.store))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting request
            job.future.set_exception(e)

    def _land(self, jobs: list[_EventJob], served: bool = True) -> None:
        """Land the served rows handed over so far (with ``served``), then ``jobs``."""
        if served:  # alone, below the requests; with events, at the writer's priority
            self._land_served(below=not jobs and not self.sync)
        self._land_events(jobs)

    def _served_due(self) -> bool:
        """Whether served rows go with this landing of events: ``poll_s`` has passed since
        the last, or a feed waits on them (sync), or they are ``max_rows`` already."""
        if not self._served.parts:
            return False
        return (time.monotonic() - self._served_at >= self.poll_s or self.sync
                or self._served.rows >= self.max_rows)

    def _land_served(self, below: bool = False) -> None:
        """Land every served row handed over so far in one insert, run their ``then``s,
        then answer the waiting feeds; with ``below``, on the lowered thread (``nice``)."""
        self._served_at = time.monotonic()
        cols, then, futures = self._served.take()
        if not cols:
            return
        try:
            # built here, at the writer's priority (this holds the GIL); only the insert goes
            # below: a lowered thread holding the GIL stalls the requests of this process
            rows = ServedRows.of(cols)
            # one transaction: the rows (stored ids and erased users skipped), then what the
            # thens write (the ad state of the engines that served them), one commit
            got = (self._below.submit(self.store.log_served, rows, then).result()
                   if below and self._below is not None else
                   self.store.log_served(rows, then))
        except Exception:  # noqa: BLE001 - answered to the waiting feeds, logged otherwise
            n = len(cols["event_id"])
            log.exception("storing %d served impressions failed", n)
            if self.on_ingest is not None:
                self.on_ingest(0, 0, n)
            err = WriteFailedError("storing the feed's impressions failed; retry with the "
                                   "same X-Request-ID (nothing is stored twice)")
            for f in futures:
                f.set_exception(err)
            return
        self.batches += 1
        if self.on_ingest is not None:
            self.on_ingest(got.landed, got.duplicates, 0)
        for f in futures:
            f.set_result(got)

    def _land_events(self, jobs: list[_EventJob]) -> None:
        if not jobs:
            return
        try:
            results = self._ingest(jobs)
        except Exception:  # noqa: BLE001 - isolate the job that breaks the batch
            if len(jobs) == 1:
                log.exception("landing an event batch failed")
                _fail(jobs[0], RuntimeError("storing the events failed"))
                return
            for j in jobs:
                self._land_events([j])
            return
        for j, r in zip(jobs, results, strict=True):
            j.future.set_result(r)

    def _ingest(self, jobs: list[_EventJob]) -> list[EventsResult]:
        cols = jobs[0].columns if len(jobs) == 1 else {
            c: list(itertools.chain.from_iterable(j.columns[c] for j in jobs))
            for c in EVENT_COLUMNS}
        ids = cols["event_id"]
        source = f"api:{next(self._seq)}:{uuid.uuid4().hex[:12]}"
        got = self.store.ingest_rows(cols, source)
        report = got.report
        self.batches += 1
        took: Sequence[int]
        if report.accepted == len(ids):  # the usual landing: every row new and stored
            out = [EventsResult(accepted=len(j.indices)) for j in jobs]
            took = range(len(ids))
        else:
            out, took = self._per_row(jobs, ids, got)
            total = sum(r.accepted for r in out)
            if total != report.accepted:  # only if another writer touched the file
                log.warning("writer accounting: %d accepted by jobs, %d by the store",
                            total, report.accepted)
        if self.on_ingest is not None:
            self.on_ingest(report.accepted, report.duplicates, report.rejected)
        if self.on_events is not None and took:
            try:
                self.on_events(cols, took)
            except Exception:  # noqa: BLE001 - the events are stored; only a hook failed
                log.exception("the landed-events hook failed")
        return out

    @staticmethod
    def _per_row(jobs: list[_EventJob], ids: list[Any], got: Any
                 ) -> tuple[list[EventsResult], list[int]]:
        """Each job's result row by row, and the landing's positions that were stored."""
        rejected, landed = got.rejected, got.landed
        out, g, seen = [], 0, set(got.existing)
        took: list[int] = []
        for j in jobs:
            res = EventsResult()
            for local in j.indices:
                if g in rejected:
                    fld, reason = rejected[g]
                    res.errors.append(RowError(local, fld, reason))
                elif ids[g] in seen:
                    res.duplicates += 1
                elif landed is not None and ids[g] not in landed:
                    res.errors.append(RowError(local, "user_id", ERASED_REASON))
                else:
                    seen.add(ids[g])
                    res.accepted += 1
                    took.append(g)
                g += 1
            out.append(res)
        return out, took


def _fail(job: _EventJob, err: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(err)
