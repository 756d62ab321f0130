"""Test helpers: bounded waits, free ports, process cleanup, fd snapshots."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psutil

T = TypeVar("T")

__all__ = [
    "LineClient",
    "ProcessReaper",
    "free_port",
    "open_fds",
    "wait_until",
    "zombies_of",
]


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``predicate`` with backoff until it is truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def open_fds() -> set[int]:
    """This process's open file descriptors, from /proc."""
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def zombies_of(pid: int) -> list[int]:
    """Zombie children of ``pid``, read from /proc."""
    try:
        kids = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    out = []
    for kid in kids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if kid.status() == psutil.STATUS_ZOMBIE:
                out.append(kid.pid)
    return out


def gone(pid: int) -> bool:
    """The process no longer runs (does not exist or is a zombie).  One
    ``psutil`` call, so a process that exits meanwhile cannot raise."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


class ProcessReaper:
    """Ends every process a test registered, by pid or session id: TERM, a
    deadline, then KILL.  Never by name."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.sids: set[int] = set()

    def add(self, pid: int) -> int:
        self.pids.add(pid)
        return pid

    def add_session(self, sid: int) -> int:
        self.sids.add(sid)
        return sid

    def _targets(self) -> set[int]:
        targets = {p for p in self.pids if psutil.pid_exists(p)}
        if self.sids:
            for proc in psutil.process_iter(["pid"]):
                with contextlib.suppress(OSError, psutil.Error):
                    if os.getsid(proc.pid) in self.sids and proc.pid != os.getpid():
                        targets.add(proc.pid)
        return targets

    def _alive(self, pids: set[int]) -> set[int]:
        alive = set()
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.add(pid)
        return alive

    def reap(self, timeout: float = 3.0) -> list[int]:
        """End everything; returns the pids that needed KILL."""
        targets = self._targets()
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._alive(targets) and time.monotonic() < deadline:
            self._collect(targets)
            time.sleep(0.02)
        killed = sorted(self._alive(targets))
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._collect(targets)
        return killed

    @staticmethod
    def _collect(pids: set[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)


@contextlib.contextmanager
def reaper() -> Iterator[ProcessReaper]:
    """A :class:`ProcessReaper` that runs when the block ends."""
    r = ProcessReaper()
    try:
        yield r
    finally:
        r.reap()


class LineClient:
    """A blocking client for the examples' CRLF line protocol (PID, PING, DONE...)."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def readline(self) -> str:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode()

    def ask(self, line: str) -> str:
        self.send(line)
        return self.readline()

    def ask_until_done(self, line: str) -> list[str]:
        self.send(line)
        lines = []
        while (reply := self.readline()) != "DONE":
            lines.append(reply)
        return lines

    def finish(self) -> None:
        """DONE, expect OK, and expect the server to close the connection."""
        assert self.ask("DONE") == "OK"
        self.sock.settimeout(5)
        assert self.sock.recv(1) == b"", "the server closes after OK"
        self.close()

    def closed_by_server(self) -> bool:
        """Whether the server ended the connection (EOF or reset)."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()
