"""``kernelish demo``: a pre-forking daemon you can watch.

The parent process runs a Daemon component with a pool of children that serve
a small line protocol on 127.0.0.1; a separate client process drives traffic at
it for a few seconds; a 100 ms kernel timer in the parent reads the component's
scoreboard and draws it.  Then the demo SIGTERMs itself, waits for every child
to go, and prints a summary.  ``--forking`` shows the post-forking mode;
``--serve`` keeps serving until Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import psutil

from kernelish import poe_kernel
from kernelish.components.daemon import DaemonConfig

from ._display import Screen
from ._server import CountingDaemon, DemoOptions, DemoServer

__all__ = ["DemoOptions", "run"]

#: The pre-forking pool: a few spares, and children recycled after 20 requests.
PREFORK: dict[str, Any] = {
    "start_children": 3,
    "min_spare": 2,
    "max_spare": 4,
    "max_children": 8,
    "requests": 20,
}
#: The post-forking daemon: a child per connection, at most four at a time.
POSTFORK: dict[str, Any] = {"max_children": 4}


def run(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Run the demo in the foreground; returns the exit status for the parent.

    Every forked child leaves through ``os._exit`` here: no child ever runs
    the parent's summary.
    """
    parent = os.getpid()
    try:
        status = _run(options, out)
    except BaseException:
        if os.getpid() != parent:
            os._exit(70)
        raise
    if os.getpid() != parent:
        os._exit(0)
    return status


def _run(options: DemoOptions, out: TextIO) -> int:
    mode = "post-forking" if options.forking else "pre-forking"
    params = POSTFORK if options.forking else PREFORK
    title = f"kernelish demo: a {mode} daemon (pid {os.getpid()})"
    screen = Screen(out, title, ansi=options.ansi, forking=options.forking)
    out.flush()
    daemon = CountingDaemon(DaemonConfig(alias="Daemon", **params))
    server = DemoServer(options, daemon, screen)
    server.create()
    screen.title = f"{title} on 127.0.0.1:{server.port}"
    daemon.spawn()
    try:
        poe_kernel.run()
    finally:
        if os.getpid() == server.parent_pid:
            screen.close(server.frame() if daemon.scoreboard is not None else None)
    if os.getpid() != server.parent_pid:
        return 0
    if server.failure is not None:
        sys.stderr.write(f"kernelish demo: {server.failure}\n")
        return 1
    return _summary(server, out)


def _summary(server: DemoServer, out: TextIO) -> int:
    daemon, results = server.daemon, server.results
    leftover = psutil.Process().children(recursive=True)
    lines = ["", "Summary"]
    served = daemon.served()
    if results is not None:
        lines.append(
            f"  requests served: {served} (clients completed {results['requests']:.0f}, "
            f"{results['commands']:.0f} commands, {results['slow']:.0f} long, "
            f"{results['errors']:.0f} errors)"
        )
        lines.append(
            f"  latency, connect to close: p50 {results['p50_ms']:.1f} ms, "
            f"p99 {results['p99_ms']:.1f} ms"
        )
    else:
        lines.append(f"  requests served: {served}")
    lines.append(
        f"  children: {daemon.forked} forked, {daemon.recycled} recycled, "
        f"{daemon.stopped} stopped at shutdown"
    )
    if server.options.forking:
        lines.append(
            f"  backpressure: daemon_pause {server.paused} times, "
            f"daemon_accept {server.resumed} times (max_children={daemon.config.max_children})"
        )
    if leftover:
        pids = ", ".join(str(p.pid) for p in leftover)
        lines.append(f"  processes left behind: {pids}")
    else:
        lines.append("  processes left behind: none")
    out.write("\n".join(lines) + "\n")
    out.flush()
    ok = not leftover and (results is None or (results["errors"] == 0 and served > 0))
    return 0 if ok else 1
