"""Bare servers of the line protocol, no kernel: the limits kernelish is measured against.

    python bench/servers/bare.py prefork N      # N processes in blocking accept()
    python bench/servers/bare.py fork           # one fork per connection

Both print ``PORT=N`` once listening (port chosen by the OS, loopback) and
speak what ``examples/preforking.py`` speaks for the benchmark: ``PING`` ->
``PONG``, ``PID`` -> the pid, ``DONE`` -> ``OK`` then close.  SIGTERM ends
the server and its children.
"""

from __future__ import annotations

import os
import signal
import socket
import sys


def serve(conn: socket.socket) -> None:
    """One connection, with blocking reads and writes."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                command = line.strip().upper()
                if command == b"PING":
                    conn.sendall(b"PONG\r\n")
                elif command == b"DONE":
                    conn.sendall(b"OK\r\n")
                    return
                elif command == b"PID":
                    conn.sendall(b"%d\r\n" % os.getpid())
                else:
                    conn.sendall(b"???\r\n")
    except OSError:
        return
    finally:
        conn.close()


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(socket.SOMAXCONN)
    print(f"PORT={sock.getsockname()[1]}", flush=True)
    return sock


def prefork(n: int) -> None:
    sock = listener()
    children = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                while True:
                    conn, _addr = sock.accept()
                    serve(conn)
            finally:
                os._exit(0)
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()


def fork_per_connection() -> None:
    sock = listener()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    while True:
        try:
            conn, _addr = sock.accept()
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                serve(conn)
            finally:
                os._exit(0)
        conn.close()


def main() -> None:
    if sys.argv[1:2] == ["prefork"]:
        prefork(int(sys.argv[2]) if len(sys.argv) > 2 else 8)
    elif sys.argv[1:2] == ["fork"]:
        fork_per_connection()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
