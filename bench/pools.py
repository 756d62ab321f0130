"""Process pools over TCP: pre-forking, post-forking, fork latency, idle child memory.

Run: ``.venv/bin/python bench/pools.py [--seconds 2] [--repeats 2] [--only NAME]``.

Every server runs in the foreground in its own session (process group), is
ended with its children when its measurement ends, and speaks the line
protocol of ``examples/preforking.py``; the load comes from
``bench/loadgen.py`` (connection per request: connect, PING, PONG, DONE, OK,
close; one client *process* per concurrent client, on the same 2 cores as the
server, as for the Perl figures).  Each kernelish figure is measured right
after its bare baseline, in the same run, best of ``--repeats``:

* ``prefork_r1000``: kernelish ``DaemonComponent`` pre-forking, requests=1000,
  8 children, against the bare pre-forking server (8 processes blocking in
  ``accept``) -- target >= 70%;
* ``prefork_r1``: requests=1 (each child serves one connection and exits; a
  dead child is replaced at once), against the bare fork-per-connection
  server -- target >= 50%;
* ``postfork``: post-forking, max_children=8, against the bare
  fork-per-connection server -- target >= 70%, no child beyond max_children
  (live children sampled every 2 ms from ``/proc``) and no reset connection at
  8 clients;
* ``latency``: time to the first reply on a fresh connection, post-forked
  child against an idle pre-forked child -- target: within 1.5 ms;
* ``memory``: USS and PSS (``psutil.Process.memory_full_info``) of an idle
  pre-forked child, after it settled -- target USS <= 1.3 MB.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402
from _common import check, emit, table  # noqa: E402
from loadgen import first_reply_latency, run_load  # noqa: E402

PY = sys.executable
BARE = str(HERE / "servers" / "bare.py")
KERNELISH = str(HERE / "servers" / "kernelish_server.py")
CLIENTS = (1, 4, 8)
POOL = 8  # children of both pre-forking servers
PERL = {
    "prefork_r1000": {1: 1300.0, 4: 2000.0, 8: 1900.0},
    "prefork_r1": {1: 2.2, 4: 2.2, 8: 2.2},
    "postfork": {1: 150.0, 4: 150.0, 8: 150.0},
}


class Server:
    """A server process (and its children) in its own process group."""

    def __init__(self, *argv: str) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            [PY, *argv],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
        self.port = self._read_port(15.0)

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PORT="):
            self.stop()
            raise SystemExit(f"{self.argv} did not start: {line!r}")
        return int(line.strip().split("=")[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[int]:
        """Live (not zombie) children of the server, from /proc."""
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            return []
        live = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state not in ("Z", "X"):
                live.append(pid)
        return live

    def wait_children(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.children()) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.argv}: {len(self.children())} children, wanted {n}")
            time.sleep(0.02)

    def stop(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of the group
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.returncode is None:
            self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ChildSampler:
    """Samples the number of live children every ``interval`` s in a thread."""

    def __init__(self, server: Server, interval: float = 0.002) -> None:
        self.server = server
        self.interval = interval
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(len(self.server.children()))

    def __enter__(self) -> ChildSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def kernelish_prefork(requests: int, start: int = POOL) -> tuple[str, ...]:
    return (
        KERNELISH,
        "prefork",
        "--requests",
        str(requests),
        "--start-children",
        str(start),
        "--min-spare",
        "2",
        "--max-spare",
        str(start + 2),
        "--max-children",
        str(start + 4),
    )


def best_load(
    argv: tuple[str, ...], clients: int, seconds: float, repeats: int, warm: int = 0
) -> dict[str, Any]:
    """The best of ``repeats`` load runs, each against a fresh server."""
    best: dict[str, Any] | None = None
    for _ in range(repeats):
        with Server(*argv) as server:
            if warm:
                server.wait_children(warm)
            with ChildSampler(server) as sampler:
                result = run_load(server.port, "conn", clients, seconds)
            result["max_children_seen"] = max(sampler.samples, default=0)
            result["samples"] = len(sampler.samples)
        if best is None or result["rate"] > best["rate"]:
            best = result
    assert best is not None
    return best


def record(name: str, clients: int, result: dict[str, Any], group: str, **extra: Any) -> None:
    emit(
        f"{name} {clients} clients",
        result["rate"],
        "conn/s",
        group=group,
        clients=clients,
        p50_ms=round(result["p50_ms"], 3),
        p99_ms=round(result["p99_ms"], 3),
        errors=result["errors"],
        resets=result["resets"],
        max_children_seen=result["max_children_seen"],
        **extra,
    )


def versus(
    group: str,
    clients: int,
    seconds: float,
    repeats: int,
    bare: tuple[str, tuple[str, ...], int, str],
    ours: tuple[str, tuple[str, ...], int],
    target: float,
) -> dict[str, Any]:
    """One client count of a pool benchmark: the bare baseline (record name,
    argv, children to wait for, label), then ours (label, argv, children to
    wait for), and the ratio check; returns our load result."""
    bare_name, bare_argv, bare_warm, bare_label = bare
    ours_label, ours_argv, ours_warm = ours
    base = best_load(bare_argv, clients, seconds, repeats, warm=bare_warm)
    record(bare_name, clients, base, group, baseline=True)
    result = best_load(ours_argv, clients, seconds, repeats, warm=ours_warm)
    record(group, clients, result, group, perl=PERL[group][clients])
    check(
        f"{ours_label}, {clients} clients / {bare_label}",
        result["rate"] / base["rate"],
        ">=",
        target,
        group=group,
    )
    return result


BARE_PREFORK = ("bare_prefork", (BARE, "prefork", str(POOL)), POOL, "bare prefork")
BARE_FORK = ("bare_fork", (BARE, "fork"), 0, "bare fork-per-connection")


def bench_prefork_r1000(seconds: float, repeats: int) -> None:
    ours = ("prefork requests=1000", kernelish_prefork(1000), POOL)
    for clients in CLIENTS:
        versus("prefork_r1000", clients, seconds, repeats, BARE_PREFORK, ours, 0.7)


def bench_prefork_r1(seconds: float, repeats: int) -> None:
    ours = ("prefork requests=1", kernelish_prefork(1), POOL)
    for clients in CLIENTS:
        versus("prefork_r1", clients, seconds, repeats, BARE_FORK, ours, 0.5)


def bench_postfork(seconds: float, repeats: int) -> None:
    ours_spec = ("postfork max_children=8", (KERNELISH, "fork", "--max-children", "8"), 0)
    for clients in CLIENTS:
        ours = versus("postfork", clients, seconds, repeats, BARE_FORK, ours_spec, 0.7)
        if clients == 8:
            check(
                "postfork, 8 clients: most live children seen",
                ours["max_children_seen"],
                "<=",
                8,
                unit="children",
                group="postfork",
            )
            check(
                "postfork, 8 clients: reset connections",
                ours["resets"],
                "<=",
                0,
                unit="resets",
                group="postfork",
            )


def first_reply(argv: tuple[str, ...], samples: int, warm: int = 0) -> float:
    """Median seconds to the first reply on a fresh connection."""
    with Server(*argv) as server:
        if warm:
            server.wait_children(warm)
        time.sleep(0.5)
        first_reply_latency(server.port, 5)  # warm-up
        return statistics.median(first_reply_latency(server.port, samples, pause=0.02))


LAT: dict[str, Any] = {"group": "latency", "baseline": True}
MEM: dict[str, Any] = {"group": "memory", "baseline": True}
SERVER_IMPORTS = "import kernelish.components.daemon, kernelish.wheels, kernelish.filters, psutil"
FORK_COST = """
import os, time
{code}
best = 1.0
for _ in range(30):
    t = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    best = min(best, time.perf_counter() - t)
print(best)
"""


def fork_cost(code: str) -> float:
    """Best seconds of fork() + _exit + waitpid in a process that ran ``code``."""
    out = subprocess.run(
        [PY, "-c", FORK_COST.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    return float(out.stdout.strip())


def bench_latency(samples: int) -> None:
    bare_fork = first_reply((BARE, "fork"), samples)
    emit("first reply, bare fork-per-connection", bare_fork * 1000, "ms", **LAT)
    bare_pre = first_reply((BARE, "prefork", "2"), samples, warm=2)
    emit("first reply, bare pre-forked child", bare_pre * 1000, "ms", **LAT)
    post = first_reply((KERNELISH, "fork", "--max-children", "8"), samples)
    emit("first reply, post-forked child", post * 1000, "ms", group="latency", perl=3.5)
    pre = first_reply(kernelish_prefork(1000, start=2), samples, warm=2)
    emit("first reply, idle pre-forked child", pre * 1000, "ms", group="latency")
    for label, code in (
        ("bare python", "pass"),
        ("with the server's imports", SERVER_IMPORTS),
    ):
        emit(f"fork()+exit, {label}", fork_cost(code) * 1000, "ms", **LAT)
    check(
        "fork latency: post-fork first reply - pre-forked child's",
        (post - pre) * 1000,
        "<=",
        1.5,
        unit="ms",
        group="latency",
    )


def idle_memory(argv: tuple[str, ...], n: int, settle: float) -> tuple[float, float]:
    """Median (USS, PSS) in MB of the ``n`` idle children of a pre-forking server."""
    with Server(*argv) as server:
        server.wait_children(n)
        time.sleep(settle)
        uss, pss = [], []
        for pid in server.children():
            info = psutil.Process(pid).memory_full_info()
            uss.append(info.uss / 2**20)
            pss.append(info.pss / 2**20)
        parent = psutil.Process(server.pid).memory_full_info()
        emit(f"{Path(argv[0]).stem} parent RSS", parent.rss / 2**20, "MB", group="memory")
    return statistics.median(uss), statistics.median(pss)


def bench_memory(settle: float) -> None:
    bare_uss, bare_pss = idle_memory((BARE, "prefork", "4"), 4, settle)
    emit("idle bare pre-forked child USS", bare_uss, "MB", **MEM)
    emit("idle bare pre-forked child PSS", bare_pss, "MB", **MEM)
    uss, pss = idle_memory(kernelish_prefork(1000, start=4), 4, settle)
    emit("idle pre-forked child USS", uss, "MB", group="memory", perl=1.3)
    emit("idle pre-forked child PSS", pss, "MB", group="memory", perl=4.3)
    check("idle pre-forked child USS", uss, "<=", 1.3, unit="MB", group="memory")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per load run")
    parser.add_argument("--repeats", type=int, default=2, help="best of")
    parser.add_argument("--samples", type=int, default=200, help="first-reply samples")
    parser.add_argument("--settle", type=float, default=1.5, help="idle seconds before memory")
    parser.add_argument(
        "--only",
        action="append",
        choices=("prefork_r1000", "prefork_r1", "postfork", "latency", "memory"),
    )
    opts = parser.parse_args()
    only = set(opts.only or ("prefork_r1000", "prefork_r1", "postfork", "latency", "memory"))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if "prefork_r1000" in only:
        bench_prefork_r1000(opts.seconds, opts.repeats)
        table("pre-forking, requests=1000 (connections/s)")
    if "prefork_r1" in only:
        bench_prefork_r1(opts.seconds, opts.repeats)
        table("pre-forking, requests=1 (connections/s)")
    if "postfork" in only:
        bench_postfork(opts.seconds, opts.repeats)
        table("post-forking, max_children=8 (connections/s)")
    if "latency" in only:
        bench_latency(opts.samples)
        table("time to first reply on a fresh connection (median)")
    if "memory" in only:
        bench_memory(opts.settle)
        table("idle pre-forked child memory (median of the pool)")


if __name__ == "__main__":
    main()
