"""Black-box tests: the two eg/ ports as real detached daemons, over TCP --
each also on ServerTCP (``examples/server_tcp_*.py``).

Each test starts an example with ``python examples/X.py 0 LOGFILE``, reads
``PORT=N``, talks to it on 127.0.0.1, and ends every process of the daemon
by its session id (the daemon calls ``setsid()``, so its session id is its
pid) -- never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from ._support import LineClient, ProcessReaper, gone, wait_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class Daemon:
    port: int
    pid: int
    logfile: Path


def start_example(name: str, logfile: Path, reaper: ProcessReaper) -> Daemon:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "0", str(logfile)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=EXAMPLES,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("PORT="), proc.stdout
    port = int(first.split("=", 1)[1])
    # The detached daemon leads its own session: find it as the parent of
    # the child that answers us (that child then sees EOF and goes).
    client = LineClient(port)
    try:
        child = int(client.ask("PID"))
        parent = psutil.Process(child).ppid()
    finally:
        client.close()
    reaper.add_session(os.getsid(parent))
    reaper.add(parent)
    return Daemon(port, parent, logfile)


def daemon_processes(daemon: Daemon) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == daemon.pid and proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return pids


#: Each eg/ port, and its port on ServerTCP(Daemon=True): the same tests.
PREFORKING = ["preforking.py", "server_tcp_preforking.py"]
FORKING = ["forking.py", "server_tcp_forking.py"]


@pytest.fixture(params=PREFORKING)
def prefork(request: pytest.FixtureRequest, tmp_path: Path, procs: ProcessReaper) -> Daemon:
    return start_example(request.param, tmp_path / "preforking.log", procs)


@pytest.fixture(params=FORKING)
def forking(request: pytest.FixtureRequest, tmp_path: Path, procs: ProcessReaper) -> Daemon:
    return start_example(request.param, tmp_path / "forking.log", procs)


# -- pre-forking -------------------------------------------------------------------------


def test_preforking_detaches_and_recycles_a_child_per_connection(prefork: Daemon) -> None:
    assert os.getsid(prefork.pid) == prefork.pid, "the daemon leads its own session"
    assert psutil.Process(prefork.pid).ppid() != os.getpid(), "detached: not our child"
    pids = []
    for _ in range(4):
        client = LineClient(prefork.port)
        pid = int(client.ask("PID"))
        assert client.ask("PING") == "PONG"
        assert client.ask("what?") == "???"
        assert client.ask("kernel").startswith(os.uname().nodename)
        assert client.ask("LOGFILE") == str(prefork.logfile)
        client.finish()
        pids.append(pid)
        # requests=1: the child that served us goes away.
        wait_until(
            lambda pid=pid: gone(pid),
            5,
            f"child {pid} to exit after its one request",
        )
    assert len(set(pids)) == 4
    assert prefork.pid not in pids


def test_preforking_status_and_peek(prefork: Daemon) -> None:
    client = LineClient(prefork.port)
    status = client.ask_until_done("STATUS")
    assert status[0] == "DaemonComponent"
    assert status[1] == "    Pre-forking server, we are a child"
    assert status[2] == "POE::Component::Daemon::Scoreboard"
    assert status[4].startswith("    Slots [")
    peek = client.ask_until_done("PEEK")
    assert peek[0] == "Event Queue:"
    assert any(line.startswith("Sessions:") for line in peek)
    assert any("ref count:" in line for line in peek)
    client.finish()


def test_sighup_after_the_logfile_moved_makes_a_new_one(prefork: Daemon) -> None:
    client = LineClient(prefork.port)
    child = int(client.ask("PID"))
    wait_until(prefork.logfile.exists, 5, "the logfile")
    rotated = prefork.logfile.with_suffix(".log.1")
    prefork.logfile.rename(rotated)
    os.kill(child, signal.SIGHUP)
    wait_until(prefork.logfile.exists, 5, "a new logfile after SIGHUP")
    client.finish()
    assert rotated.stat().st_size > 0
    wait_until(
        lambda: f"{child}: " in prefork.logfile.read_text(),
        5,
        "the child's next lines in the new logfile",
    )


def test_sigterm_to_the_parent_ends_every_process(prefork: Daemon) -> None:
    wait_until(lambda: len(daemon_processes(prefork)) >= 3, 5, "the parent and two spares")
    os.kill(prefork.pid, signal.SIGTERM)
    start = time.monotonic()
    wait_until(lambda: not daemon_processes(prefork), 10, "every daemon process to exit")
    assert time.monotonic() - start < 10
    log = prefork.logfile.read_text()
    assert f"{prefork.pid}: SIGTERM" in log


# -- post-forking ------------------------------------------------------------------------


def test_forking_one_child_per_connection_with_distinct_kernels(forking: Daemon) -> None:
    seen = set()
    for _ in range(3):
        client = LineClient(forking.port)
        pid = int(client.ask("PID"))
        kernel_id = client.ask("KERNEL")
        assert psutil.Process(pid).ppid() == forking.pid
        assert client.ask("PARENT") in ("0", str(forking.pid))
        client.finish()
        seen.add((pid, kernel_id))
    assert len({pid for pid, _ in seen}) == 3
    assert len({k for _, k in seen}) == 3


def test_forking_fourth_concurrent_request_waits_for_a_free_slot(forking: Daemon) -> None:
    clients = [LineClient(forking.port) for _ in range(3)]
    pids = [int(c.ask("PID")) for c in clients]
    assert len(set(pids)) == 3
    fourth = LineClient(forking.port, timeout=0.5)
    fourth.send("PING")
    with pytest.raises(TimeoutError):
        fourth.readline()  # paused: nobody accepts while three are busy
    assert len(psutil.Process(forking.pid).children()) == 3
    clients[0].finish()
    fourth.sock.settimeout(5)
    assert fourth.readline() == "PONG"
    assert len(psutil.Process(forking.pid).children()) <= 3
    for c in [*clients[1:], fourth]:
        c.finish()


def test_forking_usr1_dumps_peek_to_the_logfile(forking: Daemon) -> None:
    os.kill(forking.pid, signal.SIGUSR1)
    wait_until(
        lambda: f"{forking.pid}: Event Queue:" in forking.logfile.read_text(),
        5,
        "the peek dump in the logfile",
    )


def test_forking_sigterm_ends_every_process(forking: Daemon) -> None:
    busy = LineClient(forking.port)
    assert busy.ask("PING") == "PONG"
    os.kill(forking.pid, signal.SIGTERM)
    wait_until(lambda: not daemon_processes(forking), 10, "every daemon process to exit")
    busy.close()
