"""examples/tail.py against a real writer process and real rotations:
logrotate's ``create`` (rename, new file, HUP) and ``copytruncate`` --
every line counted once, none lost, none twice."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ._support import ProcessReaper, wait_until

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tail.py"
WRITER = ROOT / "tests" / "apps" / "logwriter.py"


class TailExample:
    """examples/tail.py running, its JSON lines read with a deadline."""

    def __init__(self, procs: ProcessReaper, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), *args, "--poll", "0.05"],
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        procs.add(self.proc.pid)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.first = self.record()

    def record(self, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, "no line from examples/tail.py in time"
            if select.select([self.fd], [], [], left)[0]:
                data = os.read(self.fd, 65536)
                assert data, f"examples/tail.py ended: {self.proc.wait()}"
                self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result

    def counts(self) -> dict[str, Any]:
        os.kill(self.proc.pid, signal.SIGUSR1)
        return self.record()

    def stop(self, signum: int = signal.SIGTERM) -> dict[str, Any]:
        os.kill(self.proc.pid, signum)
        final = self.record()
        assert self.proc.wait(timeout=5) == 0
        return final

    def close(self) -> None:
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def examples(procs: ProcessReaper) -> Iterator[list[TailExample]]:
    """Start examples/tail.py as ``TailExample(procs, ...)`` and append it
    here: its pipe is closed at the end (the reaper ends the process)."""
    started: list[TailExample] = []
    yield started
    for example in started:
        example.close()


def lines_in(*paths: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def test_rename_and_copytruncate_rotation_lose_and_repeat_nothing(
    tmp_path: Path, procs: ProcessReaper, examples: list[TailExample]
) -> None:
    log, rotated, copied = tmp_path / "app.log", tmp_path / "app.log.1", tmp_path / "app.log.2"
    log.touch()
    tail = TailExample(procs, str(log), "ERROR", "level=WARN")
    examples.append(tail)
    assert tail.first == {"following": str(log), "pid": tail.proc.pid}
    total = 3000
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(log), str(total), "--pause", "0.0003"],
        stdout=subprocess.PIPE,
        text=True,
    )
    procs.add(writer.pid)

    # logrotate's create: rename, create, HUP -- the writer goes on writing
    # the old file until it reopens.
    wait_until(lambda: lines_in(log) >= 500, 10, "500 lines")
    log.rename(rotated)
    log.touch()
    os.kill(writer.pid, signal.SIGHUP)
    wait_until(lambda: lines_in(log) >= 500, 10, "500 lines in the new file")

    # copytruncate, the writer held still around it: logrotate's copy and
    # truncate leave a window no reader can close (see the example's notes).
    os.kill(writer.pid, signal.SIGSTOP)
    wait_until(lambda: psutil.Process(writer.pid).status() == psutil.STATUS_STOPPED)
    written = lines_in(rotated, log)
    wait_until(lambda: tail.counts()["lines"] == written, 10, f"{written} lines counted")
    shutil.copy(log, copied)
    os.truncate(log, 0)
    os.kill(writer.pid, signal.SIGCONT)

    out, _ = writer.communicate(timeout=30)
    assert out == f"wrote {total}\n"
    assert lines_in(rotated, copied, log) == total  # the files hold every line once
    wait_until(lambda: tail.counts()["lines"] >= total, 10, f"{total} lines counted")
    final = tail.stop()
    assert final == {
        "lines": total,
        "resets": 2,
        "counts": {"ERROR": total // 10, "level=WARN": total // 3 - total // 30},
    }


def test_from_start_and_periodic_reports(
    tmp_path: Path, procs: ProcessReaper, examples: list[TailExample]
) -> None:
    log = tmp_path / "app.log"
    log.write_text("ERROR one\nfine\nERROR two\n")
    tail = TailExample(procs, str(log), "ERROR", "--from-start", "--every", "0.1")
    examples.append(tail)
    report = tail.record()
    assert report == {"lines": 3, "resets": 0, "counts": {"ERROR": 2}}
    with log.open("a") as f:
        f.write("ERROR three\n")
    wait_until(lambda: tail.record()["lines"] == 4, 5, "the periodic report of 4 lines")
    final = tail.stop(signal.SIGINT)
    assert final["counts"] == {"ERROR": 3}
