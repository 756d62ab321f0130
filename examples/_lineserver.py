"""The line protocol both eg/ ports speak (shared by preforking.py and forking.py).

Commands are case-insensitive: PID, PING, PARENT, KERNEL, LOGFILE, STATUS,
PEEK, DONE; anything else gets ``???``.

What a server facing the network needs beyond the protocol lives here too:

* every connection's ReadWrite has an idle timeout (``InputTimeout``, 60 s
  unless ``--timeout`` says otherwise): a client that sends no complete line
  for that long is disconnected, so silent clients cannot hold the pool;
* and backpressure (``HighMark``/``LowMark``/``Backpressure``): a client that
  pipelines requests without reading the replies stops being read once
  :data:`HIGH_MARK` octets of replies wait for it;
* a listener failure: ``accept`` errors are only logged (the SocketFactory
  backs off and goes on accepting); a setup error (``bind``: the port is in
  use) is said in one line on stderr and the daemon stops, so the launching
  command prints it and exits 1;
* the graceful stop (``daemon_shutdown``): stop accepting, answer what the
  client already sent, then close -- an idle connection at once.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL
from kernelish.components.daemon import Daemon
from kernelish.filters import Line
from kernelish.wheels import ReadWrite

#: Seconds a connection may go without a complete line (Apache's Timeout).
TIMEOUT = 60.0
#: Octets of unread replies at which a client stops being read ...
HIGH_MARK = 256 * 1024
#: ... and at which it is read again.
LOW_MARK = 64 * 1024


def parse_args(doc: str | None, name: str) -> argparse.Namespace:
    """``PORT [LOGFILE [PIDFILE]] [--timeout S]``; the logfile made absolute."""
    parser = argparse.ArgumentParser(
        description=(doc or "").split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("port", type=int, nargs="?", default=0, help="0: the OS chooses")
    parser.add_argument("logfile", nargs="?", help=f"default: {name}.log beside this file")
    parser.add_argument("pidfile", nargs="?", help="for `kernelish status|peek|stop PIDFILE`")
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        help=f"seconds a client may send no complete line (default {TIMEOUT:g})",
    )
    args = parser.parse_args()
    here = Path(sys.argv[0]).resolve().parent
    args.logfile = str(Path(args.logfile or here / f"{name}.log").resolve())
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def connection(handle: socket.socket, timeout: float) -> ReadWrite:
    """The ReadWrite of one client connection."""
    return ReadWrite(
        Handle=handle,
        Filter=Line(),
        InputEvent="input",
        ErrorEvent="error_rw",
        FlushedEvent="flushed",
        InputTimeout=timeout,
        HighMark=HIGH_MARK,
        LowMark=LOW_MARK,
        Backpressure=True,
    )


def answer(_: Any, logfile: str) -> None:
    """The ``input`` state: one line in, one or more lines out."""
    kernel, heap, line = _[KERNEL], _[HEAP], _[ARG0]
    wheel = heap.get("wheel")
    if wheel is None:
        return
    command = line.strip().upper()
    wheel.put(*replies(command, kernel, heap, logfile))
    if command == "DONE":
        heap["closing"] = True


def replies(command: str, kernel: Any, heap: Any, logfile: str) -> list[str]:
    """The lines that answer ``command`` (upper case)."""
    table: dict[str, Callable[[], list[str]]] = {
        "PID": lambda: [str(os.getpid())],
        "PING": lambda: ["PONG"],
        "PARENT": lambda: [str(heap.get("parent", 0))],
        "KERNEL": lambda: [kernel.ID],
        "LOGFILE": lambda: [logfile],
        "STATUS": lambda: [*(Daemon.status() or "").splitlines(), "DONE"],
        "PEEK": lambda: [*Daemon.peek(True).splitlines(), "DONE"],
        "DONE": lambda: ["OK"],
    }
    reply = table.get(command)
    return reply() if reply else ["???"]


def flushed(_: Any) -> None:
    """The ``flushed`` state: after ``OK`` went out, close and say 'done';
    while stopping, close once nothing more is asked."""
    heap = _[HEAP]
    if heap.pop("closing", False):
        finish(_)
    elif heap.get("draining"):
        close_if_idle(_)


def finish(_: Any) -> None:
    """Drop the connection and tell the Daemon the request is done."""
    heap = _[HEAP]
    if heap.pop("wheel", None) is not None:
        Daemon.update_status("done")


def listener_failed(_: Any, port: int) -> None:
    """The listener's FailureEvent."""
    operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
    if operation == "accept":
        # Out of descriptors or the like: the wheel pauses, then accepts again.
        print(f"{os.getpid()}: accept error {errnum}: {errstr}", file=sys.stderr)
        return
    print(f"{os.getpid()}: {operation} 127.0.0.1:{port}: {errstr}", file=sys.stderr, flush=True)
    _[HEAP].pop("listener", None)
    Daemon.shutdown()


def daemon_shutdown(_: Any) -> None:
    """Stop accepting; a connection is closed once it has been answered."""
    heap = _[HEAP]
    heap.pop("listener", None)
    heap["draining"] = True
    close_if_idle(_)


def close_if_idle(_: Any) -> None:
    """Close the connection unless a request is under way: replies still to
    be written, or requests received but not yet answered (``is_idle``)."""
    wheel = _[HEAP].get("wheel")
    if wheel is not None and wheel.is_idle():
        finish(_)
