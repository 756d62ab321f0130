"""The servers the pool benchmarks run: bare Python, kernelish, and the Perl original.

Every server speaks the line protocol of the examples (``PING`` -> ``PONG``,
``DONE`` -> ``OK`` then close) and prints ``PORT=N`` once it listens.  Each
handle has the same face -- ``port``, ``pid`` (the master), ``children()``
(live, from ``/proc``), ``wait_children(n)``, ``stop()`` -- so a benchmark
runs one after the other, interleaved.

* :class:`Server`: a Python server (``bench/servers/bare.py`` or
  ``bench/servers/kernelish_server.py``) in the foreground, in a session of
  its own; stopped with TERM to its process group, then KILL.
* :class:`PerlServer`: POE::Component::Daemon's own ``eg/`` programs
  (``/work/shared/perl-original``, see its README), run from a copy in a
  temporary directory (each logs beside itself).  They detach: double fork,
  ``setsid``.  This process makes itself a *child subreaper*
  (``prctl(PR_SET_CHILD_SUBREAPER)``), so the detached master is re-parented
  to it and found by pid -- the live child that leads a session of its own --
  never by name.  Stopped by pid: TERM to the master, then KILL to whatever
  is left of its session; every process of it is reaped here, and the SysV
  shared memory segments they created (the scoreboard, which the original
  never removes) are removed with ``ipcrm -m``.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
BARE = str(HERE / "servers" / "bare.py")
KERNELISH = str(HERE / "servers" / "kernelish_server.py")
PERL_ORIGINAL = Path(
    os.environ.get("KERNELISH_PERL_ORIGINAL", ROOT.parent / "shared/perl-original")
)

_PR_SET_CHILD_SUBREAPER = 36


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children_of(pid: int, live: bool = True) -> list[int]:
    """The children of ``pid`` (every thread's), live ones only unless ``live`` is False."""
    pids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                pids += [int(p) for p in fh.read().split()]
        except OSError:
            continue
    if not live:
        return pids
    out = []
    for child in pids:
        fields = _stat_fields(child)
        if fields is not None and fields[0] not in ("Z", "X"):
            out.append(child)
    return out


def session_members(sid: int) -> list[int]:
    """Every process whose session id is ``sid`` (``/proc``; zombies included)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[3]) == sid:
                members.append(int(entry))
    return members


class Server:
    """A Python server process (and its children) in its own process group."""

    def __init__(self, *argv: str) -> None:
        self.argv = argv
        self.label = Path(argv[0]).stem
        self.proc = subprocess.Popen(
            [PY, *argv],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.environ.get("KERNELISH_ROOT", str(ROOT))},
        )
        self.port = self._read_port(15.0)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT="):
            self.stop()
            raise SystemExit(f"{self.argv} did not start: {line!r}")
        return int(line.strip().split("=")[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        """Live (not zombie) children of the server, from /proc."""
        return children_of(self.pid)

    def wait_children(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.children()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.argv}: {len(self.children())} children, wanted {n}")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.returncode is None:
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def perl_unavailable() -> str | None:
    """Why the Perl original cannot run here, or None when it can."""
    if not (PERL_ORIGINAL / "eg").is_dir():
        return f"no Perl original at {PERL_ORIGINAL}"
    if shutil.which("perl") is None:
        return "no perl on this machine"
    probe = subprocess.run(
        ["perl", f"-I{PERL_ORIGINAL / 'lib'}", "-MPOE", "-MPOE::Component::Daemon", "-e1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode:
        return f"perl -MPOE fails ({probe.stderr.strip()[:120]}): run {PERL_ORIGINAL}/setup.sh"
    return None


_subreaper = False


def become_subreaper() -> None:
    """Adopt orphaned descendants (the Perl daemons detach by a double fork)."""
    global _subreaper
    if _subreaper:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    _subreaper = True


def _shm_segments() -> dict[int, int]:
    """SysV shared memory segments: id -> creator pid (``ipcs -m -p``)."""
    out = subprocess.run(["ipcs", "-m", "-p"], capture_output=True, text=True, timeout=10)
    segments = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit() and parts[2].isdigit():
            segments[int(parts[0])] = int(parts[2])
    return segments


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


class PerlServer:
    """One of the Perl original's ``eg/`` programs, detached, found by pid."""

    def __init__(self, program: str) -> None:
        become_subreaper()
        self.label = f"perl eg/{program}"
        self._tmp = tempfile.mkdtemp(prefix="kernelish-bench-perl-")
        shutil.copytree(PERL_ORIGINAL / "eg", Path(self._tmp) / "eg")
        before = set(children_of(os.getpid(), live=False))
        launcher = subprocess.Popen(
            ["perl", f"-I{PERL_ORIGINAL / 'lib'}", str(Path(self._tmp) / "eg" / program), "0"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self._tmp,
        )
        self.pid = 0
        self._members: set[int] = set()
        assert launcher.stdout is not None
        ready, _, _ = select.select([launcher.stdout], [], [], 15.0)
        line = launcher.stdout.readline().decode() if ready else ""
        launcher.wait(15)  # the grand-parent exits once the daemon is forked
        launcher.stdout.close()
        deadline = time.monotonic() + 10
        while not self.pid and time.monotonic() < deadline:
            for child in set(children_of(os.getpid(), live=False)) - before - {launcher.pid}:
                fields = _stat_fields(child)
                if fields is None or fields[0] in ("Z", "X"):
                    _reap(child)  # the intermediate parent of the double fork
                elif int(fields[3]) == child:  # a session leader: the master
                    self.pid = child
            if not self.pid:
                time.sleep(0.01)
        if not line.startswith("PORT=") or not self.pid:
            self.stop()
            raise SystemExit(f"{self.label} did not start: {line!r}")
        self.port = int(line.strip().split("=")[1])

    def children(self) -> list[int]:
        kids = children_of(self.pid) if self.pid else []
        self._members.update(kids)
        return kids

    def wait_children(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.children()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.label}: {len(self.children())} children, wanted {n}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.pid:
            self._members.add(self.pid)
            self._members.update(session_members(self.pid))
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    done, _status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.01)
            for pid in session_members(self.pid):  # what is left of its session
                self._members.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while session_members(self.pid) and time.monotonic() < deadline:
                for pid in self._members:  # re-parented to this subreaper
                    _reap(pid)
                time.sleep(0.01)
            for shmid, creator in _shm_segments().items():
                if creator in self._members:
                    subprocess.run(["ipcrm", "-m", str(shmid)], capture_output=True, timeout=10)
            self.pid = 0
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> PerlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ChildSampler:
    """Samples the number of live children every ``interval`` s in a thread."""

    def __init__(self, server: Server | PerlServer, interval: float = 0.002) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(len(self.server.children()))

    def __enter__(self) -> ChildSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
