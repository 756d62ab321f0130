#!/usr/bin/env python3
"""The post-forking line server of ``examples/forking.py``, on ServerTCP.

    python examples/server_tcp_forking.py PORT [LOGFILE [PIDFILE]] [--timeout S]

The same arguments, line protocol (``examples/_lineserver.py``) and Daemon
settings as ``examples/forking.py``: one child per connection, at most
three at a time, ``kill -USR1`` dumps the kernel state.  The glue --
``update_status('req', info)`` in the parent, the connection's session
started in the child on ``daemon_child``, pause and resume with the pool,
the graceful stop -- is ``ServerTCP(Daemon=True)``.  Port 0 lets the OS
choose; the chosen port is printed first as ``PORT=N``.
"""

from __future__ import annotations

import os
from typing import Any

from _lineserver import HIGH_MARK, LOW_MARK, listener_failed, parse_args, replies

from kernelish import ARG0, HEAP, KERNEL, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.server_tcp import ServerTCP

ARGS = parse_args(__doc__, "server_tcp_forking")
LOGFILE, PIDFILE = ARGS.logfile, ARGS.pidfile


def started(_: Any) -> None:
    kernel = _[KERNEL]
    kernel.state("USR1", lambda _: Daemon.peek(True))
    kernel.sig("USR1", "USR1")


def client_input(_: Any) -> None:
    kernel, heap = _[KERNEL], _[HEAP]
    command = _[ARG0].strip().upper()
    heap["client"].put(*replies(command, kernel, heap, LOGFILE))
    if command == "DONE":
        kernel.yield_("shutdown")  # closes once OK is flushed


server = ServerTCP(
    Address="127.0.0.1",
    Port=ARGS.port,
    Daemon=True,
    Started=started,
    ClientInput=client_input,
    ClientConnected=lambda _: _[HEAP].update(parent=os.getppid()),
    ClientIdleTimeout=ARGS.timeout,
    HighMark=HIGH_MARK,
    LowMark=LOW_MARK,
    Error=lambda _: listener_failed(_, ARGS.port),
)
if server.port is not None:  # else the bind failed: Error says why, soon
    print(f"PORT={server.port}", flush=True)

DaemonComponent.spawn(
    alias="Daemon", logfile=LOGFILE, pidfile=PIDFILE, detach=True, verbose=True, max_children=3
)

poe_kernel.run()
if Daemon.is_child():
    os._exit(0)  # a child leaves at once; see Daemon.is_child
