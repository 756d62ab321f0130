#!/usr/bin/env python3
"""A post-forking line server: the port of POE::Component::Daemon's eg/forking.

    python examples/forking.py PORT [LOGFILE [PIDFILE]] [--timeout S]

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
The daemon detaches, logs to LOGFILE (default: ``forking.log`` beside this
file), and forks one child per connection, at most three at a time; the
listener pauses while three are busy.  ``kill -USR1`` dumps the kernel state.
The command returns once the daemon is up, or exits 1 with its error.  A
client that sends no complete line for ``--timeout`` seconds (60) is
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

from kernelish import ARG0, ARG1, ARG3, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.wheels import SocketFactory

ARGS = parse_args(__doc__, "forking")
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
    address = heap["listener"].getsockname()
    if address is not None:  # else the bind failed: "error" says why, soon
        print(f"PORT={address[1]}", flush=True)
    kernel.sig("daemon_child", "daemon_child")
    kernel.sig("daemon_parent", "daemon_parent")
    kernel.sig("daemon_pause", "daemon_pause")
    kernel.sig("daemon_accept", "daemon_accept")
    kernel.sig("daemon_shutdown", "shutdown")
    kernel.state("USR1", lambda _: Daemon.peek(True))
    kernel.sig("USR1", "USR1")


def daemon_parent(_: Any) -> None:
    _[HEAP]["parent"] = os.getpid()


def daemon_pause(_: Any) -> None:
    listener = _[HEAP].get("listener")
    if listener is not None:
        listener.pause_accept()


def daemon_accept(_: Any) -> None:
    listener = _[HEAP].get("listener")
    if listener is not None:
        listener.resume_accept()


def accept(_: Any) -> None:
    handle, peer, port, wheel_id = _[ARG0 : ARG3 + 1]
    info = {"handle": handle, "peer": peer, "port": port, "id": wheel_id}
    Daemon.update_status("req", info)


def daemon_child(_: Any) -> None:
    # We are the child forked for this request: ARG1 is the info from accept.
    heap, info = _[HEAP], _[ARG1]
    heap.pop("listener", None)
    heap["wheel"] = connection(info["handle"], ARGS.timeout)


def shutdown(_: Any) -> None:
    daemon_shutdown(_)
    _[KERNEL].sig("USR1")


Session.create(
    inline_states={
        "_start": _start,
        "daemon_parent": daemon_parent,
        "daemon_child": daemon_child,
        "daemon_pause": daemon_pause,
        "daemon_accept": daemon_accept,
        "shutdown": shutdown,
        "accept": accept,
        "error": lambda _: listener_failed(_, ARGS.port),
        "input": lambda _: answer(_, LOGFILE),
        "flushed": flushed,
        "error_rw": finish,
    }
)

DaemonComponent.spawn(
    alias="Daemon", logfile=LOGFILE, pidfile=PIDFILE, detach=True, verbose=True, max_children=3
)

poe_kernel.run()
if Daemon.is_child():
    os._exit(0)  # a child leaves at once; see Daemon.is_child
