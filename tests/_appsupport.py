"""Starting tests/apps/notify_app.py (a small detached Daemon) for the systemd,
pidfile and control tests, and a fake systemd notify socket."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from kernelish.components.daemon._pidfile import is_locked, read_pid

from ._support import ProcessReaper, wait_until

APP = Path(__file__).resolve().parent / "apps" / "notify_app.py"

__all__ = ["APP", "NotifySocket", "daemon_pids", "launch", "start_daemon"]


def launch(
    logfile: Path, *args: str, env: dict[str, str] | None = None, shell_prefix: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the app's launcher to its end (it detaches; with NOTIFY_SOCKET it
    waits until the daemon is ready)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    full_env.update(env or {})
    argv = [sys.executable, str(APP), str(logfile), *args]
    if shell_prefix:
        argv = ["sh", "-c", shell_prefix + ' exec "$@"', "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, env=full_env)


def start_daemon(
    tmp_path: Path,
    reaper: ProcessReaper,
    *args: str,
    pidfile: Path | None = None,
    env: dict[str, str] | None = None,
    children: int = 2,
) -> int:
    """Start the app with a pidfile; wait for its pool; return the daemon's pid."""
    pidfile = pidfile or tmp_path / "d.pid"
    proc = launch(
        tmp_path / "d.log", "--pidfile", str(pidfile), "--children", str(children), *args, env=env
    )
    assert proc.returncode == 0, proc.stderr
    pid = wait_until(lambda: _pid_in(pidfile), 5, "the pidfile")
    reaper.add_session(pid)
    reaper.add(pid)
    if children:
        wait_until(lambda: len(daemon_pids(pid)) == children + 1, 5, f"the pool of {pid}")
    return pid


def _pid_in(path: Path) -> int | None:
    """The pid in a pidfile that a live daemon holds locked (not a stale one)."""
    pid = read_pid(path)
    if pid is None or not is_locked(path):
        return None
    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return pid
    return None


def daemon_pids(pid: int) -> list[int]:
    """The live (non-zombie) processes of the daemon's session, parent first."""
    out = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(proc.pid) == pid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc.pid)
    return sorted(out, key=lambda p: p != pid)


def children_of(pid: int) -> list[int]:
    """The daemon's live children."""
    return [p for p in daemon_pids(pid) if p != pid]


class NotifySocket:
    """A fake systemd: a datagram socket that records (sender pid, fields)."""

    def __init__(self, address: str) -> None:
        self.env = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address if address.startswith("/") else "\0" + address[1:])
        self.messages: list[tuple[int, dict[str, str]]] = []

    def receive(self, timeout: float = 5.0) -> tuple[int, dict[str, str]]:
        """The next datagram: the sender's pid and its KEY=VALUE fields."""
        self.sock.settimeout(timeout)
        data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        sender = -1
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                sender = struct.unpack("3i", payload[:12])[0]
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append((sender, fields))
        return sender, fields

    def wait_for(self, key: str, timeout: float = 5.0) -> tuple[int, dict[str, str]]:
        """Receive until a datagram carries ``key``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} in {self.messages}")
            try:
                sender, fields = self.receive(left)
            except TimeoutError:
                raise AssertionError(f"no {key} in {self.messages}") from None
            if key in fields:
                return sender, fields

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def notify_socket(address: str) -> Iterator[NotifySocket]:
    ns = NotifySocket(address)
    try:
        yield ns
    finally:
        ns.close()
