"""Black-box tests of examples/workers.py: a detached daemon with a pool of
Run workers on a real SQLite file, over TCP on 127.0.0.1, started as a user
starts it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from ._support import LineClient, ProcessReaper, gone, wait_until

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "workers.py"


@dataclass
class Pool:
    port: int
    pid: int
    logfile: Path
    dbfile: Path

    def workers(self) -> list[int]:
        client = LineClient(self.port)
        try:
            return [int(pid) for pid in client.ask("WORKERS").split()]
        finally:
            client.close()


def command(port: int, logfile: Path, dbfile: Path) -> list[str]:
    return [sys.executable, str(EXAMPLE), str(port), str(logfile), str(dbfile)]


@pytest.fixture
def pool(tmp_path: Path, procs: ProcessReaper) -> Pool:
    logfile, dbfile = tmp_path / "workers.log", tmp_path / "workers.sqlite"
    proc = subprocess.run(
        command(0, logfile, dbfile), capture_output=True, text=True, timeout=20, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("PORT="), proc.stdout
    port = int(first.split("=", 1)[1])
    client = LineClient(port)
    try:
        pid = int(client.ask("PID"))
    finally:
        client.close()
    procs.add_session(os.getsid(pid))
    procs.add(pid)
    result = Pool(port, pid, logfile, dbfile)
    wait_until(lambda: len(result.workers()) == 3, 10, "three workers")
    return result


def test_queries_go_through_the_workers_to_the_database(pool: Pool) -> None:
    client = LineClient(pool.port)
    assert client.ask("GET hello") == "VALUE world"
    assert client.ask("SET fruit apple") == "OK"
    assert client.ask("SET fig tree") == "OK"
    assert client.ask("GET fruit") == "VALUE apple"
    assert client.ask("GET nothing") == "NONE"
    client.send("FIND f")
    assert [client.readline() for _ in range(3)] == ["ROW fig tree", "ROW fruit apple", "END 2"]
    assert client.ask("DEL fig") == "OK 1"
    assert client.ask("COUNT") == "COUNT 2"
    assert client.ask("bogus query").startswith("ERROR bad query")
    # Requests sent together are answered in order, one at a time.
    client.sock.sendall(b"GET fruit\r\nCOUNT\r\nGET hello\r\n")
    assert [client.readline() for _ in range(3)] == ["VALUE apple", "COUNT 2", "VALUE world"]
    assert client.ask("QUIT") == "BYE"
    assert client.closed_by_server()
    client.close()
    # The workers wrote to the real file.
    db = sqlite3.connect(f"file:{pool.dbfile}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT value FROM kv WHERE name = 'fruit'").fetchone() == ("apple",)
    finally:
        db.close()
    # Workers are the daemon's children, not the launcher's.
    assert all(psutil.Process(pid).ppid() == pool.pid for pid in pool.workers())


def test_a_worker_that_crashes_mid_reply_is_replaced_and_the_client_told(pool: Pool) -> None:
    before = pool.workers()
    client = LineClient(pool.port)
    assert client.ask("CRASH") == "ERROR worker crashed"
    wait_until(lambda: len(pool.workers()) == 3 and pool.workers() != before, 10, "a new worker")
    after = pool.workers()
    [dead] = set(before) - set(after)
    wait_until(lambda: gone(dead), 5, "the crashed worker to be reaped")
    assert not psutil.pid_exists(dead) or psutil.Process(dead).ppid() != pool.pid
    assert client.ask("GET hello") == "VALUE world", "the pool still serves"
    client.close()
    wait_until(lambda: f"worker {dead} killed by signal 9" in pool.logfile.read_text(), 5, "log")


def test_three_workers_answer_three_clients_at_once(pool: Pool) -> None:
    replies: list[str] = []

    def ask() -> None:
        client = LineClient(pool.port)
        try:
            replies.append(client.ask("SLEEP 0.5"))
        finally:
            client.close()

    threads = [threading.Thread(target=ask) for _ in range(3)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    elapsed = time.monotonic() - start
    assert replies == ["SLEPT"] * 3
    assert elapsed < 1.4, f"the three sleeps ran one after another ({elapsed:.2f} s)"


def test_a_client_that_pipelines_too_much_is_dropped(pool: Pool) -> None:
    client = LineClient(pool.port)
    client.sock.sendall(b"SLEEP 0.2\r\n" + b"COUNT\r\n" * 40)
    assert client.closed_by_server()
    client.close()
    other = LineClient(pool.port)
    assert other.ask("GET hello") == "VALUE world"
    other.close()


def test_term_ends_the_daemon_and_its_workers(pool: Pool) -> None:
    workers = pool.workers()
    os.kill(pool.pid, signal.SIGTERM)
    for pid in [pool.pid, *workers]:
        wait_until(lambda pid=pid: gone(pid), 10, f"process {pid} to exit")
    log = pool.logfile.read_text()
    for pid in workers:
        assert f"worker {pid} exited with 0" in log
