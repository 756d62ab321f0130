"""Instructions per connection of a pre-forked child: a figure the shared machine cannot blur.

Run: ``.venv/bin/python bench/instructions.py [--few 100] [--many 600]``
(needs ``valgrind``; about a minute).

CPU time per connection (``bench/forkprofile.py --part prefork``) moves by
30% from one run to the next on two cores shared with other work.  This
counts instructions instead: ``bench/servers/kernelish_server.py prefork``
runs under ``valgrind --tool=callgrind`` with one child (requests=10**6, so
it is never recycled), one client makes ``few`` connections, then, on a
fresh server, ``many`` (connect, PING, PONG, DONE, OK, close: the load of
``bench/pools.py``, serially).  The child's instructions per connection are
``(Ir(many) - Ir(few)) / (many - few)``: start-up and exit cancel out.  The
bare pre-forking child (``bench/servers/bare.py prefork 1``) is measured the
same way, as the floor.  With ``KERNELISH_ROOT=/other/checkout`` the other
checkout's kernelish is counted (its bench server too).

``examples/server_tcp_preforking.py``'s server
(``bench/servers/server_tcp_server.py``, ServerTCP(Daemon=True)) is counted
with the same pool and load; ``--only servertcp --only glue`` runs just
those two.

Only user-space instructions are counted (no system calls, no page
faults): the figure says how much Python work a connection costs.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import emit, table

ROOT = Path(os.environ.get("KERNELISH_ROOT", Path(__file__).resolve().parent.parent))
KERNELISH = (
    "prefork",
    "--requests",
    "1000000",
    "--start-children",
    "1",
    "--min-spare",
    "1",
    "--max-spare",
    "1",
    "--max-children",
    "1",
)
SERVERS = {
    "bare pre-forking child": (ROOT / "bench" / "servers" / "bare.py", ("prefork", "1")),
    "kernelish pre-forked child": (ROOT / "bench" / "servers" / "kernelish_server.py", KERNELISH),
    # ServerTCP(Daemon=True): examples/server_tcp_preforking.py's server, same load and pool.
    "ServerTCP pre-forked child": (ROOT / "bench" / "servers" / "server_tcp_server.py", KERNELISH),
}
#: ``--only``'s names for SERVERS, in its order.
KEYS = {
    "bare": "bare pre-forking child",
    "glue": "kernelish pre-forked child",
    "servertcp": "ServerTCP pre-forked child",
}
TIMEOUT = 120.0  # per step of a run under valgrind


def _client(port: int, n: int) -> None:
    """``n`` connections, one after the other, as loadgen's ``conn`` mode."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            reader = sock.makefile("rb")
            sock.sendall(b"PING\r\n")
            if reader.readline().strip() != b"PONG":
                raise SystemExit("no PONG")
            sock.sendall(b"DONE\r\n")
            if reader.readline().strip() != b"OK":
                raise SystemExit("no OK")
            reader.read()  # the server closes
            reader.close()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def child_instructions(script: Path, argv: tuple[str, ...], connections: int, tmp: Path) -> int:
    """Instructions the server's (only) child ran, after ``connections``."""
    out = tmp / f"cg.{connections}.%p"
    proc = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(script),
            *argv,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("PORT="):
            raise SystemExit(f"{script} did not start: {line!r}")
        port = int(line.split("=")[1])
        deadline = time.monotonic() + TIMEOUT
        while not _children(proc.pid):
            if time.monotonic() > deadline:
                raise SystemExit(f"{script}: no child")
            time.sleep(0.1)
        child = _children(proc.pid)[0]
        time.sleep(1.0)  # the child settles in accept
        _client(port, connections)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(TIMEOUT)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    path = Path(str(out).replace("%p", str(child)))
    deadline = time.monotonic() + TIMEOUT
    while True:  # complete once its summary line is there
        found = re.search(r"^(?:summary|totals): (\d+)", _read(path), re.M)
        if found is not None:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"no summary in {path}")
        time.sleep(0.2)
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=100)
    parser.add_argument("--many", type=int, default=600)
    parser.add_argument(
        "--only", action="append", choices=("bare", "glue", "servertcp"), help="these servers only"
    )
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: no instruction counts")
        return
    if opts.many <= opts.few:
        parser.error("--many must be above --few")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (key, name), (script, argv) in zip(KEYS.items(), SERVERS.values(), strict=True):
            if opts.only and key not in opts.only:
                continue
            few = child_instructions(script, argv, opts.few, Path(tmp))
            many = child_instructions(script, argv, opts.many, Path(tmp))
            figures[name] = (many - few) / (opts.many - opts.few)
            emit(f"{name}: instructions per connection", figures[name], "Ir", group="instructions")
    bare = figures.get("bare pre-forking child")
    glue = figures.get("kernelish pre-forked child")
    servertcp = figures.get("ServerTCP pre-forked child")
    if bare and glue:
        emit("kernelish / bare", glue / bare, "x", group="instructions")
    if glue and servertcp:
        emit("ServerTCP / kernelish glue", servertcp / glue, "x", group="instructions")
    table("Instructions per connection (callgrind, user space)")


if __name__ == "__main__":
    main()
