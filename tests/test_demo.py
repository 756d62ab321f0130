"""``kernelish demo`` end to end: a real daemon, real clients, real signals.

The demo runs in its own session (``start_new_session``) so that every process
it starts can be found by session id afterwards -- and ended by it if a test
fails.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from kernelish.demo._display import Frame, Screen

from ._support import ProcessReaper, wait_until


def _session_members(sid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return members


@pytest.fixture
def reaper() -> Iterator[ProcessReaper]:
    r = ProcessReaper()
    yield r
    r.reap()


def run_demo(reaper: ProcessReaper, *args: str, timeout: float = 40) -> tuple[str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernelish", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    reaper.add_session(proc.pid)
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{out}\n{err}"
    assert err == "", err
    # Every process the demo started -- children, clients -- is gone with it.
    assert _session_members(proc.pid) == []
    return out, proc.pid


def figure(pattern: str, text: str) -> int:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return int(match.group(1))


def test_demo_runs_to_its_summary(reaper: ProcessReaper) -> None:
    out, _ = run_demo(reaper)
    assert "\x1b[" not in out, "no ANSI codes when stdout is not a terminal"
    progress = [line for line in out.splitlines() if line.startswith("t=")]
    assert len(progress) >= 3, "a plain line about every second"
    served = figure(r"requests served: (\d+)", out)
    assert served > 100
    assert figure(r"clients completed (\d+)", out) == served
    assert figure(r"(\d+) errors", out) == 0
    assert figure(r"(\d+) long", out) > 0
    forked = figure(r"children: (\d+) forked", out)
    recycled = figure(r"(\d+) recycled", out)
    assert forked >= 3
    assert recycled > 0, "children are recycled after 20 requests"
    assert re.search(r"latency, connect to close: p50 [\d.]+ ms, p99 [\d.]+ ms", out)
    assert "processes left behind: none" in out


def test_demo_forking_shows_backpressure(reaper: ProcessReaper) -> None:
    out, _ = run_demo(reaper, "--forking", "--seconds", "1.5")
    served = figure(r"requests served: (\d+)", out)
    assert served > 20
    assert figure(r"children: (\d+) forked", out) == served, "one child per request"
    assert figure(r"daemon_pause (\d+) times", out) > 0
    assert figure(r"daemon_accept (\d+) times", out) > 0
    assert "max_children=4" in out
    assert "processes left behind: none" in out


def test_demo_serve_until_interrupted(reaper: ProcessReaper) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernelish", "demo", "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    reaper.add_session(proc.pid)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    port = figure(r"127\.0\.0\.1:(\d+)", first)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for command, reply in (("PING", b"PONG"), ("SLOW", b"SLEPT"), ("DONE", b"OK")):
            sock.sendall(command.encode() + b"\r\n")
            assert reader.readline().strip() == reply
    wait_until(lambda: len(_session_members(proc.pid)) >= 4, 5, "the pool of children")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does to the parent
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert figure(r"requests served: (\d+)", out) == 1
    assert "processes left behind: none" in out
    assert _session_members(proc.pid) == []


def test_screen_redraws_in_place_on_a_terminal() -> None:
    out = io.StringIO()
    screen = Screen(out, "title", ansi=True, forking=False)
    for n in range(3):
        screen.show(Frame(0.1 * n, "wr.l", alive=3, forked=4, recycled=1, served=10 * n))
    screen.close(None)
    text = out.getvalue()
    assert text.startswith("\x1b[?25l"), "the cursor is hidden while drawing"
    assert text.count("\x1b[4F") == 2, "each later frame moves up over the last"
    assert "\x1b[31ml\x1b[0m" in text, "a long request stands out"
    assert text.endswith("\x1b[?25h"), "and the cursor comes back"


def test_demo_on_a_port_in_use_says_so_in_one_line(reaper: ProcessReaper) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "kernelish", "demo", "--port", str(port), "--seconds", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        reaper.add_session(proc.pid)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err == f"kernelish demo: bind 127.0.0.1:{port}: Address already in use\n"
    assert _session_members(proc.pid) == []
