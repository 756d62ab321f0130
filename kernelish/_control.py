"""``kernelish status|peek|stop PIDFILE``: look at and stop a running daemon.

The daemon is found by its pidfile and *proven* to be the pidfile's process
before anything is signalled (:func:`kernelish.components.daemon.control.verify`:
the pidfile is locked, the control socket ``<pidfile>.sock`` is served by
that very pid as the kernel reports it (``SO_PEERCRED``), both files belong
to root or to the daemon's user, and the socket answers as a kernelish
daemon; every signal then goes through a pidfd).  A check that fails refuses
in one line and the command exits 1 -- a forged pidfile never gets root to
signal someone else's process.  What the daemon's processes cost is read
with psutil.

* ``status``: the mode, the scoreboard, whether the daemon still listens,
  and a table of the parent and its children: pid, slot, state, requests
  served, CPU seconds, memory (RSS).  Exit status 0; 3 when the daemon runs
  but no longer holds a listening socket it had when it started; 1 when it
  is not running or cannot be verified;
* ``peek``: send SIGUSR2 (the dump goes to the daemon's logfile, as ever) and
  print the dump that signal produced;
* ``stop [--timeout S]``: SIGTERM to the parent, wait until it and every
  child are gone, SIGKILL whatever is left after ``S`` seconds, and say so.

Wiring: ``kernelish.__main__`` calls :func:`add_subcommands` on its
subparsers and, for these commands, returns :func:`run`\\ ``(args)``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import psutil

from kernelish.components.daemon import SlotState, control
from kernelish.components.daemon.control import ControlError

__all__ = [
    "COMMANDS",
    "NOT_LISTENING",
    "ControlError",
    "add_subcommands",
    "main",
    "peek_text",
    "request",
    "run",
    "status_report",
    "status_text",
    "stop",
]

#: The subcommands this module adds.
COMMANDS = ("status", "peek", "stop")

#: ``status``'s exit status for a daemon that runs but no longer listens.
NOT_LISTENING = 3


def request(pidfile: Path, cmd: str, timeout: float = 5.0, **extra: Any) -> dict[str, Any]:
    """One request to the verified daemon behind ``pidfile``; its JSON answer."""
    with control.verified(pidfile, timeout) as daemon, daemon.client(timeout) as conn:
        return conn.ask({"cmd": cmd, **extra})


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


def _live_children(pid: int) -> list[int]:
    out = []
    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return []
    for kid in kids:
        try:
            if kid.status() != psutil.STATUS_ZOMBIE:
                out.append(kid.pid)
        except psutil.Error:
            continue
    return out


def _state_text(char: str) -> str:
    try:
        return f"{char} {SlotState(char).label}"
    except ValueError:
        return f"{char} ?"


def status_report(pidfile: Path, timeout: float = 5.0) -> tuple[str, int]:
    """The ``status`` command's output and exit status."""
    with control.verified(pidfile, timeout) as daemon:
        pid, info = daemon.pid, daemon.info
        kids = _live_children(pid)
    slots = {s["index"]: s for s in info.get("slots", [])}
    expected = set(info.get("listening") or ())
    held: set[str] = set()
    for proc in [pid, *kids]:
        held.update(control.listening_addresses(proc))
    code = 0
    head = f"Daemon {pid} ({info['mode']}): {info['summary']}"
    if expected - held:
        code = NOT_LISTENING
        head += f"; NOT LISTENING on {', '.join(sorted(expected - held))}"
    elif held:
        head += f"; listening on {', '.join(sorted(held))}"
    lines = [head]
    if slots:
        chars = "".join(slots[i]["status"] for i in sorted(slots))
        free = sum(c in " ." for c in chars)
        lines.append(f"Scoreboard [{chars}] {len(chars)} slots, {free} free")
    rows = [("PID", "ROLE", "SLOT", "STATE", "REQUESTS", "CPU(s)", "RSS(MiB)")]
    rows.append((str(pid), "parent", "-", "-", "-", *_usage(pid)))
    by_pid = {int(p): slot for p, slot in info.get("children", {}).items()}
    for child in sorted(kids):
        slot = by_pid.get(child)
        s = slots.get(slot, {}) if slot is not None else {}
        state = _state_text(s["status"]) if s else "-"
        reqs = str(s.get("requests", "-"))
        where = str(slot) if slot is not None else "-"
        rows.append((str(child), "child", where, state, reqs, *_usage(child)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append(f"{len(kids)} child{'ren' if len(kids) != 1 else ''}")
    return "\n".join(lines) + "\n", code


def status_text(pidfile: Path, timeout: float = 5.0) -> str:
    """The ``status`` command's output."""
    return status_report(pidfile, timeout)[0]


def peek_text(pidfile: Path, timeout: float = 5.0) -> str:
    """Send SIGUSR2 and return the dump it produced (also in the logfile)."""
    with control.verified(pidfile, timeout) as daemon, daemon.client(timeout) as conn:
        conn.send({"cmd": "peek", "wait": True})
        conn.receive()  # parked: the next USR2 dump is ours
        daemon.signal(signal.SIGUSR2)
        text: str = conn.receive()["peek"]
    return text


def stop(pidfile: Path, timeout: float = 10.0, out: TextIO | None = None) -> list[int]:
    """Stop the daemon gracefully; returns the pids that needed SIGKILL."""
    out = sys.stdout if out is None else out
    with control.verified(pidfile, min(timeout, 5.0) if timeout > 0 else 5.0) as daemon:
        pid = daemon.pid
        family = daemon.descendants()
        try:
            start = time.monotonic()
            daemon.signal(signal.SIGTERM)
            left = control.wait_gone([daemon, *family], start + timeout)
            killed = sorted(p.pid for p in left if p.signal(signal.SIGKILL))
            control.wait_gone(left, time.monotonic() + 5.0)
        finally:
            for proc in family:
                proc.close()
    elapsed = time.monotonic() - start
    n = len(family)
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
    code = 0
    try:
        if args.command == "status":
            text, code = status_report(pidfile)
            sys.stdout.write(text)
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
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m kernelish._control status|peek|stop PIDFILE``."""
    parser = argparse.ArgumentParser(prog="kernelish")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
