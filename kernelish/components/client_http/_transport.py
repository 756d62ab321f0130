"""ClientHTTP's connections: each request gets one from the pool, or a new one -- the
name looked up, the connect, the TLS handshake -- and its response is read on it.

Discussion
----------
A connection is opened for the request that found none to reuse, but belongs to the
pool: if that request is answered meanwhile (a timeout, ``cancel``), the connection,
once up, serves the next request waiting for the same place, or is kept idle.  A name
with several addresses is tried address by address until one connects.  TLS is the
standard library's ``ssl`` with ``ssl.create_default_context()`` unless ``SSLContext``
is given: the certificate and the host name are checked, SNI is sent.

A request that finds its connection closed under it -- the server dropped an idle
keep-alive connection just as it was reused, the race every HTTP/1.1 client has -- is
sent again once on a new connection, if nothing of an answer came and its method is
idempotent (RFC 9110 9.2.2), as urllib3 and Go's net/http do.  Anything else the
connection reports is the request's answer (see :mod:`._agent`), and the connection is
closed: only a connection that ended a response cleanly, with nothing after it and no
``Connection: close``, goes back to the pool.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, ARG3, HandlerArgs, current_kernel
from kernelish.filters import HTTPClient
from kernelish.http import Response
from kernelish.wheels import SocketFactory

from .._tls import TLSHandshake, handshake_error, no_delay
from ._call import CONNECTING, DONE, QUEUED, SENT, Call
from ._connection import WARM, Connection
from ._params import ClientHTTPParams
from ._pool import Pool
from ._resolver import Answer, Resolver

if TYPE_CHECKING:
    from ._agent import UserAgent

__all__ = ["Transport"]

#: Methods whose request may be sent twice (RFC 9110 9.2.2).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

_attempt_ids = itertools.count(1)


class _Attempt:
    """A connection being opened: the lookup, each address's connect, the handshake."""

    __slots__ = ("addresses", "call", "host", "id", "index", "key", "port", "timer", "tls", "wheel")

    def __init__(self, call: Call, key: Any, host: str, port: int, tls: bool) -> None:
        self.id = next(_attempt_ids)
        self.call: Call | None = call
        self.key = key
        self.host = host
        self.port = port
        self.tls = tls
        self.addresses: list[str] = []
        self.index = 0
        self.wheel: Any = None
        self.timer: int | None = None


class Transport:
    """Connections for a :class:`~._agent.UserAgent`'s requests."""

    def __init__(self, p: ClientHTTPParams, agent: UserAgent) -> None:
        self.p = p
        self.agent = agent
        self.kernel = current_kernel()
        self.pool = Pool(max_per_host=p.max_per_host, max_open=p.max_open, keep_alive=p.keep_alive)
        self.resolver = Resolver(
            max_children=p.max_resolvers, timeout=p.connect_timeout or p.timeout
        )
        limits = {
            "MaxContent": p.body_limit(),
            "MaxHeaderSize": p.max_header_size,
            "MaxFields": p.max_fields,
            "Streaming": True,
        }
        self._filters = {False: HTTPClient(**limits), True: HTTPClient(**limits, Proxy=True)}
        self._context = p.ssl_context
        self.attempts: dict[int, _Attempt] = {}
        self._cool_timer: int | None = None
        #: wheel ID -> the attempt a SocketFactory or TLSHandshake serves, or the busy
        #: Connection
        self.wheels: dict[int, Any] = {}

    def states(self) -> dict[str, Any]:
        """The session states the transport's wheels and timers report to."""
        states: dict[str, Any] = {
            "got_connected": self.got_connected,
            "got_connect_failed": self.got_connect_failed,
            "got_connect_timeout": self.got_connect_timeout,
            "got_tls_up": self.got_tls_up,
            "got_tls_failed": self.got_connect_failed,
            "got_input": self.got_input,
            "got_io_error": self.got_io_error,
            "got_pool_cool": self.got_pool_cool,
        }
        states.update(self.resolver.states())
        return states

    def context(self) -> ssl.SSLContext:
        """The TLS context: ``SSLContext``, or the default one (made once)."""
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    # -- finding a connection ----------------------------------------------------------------

    def dispatch(self, call: Call) -> None:
        """An idle connection for ``call``, a new one, or a place in the queue."""
        pool, key = self.pool, call.key
        conn = pool.take(key)
        if conn is not None:
            self.send(call, conn)
        elif pool.may_open(key):
            pool.opening(key)
            self.open(call)
        else:
            call.state = QUEUED
            pool.wait(key, call)

    def send(self, call: Call, conn: Connection) -> None:
        call.conn = conn
        conn.call = call
        call.state = SENT
        self.wheels[conn.ID] = conn
        try:
            conn.send(call.wire)
        except ValueError as exc:  # a field that would break the message
            call.conn = conn.call = None
            self.release(conn, reusable=True)
            self.agent.fail(call, 400, str(exc))

    def release(self, conn: Connection, *, reusable: bool) -> None:
        """``conn`` carries no request now: to the next request waiting for its place,
        kept idle, or closed."""
        self.wheels.pop(conn.ID, None)
        if not reusable or self.agent.shut_down:
            self.lost(conn)
            return
        call = self.pool.next_waiter(conn.key)
        if call is not None:
            self.send(call, conn)
            return
        self.pool.park(conn)
        if self._cool_timer is None:
            self._cool_timer = self.kernel.delay_set("got_pool_cool", WARM)
        self.start_waiting()

    def got_pool_cool(self, _: HandlerArgs) -> None:
        """Idle connections parked a while stop being watched (see :mod:`._connection`)."""
        self._cool_timer = None
        if self.pool.cool(time.monotonic() - WARM):
            self._cool_timer = self.kernel.delay_set("got_pool_cool", WARM)

    def lost(self, conn: Connection) -> None:
        """Close ``conn`` (in use until now); its place may serve a waiting request."""
        self.wheels.pop(conn.ID, None)
        conn.close()
        self.pool.lost(conn.key)
        self.start_waiting()

    def start_waiting(self) -> None:
        for call in self.pool.startable():
            self.open(call)

    def abandon(self, call: Call) -> None:
        """``call`` is being answered early: let go of what it waits on.  A connection
        in use is closed (a response is half read); one being opened goes on, for the
        pool; a queued request leaves the queue."""
        conn = call.conn
        if conn is not None:
            call.conn = conn.call = None
            self.lost(conn)
        attempt = call.attempt
        if attempt is not None:
            attempt.call = None
            call.attempt = None
        if call.state == QUEUED:
            self.pool.unwait(call.key, call)

    # -- opening a connection ----------------------------------------------------------------

    def open(self, call: Call) -> None:
        """Open a connection for ``call`` (the pool has counted it)."""
        key = call.key
        if key[0] == "proxy":
            host, port, tls = key[1], key[2], False
        else:
            host, port, tls = key[1], key[2], key[0] == "https"
        attempt = _Attempt(call, key, host, port, tls)
        self.attempts[attempt.id] = attempt
        call.attempt = attempt
        call.state = CONNECTING
        if self.p.connect_timeout is not None:
            attempt.timer = self.kernel.delay_set(
                "got_connect_timeout", self.p.connect_timeout, attempt.id
            )

        def resolved(answer: Answer) -> None:
            self.resolved(attempt, answer)

        answer = self.resolver.lookup(host, resolved)
        if answer is not None:
            self.resolved(attempt, answer)

    def resolved(self, attempt: _Attempt, answer: Answer) -> None:
        if attempt.id not in self.attempts:
            return  # timed out, or shut down, meanwhile
        if isinstance(answer, tuple):
            self.attempt_failed(attempt, "resolve", *answer)
            return
        attempt.addresses = answer
        self.connect_next(attempt)

    def connect_next(self, attempt: _Attempt) -> None:
        address = attempt.addresses[attempt.index]
        attempt.index += 1
        params: dict[str, Any] = {
            "RemoteAddress": address,
            "RemotePort": attempt.port,
            "SuccessEvent": "got_connected",
            "FailureEvent": "got_connect_failed",
        }
        if ":" in address:
            params["SocketDomain"] = socket.AF_INET6
        if self.p.bind_addr is not None:
            params["BindAddress"] = self.p.bind_addr
        wheel = SocketFactory(**params)
        attempt.wheel = wheel
        self.wheels[wheel.ID] = attempt

    def got_connected(self, _: HandlerArgs) -> None:
        """SocketFactory's SuccessEvent: the TLS handshake, or the connection."""
        sock, wheel_id = _[ARG0], _[ARG3]
        attempt = self.wheels.pop(wheel_id, None)
        if not isinstance(attempt, _Attempt):
            sock.close()
            return
        attempt.wheel = None
        no_delay(sock)
        if not attempt.tls:
            self.established(attempt, sock)
            return
        try:
            tls = self.context().wrap_socket(
                sock,
                server_side=False,
                server_hostname=attempt.host,
                do_handshake_on_connect=False,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            sock.close()
            self.attempt_failed(attempt, "handshake", *handshake_error(exc))
            return
        timeout = self.p.connect_timeout or self.p.timeout
        wheel = TLSHandshake(tls, "got_tls_up", "got_tls_failed", timeout)
        attempt.wheel = wheel
        self.wheels[wheel.ID] = attempt

    def got_tls_up(self, _: HandlerArgs) -> None:
        """The TLS handshake is done."""
        attempt = self.wheels.pop(_[ARG1], None)
        if isinstance(attempt, _Attempt):
            attempt.wheel = None
            self.established(attempt, _[ARG0])

    def got_connect_failed(self, _: HandlerArgs) -> None:
        """A connect (the next address, if any), or the TLS handshake, failed."""
        operation, errnum, errstr, wheel_id = _[ARG0], _[ARG1], _[ARG2], _[ARG3]
        attempt = self.wheels.pop(wheel_id, None)
        if not isinstance(attempt, _Attempt):
            return
        attempt.wheel = None
        if operation == "connect" and attempt.index < len(attempt.addresses):
            self.connect_next(attempt)
        else:
            self.attempt_failed(attempt, operation, errnum, errstr)

    def got_connect_timeout(self, _: HandlerArgs) -> None:
        """``ConnectTimeout`` passed before the connection was up."""
        attempt = self.attempts.get(_[ARG0])
        if attempt is not None:
            attempt.timer = None
            code = errno.ETIMEDOUT
            self.attempt_failed(attempt, "connect", code, os.strerror(code))

    def end_attempt(self, attempt: _Attempt) -> None:
        self.attempts.pop(attempt.id, None)
        if attempt.timer is not None:
            self.kernel.alarm_remove(attempt.timer)
            attempt.timer = None
        wheel, attempt.wheel = attempt.wheel, None
        if wheel is not None:
            self.wheels.pop(wheel.ID, None)
        del wheel  # a factory or handshake still going: its socket closes with it

    def established(self, attempt: _Attempt, sock: socket.socket) -> None:
        self.end_attempt(attempt)
        conn = Connection(
            sock,
            self._filters[attempt.key[0] == "proxy"].clone(),
            attempt.key,
            input_event="got_input",
            error_event="got_io_error",
        )
        call = attempt.call
        if call is not None and call.attempt is attempt:
            call.attempt = None
            self.send(call, conn)
        else:
            self.release(conn, reusable=True)

    def attempt_failed(self, attempt: _Attempt, operation: str, errnum: int, errstr: str) -> None:
        self.end_attempt(attempt)
        self.pool.lost(attempt.key)
        call = attempt.call
        if call is not None and call.attempt is attempt:
            call.attempt = None
            where = f"{attempt.host}:{attempt.port}"
            if operation == "connect" and errnum == errno.ETIMEDOUT:
                self.agent.fail(call, 408, f"Connection to {where} failed: timeout")
            else:
                message = f"Connection to {where} failed: {operation} error {errnum}: {errstr}"
                self.agent.fail(call, 500, message)
        self.start_waiting()

    # -- reading the response ----------------------------------------------------------------

    def got_input(self, _: HandlerArgs) -> None:
        """The records of one read: a response's head, body octets, its end (``b""``)."""
        records, conn = _[ARG0], self.wheels.get(_[ARG1])
        if not isinstance(conn, Connection):
            return
        agent = self.agent
        last = len(records) - 1
        for index, record in enumerate(records):
            call = conn.call
            if call is None or call.conn is not conn:
                self.lost(conn)  # a response nobody asked for
                return
            if type(record) is bytes:
                if record:
                    agent.chunk(call, record)
                    continue
                # The end: the connection goes back first, then the answer.
                response = call.response
                call.conn = conn.call = None
                reusable = (
                    index == last
                    and response is not None
                    and not response.close
                    and conn.filter.idle
                    and not conn.closed
                )
                self.release(conn, reusable=reusable)
                agent.complete(call)
                if index != last:
                    return  # more came than was asked for: the connection is closed
            elif isinstance(record, Response):
                agent.head(call, record)

    def got_io_error(self, _: HandlerArgs) -> None:
        """The connection failed, or ended (``('read', 0, '')``)."""
        operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
        conn = self.wheels.pop(_[ARG3], None)
        if not isinstance(conn, Connection):
            return
        call = conn.call
        if call is not None:
            call.conn = conn.call = None
        self.lost(conn)
        if call is None or call.state == DONE:
            return
        if (
            conn.sent > 1
            and not call.retried
            and call.response is None
            and call.wire.method in _IDEMPOTENT
        ):
            call.retried = True  # the keep-alive race: once more, on a new connection
            call.begin_hop()
            self.dispatch(call)
            return
        if errnum == errno.EFBIG:
            limit = self.p.body_limit()
            self.agent.fail(
                call,
                406,
                f"Response content is longer than specified MaxSize of {limit}.  "
                "Use range requests to retrieve specific amounts of content.",
            )
        elif not errnum:
            self.agent.fail(call, 400, "incomplete response: the server closed the connection")
        else:
            self.agent.fail(call, 400, f"{operation} error {errnum}: {errstr}")

    # -- the end -----------------------------------------------------------------------------

    def close_all(self) -> None:
        """Close every connection and stop every connect and lookup."""
        if self._cool_timer is not None:
            self.kernel.alarm_remove(self._cool_timer)
            self._cool_timer = None
        for attempt in list(self.attempts.values()):
            attempt.call = None
            self.end_attempt(attempt)
        for item in list(self.wheels.values()):
            if isinstance(item, Connection):
                item.close()
        self.wheels.clear()
        self.pool.close_all()
        self.resolver.shutdown()
