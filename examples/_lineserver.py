"""The line protocol both eg/ ports speak (shared by preforking.py and forking.py).

Commands are case-insensitive: PID, PING, PARENT, KERNEL, LOGFILE, STATUS,
PEEK, DONE; anything else gets ``???``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from kernelish import ARG0, HEAP, KERNEL
from kernelish.components.daemon import Daemon


def answer(_: Any, logfile: str) -> None:
    """The ``input`` state: one line in, one or more lines out."""
    kernel, heap, line = _[KERNEL], _[HEAP], _[ARG0]
    wheel = heap.get("wheel")
    if wheel is None:
        return
    command = line.strip().upper()
    replies: dict[str, Callable[[], list[str]]] = {
        "PID": lambda: [str(os.getpid())],
        "PING": lambda: ["PONG"],
        "PARENT": lambda: [str(heap.get("parent", 0))],
        "KERNEL": lambda: [kernel.ID],
        "LOGFILE": lambda: [logfile],
        "STATUS": lambda: [*(Daemon.status() or "").splitlines(), "DONE"],
        "PEEK": lambda: [*Daemon.peek(True).splitlines(), "DONE"],
        "DONE": lambda: ["OK"],
    }
    reply = replies.get(command)
    wheel.put(*(reply() if reply else ["???"]))
    if command == "DONE":
        heap["closing"] = True


def flushed(_: Any) -> None:
    """The ``flushed`` state: after ``OK`` went out, close and say 'done'."""
    heap = _[HEAP]
    if heap.pop("closing", False):
        finish(_)


def finish(_: Any) -> None:
    """Drop the connection and tell the Daemon the request is done."""
    heap = _[HEAP]
    if heap.pop("wheel", None) is not None:
        Daemon.update_status("done")
