#!/usr/bin/env python3
"""A pre-forking line server: the port of POE::Component::Daemon's eg/preforking.

    python examples/preforking.py PORT [LOGFILE [PIDFILE]] [--timeout S]

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
The daemon detaches, logs to LOGFILE (default: ``preforking.log`` beside this
file) and keeps a pool of children; each serves one connection then exits.
The command returns once the pool is up, or exits 1 with the daemon's error.
A client that sends no complete line for ``--timeout`` seconds (60) is
disconnected; SIGTERM lets every connection finish its request first.
"""

from __future__ import annotations

import os
from typing import Any

from _lineserver import (
    answer,
    connection,
    daemon_shutdown,
    finish,
    flushed,
    listener_failed,
    parse_args,
)

from kernelish import ARG0, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.wheels import SocketFactory

ARGS = parse_args(__doc__, "preforking")
# With a pidfile, `kernelish status|peek|stop PIDFILE` can talk to the daemon.
LOGFILE, PIDFILE = ARGS.logfile, ARGS.pidfile


def _start(_: Any) -> None:
    kernel, heap = _[KERNEL], _[HEAP]
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1",
        BindPort=ARGS.port,
        Reuse="yes",
        SuccessEvent="accept",
        FailureEvent="error",
    )
    # Pre-forking: accept nothing until the Daemon says we may.
    heap["listener"].pause_accept()
    address = heap["listener"].getsockname()
    if address is not None:  # else the bind failed: "error" says why, soon
        print(f"PORT={address[1]}", flush=True)
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
    heap["wheel"] = connection(handle, ARGS.timeout)


Session.create(
    inline_states={
        "_start": _start,
        "daemon_parent": daemon_parent,
        "daemon_child": daemon_child,
        "daemon_accept": daemon_accept,
        "daemon_shutdown": daemon_shutdown,
        "accept": accept,
        "error": lambda _: listener_failed(_, ARGS.port),
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
