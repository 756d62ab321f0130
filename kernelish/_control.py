"""``kernelish status|peek|stop PIDFILE``: look at and stop a running daemon.

The daemon is found by its pidfile; it is alive only if it holds the
pidfile's lock (a pid alone may have been reused).  What it tells comes over
its control socket, ``<pidfile>.sock``: a UNIX socket of mode 0600 whose peer
is checked (``SO_PEERCRED``), so only the daemon's owner (or root) may ask --
see docs/systemd.md.  What the daemon's processes cost is read with psutil.

* ``status``: the mode, the scoreboard, and a table of the parent and its
  children: pid, slot, state, requests served, CPU seconds, memory (RSS);
* ``peek``: send SIGUSR2 (the dump goes to the daemon's logfile, as ever) and
  print the dump that signal produced;
* ``stop [--timeout S]``: SIGTERM to the parent, wait until it and every child
  are gone, SIGKILL whatever is left after ``S`` seconds, and say so.

Wiring: ``kernelish.__main__`` calls :func:`add_subcommands` on its
subparsers and, for these commands, returns :func:`run`\\ ``(args)``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import psutil

from kernelish.components.daemon._pidfile import is_locked, read_pid
from kernelish.components.daemon._services import control_socket_path

__all__ = ["COMMANDS", "ControlError", "add_subcommands", "main", "run"]

#: The subcommands this module adds.
COMMANDS = ("status", "peek", "stop")

_STATE_NAMES = {
    "F": "forking",
    "f": "started",
    "w": "waiting",
    "r": "request",
    "l": "long req",
    "e": "exiting",
    ".": "gone",
    " ": "empty",
}


class ControlError(RuntimeError):
    """The daemon is not running, or would not answer."""


# -- talking to the daemon -------------------------------------------------------


def daemon_pid(pidfile: Path) -> int:
    """The pid of the live daemon behind ``pidfile``; ControlError if none."""
    if not pidfile.exists():
        raise ControlError(f"no pidfile {str(pidfile)!r}: the daemon is not running")
    pid = read_pid(pidfile)
    if not is_locked(pidfile):
        raise ControlError(
            f"pidfile {str(pidfile)!r} is stale (pid {pid}, not locked): the daemon is not running"
        )
    if pid is None:
        raise ControlError(f"pidfile {str(pidfile)!r} holds no pid")
    return pid


class _Connection:
    def __init__(self, pidfile: Path, timeout: float) -> None:
        path = control_socket_path(pidfile)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as exc:
            self.sock.close()
            raise ControlError(f"cannot reach the daemon's control socket {path}: {exc}") from None
        self.buffer = b""

    def send(self, request: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(request).encode() + b"\n")

    def receive(self) -> dict[str, Any]:
        try:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ControlError("the daemon closed the control connection")
                self.buffer += chunk
        except TimeoutError:
            raise ControlError("the daemon did not answer in time") from None
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise ControlError(f"the daemon refused: {answer.get('error')}")
        return answer

    def close(self) -> None:
        self.sock.close()


def request(pidfile: Path, cmd: str, timeout: float = 5.0, **extra: Any) -> dict[str, Any]:
    """One request over the control socket; the daemon's JSON answer."""
    conn = _Connection(pidfile, timeout)
    try:
        conn.send({"cmd": cmd, **extra})
        return conn.receive()
    finally:
        conn.close()


# -- the commands -------------------------------------------------------------------


def _usage(pid: int) -> tuple[str, str]:
    """CPU seconds and RSS (MiB) of ``pid``, as text."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            cpu = proc.cpu_times()
            rss = proc.memory_info().rss
    except psutil.Error:
        return "-", "-"
    return f"{cpu.user + cpu.system:.2f}", f"{rss / 2**20:.1f}"


def status_text(pidfile: Path, timeout: float = 5.0) -> str:
    """The ``status`` command's output."""
    pid = daemon_pid(pidfile)
    info = request(pidfile, "status", timeout)
    slots = {s["index"]: s for s in info.get("slots", [])}
    lines = [f"Daemon {info['pid']} ({info['mode']}): {info['summary']}"]
    if slots:
        chars = "".join(slots[i]["status"] for i in sorted(slots))
        free = sum(c in " ." for c in chars)
        lines.append(f"Scoreboard [{chars}] {len(chars)} slots, {free} free")
    rows = [("PID", "ROLE", "SLOT", "STATE", "REQUESTS", "CPU(s)", "RSS(MiB)")]
    rows.append((str(pid), "parent", "-", "-", "-", *_usage(pid)))
    children = sorted((int(p), slot) for p, slot in info.get("children", {}).items())
    for child, slot in children:
        s = slots.get(slot, {})
        char = s.get("status", "?")
        state = f"{char} {_STATE_NAMES.get(char, '?')}"
        reqs = str(s.get("requests", "-"))
        rows.append((str(child), "child", str(slot), state, reqs, *_usage(child)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append(f"{len(children)} children")
    return "\n".join(lines) + "\n"


def peek_text(pidfile: Path, timeout: float = 5.0) -> str:
    """Send SIGUSR2 and return the dump it produced (also in the logfile)."""
    pid = daemon_pid(pidfile)
    conn = _Connection(pidfile, timeout)
    try:
        conn.send({"cmd": "peek", "wait": True})
        conn.receive()  # parked: the next USR2 dump is ours
        os.kill(pid, signal.SIGUSR2)
        text: str = conn.receive()["peek"]
    finally:
        conn.close()
    return text


def _alive(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return bool(status != psutil.STATUS_ZOMBIE)


def stop(pidfile: Path, timeout: float = 10.0, out: TextIO | None = None) -> list[int]:
    """Stop the daemon gracefully; returns the pids that needed SIGKILL."""
    out = sys.stdout if out is None else out
    pid = daemon_pid(pidfile)
    pids = {pid}
    with contextlib.suppress(ControlError, OSError, ValueError):
        pids.update(int(p) for p in request(pidfile, "status", min(timeout, 5.0))["children"])
    with contextlib.suppress(psutil.Error):
        pids.update(p.pid for p in psutil.Process(pid).children(recursive=True))
    start = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    deadline = start + timeout
    delay = 0.005
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    killed = sorted(left)
    for p in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while {p for p in killed if _alive(p)} and time.monotonic() < end:
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    n = len(pids) - 1
    out.write(f"Stopped daemon {pid} and {n} child{'ren' if n != 1 else ''} in {elapsed:.2f}s\n")
    if killed:
        out.write(f"Killed after {timeout:g}s (ignored SIGTERM): {' '.join(map(str, killed))}\n")
    else:
        out.write("Nothing had to be killed\n")
    return killed


# -- the command line -------------------------------------------------------------------


def add_subcommands(subparsers: Any) -> None:
    """Add ``status``, ``peek`` and ``stop`` to an argparse subparsers object."""
    status = subparsers.add_parser(
        "status",
        help="show a running daemon's scoreboard and children",
        description="Print the scoreboard and a table of the daemon's processes "
        "(pid, slot, state, requests served, CPU, memory).",
    )
    peek = subparsers.add_parser(
        "peek",
        help="make a running daemon dump its kernel state (SIGUSR2) and print it",
        description="Send SIGUSR2 to the daemon and print the dump it writes to its logfile.",
    )
    halt = subparsers.add_parser(
        "stop",
        help="stop a running daemon gracefully",
        description="SIGTERM the daemon, wait for it and its children to exit, "
        "SIGKILL what is left after the timeout.",
    )
    for sub in (status, peek, halt):
        sub.add_argument("pidfile", type=Path, help="the daemon's pidfile")
    halt.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait before SIGKILL (default: 10)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``status|peek|stop`` command; the exit status."""
    pidfile = Path(args.pidfile).absolute()
    try:
        if args.command == "status":
            sys.stdout.write(status_text(pidfile))
        elif args.command == "peek":
            sys.stdout.write(peek_text(pidfile))
        elif args.command == "stop":
            stop(pidfile, args.timeout)
        else:
            raise ControlError(f"unknown command {args.command!r}")
    except ControlError as exc:
        sys.stderr.write(f"kernelish {args.command}: {exc}\n")
        return 1
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m kernelish._control status|peek|stop PIDFILE``."""
    parser = argparse.ArgumentParser(prog="kernelish")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
