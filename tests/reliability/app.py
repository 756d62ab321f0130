#!/usr/bin/env python3
"""A configurable pre-forking line server for the reliability suite.

    python tests/reliability/app.py --logfile PATH --status-file PATH [options]

Like ``examples/preforking.py``, but every Daemon parameter comes from the
command line, and it carries the instruments the reliability tests need:

* ``PORT=N`` is printed on stdout first (before ``spawn()``);
* the parent writes a JSON snapshot of its view of the pool (its children,
  every scoreboard slot with its pid, the exits it reaped with their wait
  status, the forks that failed) to ``--status-file`` every
  ``--status-interval`` seconds, atomically (write + rename);
* ``--fork-fail-file PATH``: while PATH exists, every fork the component
  attempts fails with the errno named in it (``EAGAIN``, ``EPERM``, ...);
* ``--ignore-term``: children ignore SIGTERM (a stuck worker);
* ``--handle-die``: a DIE watcher answers ``ERR ...`` and handles the error;
  without it an exception in a handler is unhandled and ends the child;
* ``--timeout S``: the connections' idle timeout (``InputTimeout``, 60 s);
  every connection also has the examples' backpressure;
* ``--child-nofile N``: children run with ``RLIMIT_NOFILE`` N (for ``FILL``);
* ``--die-at-start PATH``: while PATH exists, a new child exits (status 3)
  before it says it is ready -- a crash loop;
* ``--usr1-drops-listener``: SIGUSR1 makes the parent close its listener (a
  program that lost it), so children forked after that have none;
* ``--pidfile PATH``: the Daemon's pidfile (and control socket).

SIGTERM is graceful: a connection is closed once every request it sent was
answered (``SLEEP`` included), an idle one at once.

The protocol (one command per line, case-insensitive): ``PID``, ``PPID``,
``PING`` -> ``PONG``, ``IDS`` -> the /proc/self/status Uid/Gid/Groups lines
and ``DONE``, ``SETUID0`` -> ``DENIED`` or ``ROOT``, ``RAISE`` -> an
exception in the handler, ``LOG N`` -> N numbered lines on stderr then
``WROTE total``, ``LOGRATE R S`` -> R lines a second for S seconds then
``WROTE total``, ``SLEEP S`` -> ``SLEPT`` after S seconds, ``FILL S`` ->
``FILLING``, and once this connection is closed the child opens descriptors
until ``EMFILE`` and holds them S seconds, ``DONE`` -> ``OK`` and close;
anything else gets ``???``.  Log lines are
``L <pid> <seq> <padding>`` so a torn or lost line shows.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kernelish import ARG0, ARG1, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.daemon import _component as component_module
from kernelish.filters import Line
from kernelish.wheels import ReadWrite, SocketFactory

#: Padding that makes each log line 100 octets long, so a torn line shows.
PAD = "x" * 72


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--logfile", required=True)
    p.add_argument("--status-file", required=True)
    p.add_argument("--status-interval", type=float, default=0.02)
    p.add_argument("--detach", action="store_true")
    p.add_argument("--start-children", type=int, default=2)
    p.add_argument("--min-spare", type=int)
    p.add_argument("--max-spare", type=int)
    p.add_argument("--max-children", type=int)
    p.add_argument("--requests", type=int)
    p.add_argument("--user")
    p.add_argument("--shutdown-timeout", type=float)
    p.add_argument("--babysit", type=float)
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--handle-die", action="store_true")
    p.add_argument("--fork-fail-file")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--child-nofile", type=int)
    p.add_argument("--die-at-start")
    p.add_argument("--usr1-drops-listener", action="store_true")
    p.add_argument("--pidfile")
    return p.parse_args(argv)


ARGS = parse_args(sys.argv[1:])
STATE: dict[str, Any] = {"parent": 0, "exits": [], "fork_failures": 0, "seq": 0, "filled": []}
DAEMON: list[DaemonComponent] = []


# -- fault injection -------------------------------------------------------------------

_real_fork = os.fork


def injected_fork() -> int:
    """os.fork, unless ``--fork-fail-file`` exists: then fail with its errno."""
    path = ARGS.fork_fail_file
    try:
        name = Path(path).read_text().strip() if path else ""
    except FileNotFoundError:
        name = ""
    if not name:
        return _real_fork()
    num = int(name) if name.isdigit() else int(getattr(errno, name))
    STATE["fork_failures"] += 1
    raise OSError(num, os.strerror(num))


component_module.fork_process = injected_fork


# -- the parent's snapshots ------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    daemon = DAEMON[0] if DAEMON else None
    board = daemon.scoreboard if daemon is not None else None
    return {
        "pid": os.getpid(),
        "t": time.time(),
        "mono": time.monotonic(),
        "children": {str(k): v for k, v in ((daemon.children or {}) if daemon else {}).items()},
        "slots": [[s.status, s.pid] for s in board.slots()] if board is not None else [],
        "exits": STATE["exits"],
        "fork_failures": STATE["fork_failures"],
        "min_spare": daemon.config.min_spare if daemon else None,
    }


def save_snapshot() -> None:
    path = ARGS.status_file
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(snapshot(), fh)
    os.replace(tmp, path)


def write_snapshot(_: Any) -> None:
    if os.getpid() != STATE["parent"]:
        return  # a child inherited the timer
    save_snapshot()
    _[KERNEL].delay("snapshot", ARGS.status_interval)


# -- the session -----------------------------------------------------------------------


def _start(_: Any) -> None:
    kernel, heap = _[KERNEL], _[HEAP]
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1",
        BindPort=ARGS.port,
        Reuse="yes",
        SuccessEvent="accept",
        FailureEvent="error",
    )
    heap["listener"].pause_accept()
    print(f"PORT={heap['listener'].getsockname()[1]}", flush=True)
    for name in ("daemon_child", "daemon_parent", "daemon_accept", "daemon_shutdown"):
        kernel.sig(name, name)
    kernel.sig("CHLD", "on_chld")
    if ARGS.usr1_drops_listener:
        kernel.sig("USR1", "drop_listener")
    if ARGS.handle_die:
        kernel.sig("DIE", "on_die")


def daemon_parent(_: Any) -> None:
    STATE["parent"] = os.getpid()
    write_snapshot(_)


def daemon_child(_: Any) -> None:
    kernel = _[KERNEL]
    kernel.delay("snapshot")
    kernel.sig("CHLD")
    kernel.sig("USR1")
    STATE["exits"] = []
    if ARGS.die_at_start and os.path.exists(ARGS.die_at_start):
        os._exit(3)  # before it ever says 'wait': a death at start
    if ARGS.child_nofile:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (ARGS.child_nofile, hard))
    if ARGS.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kernel.delay("tick", 3600)  # work to do, so IDLE never ends it
    Daemon.update_status("wait")


def daemon_accept(_: Any) -> None:
    listener = _[HEAP].get("listener")
    if listener is not None:
        listener.resume_accept()


def drop_listener(_: Any) -> None:
    _[HEAP].pop("listener", None)
    _[KERNEL].sig_handled()


def daemon_shutdown(_: Any) -> None:
    heap = _[HEAP]
    heap.pop("listener", None)
    heap["draining"] = True  # answer what was asked, then close
    close_if_idle(_)
    _[KERNEL].delay("snapshot")
    _[KERNEL].delay("logtick")
    _[KERNEL].sig("DIE")
    if os.getpid() == STATE["parent"]:
        save_snapshot()  # and again at each exit: see on_chld
        if DAEMON and DAEMON[0].children:
            # Stay to record the children's exits (a session with nothing
            # to do would be collected at once).
            kernel = _[KERNEL]
            kernel.refcount_increment(kernel.get_active_session().ID, "exits")


def on_chld(_: Any) -> None:
    if os.getpid() == STATE["parent"]:
        STATE["exits"].append([_[ARG1], _[ARG1 + 1], time.time()])
        if DAEMON and DAEMON[0].die:
            save_snapshot()  # the snapshot timer has stopped
            if not DAEMON[0].children:
                kernel = _[KERNEL]
                kernel.refcount_decrement(kernel.get_active_session().ID, "exits")


def on_die(_: Any) -> None:
    payload = _[ARG1]
    print(f"{os.getpid()}: DIE handled: {payload['error_str']}", file=sys.stderr)
    wheel = _[HEAP].get("wheel")
    if wheel is not None:
        wheel.put(f"ERR {payload['error_str']}")
    _[KERNEL].sig_handled()


def accept(_: Any) -> None:
    heap, handle = _[HEAP], _[ARG0]
    heap["listener"].pause_accept()
    Daemon.update_status("req")
    heap["busy"] = 0
    heap["wheel"] = ReadWrite(
        Handle=handle,
        Filter=Line(),
        InputEvent="input",
        ErrorEvent="error_rw",
        FlushedEvent="flushed",
        InputTimeout=ARGS.timeout,
        HighMark=256 * 1024,
        LowMark=64 * 1024,
        Backpressure=True,
    )


def error(_: Any) -> None:
    operation, errnum, errstr = _[ARG0], _[ARG0 + 1], _[ARG0 + 2]
    if operation == "accept":  # the wheel backs off and keeps accepting
        print(f"{os.getpid()}: accept error {errnum}: {errstr}", file=sys.stderr)
        return
    print(f"{os.getpid()}: {operation} 127.0.0.1:{ARGS.port}: {errstr}", file=sys.stderr)
    _[HEAP].pop("listener", None)
    Daemon.shutdown()


def write_lines(n: int) -> None:
    pid = os.getpid()
    for _i in range(n):
        sys.stderr.write(f"L {pid} {STATE['seq']} {PAD}\n")
        STATE["seq"] += 1


def input_line(_: Any) -> None:
    kernel, heap, line = _[KERNEL], _[HEAP], _[ARG0]
    wheel = heap.get("wheel")
    if wheel is None:
        return
    words = line.strip().split()
    command = words[0].upper() if words else ""
    if command == "PID":
        wheel.put(str(os.getpid()))
    elif command == "PPID":
        wheel.put(str(os.getppid()))
    elif command == "PING":
        wheel.put("PONG")
    elif command == "IDS":
        with open("/proc/self/status") as fh:
            ids = [x.rstrip("\n") for x in fh if x.startswith(("Uid:", "Gid:", "Groups:"))]
        wheel.put(*ids, "DONE")
    elif command == "SETUID0":
        try:
            os.setuid(0)
        except PermissionError:
            wheel.put("DENIED")
        else:
            wheel.put("ROOT")
    elif command == "RAISE":
        raise RuntimeError(f"RAISE in {os.getpid()}")
    elif command == "LOG":
        write_lines(int(words[1]))
        wheel.put(f"WROTE {STATE['seq']}")
    elif command == "LOGRATE":
        rate, seconds = float(words[1]), float(words[2])
        heap["log_plan"] = (time.monotonic(), rate, seconds, STATE["seq"])
        kernel.yield_("logtick")
    elif command == "SLEEP":
        heap["busy"] += 1
        kernel.delay_add("slept", float(words[1]))
    elif command == "FILL":
        heap["fill"] = float(words[1])
        wheel.put("FILLING")
    elif command == "DONE":
        wheel.put("OK")
        heap["closing"] = True
    else:
        wheel.put("???")


def logtick(_: Any) -> None:
    """Write lines at the planned rate, every 5 ms, until the time is up."""
    heap = _[HEAP]
    plan = heap.get("log_plan")
    if plan is None:
        return
    start, rate, seconds, first = plan
    elapsed = min(time.monotonic() - start, seconds)
    due = int(elapsed * rate) - (STATE["seq"] - first)
    if due > 0:
        write_lines(due)
    if elapsed >= seconds:
        del heap["log_plan"]
        wheel = heap.get("wheel")
        if wheel is not None:
            wheel.put(f"WROTE {STATE['seq']}")
        return
    _[KERNEL].delay("logtick", 0.005)


def slept(_: Any) -> None:
    heap = _[HEAP]
    heap["busy"] -= 1
    wheel = heap.get("wheel")
    if wheel is not None:
        wheel.put("SLEPT")


def flushed(_: Any) -> None:
    heap = _[HEAP]
    if heap.pop("closing", False):
        finish(_)
    elif heap.get("draining"):
        close_if_idle(_)


def close_if_idle(_: Any) -> None:
    """Stopping: close unless a request is under way (the examples' rule)."""
    heap = _[HEAP]
    wheel = heap.get("wheel")
    if wheel is None or heap.get("busy") or "log_plan" in heap:
        return
    if wheel.is_idle():
        finish(_)


def finish(_: Any) -> None:
    heap = _[HEAP]
    heap.pop("log_plan", None)
    if heap.pop("wheel", None) is not None:
        fill = heap.pop("fill", None)
        if fill is not None:
            # Next, once the wheel (still held by the callback that got us
            # here) is gone and its socket closed.
            _[KERNEL].yield_("fill", fill)
        Daemon.update_status("done")


def fill_descriptors(_: Any) -> None:
    """Open descriptors until EMFILE, hold them ARG0 seconds."""
    seconds = _[ARG0]
    filled = STATE["filled"]
    try:
        while True:
            filled.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    _[KERNEL].delay("unfill", seconds)


def unfill(_: Any) -> None:
    filled = STATE["filled"]
    while filled:
        os.close(filled.pop())


def main() -> None:
    Session.create(
        inline_states={
            "_start": _start,
            "daemon_parent": daemon_parent,
            "daemon_child": daemon_child,
            "daemon_accept": daemon_accept,
            "daemon_shutdown": daemon_shutdown,
            "on_chld": on_chld,
            "on_die": on_die,
            "accept": accept,
            "error": error,
            "input": input_line,
            "logtick": logtick,
            "slept": slept,
            "unfill": unfill,
            "fill": fill_descriptors,
            "drop_listener": drop_listener,
            "snapshot": write_snapshot,
            "flushed": flushed,
            "error_rw": lambda _: finish(_),
            "tick": lambda _: None,
        }
    )
    params: dict[str, Any] = {
        "logfile": ARGS.logfile,
        "detach": ARGS.detach,
        "verbose": ARGS.verbose,
        "start_children": ARGS.start_children,
        "min_spare": ARGS.min_spare,
        "max_spare": ARGS.max_spare,
        "max_children": ARGS.max_children,
        "requests": ARGS.requests,
        "user": ARGS.user,
        "shutdown_timeout": ARGS.shutdown_timeout,
        "babysit": ARGS.babysit,
        "pidfile": ARGS.pidfile,
    }
    DAEMON.append(DaemonComponent.spawn(**{k: v for k, v in params.items() if v is not None}))
    poe_kernel.run()
    if DAEMON[0].is_child:
        # A pool child is a fork of the parent: interpreter finalization would
        # touch (and copy) every inherited page -- 0.5-0.9 s of CPU per exiting
        # child under load on 2 cores, against ~10 ms for _exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
