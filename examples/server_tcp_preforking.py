#!/usr/bin/env python3
"""The pre-forking line server of ``examples/preforking.py``, on ServerTCP.

    python examples/server_tcp_preforking.py PORT [LOGFILE [PIDFILE]] [--timeout S]

The same arguments, line protocol (``examples/_lineserver.py``) and Daemon
settings as ``examples/preforking.py``; the listener's glue -- paused in
the parent, accepting in a child on ``daemon_accept``, ``update_status``
around each connection, the graceful stop -- is ``ServerTCP(Daemon=True)``.
Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
"""

from __future__ import annotations

import os
from typing import Any

from _lineserver import HIGH_MARK, LOW_MARK, listener_failed, parse_args, replies

from kernelish import ARG0, HEAP, KERNEL, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.server_tcp import ServerTCP

ARGS = parse_args(__doc__, "server_tcp_preforking")
LOGFILE, PIDFILE = ARGS.logfile, ARGS.pidfile


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
