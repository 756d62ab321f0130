"""The example line servers of kernelish, in the foreground and parameterised.

    python bench/servers/kernelish_server.py prefork [--requests 1000] [--start-children 8] ...
    python bench/servers/kernelish_server.py fork [--max-children 8] [--marks FILE]

``prefork`` is ``examples/preforking.py`` and ``fork`` is ``examples/forking.py``
without ``detach`` and the logfile: a SocketFactory line server under the
Daemon component, speaking ``PING`` -> ``PONG``, ``PID``, ``DONE`` -> ``OK``
then close.  Prints ``PORT=N`` once listening.  SIGTERM shuts the Daemon
down (children included).

``--marks FILE`` (post-forking only, for ``bench/forkprofile.py``): each
child appends one line to FILE with its page faults and CPU time at each
step from ``fork()`` to its exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from _marks import child_exit, mark, watch_forks  # first: its at-fork hook runs before the kernel's

# The standard library's own at-fork hooks (threading's, logging's: every
# program that logs has them), before the kernel's, are a step of their own.
# isort: split
import logging  # noqa: F401
import threading  # noqa: F401

os.register_at_fork(after_in_child=lambda: mark("stdlib"))

from kernelish import ARG0, HEAP, KERNEL, Session, poe_kernel  # noqa: E402

# After the kernel's own at-fork hook (registered when kernelish is imported):
# its re-initialisation is a step of its own, before the Daemon's become_child
# (which runs where fork() returns; the Daemon registers no hook).
os.register_at_fork(after_in_child=lambda: mark("kernel"))

from kernelish.components.daemon import Daemon, DaemonComponent  # noqa: E402
from kernelish.filters import Line  # noqa: E402
from kernelish.wheels import ReadWrite, SocketFactory  # noqa: E402


def answer(_: Any) -> None:
    """One line in, one line out (the protocol of ``examples/_lineserver.py``)."""
    heap = _[HEAP]
    wheel = heap.get("wheel")
    if wheel is None:
        return
    mark("input")
    command = _[ARG0].strip().upper()
    if command == "PING":
        wheel.put("PONG")
    elif command == "DONE":
        wheel.put("OK")
        heap["closing"] = True
    elif command == "PID":
        wheel.put(str(os.getpid()))
    else:
        wheel.put("???")


def flushed(_: Any) -> None:
    if _[HEAP].pop("closing", False):
        finish(_)


def finish(_: Any) -> None:
    mark("done")
    if _[HEAP].pop("wheel", None) is not None:
        Daemon.update_status("done")


def listen(_: Any, paused: bool) -> None:
    heap = _[HEAP]
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1",
        BindPort=0,
        Reuse="yes",
        SuccessEvent="accept",
        FailureEvent="error",
    )
    if paused:
        heap["listener"].pause_accept()
    print(f"PORT={heap['listener'].getsockname()[1]}", flush=True)


def error(_: Any) -> None:
    print(f"{os.getpid()}: {_[ARG0]} error {_[ARG0 + 1]}: {_[ARG0 + 2]}", file=sys.stderr)
    _[HEAP].pop("listener", None)


def shutdown(_: Any) -> None:
    _[HEAP].pop("listener", None)
    _[HEAP].pop("wheel", None)


def resume(_: Any) -> None:
    listener = _[HEAP].get("listener")
    if listener is not None:
        listener.resume_accept()


def new_wheel(handle: Any) -> ReadWrite:
    return ReadWrite(
        Handle=handle,
        Filter=Line(),
        InputEvent="input",
        ErrorEvent="error_rw",
        FlushedEvent="flushed",
    )


#: The states both modes share: the line protocol and the Daemon's signals.
SHARED_STATES: dict[str, Any] = {
    "daemon_accept": resume,
    "daemon_shutdown": shutdown,
    "error": error,
    "input": answer,
    "flushed": flushed,
    "error_rw": finish,
}


def prefork_session() -> None:
    def _start(_: Any) -> None:
        listen(_, paused=True)
        for name in ("daemon_child", "daemon_accept", "daemon_shutdown"):
            _[KERNEL].sig(name, name)

    def accept(_: Any) -> None:
        heap = _[HEAP]
        heap["listener"].pause_accept()
        Daemon.update_status("req")
        heap["wheel"] = new_wheel(_[ARG0])

    Session.create(
        inline_states={
            **SHARED_STATES,
            "_start": _start,
            "daemon_child": lambda _: Daemon.update_status("wait"),
            "accept": accept,
        }
    )


def fork_session() -> None:
    def _start(_: Any) -> None:
        listen(_, paused=False)
        for name in ("daemon_child", "daemon_pause", "daemon_accept", "daemon_shutdown"):
            _[KERNEL].sig(name, name)

    def accept(_: Any) -> None:
        Daemon.update_status("req", {"handle": _[ARG0]})

    def daemon_child(_: Any) -> None:
        mark("daemon_child")
        heap = _[HEAP]
        heap.pop("listener", None)
        heap["wheel"] = new_wheel(_[ARG0 + 1]["handle"])
        mark("wheel")

    Session.create(
        inline_states={
            **SHARED_STATES,
            "_start": _start,
            "daemon_child": daemon_child,
            "daemon_pause": lambda _: _[HEAP]["listener"].pause_accept(),
            "accept": accept,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("prefork", "fork"))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--start-children", type=int, default=8)
    parser.add_argument("--min-spare", type=int, default=2)
    parser.add_argument("--max-spare", type=int, default=None)
    parser.add_argument("--max-children", type=int, default=None)
    parser.add_argument("--marks", default=None, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.marks:
        watch_forks(opts.marks)
    if opts.mode == "prefork":
        prefork_session()
        params: dict[str, Any] = {
            "start_children": opts.start_children,
            "requests": opts.requests,
            "min_spare": opts.min_spare,
        }
        if opts.max_spare is not None:
            params["max_spare"] = opts.max_spare
        if opts.max_children is not None:
            params["max_children"] = opts.max_children
    else:
        fork_session()
        params = {"max_children": opts.max_children or 8}
    DaemonComponent.spawn(alias="Daemon", detach=False, **params)
    poe_kernel.run()
    if Daemon.is_child():
        child_exit()
        os._exit(0)  # a child leaves at once, as the examples' children do


if __name__ == "__main__":
    main()
