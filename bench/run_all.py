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
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "performance.md"
IMG = ROOT / "docs" / "img"

SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    # name: (full args, quick args)
    "dispatch": (["--repeats", "5"], ["--repeats", "2", "--events", "100000"]),
    "timers": (["--repeats", "3"], ["--repeats", "1"]),
    "echo": (["--seconds", "2", "--repeats", "3"], ["--seconds", "1", "--repeats", "1"]),
    "pools": (
        ["--seconds", "2", "--repeats", "2"],
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
    "http_client": (["--seconds", "2", "--repeats", "3"], ["--seconds", "1", "--repeats", "1"]),
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
        "pays `fork()` of its whole address space (page tables) and then a "
        "fault on each page it writes next, since fork() write-protects them."
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
        "and `random`'s, to the kernel's fork-safety hook and the Daemon's "
        "`become_child`."
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
            "(its states registered, its `_start`, its stop and sweep). asyncio's "
            "`open_connection` is a transport and a protocol. The profile below is a "
            "new ClientTCP per connection, 8 at a time."
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


# -- the report ---------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def charts(records: list[dict[str, Any]]) -> list[str]:
    """Write the PNG charts; returns their paths relative to docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    figures = {r["bench"]: r for r in records if "bench" in r}
    written = []

    names = ["post ping-pong", "yield_ to self", "call"]
    if all(n in figures for n in names) and "asyncio call_soon ping-pong" in figures:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        labels = ["asyncio call_soon", *names]
        ours = [figures["asyncio call_soon ping-pong"]["value"]] + [
            figures[n]["value"] for n in names
        ]
        perl = [0.0] + [figures[n].get("perl") or 0.0 for n in names]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], [v / 1000 for v in ours], 0.4, label="Python (this run)")
        ax.bar([x + 0.2 for x in xs], [v / 1000 for v in perl], 0.4, label="Perl POE 1.370")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel("thousand events/s")
        ax.set_title("Dispatch")
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "bench-dispatch.png", dpi=100)
        plt.close(fig)
        written.append("img/bench-dispatch.png")

    panels = [
        ("prefork_r1000", "bare_prefork", "Pre-forking, requests=1000"),
        ("prefork_r1", "bare_fork", "Pre-forking, requests=1"),
        ("postfork", "bare_fork", "Post-forking, max_children=8"),
    ]
    present = [p for p in panels if any(r.get("group") == p[0] for r in records)]
    if present:
        fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6))
        if len(present) == 1:
            axes = [axes]
        for ax, (group, base, title) in zip(axes, present, strict=True):
            rows = [r for r in records if r.get("group") == group and "bench" in r]
            by_clients = {r["clients"]: r for r in rows if r.get("baseline")}
            rows = [r for r in rows if not r.get("baseline")]
            clients = [r["clients"] for r in rows]
            ours = [r["value"] for r in rows]
            perl = [r.get("perl") or 0.0 for r in rows]
            bare = [by_clients[c]["value"] if c in by_clients else 0.0 for c in clients]
            xs = range(len(clients))
            ax.bar([x - 0.27 for x in xs], ours, 0.27, label="kernelish")
            ax.bar(list(xs), bare, 0.27, label=f"bare ({base.replace('bare_', '')})")
            ax.bar([x + 0.27 for x in xs], perl, 0.27, label="Perl daemon")
            ax.set_xticks(list(xs), [f"{c} clients" for c in clients])
            ax.set_ylabel("connections/s")
            ax.set_title(title)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(IMG / "bench-pools.png", dpi=100)
        plt.close(fig)
        written.append("img/bench-pools.png")
    return written


SECTIONS = [
    ("dispatch", "Dispatch", "dispatch"),
    ("timers", "Timers", "timers"),
    ("echo", "Line echo", "echo"),
    ("prefork_r1000", "Pre-forking, requests=1000", "pools"),
    ("prefork_r1", "Pre-forking, requests=1", "pools"),
    ("postfork", "Post-forking, max_children=8", "pools"),
    ("latency", "Fork latency", "pools"),
    ("memory", "Idle pre-forked child", "pools"),
    ("imports", "Import time", "imports"),
    ("filters", "Reference filter", "filters"),
    ("tail", "FollowTail", "tail"),
    ("run_start", "Run: start to CloseEvent", "run"),
    ("run_lines", "Run: lines from a worker", "run"),
    ("run_ref", "Run: Reference round trips", "run"),
    ("tcp_echo", "ServerTCP: line echo", "servers_tcp"),
    ("tcp_daemon", "ServerTCP under the pre-forking Daemon", "servers_tcp"),
    ("tcp_tls", "ServerTCP: TLS handshakes", "servers_tcp"),
    ("tcp_client", "ClientTCP: connect and one round trip", "servers_tcp"),
    ("http_parse", "HTTP parsing: httptools, h11 and the HTTPD filter", "http_parse"),
    ("http_client", "ClientHTTP: requests per second", "http_client"),
]


def section_records(key: str, script: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("script") == script]
    if script in ("pools", "run", "servers_tcp"):
        return [r for r in mine if r.get("group") == key]
    return mine


def write_doc(
    records: list[dict[str, Any]],
    images: list[str],
    profiles: dict[str, str],
    command: str,
    started: str,
    load: str,
) -> None:
    checks = [r for r in records if "check" in r]
    out = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run_all.py`); do not edit by hand.",
        "",
        f"Run: `{command}`, {started}, on {platform.node()} "
        f"({platform.system()} {platform.release()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}); load average at the start: {load}.",
        "",
        "Every ratio compares figures measured in the same run (kernelish against a "
        "baseline: asyncio, or a bare server with no kernel); every figure is the best "
        "of several runs. The Perl figures are POE 1.370 / perl 5.36 on the same kind "
        "of machine (2 cores), from the issue; the load generator (`bench/loadgen.py`, "
        "one client process per concurrent client, connect, PING, PONG, DONE, OK, "
        "close) shares the 2 cores with the server, as it did for the Perl figures.",
        "",
        "## Targets",
        "",
        "| Target | Measured | Wanted | |",
        "|---|---|---|---|",
    ]
    for c in checks:
        verdict = "PASS" if c["pass"] else "**FALL SHORT**"
        out.append(
            f"| {c['check']} | {fmt(c['value'], c['unit'])} | {c['op']} "
            f"{fmt(c['target'], c['unit'])} | {verdict} |"
        )
    for img in images:
        out += ["", f"![{img}]({img})"]
    for key, title, script in SECTIONS:
        rows = section_records(key, script, records)
        if not rows:
            continue
        out += ["", f"## {title}", "", "| Figure | kernelish / baseline | Perl | Notes |"]
        out.append("|---|---|---|---|")
        for r in rows:
            if "bad_input" in r:
                continue  # their own table, below
            if "bench" in r:
                notes = []
                if r.get("baseline"):
                    notes.append("baseline")
                for field in ("p50_ms", "p99_ms"):
                    if field in r:
                        notes.append(f"{field[:-3]} {r[field]} ms")
                if "errors" in r:
                    notes.append(f"errors {r['errors']} (resets {r['resets']})")
                if "max_children_seen" in r and r.get("group") == "postfork":
                    notes.append(f"most children seen {r['max_children_seen']}")
                out.append(
                    f"| {r['bench']} | {fmt(r['value'], r['unit'])} | "
                    f"{fmt(r.get('perl'), r['unit'])} | {', '.join(notes)} |"
                )
            else:
                verdict = "PASS" if r["pass"] else "**FALL SHORT**"
                out.append(
                    f"| {r['check']} | {fmt(r['value'], r['unit'])} | | "
                    f"target {r['op']} {fmt(r['target'], r['unit'])}: {verdict} |"
                )
        bad = [r for r in rows if "bad_input" in r]
        if bad:
            out += ["", "| Bad input | httptools | h11 | HTTPD answers |", "|---|---|---|---|"]
            out += [
                f"| {r['bad_input']} | {r['httptools']} | {r['h11']} | {r['httpd']} |" for r in bad
            ]
        missed = [r for r in rows if "check" in r and not r["pass"]]
        if missed:
            out += ["", f"**What bounds it.** {BOUNDS.get(key, '')}"]
            if key in profiles:
                out += ["", "```text", profiles[key], "```"]
    out += [
        "",
        "## Running it",
        "",
        "```sh",
        "make bench                              # the whole suite, writes this page",
        ".venv/bin/python bench/run_all.py --quick   # shorter runs, to try it out",
        ".venv/bin/python bench/pools.py --only postfork  # one benchmark",
        ".venv/bin/python bench/loadgen.py PORT --mode conn --concurrency 8 --seconds 3",
        "```",
        "",
        "The machine is shared and noisy: compare ratios, not absolute figures.",
        "",
    ]
    DOC.write_text("\n".join(out))


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
    write_doc(records, images, profiles, command, started, load)
    print(f"\nwrote {DOC.relative_to(ROOT)} and {', '.join(images)}")


if __name__ == "__main__":
    main()
