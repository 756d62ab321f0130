"""ServerHTTP: the server's session and the constructor that makes it
(POEx::HTTP::Server->spawn, POE::Component::Server::SimpleHTTP->new).

Discussion
----------
POEx::HTTP::Server is one session that owns its listening socket and
multiplexes every connection on itself.  Here the server is built on
:class:`~kernelish.components.server_tcp.ServerTCP`, POE's own model: the
server's session (alias, commands, the sweep timer, the Daemon's
``daemon_shutdown``) starts a ServerTCP listener as its child, whose
connection sessions read with the HTTPD filter in streaming mode and whose
callbacks are :class:`~._states.ConnectionStates`.  ``Daemon=True`` is
ServerTCP's glue with ``DaemonRequests='program'``: in a pre-forking pool
a child accepts up to ``Concurrency`` connections at once and reports each
*request* to the scoreboard (:mod:`._server`); in a post-forking pool a
child serves one connection, keep-alive and all, and exits.

One timer per server, not per connection: the sweep runs every
:attr:`HTTPServer.tick` seconds while this process has connections, and
asks each whether it is past its deadline (:mod:`._connection`).

Commands to the server's session (its ID is what ``ServerHTTP()``
returns, or its ``Alias``): ``shutdown`` -- stop listening, answer what
was asked, close every connection after its last answer (POEx's).
"""

from __future__ import annotations

from typing import Any

from kernelish import KERNEL, SESSION, HandlerArgs, Session
from kernelish._params import ParameterError, parse_params
from kernelish.components.server_tcp import ServerTCP
from kernelish.filters import HTTPD

from .._shared import SessionID, check_states
from ._params import ServerHTTPParams
from ._routes import Routes, Target
from ._server import HTTPServer
from ._states import ConnectionStates, is_reserved, now
from ._status import metrics_handler, status_handler

__all__ = ["ServerHTTP"]

_OWNER = "ServerHTTP"

#: ServerHTTP's parameters that are ServerTCP's, under the same names.
_LISTENER = (
    "port",
    "address",
    "hostname",
    "domain",
    "concurrency",
    "started",
    "stopped",
    "error",
    "ssl_context",
    "handshake_timeout",
    "accept_batch",
    "high_mark",
    "low_mark",
)


class ServerHTTP(SessionID):
    """An HTTP/1.1 server (port of POEx::HTTP::Server, in the role of
    POE::Component::Server::SimpleHTTP), on ServerTCP.

    ``ServerHTTP(Port=8080, Handlers=[('^/$', root), ('', other)])`` starts
    the server's session and its listener; each request goes to the first
    handler whose pattern is found in its path, with the request as
    ``_[ARG0]`` and its :class:`~._response.ServerResponse` as ``_[ARG1]``.
    The value is the server session's ID (``kernel.post(server,
    'shutdown')``), with :attr:`address` and :attr:`port`.

    Keep-alive, pipelining (answers in request order), ``Content-Length``
    and chunked bodies both ways, ``Expect: 100-continue``, HEAD, the
    HTTPD filter's limits, header / body / request / idle timeouts,
    streamed responses with backpressure, an access log, and ``Daemon=True``
    for the Daemon's pools.  Parameters in ``docs/toolbox/server_http.md``.
    """

    #: The listening address once started (None if the bind failed).
    address: Any
    #: The HTTPServer shared by this server's connections (its counters).
    server: HTTPServer

    def __new__(cls, **params: Any) -> ServerHTTP:
        p = parse_params(ServerHTTPParams, _OWNER, params)
        check_states(_OWNER, is_reserved, params)
        routes = Routes(p.handlers, p.handler) if p.handlers or p.handler else Routes({}, None)
        server = HTTPServer(p, routes)
        if p.metrics is not None:
            routes.add_first(p.metrics, Target(metrics_handler(server)))
        if p.status is not None:
            routes.add_first(p.status, Target(status_handler(server, p.status_refresh)))
        states = ConnectionStates(server)
        try:
            httpd = HTTPD(
                Streaming=True,
                MaxRequestLine=p.max_request_line,
                MaxFieldSize=p.max_field_size,
                MaxFields=p.max_fields,
                MaxHeaderSize=p.max_header_size,
            )
        except ParameterError as exc:
            raise ParameterError(f"{_OWNER}: {exc}", owner=_OWNER, params=exc.params) from None
        inline = states.inline_states()
        inline.update(p.inline_states or {})
        tcp: dict[str, Any] = {
            "ClientFilter": httpd,
            "ClientInput": states.input,
            "ClientConnected": states.connected,
            "ClientDisconnected": states.disconnected,
            "ClientError": states.error,
            "ClientHigh": states.high,
            "ClientLow": states.low,
            "ClientShutdownOnError": False,
            "InlineStates": inline,
        }
        for name in _LISTENER:
            value = getattr(p, name)
            if name in p.model_fields_set or name in ("concurrency", "high_mark", "low_mark"):
                tcp[name] = value
        if p.daemon:
            tcp["Daemon"], tcp["DaemonRequests"] = True, "program"
        made: dict[str, Any] = {}

        def start(_: HandlerArgs) -> None:
            kernel = _[KERNEL]
            server.session_id = _[SESSION].ID
            if p.alias is not None:
                kernel.alias_set(p.alias)
            if p.daemon:
                kernel.sig("daemon_shutdown", "http_server_stop")
            listener = made["listener"] = ServerTCP(**tcp)
            server.listener_id = int(listener)

        session = Session.create(
            inline_states={
                "_start": start,
                "_child": _nothing,
                "shutdown": lambda _: _stop(_, server, p.alias, listener=True),
                "http_server_stop": lambda _: _stop(_, server, None, listener=False),
                "http_server_arm": lambda _: _arm(_, server),
                "http_server_sweep": lambda _: _sweep(_, server),
                "http_server_disarm": lambda _: _disarm(_, server),
            }
        )
        if session is None:  # pragma: no cover - Session.create refused
            raise RuntimeError("ServerHTTP: the server's session was not created")
        self = super().__new__(cls, session.ID)
        self.server = server
        listener = made.get("listener")
        self.address = listener.address if listener is not None else None
        return self

    @property
    def port(self) -> int | None:
        """The listening port (``Port=0``: the one the system chose); None
        for a UNIX socket or a failed bind."""
        address = self.address
        return int(address[1]) if isinstance(address, tuple) else None


def _nothing(_: HandlerArgs) -> None:
    """``_child``: the listener's comings and goings."""


def _stop(_: HandlerArgs, server: HTTPServer, alias: str | None, listener: bool) -> None:
    """``shutdown`` (and ``daemon_shutdown``): no more requests; close each
    connection after its last answer; stop listening."""
    kernel = _[KERNEL]
    server.closing = True
    if listener and server.listener_id is not None:
        kernel.call(server.listener_id, "shutdown")
    if alias is not None:
        kernel.alias_remove(alias)
    for session_id in list(server.conns):
        kernel.call(session_id, "http_server_drain")


def _arm(_: HandlerArgs, server: HTTPServer) -> None:
    """``http_server_arm``: the first connection: the sweep starts."""
    if not server.sweeping:
        server.sweeping = True
        _[KERNEL].delay("http_server_sweep", server.tick)


def _disarm(_: HandlerArgs, server: HTTPServer) -> None:
    """``http_server_disarm``: no connection is left; no more sweeps."""
    server.sweeping = False
    _[KERNEL].delay("http_server_sweep")


def _sweep(_: HandlerArgs, server: HTTPServer) -> None:
    """``http_server_sweep``: every connection past its deadline is dealt
    with; again in a tick while any is open."""
    moment = now()
    for conn in list(server.conns.values()):
        if conn.deadline(moment):
            conn.timed_out(moment)
    if server.conns:
        _[KERNEL].delay("http_server_sweep", server.tick)
    else:
        server.sweeping = False
