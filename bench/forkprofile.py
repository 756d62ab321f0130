"""Where the time of a forked child goes: the profile behind the fork-bound targets.

Run: ``.venv/bin/python bench/forkprofile.py [--seconds 3] [--part fork|prefork]``.

cProfile cannot show this cost: it is not in Python functions but in page
faults.  After ``fork()`` every page is shared copy-on-write, so each page
the child writes -- and CPython writes to every object it touches, its
reference count -- costs a fault and a copy; so does each page the parent
writes next.  Four measurements, all in this run:

* the price of one copy-on-write fault on this machine (a child writing
  one byte per page of a 32 MB buffer);
* ``fork()`` in the parent: a bare process, and the post-forking server
  (from its own at-fork hooks);
* CPU per connection of the parent and of its children, for the bare
  fork-per-connection server and the kernelish post-forking one (from
  ``/proc/PID/stat``: utime+stime, and cutime+cstime of reaped children);
* a post-forked kernelish child's steps (``bench/servers/_marks.py``): the
  page faults, CPU and wall time from ``fork()`` to the kernel's
  re-initialisation, ``daemon_child``, the ReadWrite wheel, the first
  input, the last reply and the exit.

``--part prefork`` measures instead the CPU per connection of the children
of the bare pre-forking server and of kernelish's (requests=100000, so no
child is recycled), at 4 clients: no fork there, the per-connection work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit, table  # noqa: E402
from _servers import BARE, KERNELISH, Server  # noqa: E402
from loadgen import run_load  # noqa: E402
from pools import POOL  # noqa: E402

STEPS = ("fork", "stdlib", "kernel", "daemon_child", "wheel", "input", "done", "exit")
LABELS = {
    "fork": "fork() to the first Python in the child (OS, CPython after-fork)",
    "stdlib": "threading's and logging's at-fork hooks",
    "kernel": "the kernel's at-fork hook (re-initialisation)",
    "daemon_child": "the Daemon's become_child to daemon_child",
    "wheel": "ReadWrite + Line wheel built",
    "input": "to the first input (PING)",
    "done": "to the last reply (OK)",
    "exit": "session stop to os._exit (the examples' way out)",
}


def cow_fault_us(megabytes: int = 32) -> float:
    """Microseconds per copy-on-write fault: a child writes one byte per page."""
    size = megabytes << 20
    buf = bytearray(b"x" * size)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        start = time.perf_counter()
        for i in range(0, size, 4096):
            buf[i] = 1
        os.write(w, str(time.perf_counter() - start).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        elapsed = float(fh.read())
    os.waitpid(pid, 0)
    return elapsed / (size // 4096) * 1e6


def bare_fork_ms(samples: int = 50) -> float:
    """Median ``fork()`` of this (small) process, in the parent."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        times.append(time.perf_counter() - start)
        os.waitpid(pid, 0)
    return statistics.median(times) * 1e3


def _cpu(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) of ``pid`` in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


def per_connection(server: Server, seconds: float) -> dict[str, float]:
    """Rate, and CPU ms per connection of the parent and of its children."""
    time.sleep(0.3)
    own0, kids0 = _cpu(server.pid)
    result = run_load(server.port, "conn", 1, seconds, warmup=0.0)
    deadline = time.monotonic() + 5
    while server.children() and time.monotonic() < deadline:
        time.sleep(0.01)  # the last children reaped, so their CPU is counted
    own1, kids1 = _cpu(server.pid)
    n = max(1, result["requests"])
    return {
        "rate": result["rate"],
        "parent_ms": (own1 - own0) / n * 1e3,
        "children_ms": (kids1 - kids0) / n * 1e3,
    }


def steps(marks_file: Path) -> tuple[dict[str, dict[str, float]], list[float], int]:
    """Median faults, CPU ms and wall ms of each step (against the step
    before; ``fork`` against the parent's call), the parent's fork() times,
    and the number of children with every step."""
    children, fork_s = [], []
    for line in marks_file.read_text().splitlines():
        record = json.loads(line)
        if isinstance(record, dict):
            fork_s += record["fork_s"]
            continue
        # first occurrence of each step (a child sees two inputs)
        by_step: dict[str, list[float]] = {}
        for step, faults, cpu, wall in record:
            by_step.setdefault(step, [faults, cpu, wall])
        if all(s in by_step for s in STEPS):
            children.append(by_step)
    out: dict[str, dict[str, float]] = {}
    for i, step in enumerate(STEPS):
        prev = STEPS[i - 1] if i else None
        deltas: dict[str, list[float]] = {"faults": [], "cpu_ms": [], "wall_ms": []}
        for child in children:
            base = child[prev] if prev else [0, 0.0, 0.0]
            deltas["faults"].append(child[step][0] - base[0])
            deltas["cpu_ms"].append((child[step][1] - base[1]) * 1e3)
            deltas["wall_ms"].append((child[step][2] - base[2]) * 1e3)
        out[step] = {k: statistics.median(v) if v else float("nan") for k, v in deltas.items()}
    return out, fork_s, len(children)


def pool_cpu(server: Server, seconds: float, clients: int = 4) -> dict[str, float]:
    """Rate, and CPU us per connection summed over a pool's children."""
    server.wait_children(POOL)
    time.sleep(0.5)
    kids = server.children()
    before = sum(_cpu(k)[0] for k in kids)
    result = run_load(server.port, "conn", clients, seconds, warmup=0.0)
    after = sum(_cpu(k)[0] for k in kids if os.path.exists(f"/proc/{k}"))
    return {"rate": result["rate"], "child_us": (after - before) / max(1, result["requests"]) * 1e6}


def prefork_part(seconds: float) -> None:
    with Server(BARE, "prefork", str(POOL)) as bare:
        b = pool_cpu(bare, seconds)
    argv = ("prefork", "--requests", "100000", "--start-children", str(POOL), "--max-spare", "10")
    with Server(KERNELISH, *argv) as ours:
        k = pool_cpu(ours, seconds)
    for name, r in (("bare pre-forking", b), ("kernelish pre-forking", k)):
        emit(f"{name}, 4 clients: connections/s", r["rate"], "conn/s", group="forkprofile")
        emit(f"{name}: child CPU per connection", r["child_us"], "us", group="forkprofile")
    table("Pre-forking: CPU per connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--part", choices=("fork", "prefork"), default="fork")
    opts = parser.parse_args()
    if opts.part == "prefork":
        prefork_part(opts.seconds)
        return
    fault = cow_fault_us()
    emit("copy-on-write fault", fault, "us", group="forkprofile")
    emit("fork() of this bare process (parent side)", bare_fork_ms(), "ms", group="forkprofile")

    with Server(BARE, "fork") as bare:
        b = per_connection(bare, opts.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        marks = Path(tmp) / "marks.jsonl"
        with Server(KERNELISH, "fork", "--max-children", "8", "--marks", str(marks)) as ours:
            k = per_connection(ours, opts.seconds)
            rss = _rss_mb(ours.pid)
        by_step, fork_s, n = steps(marks)
    for name, r in (("bare fork-per-connection", b), ("kernelish post-forking", k)):
        emit(f"{name}: connections/s", r["rate"], "conn/s", group="forkprofile")
        emit(f"{name}: parent CPU per connection", r["parent_ms"], "ms", group="forkprofile")
        if name.startswith("kernelish"):  # the bare server's children are not waited for
            emit(f"{name}: child CPU per connection", r["children_ms"], "ms", group="forkprofile")
    emit("kernelish server: parent resident memory", rss, "MB", group="forkprofile")
    if fork_s:
        emit(
            "fork() of the kernelish server (parent side)",
            statistics.median(fork_s) * 1e3,
            "ms",
            group="forkprofile",
        )
    total = {"faults": 0.0, "cpu_ms": 0.0}
    for step in STEPS:
        s = by_step[step]
        total["faults"] += s["faults"]
        total["cpu_ms"] += s["cpu_ms"]
        emit(
            f"child step: {LABELS[step]}",
            s["faults"],
            "faults",
            cpu_ms=round(s["cpu_ms"], 3),
            wall_ms=round(s["wall_ms"], 3),
            group="forkprofile",
        )
    emit(
        f"child, fork to exit ({n} children): faults x fault price",
        total["faults"] * fault / 1e3,
        "ms",
        faults=total["faults"],
        cpu_ms=round(total["cpu_ms"], 3),
        group="forkprofile",
    )
    table("Fork profile")
    print("step                                                        faults  cpu ms  wall ms")
    for step in STEPS:
        s = by_step[step]
        print(f"{LABELS[step]:<60}{s['faults']:>6.0f}  {s['cpu_ms']:6.2f}  {s['wall_ms']:7.2f}")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


if __name__ == "__main__":
    main()
