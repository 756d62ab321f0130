#!/usr/bin/env python3
"""A pre-forking line server: the port of POE::Component::Daemon's eg/preforking.

    python examples/preforking.py PORT [LOGFILE [PIDFILE]]

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
The daemon detaches, logs to LOGFILE (default: ``preforking.log`` beside this
file) and keeps a pool of children; each serves one connection then exits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from _lineserver import answer, finish, flushed

from kernelish import ARG0, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.filters import Line
from kernelish.wheels import ReadWrite, SocketFactory

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 0
LOGFILE = str(
    Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name("preforking.log"))
)
LOGFILE = str(Path(LOGFILE).resolve())
# With a pidfile, `kernelish status|peek|stop PIDFILE` can talk to the daemon.
PIDFILE = sys.argv[3] if len(sys.argv) > 3 else None


def _start(_: Any) -> None:
    kernel, heap = _[KERNEL], _[HEAP]
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1",
        BindPort=PORT,
        Reuse="yes",
        SuccessEvent="accept",
        FailureEvent="error",
    )
    # Pre-forking: accept nothing until the Daemon says we may.
    heap["listener"].pause_accept()
    print(f"PORT={heap['listener'].getsockname()[1]}", flush=True)
    kernel.sig("daemon_child", "daemon_child")
    kernel.sig("daemon_parent", "daemon_parent")
    kernel.sig("daemon_accept", "daemon_accept")
    kernel.sig("daemon_shutdown", "daemon_shutdown")


def daemon_parent(_: Any) -> None:
    _[HEAP]["parent"] = os.getpid()


def daemon_child(_: Any) -> None:
    # We are a child now: get ready, then wait for daemon_accept.
    Daemon.update_status("wait")


def daemon_accept(_: Any) -> None:
    listener = _[HEAP].get("listener")
    if listener is not None:
        listener.resume_accept()


def accept(_: Any) -> None:
    heap, handle = _[HEAP], _[ARG0]
    heap["listener"].pause_accept()
    Daemon.update_status("req")
    heap["wheel"] = ReadWrite(
        Handle=handle,
        Filter=Line(),
        InputEvent="input",
        ErrorEvent="error_rw",
        FlushedEvent="flushed",
    )


def error(_: Any) -> None:
    operation, errnum, errstr = _[ARG0], _[ARG0 + 1], _[ARG0 + 2]
    print(f"{os.getpid()}: {operation} error {errnum}: {errstr}", file=sys.stderr)
    _[HEAP].pop("listener", None)


def daemon_shutdown(_: Any) -> None:
    heap = _[HEAP]
    heap.pop("listener", None)
    heap.pop("wheel", None)


Session.create(
    inline_states={
        "_start": _start,
        "daemon_parent": daemon_parent,
        "daemon_child": daemon_child,
        "daemon_accept": daemon_accept,
        "daemon_shutdown": daemon_shutdown,
        "accept": accept,
        "error": error,
        "input": lambda _: answer(_, LOGFILE),
        "flushed": flushed,
        "error_rw": finish,
    }
)

DaemonComponent.spawn(
    alias="Daemon",
    logfile=LOGFILE,
    pidfile=PIDFILE,
    detach=True,
    verbose=True,
    start_children=1,
    requests=1,
    min_spare=2,
    max_children=10,
)

poe_kernel.run()
if Daemon.is_child():
    os._exit(0)  # a child leaves at once; see Daemon.is_child
