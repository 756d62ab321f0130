"""Log rotation under load, and input that must not hurt a child."""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from .._support import LineClient, ProcessReaper, gone, wait_until
from ._harness import figures, start_app

LINE = re.compile(r"L (\d+) (\d+) (x+)")
PAD = 72


def rotate_under_load(tmp_path: Path, procs: ProcessReaper, seconds: float) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    logfile = logdir / "app.log"
    writers = 2
    app = start_app(
        tmp_path, procs, "--start-children", str(writers + 1), "--min-spare", str(writers + 1),
        "--requests", "50", logfile=logfile, min_waiting=writers + 1,
    )  # fmt: skip
    clients = [LineClient(app.port, timeout=seconds + 15) for _ in range(writers)]
    pids = [int(c.ask("PID")) for c in clients]
    for c in clients:
        c.send(f"LOGRATE {5000 // writers} {seconds}")
    rotations = 0
    begin = time.monotonic()
    while time.monotonic() - begin < seconds + 0.3:
        rotations += 1
        logfile.rename(logdir / f"app.log.{rotations}")
        os.killpg(app.pid, signal.SIGHUP)
        time.sleep(0.1)  # the rotation period, not a synchronisation
    totals = {}
    for pid, c in zip(pids, clients, strict=True):
        reply = c.readline()
        assert reply.startswith("WROTE "), reply
        totals[pid] = int(reply.split()[1])
        c.finish()
    assert not gone(app.pid), "SIGHUP never kills the daemon"
    wait_until(lambda: app.waiting() >= writers + 1, 5, "the pool after rotation")
    # Every line written is whole, in exactly one of the files.
    seen: dict[int, list[int]] = {pid: [] for pid in pids}
    torn = []
    files = sorted(logdir.iterdir())
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("L ") or ("L " in line and "x" * 10 in line):
                m = LINE.fullmatch(line)
                if m is None or len(m.group(3)) != PAD:
                    torn.append(line[:120])
                    continue
                seen.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    lost = 0
    dup = 0
    for pid in pids:
        got = sorted(seen[pid])
        lost += totals[pid] - len(set(got))
        dup += len(got) - len(set(got))
        assert set(got) <= set(range(totals[pid]))
    written = sum(totals.values())
    figures(
        f"log_rotation[{seconds:.0f}s]",
        lines_written=written,
        rate_per_s=written / seconds,
        rotations=rotations,
        files=len(files),
        lines_lost=lost,
        torn=len(torn),
        duplicated=dup,
    )
    assert not torn, torn[:5]
    assert lost == 0
    assert dup == 0
    assert written >= 0.9 * 5000 * seconds
    os.kill(app.pid, signal.SIGTERM)
    wait_until(lambda: not app.processes(), 10, "every daemon process to exit")


@pytest.mark.parametrize(
    "seconds", [3.0, pytest.param(10.0, marks=pytest.mark.heavy, id="heavy-10s")]
)
def test_log_rotation_under_load_loses_no_line(
    tmp_path: Path, procs: ProcessReaper, seconds: float
) -> None:
    rotate_under_load(tmp_path, procs, seconds)


def test_failed_reopen_on_sighup_keeps_the_daemon_and_the_old_file(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    logfile = logdir / "app.log"
    app = start_app(tmp_path, procs, "--start-children", "1", "--min-spare", "1",
                    "--requests", "50", logfile=logfile)  # fmt: skip
    kept = logdir / "app.log.1"
    logfile.rename(kept)
    logfile.mkdir()  # the path is now a directory: the reopen must fail
    try:
        os.killpg(app.pid, signal.SIGHUP)
        wait_until(lambda: "SIGHUP" in kept.read_text(), 5, "the failed reopen to be reported")
        client = LineClient(app.port)
        pid = int(client.ask("PID"))
        assert client.ask("LOG 3") == "WROTE 3"
        client.finish()
        assert not gone(app.pid) and not gone(pid)
        assert f"L {pid} 2 " in kept.read_text(), "lines still go to the file opened before"
    finally:
        logfile.rmdir()


# -- bad input from clients ------------------------------------------------------------


def child_rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def test_hostile_clients_never_crash_a_child_nor_grow_it(
    tmp_path: Path, procs: ProcessReaper
) -> None:
    app = start_app(tmp_path, procs, "--start-children", "1", "--min-spare", "1",
                    "--max-spare", "1", "--max-children", "1", "--requests", "1000")  # fmt: skip
    (child,) = app.children()
    rss_before = child_rss(child)
    peak = rss_before
    rng = random.Random(3)
    mib = 1 << 20
    for _round in range(3):
        # A line longer than MaxLength (1 MiB): 4 MiB and no end.
        client = LineClient(app.port)
        assert int(client.ask("PID")) == child
        try:
            client.sock.sendall(b"a" * (4 * mib))
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert client.closed_by_server()
        client.close()
        peak = max(peak, child_rss(child))
        # Binary garbage, line ends and all.
        client = LineClient(app.port)
        garbage = bytes(rng.randrange(256) for _ in range(256 * 1024))
        client.sock.sendall(garbage + b"\r\nPING\r\n")
        deadline = time.monotonic() + 10
        while b"PONG\r\n" not in client.buffer and time.monotonic() < deadline:
            client.buffer += client.sock.recv(65536)
        assert b"PONG\r\n" in client.buffer, "garbage is answered, then a real line"
        client.close()
        peak = max(peak, child_rss(child))
        # Half a line, then a reset.
        sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
        sock.sendall(b"PIN")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        peak = max(peak, child_rss(child))
    client = LineClient(app.port)
    assert int(client.ask("PID")) == child, "the same child serves on"
    assert client.ask("PING") == "PONG"
    client.finish()
    rss_after = child_rss(child)
    growth = peak - rss_before
    figures(
        "hostile_clients",
        rss_before_mib=rss_before / mib,
        rss_peak_mib=peak / mib,
        rss_after_mib=rss_after / mib,
        growth_mib=growth / mib,
    )
    assert growth < 4 * mib, "memory bounded by MaxLength plus a chunk or so"
    assert "Traceback" not in app.log_text()
    assert app.status()["exits"] == []
