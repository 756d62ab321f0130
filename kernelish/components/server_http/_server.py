"""What every connection of one ServerHTTP shares: the configuration, the
routes, this process's counters, and what a connection reports to -- the
access log, the error log, the Daemon's scoreboard.

The scoreboard, in a pre-forked child (``ServerTCP(Daemon=True,
DaemonRequests='program')``): a child serves many connections at once, so
a request, not a connection, is what it reports -- ``update_status('req')``
when a request starts and ``('done')`` when the last one under way is
answered.  Requests that overlap are reported as ``done`` then ``req``, so
that the slot's count of requests served stays exact and ``requests`` (the
Daemon's requests per child) counts HTTP requests, as gunicorn's
``max_requests`` does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kernelish import current_kernel
from kernelish.components.daemon import Daemon, pool_mode
from kernelish.http import Response

from ._accesslog import AccessLog
from ._connection import log
from ._helpers import log_raised

if TYPE_CHECKING:
    from ._connection import HTTPConnection
    from ._params import ServerHTTPParams
    from ._response import ServerResponse
    from ._routes import Routes, Target

__all__ = ["HTTPServer", "Stats"]


class Stats:
    """This process's counters (the Prometheus page's ``kernelish_http_*``)."""

    __slots__ = ("connections", "failures", "octets", "requests", "statuses")

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.octets = 0
        self.failures = 0
        #: Responses by status class: '2xx' ...
        self.statuses: dict[str, int] = {}


class HTTPServer:
    """The shared side of one ServerHTTP (see the module notes)."""

    def __init__(self, p: ServerHTTPParams, routes: Routes) -> None:
        self.routes = routes
        self.specials: dict[str, Target] = routes.specials
        headers = p.headers if p.headers is not None else {"Server": "kernelish"}
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        self.default_headers: list[tuple[str, str]] = [(str(n), str(v)) for n, v in pairs]
        self.max_content = p.max_content
        self.max_pipeline = p.max_pipeline
        self.keep_alive = p.keep_alive
        self.keep_alive_timeout = p.keep_alive_timeout
        self.header_timeout = p.header_timeout
        self.timeout = p.timeout
        self.request_timeout = p.request_timeout
        self.high_mark = p.high_mark
        self.tls = p.ssl_context is not None
        self.daemon = p.daemon
        self.access = AccessLog.of(p.access_log)
        #: Connections of this process by session ID (the sweep's list).
        self.conns: dict[int, HTTPConnection] = {}
        self.stats = Stats()
        #: Requests under way in this process (the scoreboard's 'r').
        self.in_flight = 0
        #: No more requests: shutdown or daemon_shutdown.
        self.closing = False
        #: The server's own session (sweep, commands) and the listener's.
        self.session_id: int | None = None
        self.listener_id: int | None = None
        #: Seconds between sweeps: a quarter of the shortest timeout, 50 ms to 1 s.
        shortest = min(
            p.header_timeout, p.keep_alive_timeout, p.timeout, p.request_timeout or p.timeout
        )
        self.tick = min(1.0, max(0.05, shortest / 4))
        self.sweeping = False

    # -- the Daemon -------------------------------------------------------------------------

    def reports_requests(self) -> bool:
        """Whether this process tells the Daemon about each request (a
        pre-forked child; see the module notes)."""
        return self.daemon and Daemon.is_child() and pool_mode() == "prefork"

    def request_started(self, conn: HTTPConnection) -> None:
        """A request is complete and goes to its handler."""
        self.stats.requests += 1
        if conn.report:
            if self.in_flight:
                Daemon.update_status("done")
            Daemon.update_status("req")
            self.in_flight += 1
            left = Daemon.requests_left()
            if left is not None and left <= len(self.conns) and self.listener_id is not None:
                # As many connections as requests left: the child accepts
                # none it would not serve (the pool's next child will).
                current_kernel().call(self.listener_id, "tcp_server_daemon_gate")

    def request_finished(self, conn: HTTPConnection, response: ServerResponse) -> None:
        """``response`` is all out."""
        stats = self.stats
        stats.octets += response.octets
        key = f"{response.status // 100}xx"
        stats.statuses[key] = stats.statuses.get(key, 0) + 1
        access = self.access
        if access is not None:
            access.write(conn.info.remote_ip, response)
        self._done(conn)

    def request_aborted(self, conn: HTTPConnection, response: ServerResponse) -> None:
        """The connection ended before ``response`` was all out."""
        log.debug("%d: %r aborted: the connection is gone", os.getpid(), response)
        self._done(conn)

    def _done(self, conn: HTTPConnection) -> None:
        if conn.report and self.in_flight:
            self.in_flight -= 1
            if not self.in_flight:
                Daemon.update_status("done")

    # -- what goes wrong, logged once ----------------------------------------------------------

    def handler_failed(
        self, conn: HTTPConnection, response: ServerResponse, exc: Exception, where: str
    ) -> None:
        """A handler (or its body's iterator) raised: logged with its traceback."""
        self.stats.failures += 1
        log_raised(log, where, response.request, conn.info.remote_ip, response.head_sent, exc)

    def refused(self, conn: HTTPConnection, error: Response) -> None:
        """A request was refused (400, 408, 413, 431...): what was wrong."""
        log.info(
            "%d: %d %s to %s: %s",
            os.getpid(),
            error.status,
            error.reason,
            conn.info.remote_ip,
            error.detail or "-",
        )

    def request_timed_out(self, conn: HTTPConnection, response: ServerResponse) -> None:
        """A handler did not answer within RequestTimeout."""
        request = response.request
        log.warning(
            "%d: no answer to %s %s from %s in %gs (RequestTimeout): 503",
            os.getpid(),
            request.method if request is not None else "-",
            request.target if request is not None else "-",
            conn.info.remote_ip,
            self.request_timeout,
        )

    def client_error(self, conn: HTTPConnection, operation: str, errnum: int, errstr: str) -> None:
        """A read or write error on the connection (a reset, most often)."""
        level = logging.INFO if conn.queue else logging.DEBUG
        log.log(
            level,
            "%d: %s error %d (%s) from %s%s; closing the connection",
            os.getpid(),
            operation,
            errnum,
            errstr,
            conn.info.remote_ip,
            " mid-response" if conn.queue else "",
        )

    def snapshot(self) -> dict[str, Any]:
        """This process's counters, for the status pages."""
        stats = self.stats
        return {
            "pid": os.getpid(),
            "connections_open": len(self.conns),
            "connections": stats.connections,
            "requests": stats.requests,
            "octets": stats.octets,
            "failures": stats.failures,
            "statuses": dict(stats.statuses),
            "in_flight": self.in_flight,
        }
