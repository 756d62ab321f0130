"""`kernelish status|peek|stop PIDFILE` against a running example daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from ._support import LineClient, ProcessReaper, gone, wait_until
from .test_examples import EXAMPLES

KERNELISH = [sys.executable, "-m", "kernelish"]


@pytest.mark.parametrize("example", ["preforking.py", "server_tcp_preforking.py"])
def test_status_peek_and_stop_against_the_preforking_example(
    example: str, tmp_path: Path, procs: ProcessReaper
) -> None:
    pidfile = tmp_path / "preforking.pid"
    start = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / example),
            "0",
            str(tmp_path / "p.log"),
            str(pidfile),
        ],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=EXAMPLES,
    )
    assert start.returncode == 0, start.stderr
    port = int(start.stdout.splitlines()[0].split("=")[1])
    wait_until(pidfile.exists, 5, "the pidfile")
    daemon = int(pidfile.read_text())
    procs.add(daemon)
    procs.add_session(os.getsid(daemon))
    wait_until(lambda: len(psutil.Process(daemon).children()) >= 2, 5, "two spare children")

    busy = LineClient(port)
    child = int(busy.ask("PID"))
    status = subprocess.run(
        [*KERNELISH, "status", str(pidfile)], capture_output=True, text=True, timeout=20
    )
    assert status.returncode == 0, status.stderr
    assert str(child) in status.stdout, "the table lists the busy child"
    assert "Slots [" in status.stdout or "slot" in status.stdout.lower()

    peek = subprocess.run(
        [*KERNELISH, "peek", str(pidfile)], capture_output=True, text=True, timeout=20
    )
    assert peek.returncode == 0, peek.stderr
    assert "Event Queue:" in peek.stdout

    busy.finish()
    stop = subprocess.run(
        [*KERNELISH, "stop", str(pidfile), "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert stop.returncode == 0, stop.stderr
    assert gone(daemon)
    wait_until(lambda: not pidfile.exists(), 5, "the pidfile removed at shutdown")
