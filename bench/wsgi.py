"""``kernelish serve`` against gunicorn's sync workers, same app, same load (issue 18).

Run: ``.venv/bin/python bench/wsgi.py [--seconds 3] [--repeats 3]``

A hello-world WSGI application (``bench/_wsgi_hello.py``, 13 octets of
``text/plain``) with 4 workers on each server:

* ``kernelish serve`` -- sync workers (one connection at a time per
  child, each connection closed after its request: the defaults), and for
  the keep-alive rows ``--keep-alive 5 --worker-connections 100`` (a child
  keeps many connections; a sync child that keeps one would hold it);
* ``gunicorn`` (``pip install 'gunicorn>=23'``, the ``bench`` extra) --
  ``-k sync``, its default, which closes every connection whatever the
  client asks: its keep-alive rows are that same behaviour under a client
  that asks to keep the connection.

The load is ``wrk`` (Debian's package; the bench says so and measures
nothing without it), 2 threads, 8 and 32 connections, ``--seconds`` each,
with ``-H 'Connection: close'`` and without it.  Rounds are interleaved
(kernelish, gunicorn, kernelish, ...), each figure is the median of
``--repeats`` rounds, and the ratio is kernelish's over gunicorn's.

Memory: per-worker USS (``psutil``'s ``memory_full_info().uss``: the
pages only that process holds) after the load, with and without
``--preload``, for both servers; the median over the workers of the
rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import check, emit, table, wrk  # noqa: E402

PY = sys.executable
WORKERS = 4
APP = "_wsgi_hello:application"
ENV = {**os.environ, "PYTHONPATH": str(HERE.parent)}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One server's process tree (its own session), its workers found by pid."""

    def __init__(self, kind: str, preload: bool = False, keep_alive: bool = False) -> None:
        self.kind = kind
        port = _free_port()
        if kind == "kernelish":
            command = [PY, "-m", "kernelish", "serve", APP, "-b", f"127.0.0.1:{port}"]
            command += ["-w", str(WORKERS), "--chdir", str(HERE), "--log-level", "warning"]
            if keep_alive:
                command += ["--keep-alive", "5", "--worker-connections", "100"]
        else:
            gunicorn = shutil.which("gunicorn", path=str(Path(PY).parent)) or "gunicorn"
            command = [gunicorn, "-b", f"127.0.0.1:{port}", "-w", str(WORKERS)]
            command += ["--chdir", str(HERE), "--log-level", "warning", APP]
        if preload:
            command.append("--preload")
        self.port = port
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=ENV,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until WORKERS workers run and answer
            if len(self.workers()) == WORKERS and self._answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{kind} did not start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                return s.recv(100).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def workers(self) -> list[psutil.Process]:
        try:
            kids = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        return [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]

    def uss(self) -> list[float]:
        """Each worker's USS, in MiB."""
        out = []
        for worker in self.workers():
            try:
                out.append(worker.memory_full_info().uss / 2**20)
            except psutil.Error:
                continue
        return out

    def stop(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): nothing measured", flush=True)
        return
    if shutil.which("gunicorn", path=str(Path(PY).parent)) is None:
        print("gunicorn is not installed (pip install -e '.[bench]'): nothing measured", flush=True)
        return
    connections = (8, 32)
    rates: dict[tuple[str, int, bool], list[float]] = {}
    uss: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.repeats):
        for kind in ("kernelish", "gunicorn"):
            for keep_alive in (False, True):
                if kind == "gunicorn" and keep_alive:
                    server = Server(kind)  # sync: the same server, asked to keep alive
                else:
                    server = Server(kind, keep_alive=keep_alive)
                try:
                    for c in connections:
                        rate = wrk(server.port, c, args.seconds, keep_alive)
                        rates.setdefault((kind, c, keep_alive), []).append(rate)
                    if not keep_alive:
                        uss.setdefault((kind, False), []).extend(server.uss())
                finally:
                    server.stop()
            server = Server(kind, preload=True)
            try:
                wrk(server.port, 8, min(args.seconds, 1.0), False)  # the pages a request touches
                uss.setdefault((kind, True), []).extend(server.uss())
            finally:
                server.stop()
    for keep_alive in (False, True):
        label = "keep-alive" if keep_alive else "Connection: close"
        for c in connections:
            mine = statistics.median(rates[("kernelish", c, keep_alive)])
            base = statistics.median(rates[("gunicorn", c, keep_alive)])
            extra = {"group": "wsgi", "connections": c, "keep_alive": keep_alive}
            emit(f"kernelish serve, 4 workers, {c} connections, {label}", mine, "req/s", **extra)
            emit(f"gunicorn sync, 4 workers, {c} connections, {label}", base, "req/s", **extra)
            name = f"kernelish serve / gunicorn sync, {c} connections, {label}"
            if keep_alive:
                emit(name, mine / base, "x", **extra)
            else:
                check(name, mine / base, ">=", 1.2, **extra)
    for preload in (False, True):
        how = "with --preload" if preload else "without --preload"
        mine = statistics.median(uss[("kernelish", preload)])
        base = statistics.median(uss[("gunicorn", preload)])
        extra = {"group": "wsgi", "preload": preload}
        emit(f"kernelish serve worker USS, {how}", mine, "MiB", **extra)
        emit(f"gunicorn sync worker USS, {how}", base, "MiB", **extra)
        if preload:
            check(f"worker USS kernelish / gunicorn, {how}", mine / base, "<=", 1.0, **extra)
        else:
            emit(f"worker USS kernelish / gunicorn, {how}", mine / base, "x", **extra)
    table("kernelish serve against gunicorn 27 sync workers (wrk, 2 threads; median of rounds)")


if __name__ == "__main__":
    main()
