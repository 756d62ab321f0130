"""Process pools over TCP, side by side with the Perl original: throughput, first reply, memory.

Run: ``.venv/bin/python bench/pools.py [--seconds 2] [--repeats 3] [--only NAME]``.

Three kinds of server run in this one process's run (``bench/_servers.py``):
the bare Python servers (``bench/servers/bare.py``: the limit), kernelish
(``bench/servers/kernelish_server.py``: ``examples/preforking.py`` and
``examples/forking.py`` in the foreground, without their logfile) and, when
``perl -MPOE`` works, POE::Component::Daemon's own ``eg/`` programs from
``../shared/perl-original`` (with their logfile, as shipped).  Without perl
the Perl rows are skipped with a note.  The load comes from
``bench/loadgen.py`` (connection per request: connect, PING, PONG, DONE, OK,
close; one client *process* per concurrent client, on the same 2 cores as
the servers).

The machine is shared: every comparison is **interleaved** -- each round
runs every server of the comparison once, each on a fresh server, and the
rounds repeat (``--repeats``).  A figure is the best of its rounds; its
``spread`` is (best - worst) / best over the rounds, and each ratio also
gives the range of the per-round ratios (``ratio_range``).

* ``prefork_r1000``: pre-forking, requests=1000, the eg's pool (start 1,
  min_spare 2, max_children 10: ``eg/preforking-r1000``) for kernelish and
  Perl; kernelish against the bare pre-forking server (8 processes in
  ``accept``) -- target >= 0.7x;
* ``prefork_r1``: requests=1 (``eg/preforking`` as shipped) against the bare
  fork-per-connection server -- target >= 0.5x;
* ``postfork``: post-forking, max_children=3 (``eg/forking-resume``: the eg
  as shipped never resumes after its first pause) -- targets >= 1.2x Perl at
  1 client, >= 2x at 4 and 8, no error, and (an aim) >= 0.5x the bare
  fork-per-connection server; never more than 3 live children;
* ``latency``: the first reply on a fresh connection, every server up at
  once and sampled in turn: post-forked kernelish child against Perl's
  (target: p50 <= Perl's) and against an idle pre-forked child;
* ``memory``: USS and PSS of the idle children of a pre-forking pool of 3
  (all three servers: same number of sharers) and the master's RSS --
  targets USS and PSS <= Perl's.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402
from _common import check, emit, table  # noqa: E402
from _servers import (  # noqa: E402
    BARE,
    KERNELISH,
    PY,
    ROOT,
    ChildSampler,
    PerlServer,
    Server,
    perl_unavailable,
)
from loadgen import first_reply_latency, one_request, run_load  # noqa: E402

CLIENTS = (1, 4, 8)
POOL = 8  # processes of the bare pre-forking server
MAX_CHILDREN = 3  # post-forking, as eg/forking

AnyServer = Server | PerlServer


def kernelish_prefork(requests: int, start: int = 1, min_spare: int = 2) -> tuple[str, ...]:
    """The kernelish pre-forking server with the eg's pool (start 1, min_spare 2, max 10)."""
    return (
        KERNELISH,
        "prefork",
        "--requests",
        str(requests),
        "--start-children",
        str(start),
        "--min-spare",
        str(min_spare),
        "--max-children",
        "10",
    )


class Contender:
    """One server of a comparison: how to start it and how many children to await."""

    def __init__(self, key: str, label: str, start: Callable[[], AnyServer], warm: int = 0):
        self.key, self.label, self.start, self.warm = key, label, start, warm


def python(key: str, label: str, *argv: str, warm: int = 0) -> Contender:
    return Contender(key, label, lambda: Server(*argv), warm)


def perl(key: str, program: str, warm: int = 0) -> Contender:
    return Contender(key, f"Perl eg/{program}", lambda: PerlServer(program), warm)


def one_load(contender: Contender, clients: int, seconds: float) -> dict[str, Any]:
    with contender.start() as server:
        if contender.warm:
            server.wait_children(contender.warm)
        with ChildSampler(server) as sampler:
            result = run_load(server.port, "conn", clients, seconds)
        result["max_children_seen"] = max(sampler.samples, default=0)
    return result


def rounds(
    contenders: list[Contender], clients: int, seconds: float, repeats: int
) -> dict[str, list[dict[str, Any]]]:
    """Each contender's results, one per round; within a round they run one
    after the other, so the machine's drift hits them alike, and each round
    starts with the next one (no contender always runs first)."""
    out: dict[str, list[dict[str, Any]]] = {c.key: [] for c in contenders}
    for n in range(repeats):
        for contender in contenders[n % len(contenders) :] + contenders[: n % len(contenders)]:
            out[contender.key].append(one_load(contender, clients, seconds))
    return out


def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    top = dict(max(results, key=lambda r: r["rate"]))
    rates = [r["rate"] for r in results]
    top["spread"] = round((max(rates) - min(rates)) / max(rates), 3) if max(rates) else 0.0
    top["rounds"] = [round(x, 1) for x in rates]
    top["errors_worst"] = max(r["errors"] for r in results)
    return top


#: The rows of the side-by-side table (``docs/performance.md``) by group.
ROWS = {
    "prefork_r1000": "pre-forking, requests=1000",
    "prefork_r1": "pre-forking, requests=1",
    "postfork": f"post-forking, max_children={MAX_CHILDREN}",
}


def record(
    group: str, name: str, clients: int, result: dict[str, Any], role: str, **extra: Any
) -> None:
    """One server's best round; ``role`` (bare, perl, kernelish) places it in
    the side-by-side table."""
    emit(
        f"{name}, {clients} clients",
        result["rate"],
        "conn/s",
        group=group,
        clients=clients,
        p50_ms=round(result["p50_ms"], 3),
        p99_ms=round(result["p99_ms"], 3),
        errors=result["errors_worst"],
        resets=result["resets"],
        max_children_seen=result["max_children_seen"],
        spread=result["spread"],
        rounds=result["rounds"],
        row=f"{ROWS[group]}, {clients} client{'s' if clients > 1 else ''}",
        role=role,
        baseline=role == "bare",
        perl_row=role == "perl",
        **extra,
    )


def ratio(
    group: str,
    label: str,
    ours: list[dict[str, Any]],
    base: list[dict[str, Any]],
    op: str | None = None,
    target: float = 0.0,
    **extra: Any,
) -> float:
    """The ratio of the best rates, with the range of the per-round ratios;
    a check when ``op`` is given, else a plain figure."""
    top = max(r["rate"] for r in base)
    # A baseline that served nothing (Perl's eg/preforking at 4 clients) gives no ratio.
    value = max(r["rate"] for r in ours) / top if top else float("nan")
    per_round = [o["rate"] / b["rate"] for o, b in zip(ours, base, strict=True) if b["rate"]]
    spread = [round(min(per_round), 3), round(max(per_round), 3)] if per_round else []
    if op is None:
        emit(label, value, "x", group=group, ratio_range=spread, **extra)
    else:
        check(label, value, op, target, group=group, ratio_range=spread, **extra)
    return value


def compare(
    group: str,
    seconds: float,
    repeats: int,
    ours: Contender,
    bare: Contender,
    perl_side: Contender | None,
    bare_target: float,
    perl_targets: dict[int, float] | None = None,
) -> dict[int, dict[str, list[dict[str, Any]]]]:
    """One pool benchmark at 1, 4 and 8 clients: bare, kernelish and Perl interleaved."""
    everything = {}
    for clients in CLIENTS:
        contenders = [bare, ours] + ([perl_side] if perl_side else [])
        res = rounds(contenders, clients, seconds, repeats)
        everything[clients] = res
        record(group, bare.label, clients, best(res[bare.key]), "bare")
        if perl_side:
            record(group, perl_side.label, clients, best(res[perl_side.key]), "perl")
        ours_best = best(res[ours.key])
        perl_rate = max(r["rate"] for r in res[perl_side.key]) if perl_side else None
        record(group, ours.label, clients, ours_best, "kernelish", perl=perl_rate)
        ratio(
            group,
            f"{group}: kernelish / {bare.label}, {clients} clients",
            res[ours.key],
            res[bare.key],
            ">=",
            bare_target,
            clients=clients,
        )
        if perl_side:
            target = (perl_targets or {}).get(clients)
            ratio(
                group,
                f"{group}: kernelish / Perl, {clients} clients",
                res[ours.key],
                res[perl_side.key],
                ">=" if target is not None else None,
                target or 0.0,
                clients=clients,
                versus_perl=True,
            )
    return everything


BARE_PREFORK = python(
    "bare", "bare pre-forking (8 processes)", BARE, "prefork", str(POOL), warm=POOL
)
BARE_FORK = python("bare", "bare fork-per-connection", BARE, "fork")


def bench_prefork_r1000(seconds: float, repeats: int, with_perl: bool) -> None:
    ours = python("ours", "kernelish pre-forking r1000", *kernelish_prefork(1000), warm=2)
    theirs = perl("perl", "preforking-r1000", warm=1) if with_perl else None
    compare("prefork_r1000", seconds, repeats, ours, BARE_PREFORK, theirs, 0.7)


def bench_prefork_r1(seconds: float, repeats: int, with_perl: bool) -> None:
    ours = python("ours", "kernelish pre-forking r1", *kernelish_prefork(1), warm=2)
    theirs = perl("perl", "preforking", warm=1) if with_perl else None
    compare("prefork_r1", seconds, repeats, ours, BARE_FORK, theirs, 0.5)


def bench_postfork(seconds: float, repeats: int, with_perl: bool) -> None:
    ours = python(
        "ours",
        f"kernelish post-forking max_children={MAX_CHILDREN}",
        KERNELISH,
        "fork",
        "--max-children",
        str(MAX_CHILDREN),
    )
    theirs = perl("perl", "forking-resume") if with_perl else None
    res = compare(
        "postfork", seconds, repeats, ours, BARE_FORK, theirs, 0.5, {1: 1.2, 4: 2.0, 8: 2.0}
    )
    for clients in (4, 8):
        check(
            f"postfork: kernelish errors, {clients} clients (worst round)",
            max(r["errors"] for r in res[clients]["ours"]),
            "<=",
            0,
            unit="errors",
            group="postfork",
        )
    check(
        "postfork: most live kernelish children seen",
        max(r["max_children_seen"] for per in res.values() for r in per["ours"]),
        "<=",
        MAX_CHILDREN,
        unit="children",
        group="postfork",
    )


# -- first reply ----------------------------------------------------------------


def bench_latency(samples: int, with_perl: bool) -> None:
    """Every server up at once, idle; the samples go to each in turn."""
    contenders = [
        python("bare_fork", "bare fork-per-connection", BARE, "fork"),
        python("bare_pre", "bare pre-forked child", BARE, "prefork", "2", warm=2),
        python(
            "post",
            "kernelish post-forked child",
            KERNELISH,
            "fork",
            "--max-children",
            str(MAX_CHILDREN),
        ),
        python("pre", "kernelish idle pre-forked child", *kernelish_prefork(1000), warm=2),
    ]
    if with_perl:
        contenders += [
            perl("perl_post", "forking-resume"),
            perl("perl_pre", "preforking-r1000", warm=1),
        ]
    servers: dict[str, AnyServer] = {}
    try:
        for c in contenders:
            servers[c.key] = c.start()
            if c.warm:
                servers[c.key].wait_children(c.warm)
        time.sleep(0.5)
        for server in servers.values():
            first_reply_latency(server.port, 5)  # warm-up
        times: dict[str, list[float]] = {key: [] for key in servers}
        for _ in range(samples):
            for key, server in servers.items():
                times[key].append(one_request(server.port))
                time.sleep(0.02)  # the post-forked child is reaped, the pre-forked one waits again
    finally:
        for server in servers.values():
            server.stop()
    p50 = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    for c in contenders:
        t = sorted(times[c.key])
        q1, q3 = t[len(t) // 4] * 1e3, t[3 * len(t) // 4] * 1e3
        emit(
            f"first reply p50, {c.label}",
            p50[c.key],
            "ms",
            group="latency",
            iqr_ms=[round(q1, 3), round(q3, 3)],
            baseline=c.key.startswith("bare"),
            perl_row=c.key.startswith("perl"),
            perl={"post": p50.get("perl_post"), "pre": p50.get("perl_pre")}.get(c.key),
            row=LATENCY_ROWS[c.key][0],
            role=LATENCY_ROWS[c.key][1],
        )
    if with_perl:
        check(
            "first reply p50: kernelish post-forked / Perl's",
            p50["post"] / p50["perl_post"],
            "<=",
            1.0,
            group="latency",
        )
    check(
        "first reply p50: post-forked - idle pre-forked child",
        p50["post"] - p50["pre"],
        "<=",
        1.5,
        unit="ms",
        group="latency",
    )
    for label, code in (
        ("bare python", "pass"),
        ("with the server's imports", SERVER_IMPORTS),
    ):
        emit(f"fork()+exit, {label}", fork_cost(code) * 1000, "ms", group="latency", baseline=True)


LATENCY_ROWS = {
    "bare_fork": ("first reply, fresh post-forked connection (p50)", "bare"),
    "post": ("first reply, fresh post-forked connection (p50)", "kernelish"),
    "perl_post": ("first reply, fresh post-forked connection (p50)", "perl"),
    "bare_pre": ("first reply, idle pre-forked child (p50)", "bare"),
    "pre": ("first reply, idle pre-forked child (p50)", "kernelish"),
    "perl_pre": ("first reply, idle pre-forked child (p50)", "perl"),
}
SERVER_IMPORTS = "import kernelish.components.daemon, kernelish.wheels, kernelish.filters"
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
        env={**os.environ, "PYTHONPATH": os.environ.get("KERNELISH_ROOT", str(ROOT))},
    )
    return float(out.stdout.strip())


# -- memory ---------------------------------------------------------------------

MEMORY_POOL = 3  # the Perl eg's pool at rest: start 1 + 2 spare


def idle_memory(contender: Contender, settle: float) -> dict[str, float]:
    """Median USS and PSS (MB) of the idle children, and the master's RSS."""
    with contender.start() as server:
        server.wait_children(2)
        time.sleep(settle)
        try:  # Perl's pool reaches its third child when its babysitter next looks
            server.wait_children(MEMORY_POOL, timeout=5.0)
        except SystemExit:
            pass  # measured as it is; the count is reported
        uss, pss = [], []
        for pid in server.children():
            info = psutil.Process(pid).memory_full_info()
            uss.append(info.uss / 2**20)
            pss.append(info.pss / 2**20)
        master = psutil.Process(server.pid).memory_info().rss / 2**20
        children = len(server.children())
    return {
        "uss": statistics.median(uss),
        "pss": statistics.median(pss),
        "rss": master,
        "children": children,
    }


def bench_memory(settle: float, repeats: int, with_perl: bool) -> None:
    contenders = [
        python("bare", "bare", BARE, "prefork", str(MEMORY_POOL)),
        python("ours", "kernelish", *kernelish_prefork(1000, start=MEMORY_POOL)),
    ]
    if with_perl:
        contenders.append(perl("perl", "preforking-r1000"))
    got: dict[str, list[dict[str, float]]] = {c.key: [] for c in contenders}
    for _ in range(max(1, repeats)):
        for c in contenders:
            got[c.key].append(idle_memory(c, settle))
    med = {
        key: {f: statistics.median(r[f] for r in runs) for f in ("uss", "pss", "rss", "children")}
        for key, runs in got.items()
    }
    for c in contenders:
        m, runs = med[c.key], got[c.key]
        role = {"bare": "bare", "perl": "perl"}.get(c.key, "kernelish")
        note = {"children": m["children"], "baseline": role == "bare", "perl_row": role == "perl"}
        for field, what in (
            ("uss", "idle child USS"),
            ("pss", "idle child PSS"),
            ("rss", "master RSS"),
        ):
            values = [r[field] for r in runs]
            emit(
                f"{what}, {c.label}",
                m[field],
                "MB",
                group="memory",
                range_mb=[round(min(values), 2), round(max(values), 2)],
                perl=med["perl"][field] if with_perl and c.key == "ours" else None,
                row=f"{what} (pool of {MEMORY_POOL})" if field != "rss" else "master RSS, idle",
                role=role,
                **note,
            )
    if with_perl:
        check(
            "idle child USS: kernelish / Perl",
            med["ours"]["uss"] / med["perl"]["uss"],
            "<=",
            1.0,
            group="memory",
        )
        check(
            "idle child PSS: kernelish / Perl",
            med["ours"]["pss"] / med["perl"]["pss"],
            "<=",
            1.0,
            group="memory",
        )
    else:
        check(
            "idle child USS (the issue's Perl figure)",
            med["ours"]["uss"],
            "<=",
            1.3,
            unit="MB",
            group="memory",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per load run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--samples", type=int, default=200, help="first-reply samples per server")
    parser.add_argument("--settle", type=float, default=1.5, help="idle seconds before memory")
    parser.add_argument("--no-perl", action="store_true", help="skip the Perl original")
    names = ("prefork_r1000", "prefork_r1", "postfork", "latency", "memory")
    parser.add_argument("--only", action="append", choices=names)
    opts = parser.parse_args()
    only = set(opts.only or names)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    why = "--no-perl given" if opts.no_perl else perl_unavailable()
    with_perl = why is None
    if why:
        emit(f"Perl original skipped: {why}", float("nan"), "", group="note", note=why)
    if "prefork_r1000" in only:
        bench_prefork_r1000(opts.seconds, opts.repeats, with_perl)
        table("pre-forking, requests=1000 (connections/s)")
    if "prefork_r1" in only:
        bench_prefork_r1(opts.seconds, opts.repeats, with_perl)
        table("pre-forking, requests=1 (connections/s)")
    if "postfork" in only:
        bench_postfork(opts.seconds, opts.repeats, with_perl)
        table(f"post-forking, max_children={MAX_CHILDREN} (connections/s)")
    if "latency" in only:
        bench_latency(opts.samples, with_perl)
        table("time to the first reply on a fresh connection (p50)")
    if "memory" in only:
        bench_memory(opts.settle, opts.repeats, with_perl)
        table(f"idle pre-forked children (pool of {MEMORY_POOL}) and the master")


if __name__ == "__main__":
    main()
