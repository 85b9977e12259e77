"""A child process that stores the log ingest's batches in a SQLite file.

The ingest parses on one thread and stores on another, but both need the GIL for their
Python and C-API work (sorting and folding ~35,000 rows a batch, binding ~10^5 values), so
on one interpreter they mostly take turns: bench/bench_ingest_synthetic.py measured the two threads
no faster than one. In a child process the store's work runs beside the parser's.

``StoreWorker(url)`` starts the child (``python -m poolwarden.services.ingest.store_worker``, a
fresh interpreter: nothing copied from a parent that may run other threads, nothing of its
``__main__`` run again), which opens its own ``SqlStore`` on the same file and answers each
``add_rows(rows, checkpoint)`` with the rows it newly stored and the counter deltas it
stored for them: ``SqlStore.add_event_rows_at``, one transaction for the events, their
counters and the read position, as on a thread.
Exactly once does not depend on the child: a batch is committed whole or not at all
whoever dies when. If the child dies, ``add_rows`` raises ``StoreError`` and the ingester
starts over from the stored checkpoint, as after any failed write; a parent killed with
SIGKILL leaves a child that finishes the batch it holds, reads end-of-file and exits.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from poolwarden.adapters.sqlstore import SqlStore, open_store
from poolwarden.core.counters import EventRow, event_of
from poolwarden.core.errors import StoreError
from poolwarden.ports import AddResult, Checkpoint, Store, StoredRows

log = logging.getLogger("poolwarden.ingestd")

START_TIMEOUT = 60.0  # seconds for the child to import and open the store
GC_EVERY = 16  # batches between the child's cyclic garbage collections
SEND_ROWS = 2_000  # rows per message to the child (~0.5 ms of pickling each)
WORKER_NICE = 10  # the child's scheduling niceness (the parent's plus this)


def worker_url(store: Store) -> str | None:
    """The URL a worker can open for ``store``: a plain ``SqlStore`` on a SQLite file
    (a subclass may change what a write does, an in-memory database is private to its
    connection, and PostgreSQL works beside the parser already: its server does the work)."""
    if type(store) is not SqlStore:
        return None
    url = store.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return url.render_as_string(hide_password=False)


class StoreWorker:
    """The parent's side: one batch at a time, in order (``Ingestd``'s writer thread)."""

    def __init__(self, url: str) -> None:
        mine, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "poolwarden.services.ingest.store_worker",
                 str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        self._conn = Connection(mine.detach())
        self._conn.send(url)  # not on the command line: ps shows that to everyone
        self._ready = False
        self.url = url

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the child has opened the store (``add_rows`` waits for it too)."""
        if self._ready:
            return
        if not self._conn.poll(timeout):
            raise StoreError(f"store worker: not ready after {timeout:.0f} s")
        self._reply()
        self._ready = True

    def add_rows(self, rows: list[EventRow], checkpoint: Checkpoint | None) -> StoredRows:
        """``SqlStore.add_event_rows_at`` in the child: the rows newly stored, their deltas."""
        self.wait_ready()
        try:
            # in pieces: pickling holds the GIL, and serve's routing agent shares it
            for start in range(0, len(rows), SEND_ROWS):
                self._conn.send(("rows", rows[start:start + SEND_ROWS]))
            self._conn.send(("store", checkpoint))
        except (OSError, ValueError) as exc:
            raise StoreError(f"store worker (pid {self._process.pid}) is gone: the batch "
                             f"could not be sent ({exc})") from exc
        keys, deltas = self._reply()
        if keys is None:  # all stored, no key twice: the common case, no keys sent back
            return StoredRows(added=rows, deltas=deltas)
        wanted = set(keys)
        added: list[EventRow] = []
        for row in rows:
            if row[0] in wanted:
                wanted.discard(row[0])  # the first of repeated keys, as unique_rows keeps it
                added.append(row)
        return StoredRows(added=added, deltas=deltas)

    def _reply(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise StoreError(f"store worker (pid {self._process.pid}) is gone "
                             f"(exit code {self._process.poll()})") from exc
        if status == "error":
            raise value if isinstance(value, StoreError) else StoreError(str(value))
        return value

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def cpu_seconds(self) -> float | None:
        """The child's CPU time so far (Linux /proc), for benchmarks; None elsewhere."""
        try:
            with open(f"/proc/{self._process.pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Ask the child to finish and wait for it (a stuck child is killed)."""
        with contextlib.suppress(OSError, ValueError):  # the child may be gone already
            self._conn.send(None)
        try:
            self._process.wait(10.0)
        except subprocess.TimeoutExpired:
            log.warning("ingest: store worker %s did not stop; killing it", self._process.pid)
            self._process.kill()
            self._process.wait(5.0)
        self._conn.close()


def store_batch_in(worker: StoreWorker, rows: list[EventRow], checkpoint: Checkpoint | None,
                   *, with_events: bool) -> AddResult:
    """``ingest_pipeline.store_batch`` done by ``worker``."""
    stored = worker.add_rows(rows, checkpoint)
    added = stored.added
    return AddResult(added=len(added), duplicates=len(rows) - len(added),
                     added_events=tuple(map(event_of, added)) if with_events else (),
                     deltas=tuple(stored.deltas))


def _serve(conn: Connection) -> None:
    """The child: open the store, then store each batch received until told to stop or
    until the parent is gone (end of file on the socket)."""
    # As in the parser (ingest_pipeline.gc_paused): ~10^5 tuples a batch, no reference
    # cycles made; the cyclic collector would walk them all, several times a batch.
    gc.disable()
    # background work: in serve the routing agent must win the CPU when both want it
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    try:
        url = conn.recv()
        store = open_store(url)
    except Exception as exc:  # sent to the parent, which raises it
        conn.send(("error", _portable(exc)))
        return
    conn.send(("ready", os.getpid()))
    batches = 0
    rows: list[EventRow] = []
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone: nothing more will come
            if message is None:
                return
            what, value = message
            if what == "rows":
                rows.extend(value)
                continue
            batch, rows, message = rows, [], None  # the next batch starts empty, whatever
            try:
                stored = store.add_event_rows_at(batch, value)
            except Exception as exc:
                conn.send(("error", _portable(exc)))
                continue
            added = stored.added
            every = len(added) == len(batch) and len({row[0] for row in batch}) == len(batch)
            conn.send(("ok", (None if every else [row[0] for row in added], stored.deltas)))
            batch = added = []
            del stored
            batches += 1
            if batches % GC_EVERY == 0:
                gc.collect()  # whatever cycles the libraries made, now and then
    finally:
        store.close()


def _portable(exc: BaseException) -> StoreError:
    """The error as the parent can rebuild it: a ``StoreError`` with the same message."""
    if isinstance(exc, StoreError):
        return StoreError(str(exc))
    return StoreError(f"store worker: {type(exc).__name__}: {exc}")


if __name__ == "__main__":  # the child: ``python -m poolwarden.services.ingest.store_worker FD``
    _serve(Connection(int(sys.argv[1])))
