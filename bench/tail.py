"""FollowTail: lines/s from a writer process to a handler, against
``tail -F`` piped into a Python reader, and the delivery latency.

Run: ``.venv/bin/python bench/tail.py [--lines 200000] [--repeats 3]``

Throughput.  A writer process appends ``--lines`` lines of about 60 octets
to a fresh file, one ``write(2)`` each (as a logging handler does), as fast
as it can.  The reader, in this process, calls the same handler once per
line, through

* kernelish: ``FollowTail(Filename=..., PollInterval=0.05)``;
* the baseline: ``tail -n +1 -F FILE`` (GNU, inotify) piped into this
  process, read by ``for line in pipe``.

lines/s = lines / (the writer's go .. the last line handled).  The two run
alternately, on the same file path and the same writer, best of
``--repeats`` each; the ratio's target is >= 1.

Latency.  The writer appends ``--stamped`` lines, each carrying the
``time.monotonic()`` of its write (CLOCK_MONOTONIC is one clock for every
process), 2 to 8 ms apart (random, so that the writes do not lock to the
polls); the handler takes the difference.  p50 / p99 for FollowTail with
PollInterval 0.05 s (target: p99 <= PollInterval + 10 ms) and, for
reference, for ``tail -F``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import check, emit, percentile, table

POLL = 0.05
LINE = "seq={:08d} level=INFO some message text of a log line\n"


# -- the writer (a child process) -------------------------------------------------


def write(path: str, lines: int, stamped: bool) -> None:
    """Wait for a byte on stdin, then append; print the seconds it took."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdin.buffer.read(1)
    start = time.perf_counter()
    if stamped:
        for n in range(lines):
            time.sleep(random.uniform(0.002, 0.008))
            os.write(fd, f"{time.monotonic():.9f} {n}\n".encode())
    else:
        for n in range(lines):
            os.write(fd, LINE.format(n).encode())
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    os.close(fd)


def start_writer(path: Path, lines: int, stamped: bool) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--write", str(path), "--lines", str(lines)]
    if stamped:
        args.append("--stamp")
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def go(writer: subprocess.Popen[bytes]) -> None:
    assert writer.stdin is not None
    writer.stdin.write(b"g")
    writer.stdin.flush()


def writer_seconds(writer: subprocess.Popen[bytes]) -> float:
    assert writer.stdin is not None and writer.stdout is not None
    writer.stdin.close()
    out = writer.stdout.read()
    writer.stdout.close()
    writer.wait(120)
    return float(out)


# -- the readers ------------------------------------------------------------------


def follow_kernelish(
    path: Path, lines: int, on_line: Callable[[str], None], stamped: bool = False
) -> float:
    """Run FollowTail on ``path`` until ``lines`` lines were handled; returns
    the seconds from the writer's go."""
    from kernelish import HEAP, HandlerArgs, Session, poe_kernel
    from kernelish.wheels import FollowTail

    writer = start_writer(path, lines, stamped)
    seen = [0]
    times = [0.0, 0.0]

    def start(_: HandlerArgs) -> None:
        _[HEAP]["wheel"] = FollowTail(Filename=str(path), InputEvent="line", PollInterval=POLL)
        times[0] = time.perf_counter()
        go(writer)

    def line(_: HandlerArgs) -> None:
        on_line(_.args[0])
        seen[0] += 1
        if seen[0] == lines:
            times[1] = time.perf_counter()
            del _[HEAP]["wheel"]

    Session.create(inline_states={"_start": start, "line": line})
    poe_kernel.run()
    writer_seconds(writer)
    return times[1] - times[0]


def follow_tail_f(
    path: Path, lines: int, on_line: Callable[[str], None], stamped: bool = False
) -> float:
    """The same with ``tail -n +1 -F path | this process``."""
    tail = subprocess.Popen(
        ["tail", "-n", "+1", "-F", str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert tail.stdout is not None
    writer = start_writer(path, lines, stamped)
    wait_open(tail.pid, path)
    start = time.perf_counter()
    go(writer)
    pipe = tail.stdout
    for seen, raw in enumerate(pipe, 1):
        on_line(raw.decode().rstrip("\r\n"))
        if seen == lines:
            break
    elapsed = time.perf_counter() - start
    tail.terminate()
    tail.wait(5)
    pipe.close()
    writer_seconds(writer)
    return elapsed


def wait_open(pid: int, path: Path, timeout: float = 5.0) -> None:
    """Wait until process ``pid`` has ``path`` open (read from /proc)."""
    deadline = time.monotonic() + timeout
    fds = Path(f"/proc/{pid}/fd")
    while time.monotonic() < deadline:
        for fd in fds.iterdir():
            try:
                if os.readlink(fd) == str(path):
                    return
            except OSError:
                continue
        time.sleep(0.005)
    raise SystemExit(f"tail (pid {pid}) did not open {path}")


_count = [0]


def count_line(line: str) -> None:
    """The handler of the throughput runs: what a line counter does."""
    if line:
        _count[0] += 1


def fresh(path: Path) -> Path:
    if path.exists():
        path.unlink()
    path.write_bytes(b"")
    return path


# -- the measurements -------------------------------------------------------------


def throughput(workdir: Path, lines: int, repeats: int) -> dict[str, float]:
    path = workdir / "bench.log"
    best = {"kernelish": 0.0, "tail": 0.0}
    for _ in range(repeats):
        for kind, follow in (("kernelish", follow_kernelish), ("tail", follow_tail_f)):
            seconds = follow(fresh(path), lines, count_line)
            best[kind] = max(best[kind], lines / seconds)
    return best


def latency(workdir: Path, lines: int, follow: Callable[..., float]) -> list[float]:
    delays: list[float] = []

    def stamped(line: str) -> None:  # the line's write to now
        delays.append(time.monotonic() - float(line.split()[0]))

    follow(fresh(workdir / "bench.log"), lines, stamped, True)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000, help="lines per throughput run")
    parser.add_argument("--stamped", type=int, default=400, help="lines of the latency run")
    parser.add_argument("--repeats", type=int, default=3, help="best of")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--stamp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write(args.write, args.lines, args.stamp)
        return
    if shutil.which("tail") is None:
        raise SystemExit("bench/tail.py needs tail(1) for its baseline")
    workdir = Path(tempfile.mkdtemp(prefix="kernelish-bench-tail-"))
    try:
        best = throughput(workdir, args.lines, args.repeats)
        emit("FollowTail, writer to handler", best["kernelish"], "lines/s", group="tail")
        emit(
            "tail -F | Python reader, writer to handler",
            best["tail"],
            "lines/s",
            group="tail",
            baseline=True,
        )
        check(
            "FollowTail lines/s / tail -F | Python",
            best["kernelish"] / best["tail"],
            ">=",
            1.0,
            group="tail",
        )
        ours = latency(workdir, args.stamped, follow_kernelish)
        theirs = latency(workdir, args.stamped, follow_tail_f)
        p50, p99 = percentile(ours, 50) * 1000, percentile(ours, 99) * 1000
        emit(
            f"FollowTail delivery latency p99 (PollInterval {POLL * 1000:.0f} ms)",
            p99,
            "ms",
            group="tail",
            p50_ms=round(p50, 1),
            p99_ms=round(p99, 1),
        )
        emit(
            "tail -F | Python delivery latency p99",
            percentile(theirs, 99) * 1000,
            "ms",
            group="tail",
            baseline=True,
            p50_ms=round(percentile(theirs, 50) * 1000, 1),
            p99_ms=round(percentile(theirs, 99) * 1000, 1),
        )
        check(
            "FollowTail latency p99 <= PollInterval + 10 ms",
            p99,
            "<=",
            POLL * 1000 + 10,
            unit="ms",
            group="tail",
        )
    finally:
        shutil.rmtree(workdir)
    table("FollowTail: a writer's lines to a handler")


if __name__ == "__main__":
    main()
