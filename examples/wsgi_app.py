#!/usr/bin/env python3
"""A small WSGI application served on the pre-forking Daemon with the Python API.

    python examples/wsgi_app.py PORT [LOGFILE [PIDFILE]] [--workers N] [--max-requests N]

``kernelish.wsgi.serve`` is ``kernelish serve`` (gunicorn's command line) as a
function: the application below -- a greeting, a form that echoes what was
posted, a streamed count, the pid of the worker that answered -- runs in
``--workers`` pre-forked sync workers (2), each replaced after
``--max-requests`` requests (0: never).  The daemon detaches; the access
log and the error log go to LOGFILE (default: wsgi_app.log beside this),
and ``kernelish status|stop PIDFILE`` talk to it.  The status page is at
``/server-status``.

Port 0 lets the OS choose; the chosen port is printed first as ``PORT=N``.
Stop it with ``kernelish stop PIDFILE`` or SIGTERM to the parent; HUP
replaces the workers gracefully.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from kernelish.wsgi import serve

PAGE = """<html>
<head><title>kernelish WSGI</title></head>
<body>
<h1>Hello, {name}!</h1>
<p>Answered by worker {pid}.</p>
<form method="post" action="/echo"><input name="said"><button>Send</button></form>
<ul>
    <li><a href="/count?n=5">count to 5, streamed</a></li>
    <li><a href="/server-status">server status</a></li>
</ul>
</body>
"""


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The application: PEP 3333, nothing of kernelish in it."""
    path = environ["PATH_INFO"]
    query = parse_qs(environ["QUERY_STRING"])
    if path == "/":
        name = html.escape(query.get("name", ["world"])[0])
        body = PAGE.format(name=name, pid=os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{os.getpid()}\n".encode()]
    if path == "/echo" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace"))
        said = form.get("said", [""])[0]
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"You said: {said}\n".encode()]
    if path == "/count":
        n = min(int(query.get("n", ["3"])[0]), 1000)

        def count() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            for i in range(1, n + 1):
                yield f"{i}\n".encode()

        return count()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found\n"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("port", type=int, nargs="?", default=0, help="0: the OS chooses")
    parser.add_argument("logfile", nargs="?", help="default: wsgi_app.log beside this")
    parser.add_argument("pidfile", nargs="?", help="for `kernelish status|stop PIDFILE`")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--max-requests", type=int, default=0, help="per worker (0: no limit)")
    args = parser.parse_args()
    here = Path(sys.argv[0]).resolve().parent
    logfile = str(Path(args.logfile or here / "wsgi_app.log").resolve())
    return serve(
        application,
        bind=f"127.0.0.1:{args.port}",
        workers=args.workers,
        max_requests=args.max_requests,
        daemon=True,
        pidfile=args.pidfile,
        error_logfile=logfile,
        access_logfile=logfile,
        status="/server-status",
    )


if __name__ == "__main__":
    sys.exit(main())
