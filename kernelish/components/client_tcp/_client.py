"""ClientTCP: a TCP client in a few lines (POE::Component::Client::TCP).

Discussion
----------
POE's ``new`` creates one session that connects (a SocketFactory in
``heap['server']``, ``reconnect`` yielded from ``_start``), then talks to
the server through a ReadWrite that replaces the factory in the same heap
key.  Its callbacks are handlers called with the states' ``_``:
``Connected`` (socket, peer address, peer port), ``ConnectError`` and
``ServerError`` (operation, errnum, errstr), ``ServerInput`` (the record),
``ServerFlushed``, ``Disconnected``, ``Started`` (``Args`` as ARG0...).
Commands: ``connect`` (optionally to a new address and port),
``reconnect``, ``shutdown`` (flush, then close).  Heap keys: ``server``,
``connected``, ``shutdown``, ``shutdown_on_error``, ``got_an_error``,
``ctimeout_id``.

POE's bugs not copied:

* ``Disconnected`` is called once for every connection that was made and
  then ended by ``shutdown``, an error or the server closing it -- POE
  misses it when a write error ends a ``shutdown`` that was waiting for
  output to flush, or when the session ends some other way.  (A
  connection dropped by an explicit ``connect``/``reconnect`` gets no
  ``Disconnected``, as in POE: the program asked for it.)
* ``heap['connected']`` is true exactly while a connection is up: POE
  clears it when ``shutdown`` *starts* (output may still be flowing) and
  never on some error paths.

Beyond POE: ``SSLContext`` (TLS; the handshake never blocks the kernel,
``HandshakeTimeout`` bounds it, a failure is ``ConnectError('handshake',
errnum, errstr)``; ``Connected`` comes once it is done), ``ServerHostname``
(for SNI and the certificate check; RemoteAddress by default) and
``InputTimeout`` (the ReadWrite's).  ``ServerInput`` is the
``got_server_input`` state itself (no wrapper call per record); after
``shutdown`` input goes to a state that drops it.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL, SESSION, HandlerArgs, Session
from kernelish._params import LazyParams, exact, positive_int
from kernelish.wheels import ReadWrite, SocketFactory

from .._shared import (
    SessionID,
    check_states,
    default_filter,
    filter_factory,
    session_options,
    with_args,
)
from .._tls import TLSDriver, TLSHandshake, close_notify, no_delay

if TYPE_CHECKING:
    from ._params import ClientTCPParams

__all__ = ["ClientTCP"]

log = logging.getLogger("kernelish.components.client_tcp")

_OWNER = "ClientTCP"

#: The session's own states; the user's InlineStates may not replace them.
_OWN = frozenset(
    {
        "_start",
        "_stop",
        "_child",
        "reconnect",
        "connect",
        "shutdown",
        "got_connect_success",
        "got_connect_error",
        "got_connect_timeout",
        "got_server_error",
        "got_server_input",
        "got_server_flush",
        "got_server_ignore",
        "got_high",
        "got_low",
        "got_tls_up",
        "got_tls_failed",
    }
)


def _callback(value: Any) -> bool:
    return callable(value)


def _maybe_callback(value: Any) -> bool:
    return value is None or callable(value)


def _anything(value: Any) -> bool:
    return True


def _timeout(value: Any) -> bool:
    return value.__class__ in (int, float) and 0 < value < float("inf")


def _maybe_timeout(value: Any) -> bool:
    return value is None or _timeout(value)


def _maybe_mark(value: Any) -> bool:
    return value is None or positive_int(value)


def _states(value: Any) -> bool:
    return value is None or (
        value.__class__ is dict
        and all(k.__class__ is str and callable(v) for k, v in value.items())
    )


def _session_type(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, Session)


def _consistent(p: Any) -> bool:
    """ClientTCPParams' rules for the common shape; False lets the model word the error."""
    if p.remote_port is None and p.domain != socket.AF_UNIX:
        return False
    marks = (p.high_mark, p.low_mark, p.server_high, p.server_low)
    if any(m is not None for m in marks):
        return all(m is not None for m in marks) and p.low_mark < p.high_mark
    return True


#: ClientTCP's parameters (the model: :mod:`._params`).  A program may make a
#: ClientTCP per connection, and pydantic's validation was a sixth of that
#: session's creation; the common shape -- everything but ``Domain`` and
#: ``SSLContext`` with a plain value -- is checked without it (and without
#: importing it).
_PARAMS = LazyParams(
    _OWNER,
    "kernelish.components.client_tcp._params:ClientTCPParams",
    {
        "bind_address": None,
        "bind_port": None,
        "domain": None,
        "alias": None,
        "connect_timeout": None,
        "args": (),
        "started": None,
        "pre_connect": None,
        "connected": None,
        "connect_error": None,
        "disconnected": None,
        "server_error": None,
        "server_flushed": None,
        "server_high": None,
        "server_low": None,
        "high_mark": None,
        "low_mark": None,
        "filter": None,
        "inline_states": None,
        "object_states": None,
        "package_states": None,
        "session_type": Session,
        "session_params": None,
        "ssl_context": None,
        "server_hostname": None,
        "handshake_timeout": 60.0,
        "input_timeout": None,
    },
    {
        "remote_address": exact(str, None),
        "remote_port": exact(int, str, None),
        "bind_address": exact(str, None),
        "bind_port": exact(int, str, None),
        "alias": exact(str, None),
        "connect_timeout": _maybe_timeout,
        "args": exact(list, tuple),
        "started": _maybe_callback,
        "pre_connect": _maybe_callback,
        "connected": _maybe_callback,
        "connect_error": _maybe_callback,
        "disconnected": _maybe_callback,
        "server_input": _callback,
        "server_error": _maybe_callback,
        "server_flushed": _maybe_callback,
        "server_high": _maybe_callback,
        "server_low": _maybe_callback,
        "high_mark": _maybe_mark,
        "low_mark": _maybe_mark,
        "filter": _anything,
        "inline_states": _states,
        "object_states": exact(list, None),
        "package_states": exact(list, None),
        "session_type": _session_type,
        "session_params": _anything,
        "server_hostname": exact(str, None),
        "handshake_timeout": _timeout,
        "input_timeout": _maybe_timeout,
    },
    required=("remote_address", "remote_port", "server_input"),
    consistent=_consistent,
)


def default_connect_error(_: HandlerArgs) -> None:
    """POE's default ConnectError: log (not a plain reset), drop the factory."""
    operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
    if not (operation == "read" and errnum in (0, errno.ECONNRESET)):
        log.warning(
            "%d: Client %d got %s error %s (%s)",
            os.getpid(),
            _[SESSION].ID,
            operation,
            errnum,
            errstr,
        )
    _[HEAP].pop("server", None)


def default_server_error(_: HandlerArgs) -> None:
    """POE's default ServerError: log it, and shut down."""
    operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
    level = logging.INFO if not errnum else logging.WARNING
    log.log(
        level,
        "%d: Client %d got %s error %s (%s)",
        os.getpid(),
        _[SESSION].ID,
        operation,
        errnum,
        errstr if errnum else "Normal disconnection",
    )
    _[KERNEL].yield_("shutdown")


class _Client:
    """The client session's states (one object per ClientTCP)."""

    def __init__(self, p: ClientTCPParams) -> None:
        self.p = p
        self.address = p.remote_address if p.remote_address is not None else "127.0.0.1"
        self.port = p.remote_port
        self.filter = filter_factory(_OWNER, "Filter", p.filter) or default_filter
        self.connect_error: Callable[[HandlerArgs], Any] = p.connect_error or default_connect_error
        self.server_error: Callable[[HandlerArgs], Any] = p.server_error or default_server_error
        wheel: dict[str, Any] = {"InputEvent": "got_server_input", "ErrorEvent": "got_server_error"}
        if p.server_flushed is not None:
            # Otherwise set only when a shutdown waits for it (a dispatch each).
            wheel["FlushedEvent"] = "got_server_flush"
        if p.high_mark is not None:
            wheel.update(
                HighMark=p.high_mark, LowMark=p.low_mark, HighEvent="got_high", LowEvent="got_low"
            )
        if p.input_timeout is not None:
            wheel["InputTimeout"] = p.input_timeout
        self.wheel_params = wheel

    def states(self) -> dict[str, Callable[[HandlerArgs], Any]]:
        p = self.p
        # Only the states this client can receive: a session is made per
        # connection, and each state costs its registration.
        states: dict[str, Callable[[HandlerArgs], Any]] = {
            "_start": self.start,
            "_stop": self.stop,
            "reconnect": self.reconnect,
            "connect": self.connect,
            "shutdown": self.shutdown,
            "got_connect_success": self.got_connect_success,
            "got_connect_error": self.got_connect_error,
            "got_server_error": self.got_server_error,
            "got_server_input": p.server_input,
            "got_server_flush": self.got_server_flush,
            "got_server_ignore": _nothing,
        }
        if p.connect_timeout is not None:
            states["got_connect_timeout"] = self.got_connect_timeout
        if p.server_high is not None and p.server_low is not None:
            states["got_high"], states["got_low"] = p.server_high, p.server_low
        if p.ssl_context is not None:
            states["got_tls_up"], states["got_tls_failed"] = self.got_tls_up, self.got_tls_failed
        states.update(p.inline_states or {})
        return states

    # -- life -------------------------------------------------------------------

    def start(self, _: HandlerArgs) -> None:
        """``_start``: alias, ``reconnect`` yielded, Started (Args as ARG0...)."""
        kernel, heap, p = _[KERNEL], _[HEAP], self.p
        heap["shutdown_on_error"] = True
        heap["connected"] = False
        heap["shutdown"] = False
        if p.alias is not None:
            kernel.alias_set(p.alias)
        kernel.yield_("reconnect")
        if p.started is not None:
            p.started(_)

    def stop(self, _: HandlerArgs) -> None:
        """``_stop``: Disconnected, if a connection is still up."""
        heap = _[HEAP]
        if heap.get("connected"):
            heap["connected"] = False
            if self.p.disconnected is not None:
                try:
                    self.p.disconnected(_)
                except Exception:  # an error in _stop would wait for run()'s end
                    log.exception("%d: Disconnected failed", os.getpid())

    # -- connecting -------------------------------------------------------------

    def reconnect(self, _: HandlerArgs) -> None:
        """``reconnect``: drop any connection, connect again."""
        kernel, heap, p = _[KERNEL], _[HEAP], self.p
        heap["shutdown"] = False
        heap["connected"] = False
        heap.pop("got_an_error", None)
        if p.alias is not None:
            kernel.alias_set(p.alias)
        heap.pop("server", None)  # the old connection, if any, closes
        where: dict[str, Any] = {"RemoteAddress": self.address, "RemotePort": self.port}
        if p.domain is not None:
            where["SocketDomain"] = p.domain
        if p.bind_address is not None:
            where["BindAddress"] = p.bind_address
        if p.bind_port is not None:
            where["BindPort"] = p.bind_port
        heap["server"] = SocketFactory(
            **where, SuccessEvent="got_connect_success", FailureEvent="got_connect_error"
        )
        self._cancel_timeout(_)
        if p.connect_timeout is not None:
            heap["ctimeout_id"] = kernel.delay_set("got_connect_timeout", p.connect_timeout)

    def connect(self, _: HandlerArgs) -> None:
        """``connect [address [, port]]``: (re)connect, to a new place if given."""
        if _[ARG0] is not None:
            self.address = _[ARG0]
        if _[ARG1] is not None:
            self.port = _[ARG1]
        _[KERNEL].yield_("reconnect")

    def _cancel_timeout(self, _: HandlerArgs) -> None:
        timer = _[HEAP].pop("ctimeout_id", None)
        if timer is not None:
            _[KERNEL].alarm_remove(timer)

    def got_connect_success(self, _: HandlerArgs) -> None:
        """Connected: PreConnect, TLS if asked, the ReadWrite, Connected."""
        heap, sock, p = _[HEAP], _[ARG0], self.p
        self._cancel_timeout(_)
        if p.pre_connect is not None:
            given = p.pre_connect(_)
            if not given or not callable(getattr(given, "fileno", None)):
                heap["connected"] = False
                heap.pop("server", None)
                sock.close()
                return
            if given is not sock:
                sock = given
        if p.ssl_context is not None:
            hostname = p.server_hostname or (self.address if p.ssl_context.check_hostname else None)
            no_delay(sock)
            try:
                tls = p.ssl_context.wrap_socket(
                    sock, server_side=False, server_hostname=hostname, do_handshake_on_connect=False
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                sock.close()
                heap.pop("server", None)
                failure = ("handshake", getattr(exc, "errno", 0) or 0, str(exc))
                self.connect_error(with_args(_, failure))
                return
            heap["server"] = TLSHandshake(tls, "got_tls_up", "got_tls_failed", p.handshake_timeout)
            return
        self._established(_, sock, None)
        if p.connected is not None:
            p.connected(_)

    def _established(self, _: HandlerArgs, sock: Any, driver: TLSDriver | None) -> None:
        heap = _[HEAP]
        params = dict(self.wheel_params, Filter=self.filter())
        if driver is not None:
            params["Driver"] = driver
        heap["server"] = ReadWrite(Handle=sock, **params)
        heap["connected"] = True

    def got_tls_up(self, _: HandlerArgs) -> None:
        """The TLS handshake is done: the ReadWrite over it, Connected."""
        tls = _[ARG0]
        self._established(_, tls, TLSDriver(tls))
        if self.p.connected is not None:
            try:
                address, port = tls.getpeername()[:2]
            except (OSError, ValueError):
                address, port = None, None
            self.p.connected(with_args(_, (tls, address, port, _[ARG1])))

    def got_tls_failed(self, _: HandlerArgs) -> None:
        """The TLS handshake failed or timed out: ConnectError."""
        _[HEAP]["connected"] = False
        self.connect_error(_)
        _[HEAP].pop("server", None)

    def got_connect_error(self, _: HandlerArgs) -> None:
        """SocketFactory's FailureEvent: ConnectError; the factory goes."""
        self._cancel_timeout(_)
        _[HEAP]["connected"] = False
        self.connect_error(_)
        _[HEAP].pop("server", None)

    def got_connect_timeout(self, _: HandlerArgs) -> None:
        """ConnectTimeout passed: ConnectError('connect', ETIMEDOUT, ...)."""
        heap = _[HEAP]
        heap.pop("ctimeout_id", None)
        heap["connected"] = False
        code = errno.ETIMEDOUT
        self.connect_error(with_args(_, ("connect", code, os.strerror(code))))
        heap.pop("server", None)

    # -- talking ----------------------------------------------------------------

    def got_server_error(self, _: HandlerArgs) -> None:
        """ReadWrite's ErrorEvent: ServerError, then shutdown (by default)."""
        self.server_error(_)
        heap = _[HEAP]
        if heap["shutdown_on_error"]:
            _[KERNEL].yield_("shutdown")
            heap["got_an_error"] = True

    def got_server_flush(self, _: HandlerArgs) -> None:
        """ReadWrite's FlushedEvent: ServerFlushed; close if shutting down."""
        if self.p.server_flushed is not None:
            self.p.server_flushed(_)
        if _[HEAP]["shutdown"]:
            self._disconnect(_)

    def shutdown(self, _: HandlerArgs) -> None:
        """``shutdown``: no more input; close once the output is flushed."""
        kernel, heap = _[KERNEL], _[HEAP]
        heap["shutdown"] = True
        self._cancel_timeout(_)
        server = heap.get("server")
        if heap.get("connected") and isinstance(server, ReadWrite):
            if heap.get("got_an_error") or not server.get_driver_out_octets():
                self._disconnect(_)
            else:
                # No more input; close once the output is flushed.
                server.event(InputEvent="got_server_ignore", FlushedEvent="got_server_flush")
        else:
            heap.pop("server", None)
        if self.p.alias is not None:
            kernel.alias_remove(self.p.alias)

    def _disconnect(self, _: HandlerArgs) -> None:
        heap = _[HEAP]
        server = heap.pop("server", None)
        if self.p.ssl_context is not None and isinstance(server, ReadWrite):
            close_notify(server.get_output_handle())
        del server  # closed now, before Disconnected runs (POE's order)
        if heap.get("connected"):
            heap["connected"] = False
            if self.p.disconnected is not None:
                self.p.disconnected(_)


def _nothing(_: HandlerArgs) -> None:
    """A state that does nothing."""


class ClientTCP(SessionID):
    """A TCP client in a few lines (port of POE::Component::Client::TCP).

    ``ClientTCP(RemoteAddress='127.0.0.1', RemotePort=80, Connected=...,
    ServerInput=...)`` creates the client's session (POE's ``new``; the
    value is its ID, an ``int``) and connects.  Every parameter of POE's
    in CamelCase or snake_case, and kernelish's ``SSLContext``,
    ``ServerHostname``, ``HandshakeTimeout`` and ``InputTimeout`` (see
    ``docs/toolbox/client_tcp.md``).
    """

    def __new__(cls, **params: Any) -> ClientTCP:
        p: ClientTCPParams = _PARAMS.parse(params)
        if p.inline_states or p.object_states or p.package_states:
            given = {
                "InlineStates": p.inline_states,
                "ObjectStates": p.object_states,
                "PackageStates": p.package_states,
            }
            check_states(_OWNER, _OWN.__contains__, given)
        options = session_options(_OWNER, p.session_params)
        client = _Client(p)
        session = p.session_type.create(
            inline_states=client.states(),
            object_states=p.object_states,
            package_states=p.package_states,
            args=list(p.args),
            **options,
        )
        if session is None:  # pragma: no cover - Session.create refused
            raise RuntimeError("ClientTCP: the session was not created")
        return super().__new__(cls, session.ID)
