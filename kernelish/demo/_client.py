"""The demo's client traffic: blocking sockets in threads, in a process of their own.

``python -m kernelish.demo._client PORT SECONDS THREADS`` opens connections to
``127.0.0.1:PORT`` from THREADS threads for SECONDS seconds.  Each connection is
one request in the Daemon's sense: ``PING``, ``PING``, then ``PING`` or (one time
in eight) ``SLOW``, then ``DONE``; the server answers ``OK`` and closes.  The
result is one JSON line on stdout: counts and the latency of every request
(connect to close) as p50/p99.

The clients live in a separate process so that the daemon, which forks, is never
a multi-threaded process.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

__all__ = ["Tally", "drive", "main"]

SLOW_SHARE = 1 / 8


@dataclass
class Tally:
    """What one client thread saw."""

    latencies: list[float] = field(default_factory=list)
    commands: int = 0
    slow: int = 0
    errors: int = 0


def _request(port: int, slow: bool, tally: Tally) -> None:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for command, expected in (
            ("PING", "PONG"),
            ("PING", "PONG"),
            ("SLOW", "SLEPT") if slow else ("PING", "PONG"),
            ("DONE", "OK"),
        ):
            sock.sendall(command.encode() + b"\r\n")
            reply = reader.readline().decode().strip()
            if reply != expected:
                raise ConnectionError(f"{command} got {reply!r}")
            tally.commands += 1
        if reader.read(1) != b"":
            raise ConnectionError("the server did not close after OK")
    tally.latencies.append(time.perf_counter() - started)
    tally.slow += slow


def _client(port: int, deadline: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        try:
            _request(port, rng.random() < SLOW_SHARE, tally)
        except OSError:
            tally.errors += 1
            time.sleep(0.01)


def _percentile(sorted_values: list[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return sorted_values[0]
    cuts = statistics.quantiles(sorted_values, n=100, method="inclusive")
    return cuts[round(share * 100) - 1]


def drive(port: int, seconds: float, threads: int) -> dict[str, float]:
    """Run the client threads and return the summary the demo prints."""
    deadline = time.monotonic() + seconds
    tallies = [Tally() for _ in range(threads)]
    workers = [
        threading.Thread(target=_client, args=(port, deadline, n, tally), daemon=True)
        for n, tally in enumerate(tallies)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 15)
    latencies = sorted(x for t in tallies for x in t.latencies)
    return {
        "requests": len(latencies),
        "commands": sum(t.commands for t in tallies),
        "slow": sum(t.slow for t in tallies),
        "errors": sum(t.errors for t in tallies),
        "p50_ms": 1000 * _percentile(latencies, 0.50),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
    }


def main(argv: list[str]) -> int:
    """Entry point: ``PORT SECONDS THREADS``; prints one JSON line."""
    port, seconds, threads = int(argv[0]), float(argv[1]), int(argv[2])
    try:
        tally = drive(port, seconds, threads)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole foreground group
        return 130
    print(json.dumps(tally), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
