"""The benchmark suite: ``make bench``.

    .venv/bin/python bench/run_all.py [--quick] [--only dispatch --only pools ...]

Runs every benchmark script of ``bench/`` in its own interpreter (so each
starts from a fresh kernel), shows their tables as they go, collects their
JSON lines, prints every target check with PASS / FALL SHORT, and writes
``docs/performance.md`` with the figures, the Perl original's figures beside
ours, charts (``docs/img/bench-*.png``, matplotlib) and, for each missed
target, what bounds it.  Every ratio is against a baseline measured in the
same invocation; every figure is a best of N.  ``--quick`` shortens every
run (for trying the suite out, not for the docs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import DOC, charts, fmt, write_doc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    # name: (full args, quick args)
    "dispatch": (["--repeats", "5"], ["--repeats", "2", "--events", "100000"]),
    "timers": (["--repeats", "3"], ["--repeats", "1"]),
    "echo": (["--seconds", "2", "--repeats", "3"], ["--seconds", "1", "--repeats", "1"]),
    "pools": (
        ["--seconds", "2", "--repeats", "3"],
        ["--seconds", "1", "--repeats", "1", "--samples", "50"],
    ),
    "imports": (["--repeats", "7"], ["--repeats", "3"]),
    "filters": (["--repeats", "5"], ["--repeats", "2", "--messages", "5000"]),
    "tail": (
        ["--lines", "500000", "--repeats", "3"],
        ["--lines", "100000", "--repeats", "1", "--stamped", "150"],
    ),
    "http_parse": (["--repeats", "5"], ["--repeats", "2", "--requests", "5000"]),
    "run": (
        ["--repeats", "5"],
        ["--repeats", "1", "--starts", "50", "--lines", "300000", "--seconds", "0.5"],
    ),
    "servers_tcp": (["--seconds", "2", "--repeats", "2"], ["--seconds", "1", "--repeats", "1"]),
    "http_server": (["--seconds", "3", "--repeats", "2"], ["--seconds", "1", "--repeats", "1"]),
    "http_client": (["--seconds", "2", "--repeats", "3"], ["--seconds", "1", "--repeats", "1"]),
    "wsgi": (["--seconds", "3", "--repeats", "3"], ["--seconds", "1", "--repeats", "1"]),
}

#: What bounds a target when it is missed.  No figure is written here: the
#: figures are the run's own, in the tables and in the profile printed under
#: each note (computed, never copied from an earlier run).
BOUNDS = {
    "dispatch": (
        "Every post is one Python-level handler call (the `_` object built, "
        "the handler run, the active session switched) and one `Event` record; "
        "asyncio's `call_soon` ping-pong runs a C-implemented `Handle` per "
        "callback. The dispatch loop already inlines the session table's "
        "`release` and the dispatcher's `invoke` (`Dispatcher.dispatch_due`); "
        "the profile below splits the time between the loop, the handler "
        "and `post()`."
    ),
    "timers": (
        "A timer set in a handler's loop is due up to 1 s after it was set, "
        "so the cost beyond the spread is about the time to set them. The "
        "table's floor rows bound it: Python allocating that many event-sized "
        "objects with no queue at all, and the same with the cyclic garbage "
        "collector off (new objects send it through full collections of the "
        "whole process). `delay_add` itself is one `Event`, two dict entries "
        "and an append to the pending batch, filed between handlers into "
        "per-1/256 s buckets (the profile below)."
    ),
    "echo": (
        "The echo path is SocketFactory + ReadWrite + Line filter with one "
        "handler per line, against asyncio's Protocol whose `data_received` "
        "is called directly by the C-accelerated transport."
    ),
    "tail": (
        "Throughput: one Python handler call per line through the kernel's "
        "`deliver` (most of what a line costs, with the file already "
        "written: `bench/tail.py` profiled), against a reader whose "
        "line splitting is C (`for line in pipe`); the file is read with "
        "pread(2) in 64 kB blocks and split by one `bytes.split` per block. "
        "Latency: polling -- a line waits for the next poll, so p99 is about "
        "PollInterval (p50 half of it) plus the pass that delivers it; "
        "`tail -F` is woken by inotify."
    ),
    "prefork_r1000": (
        "CPU in the child per connection, against a bare child blocking in "
        "`accept(2)` and `recv(2)`: more system calls (an epoll_wait per "
        "read, epoll_ctl, the getsockname in Python's socket constructor) "
        "and the Python of each layer -- the kernel's loop, SocketFactory + "
        "ReadWrite + Line, the Daemon child's scoreboard writes and signals. "
        "The profiles below measure each (`bench/forkprofile.py --part "
        "prefork`, `bench/layers.py`); with more clients than cores, every "
        "switch between processes refills a Python process's caches."
    ),
    "prefork_r1": (
        "Bound by the fork: with requests=1 each connection pays a post-fork "
        "child's whole life -- the copy-on-write faults of its start and the "
        "parent's `fork()` (the profile under Post-forking)."
    ),
    "postfork": (
        "Page faults, not Python: the profile below (`bench/forkprofile.py`) "
        "follows a post-forked child step by step. Every page the child "
        "writes after `fork()` -- and CPython writes to every object it "
        "touches, its reference count -- is a copy-on-write fault; the parent "
        "pays `fork()` of its whole address space (page tables: the master's "
        "resident memory and mappings are in the Imports and Idle pre-forked "
        "child sections) and then a fault on each page it writes next, since "
        "fork() write-protects them. By step: the OS and CPython's own "
        "after-fork work (threading's hook alone some 110 faults, "
        "`bench/afterfork.py`), the kernel's at-fork hook, the Daemon's "
        "`become_child` up to `daemon_child`, then ReadWrite + Line, each a "
        "row below. The Perl original forks a smaller parent "
        "(its master RSS is in the table above) whose child touches fewer pages."
    ),
    "latency": (
        "The post-fork first reply is the parent's `fork()` plus the child's "
        "first steps up to its first reply, each page it writes a "
        "copy-on-write fault (the steps under Post-forking; the OS's, "
        "CPython's and the standard library's own at-fork work in "
        "`bench/afterfork.py`, under the idle child's memory)."
    ),
    "memory": (
        "The idle child's private memory is what it wrote after fork(): "
        "CPython writes to every object it touches (reference counts live "
        "in the object headers), so each page holding one is copied. "
        "`bench/afterfork.py` (below) charges each at-fork hook its faults, "
        "from the fork to the first Python hook, `threading`'s, `logging`'s "
        "and `random`'s, to the kernel's fork-safety hook; the Daemon's "
        "`become_child` and the child's first timeslices come on top. PSS "
        "shares the master's pages among the pool: a larger master (the "
        "Daemon's imports, its pydantic configuration) is a larger share."
    ),
    "imports": (
        "The master after the imports, by package: the kernel itself (typing, "
        "logging, socket, select, heapq, math, array and its own modules), "
        "wheels and filters (their parameter models wait for the first call "
        "outside a common shape, `Run` for its first use), and the daemon "
        "package, which imports pydantic -- its configuration models are "
        "built at import, and building a model runs pydantic's plugin lookup "
        "(importlib.metadata, email, zipfile, bz2, lzma, csv) -- and psutil "
        "(the babysitter, the control module). The row *without pydantic and "
        "psutil (stand-ins)* is what the stack costs once the daemon package "
        "imports them when first used; the mappings by what they map follow "
        "the import rows (each C extension module is five mappings)."
    ),
    "filters": (
        "Per message, `Reference` checks its state, finds and checks the "
        "decimal length and slices the payload: Python around `pickle.loads` "
        "and `pickle.dumps`, where `Connection` pays for `ForkingPickler`'s "
        "BytesIO and a second `read` per message."
    ),
    "run_start": (
        "A program starts as subprocess starts one (vfork and exec; posix_spawn "
        "for a pty), so neither the heap nor the at-fork hooks are paid; what "
        "is left is subprocess.Popen itself (its error pipe, close_range) and "
        "the kernel's reaping through SIGCHLD."
    ),
    "run_lines": (
        "Each line is one StdoutEvent: one handler call through the kernel "
        "per line, against one coroutine resumption per `readline()`."
    ),
    "run_ref": (
        "The event loop between a reply and the next request. In "
        "multiprocessing both sides block on the pipe: the parent's `recv()` "
        "is a read(2) that sleeps, a few Python calls a round trip "
        "(`Connection.send`/`recv`). Run's parent goes through the "
        "timeslice and its selector call, the read callback run as the "
        "session, the wheel's read and the Reference filter, the StdoutEvent "
        "handler call and `put()` with its write (count them with "
        "`sys.setprofile`). A bare epoll loop with the same worker and filter "
        "keeps up with multiprocessing, so the difference is the kernel's "
        "dispatch path, not the wheel's I/O; on 2 shared cores both figures "
        "swing with where the two processes are scheduled."
    ),
}

BOUNDS.update(
    {
        "tcp_echo": (
            "ServerTCP's per-record path is the hand-written server's: ClientInput is the "
            "ReadWrite's InputEvent state itself. A shortfall there is the flushed event "
            "(one dispatch per put) or the machine's noise; see the profile."
        ),
        "tcp_daemon": (
            "With the example's settings (requests=1) every connection costs a fork and "
            "an exit, so both servers run at the fork rate and the ratio swings with it. "
            "With children that keep serving, ServerTCP pays POE's session per "
            "connection: profiled pre-forked children make 660 Python calls per "
            "connection against the hand-written glue's 524, and 8 handler invocations "
            "against 3 (the session's `_start` and `_stop`, the kernel's `_child` events "
            "to the listener, `disconnected`); see docs/toolbox/server_tcp.md."
        ),
        "tcp_tls": (
            "A handshake is OpenSSL's crypto on both sides (the client processes share "
            "the 2 cores); the server's part beyond it is the handshake wheel's watch "
            "and one dispatch per flight."
        ),
        "tcp_client": (
            "Each connection of a ClientTCP is a SocketFactory, a ReadWrite and two "
            "posted events (`reconnect`, `shutdown`), each wheel with its parameter "
            "check, watch and unwatch; a new ClientTCP per connection adds a session "
            "(its parameters' common shape checked, its shape's state table copied, its "
            "`_start`, the `_garbage_collect` marker POE queues, its stop and sweep; "
            "`bench/client_ab.py` compares it with main's). asyncio's "
            "`open_connection` is a transport and a protocol. The profile below is a "
            "new ClientTCP per connection, 8 at a time."
        ),
        "wsgi": (
            "Throughput with Connection: close: each request is a new loopback TCP "
            "connection, and a sync worker makes the system calls gunicorn's makes "
            "(epoll, accept, recv, sendall, close); profiled, sendall on loopback (which "
            "runs the client's receive path) is a third of a child's time, the Python "
            "around it (the HTTPD filter's checks, the environ, two scoreboard updates "
            "through the kernel) the rest. Memory: a worker's USS is what it wrote to "
            "after the fork; measured in this branch, an idle kernelish child holds about "
            "0.6 MiB more than gunicorn's, and that follows the size of the master's heap "
            "(38 MB with the Daemon's pydantic and psutil, gunicorn's 26 MB; importing "
            "flask and psutil in the master as well adds 0.2 MiB to every idle worker) -- "
            "the Daemon's imports are issue 17's ground -- while its growth under load is "
            "smaller (the request path is warmed in the parent before the fork)."
        ),
    }
)

PROFILES = {
    "tcp_client": (
        "import sys; sys.path.insert(0, 'bench'); import servers_tcp as st; "
        "import cProfile, pstats; srv = st.EchoServer('asyncio'); "
        "cProfile.run('st.client_kernelish(srv.port, 8, 2.0, new=True)', "
        "'/tmp/kernelish-bench.prof'); "
        "srv.__exit__(); "
        "pstats.Stats('/tmp/kernelish-bench.prof').sort_stats('tottime').print_stats(14)"
    ),
    # Its own process: the order of its imports is the measurement.
    "memory": "import subprocess, sys; subprocess.run([sys.executable, 'bench/afterfork.py'])",
    "postfork": "import runpy, sys; sys.argv = ['forkprofile']; "
    "runpy.run_path('bench/forkprofile.py', run_name='__main__')",
    "prefork_r1000": "import runpy, sys; sys.argv = ['forkprofile', '--part', 'prefork']; "
    "runpy.run_path('bench/forkprofile.py', run_name='__main__'); "
    "sys.argv = ['layers', '--connections', '2000', '--repeats', '2']; "
    "runpy.run_path('bench/layers.py', run_name='__main__')",
    "dispatch": (
        "import sys; sys.path.insert(0, 'bench'); import dispatch; "
        "import cProfile, pstats; cProfile.run('dispatch.post_ping_pong(100_000)', "
        "'/tmp/kernelish-bench.prof'); "
        "pstats.Stats('/tmp/kernelish-bench.prof').sort_stats('tottime').print_stats(8)"
    ),
    "timers": (
        "import sys; sys.path.insert(0, 'bench'); import timers; "
        "import cProfile, pstats; cProfile.run('timers.set_and_fire(100_000)', "
        "'/tmp/kernelish-bench.prof'); "
        "pstats.Stats('/tmp/kernelish-bench.prof').sort_stats('tottime').print_stats(8)"
    ),
}


def run_script(name: str, args: list[str], timeout: float) -> list[dict[str, Any]]:
    """Run one benchmark script, echoing its output; return its JSON records."""
    print(f"\n=== bench/{name}.py {' '.join(args)}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / f"{name}.py"), *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            record["script"] = name
            records.append(record)
        if time.monotonic() > deadline:
            proc.kill()
            print(f"bench/{name}.py: over {timeout:.0f} s, killed", flush=True)
            break
    proc.wait()
    if proc.returncode:
        print(f"bench/{name}.py exited with {proc.returncode}", flush=True)
    return records


def profile(name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROFILES[name]],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    lines = [line for line in out.stdout.splitlines() if not line.startswith("{")]  # no JSON
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    body = [line.replace(str(ROOT) + "/", "") for line in lines[start:] if line.strip()]
    return "\n".join(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--only", action="append", choices=list(SCRIPTS))
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/")
    opts = parser.parse_args()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    records: list[dict[str, Any]] = []
    for name in opts.only or list(SCRIPTS):
        full, quick = SCRIPTS[name]
        records += run_script(name, quick if opts.quick else full, timeout=1800)
    checks = [r for r in records if "check" in r]
    print("\n=== targets")
    width = max((len(c["check"]) for c in checks), default=10)
    for c in checks:
        verdict = "PASS" if c["pass"] else "FALL SHORT"
        print(
            f"{c['check']:<{width}}  {fmt(c['value'], c['unit']):>14}  "
            f"{c['op']} {fmt(c['target'], c['unit']):<10} {verdict}"
        )
    missed = {c.get("group") for c in checks if not c["pass"]}
    if opts.no_doc:
        return
    profiles = {}
    for key in PROFILES:
        if key in missed:
            print(f"\n=== profile: {key}", flush=True)
            profiles[key] = profile(key)
            print(profiles[key], flush=True)
    images = charts(records)
    command = "bench/run_all.py" + (" --quick" if opts.quick else "")
    write_doc(records, BOUNDS, images, profiles, command, started, load)
    print(f"\nwrote {DOC.relative_to(ROOT)} and {', '.join(images)}")


if __name__ == "__main__":
    main()
