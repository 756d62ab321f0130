#!/usr/bin/env python3
"""POEx::HTTP::Server's pre-forking usage, on ServerHTTP and the Daemon.

    python examples/http_preforking.py PORT [LOGFILE [PIDFILE]] [--requests N] [--postfork]

The shape of POEx::HTTP::Server's own prefork test (t/Server.pm and
t/26_prefork.t): two worker sessions answer the requests -- ``worker1``
the root page and ``/static``, ``worker2`` everything else, a step later
(``dynamic`` yields to ``dynamic_resp``, which answers with its pid) --
behind a server with ``prefork => 1`` (here ``Daemon=True``) on a
POE::Component::Daemon that starts two children, each serving
``requests`` requests (1, as in POEx's test: two requests, two pids).
Beyond the port: the status page at ``/server-status`` and its figures at
``/metrics``; ``--postfork`` runs the same server on a post-forking pool.

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
Stop it with ``kernelish stop PIDFILE`` or SIGTERM to the parent.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from pathlib import Path
from typing import Any

from kernelish import ARG0, ARG1, HEAP, KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.components.server_http import ServerHTTP

#: ``t/something.txt`` of POEx's test, served from memory.
STATIC = {"/static/something.txt": b"Something static.\n"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("port", type=int, nargs="?", default=0, help="0: the OS chooses")
    parser.add_argument("logfile", nargs="?", help="default: http_preforking.log beside this")
    parser.add_argument("pidfile", nargs="?", help="for `kernelish status|peek|stop PIDFILE`")
    parser.add_argument("--requests", type=int, default=1, help="requests per child (1)")
    parser.add_argument("--postfork", action="store_true", help="a post-forking pool instead")
    args = parser.parse_args()
    here = Path(sys.argv[0]).resolve().parent
    args.logfile = str(Path(args.logfile or here / "http_preforking.log").resolve())
    return args


# -- package Worker1 ------------------------------------------------------------------------


def worker_start(_: Any) -> None:
    _[KERNEL].alias_set(_[HEAP]["alias"])


def root(_: Any) -> None:
    response = _[ARG1]
    response.content_type = "text/html"
    response.content = b"""<html>
<head><title>Hello world</title></head>
<body>
<h1>Hello and welcome to my unit test</h1>
<ul>
    <li><a href="/static/something.txt">something.txt</a></li>
    <li><a href="/dynamic/debug.txt">debug.txt</a></li>
    <li><a href="/server-status">server status</a></li>
</ul>
</body>
"""
    response.respond()
    response.done()


def static(_: Any) -> None:
    request, response = _[ARG0], _[ARG1]
    content = STATIC.get(request.path)
    if content is None:
        response.error(404, f"No such file or directory {request.path}")
        return
    response.content_type = "text/plain"
    response.content = content
    response.respond()
    response.done()


# -- package Worker2 ------------------------------------------------------------------------


def dynamic(_: Any) -> None:
    request, response = _[ARG0], _[ARG1]
    _[KERNEL].yield_("dynamic_resp", request, response)


def dynamic_resp(_: Any) -> None:
    request, response = _[ARG0], _[ARG1]
    response.content_type = "text/plain"
    response.content = (
        f"$PID={os.getpid()};\n$REQ={html.escape(request.method)} {request.target};\n"
    ).encode()
    response.respond()
    response.done()


def main() -> None:
    args = parse_args()
    Session.create(
        inline_states={"_start": worker_start, "root": root, "static": static},
        heap={"alias": "worker1"},
    )
    Session.create(
        inline_states={"_start": worker_start, "dynamic": dynamic, "dynamic_resp": dynamic_resp},
        heap={"alias": "worker2"},
    )
    server = ServerHTTP(
        Address="127.0.0.1",
        Port=args.port,
        Daemon=True,  # POEx: prefork => 1
        Alias="web-server",
        Headers={"Server": f"{Path(sys.argv[0]).name}/0.1"},
        Handlers=[
            ("^/$", "poe:worker1/root"),
            ("^/static", "poe:worker1/static"),
            ("", "poe:worker2/dynamic"),
        ],
        Status="/server-status",
        Metrics="/metrics",
    )
    if server.port is None:
        sys.exit(f"cannot listen on port {args.port}")
    print(f"PORT={server.port}", flush=True)
    pool: dict[str, Any] = {"max_children": 10}
    if not args.postfork:  # POEx's spawn_prefork
        pool.update(start_children=2, requests=args.requests, min_spare=2)
    DaemonComponent.spawn(
        alias="Daemon",
        logfile=args.logfile,
        pidfile=args.pidfile,
        detach=True,
        verbose=True,
        **pool,
    )
    poe_kernel.run()
    if Daemon.is_child():
        os._exit(0)  # a child leaves at once; see Daemon.is_child


if __name__ == "__main__":
    main()
