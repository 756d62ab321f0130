#!/usr/bin/env python3
"""A daemon with a pool of database workers: the pattern of
POE::Component::SimpleDBI and POE::Component::Generic, ported.

    python examples/workers.py PORT [LOGFILE [DBFILE]]

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
The daemon detaches, logs to LOGFILE (default ``workers.log`` beside this
file), creates the SQLite database DBFILE (default ``workers.sqlite`` beside
LOGFILE) and keeps WORKERS worker processes -- ``Run`` wheels running
:func:`worker` in a forked child, speaking ``Reference`` over their stdin
and stdout.  Each client query goes to a free worker, or waits in a bounded
queue for one.

The line protocol (CRLF, one request at a time per connection)::

    SET key value   -> OK
    GET key         -> VALUE value | NONE
    DEL key         -> OK n
    FIND prefix     -> ROW key value ... then END n
    COUNT           -> COUNT n
    SLEEP seconds   -> SLEPT (the worker is busy meanwhile; at most 5)
    CRASH           -> the worker dies mid-reply; the client gets
                       ERROR worker crashed, and the worker is replaced
    WORKERS         -> the worker pids, space-separated
    PID             -> the daemon's pid
    QUIT            -> BYE, and the connection closes

Bounds: a line is at most 4 KiB; a connection has one request in flight and
reads no further until its reply is written (BACKLOG requests pipelined in
the same read wait, more close the connection); at most QUEUE queries wait
for a worker (then ``ERROR busy``); a query runs at most TIMEOUT seconds
(then the worker is killed and replaced, and the client gets
``ERROR timeout``).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelish import ARG0, ARG1, ARG2, ARG3, ARG4, HEAP, KERNEL, HandlerArgs, Session, poe_kernel
from kernelish.components.daemon import DaemonComponent
from kernelish.filters import Line, Reference
from kernelish.wheels import ReadWrite, Run, SocketFactory

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 0
LOGFILE = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name("workers.log"))
LOGFILE = LOGFILE.resolve()
DBFILE = Path(sys.argv[3] if len(sys.argv) > 3 else LOGFILE.with_name("workers.sqlite")).resolve()

WORKERS = 3
QUEUE = 100  # queries waiting for a worker
BACKLOG = 16  # requests a connection may send ahead of its replies
TIMEOUT = 10.0  # seconds a query may run
MAX_LINE = 4096


def log(message: str) -> None:
    print(f"{os.getpid()}: {message}", file=sys.stderr, flush=True)


# -- the worker (runs in the child) ---------------------------------------------------


def worker(dbfile: str) -> None:
    """Answer one query at a time: a blocking loop, as SimpleDBI's
    SubProcess is.  Its own connection to the database (never one made
    before the fork)."""
    db = sqlite3.connect(dbfile, timeout=5, isolation_level=None)
    frames = Reference()
    while True:
        data = os.read(0, 65536)
        if not data:
            return  # the daemon closed our stdin: leave
        for query in frames.get([data]):
            if query["op"] == "CRASH":
                # Die in the middle of the reply frame.
                whole = frames.put([{"id": query["id"], "lines": ["never"]}])[0]
                os.write(1, whole[: len(whole) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                reply = {"id": query["id"], "lines": answer(db, query["op"], query["args"])}
            except (sqlite3.Error, ValueError) as exc:
                reply = {"id": query["id"], "error": str(exc)}
            out = memoryview(frames.put([reply])[0])
            while out:
                out = out[os.write(1, out) :]


def answer(db: sqlite3.Connection, op: str, args: list[str]) -> list[str]:
    """One query against the database: the reply's lines."""
    if op == "SET" and len(args) == 2:
        db.execute("INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)", args)
        return ["OK"]
    if op == "GET" and len(args) == 1:
        row = db.execute("SELECT value FROM kv WHERE name = ?", args).fetchone()
        return [f"VALUE {row[0]}" if row else "NONE"]
    if op == "DEL" and len(args) == 1:
        return [f"OK {db.execute('DELETE FROM kv WHERE name = ?', args).rowcount}"]
    if op == "FIND" and len(args) == 1:
        rows = db.execute(
            "SELECT name, value FROM kv WHERE substr(name, 1, length(?)) = ? ORDER BY name",
            (args[0], args[0]),
        ).fetchall()
        return [*(f"ROW {name} {value}" for name, value in rows), f"END {len(rows)}"]
    if op == "COUNT" and not args:
        return [f"COUNT {db.execute('SELECT count(*) FROM kv').fetchone()[0]}"]
    if op == "SLEEP" and len(args) == 1:
        time.sleep(min(max(float(args[0]), 0.0), 5.0))
        return ["SLEPT"]
    raise ValueError(f"bad query: {op} {' '.join(args)}".strip())


def create_database(path: Path) -> None:
    """The example's database: made (or opened) by the daemon before it
    starts any worker, and closed again before it forks one."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")  # readers do not wait for writers
        db.execute("CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT OR IGNORE INTO kv (name, value) VALUES ('hello', 'world')")
    finally:
        db.close()


# -- the daemon's session ------------------------------------------------------------


@dataclass
class Client:
    """A connection: its wheel and the requests it sent while one was in flight."""

    wheel: ReadWrite
    backlog: deque[str] = field(default_factory=deque)
    in_flight: bool = False
    closing: bool = False


@dataclass
class Job:
    """A query a worker is running."""

    client_id: int
    query_id: int
    timer: int | None
    failure: str = "worker crashed"


def _start(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL], _[HEAP]
    create_database(DBFILE)
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1",
        BindPort=PORT,
        Reuse="yes",
        SuccessEvent="accept",
        FailureEvent="listen_error",
    )
    print(f"PORT={heap['listener'].getsockname()[1]}", flush=True)
    heap.update(
        clients={},  # client wheel id -> Client
        workers={},  # worker wheel id -> Run
        jobs={},  # worker wheel id -> Job
        idle=deque(),  # worker wheel ids
        waiting=deque(),  # (client id, query)
        next_query=1,
        shutting_down=False,
    )
    kernel.sig("daemon_shutdown", "daemon_shutdown")
    # The pool starts once run() does: after the Daemon has detached, so the
    # workers are the daemon's own children.
    kernel.yield_("fill_pool")


def fill_pool(_: HandlerArgs) -> None:
    heap = _[HEAP]
    while not heap["shutting_down"] and len(heap["workers"]) < WORKERS:
        wheel = Run(
            Program=worker,
            ProgramArgs=[str(DBFILE)],
            StdioFilter=Reference(),
            StdoutEvent="worker_reply",
            StderrEvent="worker_stderr",
            ErrorEvent="worker_error",
            CloseEvent="worker_closed",
            CloseOnCall=True,  # the worker keeps none of the daemon's sockets
        )
        heap["workers"][wheel.ID] = wheel
        _[KERNEL].sig_child(wheel.PID, "worker_exited")
        log(f"worker {wheel.PID} started")
        worker_free(heap, wheel.ID)


def worker_free(heap: dict[str, Any], wheel_id: int) -> None:
    """A worker is free: give it the next waiting query, or keep it idle."""
    while heap["waiting"]:
        client_id, query = heap["waiting"].popleft()
        if client_id in heap["clients"]:
            send_query(heap, wheel_id, client_id, query)
            return
    heap["idle"].append(wheel_id)


def send_query(heap: dict[str, Any], wheel_id: int, client_id: int, query: dict[str, Any]) -> None:
    timer = poe_kernel.delay_set("query_timeout", TIMEOUT, wheel_id, query["id"])
    heap["jobs"][wheel_id] = Job(client_id, query["id"], timer)
    heap["workers"][wheel_id].put(query)


# -- clients ----------------------------------------------------------------------------


def accept(_: HandlerArgs) -> None:
    wheel = ReadWrite(
        Handle=_[ARG0],
        Filter=Line(MaxLength=MAX_LINE),
        InputEvent="client_input",
        ErrorEvent="client_error",
        FlushedEvent="client_flushed",
    )
    _[HEAP]["clients"][wheel.ID] = Client(wheel)


def client_input(_: HandlerArgs) -> None:
    heap, line, client_id = _[HEAP], _[ARG0], _[ARG1]
    client = heap["clients"].get(client_id)
    if client is None:
        return
    if client.in_flight:
        # Lines that came in the same read as the one being answered.
        if len(client.backlog) >= BACKLOG:
            log(f"client {client_id}: more than {BACKLOG} requests pipelined; closing")
            del heap["clients"][client_id]
            return
        client.backlog.append(line)
        return
    request(heap, client_id, client, line)


def request(heap: dict[str, Any], client_id: int, client: Client, line: str) -> None:
    """One request: answered here, or sent to a worker."""
    words = line.split()
    op = words[0].upper() if words else ""
    # One request in flight per connection: read no more until it is answered.
    client.in_flight = True
    client.wheel.pause_input()
    if op == "QUIT":
        client.closing = True
        reply(heap, client_id, ["BYE"])
    elif op == "PID":
        reply(heap, client_id, [str(os.getpid())])
    elif op == "WORKERS":
        pids = sorted(wheel.PID for wheel in heap["workers"].values())
        reply(heap, client_id, [" ".join(map(str, pids))])
    else:
        query = {"id": heap["next_query"], "op": op, "args": words[1:]}
        heap["next_query"] += 1
        if heap["idle"]:
            send_query(heap, heap["idle"].popleft(), client_id, query)
        elif len(heap["waiting"]) < QUEUE:
            heap["waiting"].append((client_id, query))
        else:
            reply(heap, client_id, ["ERROR busy"])


def reply(heap: dict[str, Any], client_id: int, lines: list[str]) -> None:
    client = heap["clients"].get(client_id)
    if client is not None:
        client.wheel.put(*lines)


def client_flushed(_: HandlerArgs) -> None:
    """The reply is written: the next request (or the close after BYE)."""
    heap, client_id = _[HEAP], _[ARG0]
    client = heap["clients"].get(client_id)
    if client is None:
        return
    if client.closing:
        del heap["clients"][client_id]
        return
    client.in_flight = False
    if client.backlog:
        request(heap, client_id, client, client.backlog.popleft())
    else:
        client.wheel.resume_input()


def client_error(_: HandlerArgs) -> None:
    _[HEAP]["clients"].pop(_[ARG3], None)


# -- workers ----------------------------------------------------------------------------


def worker_reply(_: HandlerArgs) -> None:
    heap, result, wheel_id = _[HEAP], _[ARG0], _[ARG1]
    job = heap["jobs"].get(wheel_id)
    if job is None or job.query_id != result.get("id"):
        log(f"worker wheel {wheel_id}: an answer nobody asked for: {result!r}")
        return
    del heap["jobs"][wheel_id]
    _[KERNEL].alarm_remove(job.timer)
    if "error" in result:
        reply(heap, job.client_id, [f"ERROR {result['error']}"])
    else:
        reply(heap, job.client_id, result["lines"])
    worker_free(heap, wheel_id)


def worker_stderr(_: HandlerArgs) -> None:
    wheel = _[HEAP]["workers"].get(_[ARG1])
    log(f"worker {wheel.PID if wheel else '?'}: {_[ARG0]}")


def worker_error(_: HandlerArgs) -> None:
    operation, errnum, errstr, wheel_id, handle = _[ARG0 : ARG4 + 1]
    if errnum:  # errnum 0 is end of file, the normal end of a stream
        log(f"worker wheel {wheel_id}: {operation} {handle} error {errnum}: {errstr}")


def query_timeout(_: HandlerArgs) -> None:
    heap, wheel_id, query_id = _[HEAP], _[ARG0], _[ARG1]
    job = heap["jobs"].get(wheel_id)
    if job is not None and job.query_id == query_id:
        job.timer, job.failure = None, "timeout"
        heap["workers"][wheel_id].kill("KILL")


def worker_closed(_: HandlerArgs) -> None:
    """The worker's stdout and stderr ended: it died (or was told to go).
    A client it was serving gets an error; a new worker takes its place."""
    kernel, heap, wheel_id = _[KERNEL], _[HEAP], _[ARG0]
    wheel = heap["workers"].pop(wheel_id, None)
    if wheel is None:
        return
    if wheel_id in heap["idle"]:
        heap["idle"].remove(wheel_id)
    job = heap["jobs"].pop(wheel_id, None)
    if job is not None:
        if job.timer is not None:
            kernel.alarm_remove(job.timer)
        reply(heap, job.client_id, [f"ERROR {job.failure}"])
    log(f"worker {wheel.PID} closed")
    kernel.yield_("fill_pool")


def worker_exited(_: HandlerArgs) -> None:
    pid, status = _[ARG1], _[ARG2]
    if os.WIFSIGNALED(status):
        log(f"worker {pid} killed by signal {os.WTERMSIG(status)}")
    else:
        log(f"worker {pid} exited with {os.WEXITSTATUS(status)}")


def listen_error(_: HandlerArgs) -> None:
    log(f"listener: {_[ARG0]} error {_[ARG1]}: {_[ARG2]}")
    _[HEAP].pop("listener", None)


def daemon_shutdown(_: HandlerArgs) -> None:
    """TERM (or INT): stop listening; the workers read end of file and go."""
    heap = _[HEAP]
    heap["shutting_down"] = True
    heap.pop("listener", None)
    heap["clients"].clear()
    heap["waiting"].clear()
    for wheel in heap["workers"].values():
        wheel.shutdown_stdin()


Session.create(
    inline_states={
        "_start": _start,
        "fill_pool": fill_pool,
        "accept": accept,
        "client_input": client_input,
        "client_flushed": client_flushed,
        "client_error": client_error,
        "worker_reply": worker_reply,
        "worker_stderr": worker_stderr,
        "worker_error": worker_error,
        "worker_closed": worker_closed,
        "worker_exited": worker_exited,
        "query_timeout": query_timeout,
        "listen_error": listen_error,
        "daemon_shutdown": daemon_shutdown,
    }
)

DaemonComponent.spawn(alias="Daemon", logfile=str(LOGFILE), detach=True, verbose=True)

poe_kernel.run()
