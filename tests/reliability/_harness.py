"""Starting ``app.py`` as a real daemon, talking to it, watching its processes.

Every daemon is registered with the test's ``procs`` reaper by pid and by
session id (a detached daemon leads its own session), never found by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from .._support import ProcessReaper, wait_until

APP = Path(__file__).resolve().parent / "app.py"


def figures(case: str, **values: Any) -> None:
    """Print a case's measured figures (visible with ``pytest -s``)."""
    text = " ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    print(f"\nFIGURES {case}: {text}")


@dataclass
class App:
    """A running app.py daemon."""

    port: int
    pid: int
    logfile: Path
    status_file: Path
    argv: list[str] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        """The parent's latest snapshot of its pool."""
        for _ in range(50):
            try:
                return dict(json.loads(self.status_file.read_text()))
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.01)
        raise AssertionError("no readable status snapshot")

    def fresh_status(self, timeout: float = 5.0) -> dict[str, Any]:
        """A snapshot taken after this call began."""
        now = time.time()
        return wait_until(
            lambda: (s := self.status())["t"] > now and s, timeout, "a fresh status snapshot"
        )

    def children(self) -> list[int]:
        """The daemon parent's live (non-zombie) children, from /proc."""
        try:
            kids = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        out = []
        for kid in kids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if kid.status() != psutil.STATUS_ZOMBIE:
                    out.append(kid.pid)
        return out

    def processes(self) -> list[int]:
        """Every live process of the daemon's session."""
        return session_processes(self.pid)

    def waiting(self) -> int:
        """Children the parent's scoreboard shows as waiting."""
        return sum(1 for status, _pid in self.status()["slots"] if status == "w")

    def log_text(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


def session_processes(sid: int) -> list[int]:
    """Live, non-zombie processes whose session id is ``sid``."""
    pids = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return pids


def start_app(
    tmp_path: Path,
    procs: ProcessReaper,
    *args: str,
    env: dict[str, str] | None = None,
    logfile: Path | None = None,
    status_file: Path | None = None,
    min_waiting: int = 1,
    umask: int = -1,
) -> App:
    """Start app.py detached with ``args``; wait until ``min_waiting`` children wait."""
    logfile = logfile or tmp_path / "app.log"
    status_file = status_file or tmp_path / "status.json"
    argv = [
        sys.executable,
        str(APP),
        "--detach",
        "--logfile",
        str(logfile),
        "--status-file",
        str(status_file),
        *args,
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        umask=umask,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("PORT="), proc.stdout
    port = int(first.split("=", 1)[1])
    wait_until(status_file.exists, 10, "the daemon's first status snapshot")
    app = App(port, 0, logfile, status_file, argv)
    app.pid = int(app.status()["pid"])
    procs.add_session(app.pid)
    procs.add(app.pid)
    wait_until(lambda: app.waiting() >= min_waiting, 10, f"{min_waiting} waiting children")
    return app


def app_argv(*args: str, logfile: Path, status_file: Path) -> list[str]:
    """The command line of a detached app.py."""
    return [
        sys.executable,
        str(APP),
        "--detach",
        "--logfile",
        str(logfile),
        "--status-file",
        str(status_file),
        *args,
    ]


def launch_app(
    tmp_path: Path, *args: str, logfile: Path | None = None, status_file: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run app.py's launching command to its end, whatever it says."""
    argv = app_argv(
        *args,
        logfile=logfile or tmp_path / "app.log",
        status_file=status_file or tmp_path / "status.json",
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=tmp_path)


def run_as(uid: int, gid: int, func: Any, *args: Any) -> Any:
    """``func(*args)`` in a forked child that became ``uid``/``gid`` for good
    (real, effective and saved ids); its JSON-able result, or the repr of
    what it raised as ``{"raised": ...}``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                result = func(*args)
            except BaseException as exc:  # reported, never raised into pytest
                result = {"raised": repr(exc)}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    try:
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return json.loads(data) if data else None
