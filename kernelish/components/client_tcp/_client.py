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
from kernelish._handlers import as_handler
from kernelish._params import LazyParams, callback, exact, positive_int
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


_maybe_callback = callback()


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
    high, low = p.high_mark, p.low_mark
    if high is None and low is None and p.server_high is None and p.server_low is None:
        return True
    return (
        high is not None
        and low is not None
        and p.server_high is not None
        and p.server_low is not None
        and low < high
    )


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
        "server_input": callback(none=False),
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


#: The ReadWrite's events; ServerFlushed, the marks and InputTimeout add theirs.
_WHEEL: dict[str, Any] = {"InputEvent": "got_server_input", "ErrorEvent": "got_server_error"}


class _Client:
    """What one ClientTCP keeps besides POE's heap keys: its parameters and
    the address it connects to (``connect`` may change it)."""

    __slots__ = (
        "address",
        "connect_error",
        "filter",
        "p",
        "port",
        "server_error",
        "wheel_params",
    )

    def __init__(self, p: ClientTCPParams) -> None:
        self.p = p
        self.address = p.remote_address if p.remote_address is not None else "127.0.0.1"
        self.port = p.remote_port
        self.filter = (
            default_filter
            if p.filter is None
            else filter_factory(_OWNER, "Filter", p.filter) or default_filter
        )
        self.connect_error: Callable[[HandlerArgs], Any] = p.connect_error or default_connect_error
        self.server_error: Callable[[HandlerArgs], Any] = p.server_error or default_server_error
        if p.server_flushed is None and p.high_mark is None and p.input_timeout is None:
            self.wheel_params = _WHEEL  # the common case: one shared, never changed
            return
        wheel: dict[str, Any] = dict(_WHEEL)
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


class _Heap(dict[str, Any]):
    """A ClientTCP session's heap: a dict holding POE's heap keys, and --
    in an attribute, not a key -- the :class:`_Client`.  The states are
    plain functions that find their client there, so that one table of
    them serves every ClientTCP of a shape instead of a dozen bound methods
    registered per session (a program may make a ClientTCP per connection)."""

    __slots__ = ("client",)

    client: _Client


# -- the states (``_`` as any handler's; the client is ``_[HEAP].client``) ------


def _start(_: HandlerArgs) -> None:
    """``_start``: alias, ``reconnect`` yielded, Started (Args as ARG0...)."""
    kernel, heap = _[KERNEL, HEAP]
    p = heap.client.p
    heap["shutdown_on_error"] = True
    heap["connected"] = False
    heap["shutdown"] = False
    if p.alias is not None:
        kernel.alias_set(p.alias)
    kernel.yield_("reconnect")
    if p.started is not None:
        p.started(_)


def _stop(_: HandlerArgs) -> None:
    """``_stop``: Disconnected, if a connection is still up."""
    heap = _[HEAP]
    if heap.get("connected"):
        heap["connected"] = False
        disconnected = heap.client.p.disconnected
        if disconnected is not None:
            try:
                disconnected(_)
            except Exception:  # an error in _stop would wait for run()'s end
                log.exception("%d: Disconnected failed", os.getpid())


def _reconnect(_: HandlerArgs) -> None:
    """``reconnect``: drop any connection, connect again."""
    kernel, heap = _[KERNEL, HEAP]
    client = heap.client
    p = client.p
    heap["shutdown"] = False
    heap["connected"] = False
    heap.pop("got_an_error", None)
    if p.alias is not None:
        kernel.alias_set(p.alias)
    heap.pop("server", None)  # the old connection, if any, closes
    where: dict[str, Any] = {}
    if p.domain is not None:
        where["SocketDomain"] = p.domain
    if p.bind_address is not None:
        where["BindAddress"] = p.bind_address
    if p.bind_port is not None:
        where["BindPort"] = p.bind_port
    heap["server"] = SocketFactory(
        RemoteAddress=client.address,
        RemotePort=client.port,
        SuccessEvent="got_connect_success",
        FailureEvent="got_connect_error",
        **where,
    )
    _cancel_timeout(kernel, heap)
    if p.connect_timeout is not None:
        heap["ctimeout_id"] = kernel.delay_set("got_connect_timeout", p.connect_timeout)


def _connect(_: HandlerArgs) -> None:
    """``connect [address [, port]]``: (re)connect, to a new place if given."""
    client = _[HEAP].client
    if _[ARG0] is not None:
        client.address = _[ARG0]
    if _[ARG1] is not None:
        client.port = _[ARG1]
    _[KERNEL].yield_("reconnect")


def _cancel_timeout(kernel: Any, heap: _Heap) -> None:
    if "ctimeout_id" in heap:
        kernel.alarm_remove(heap.pop("ctimeout_id"))


def _got_connect_success(_: HandlerArgs) -> None:
    """Connected: PreConnect, TLS if asked, the ReadWrite, Connected."""
    heap, sock = _[HEAP], _[ARG0]
    client = heap.client
    p = client.p
    _cancel_timeout(_[KERNEL], heap)
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
        hostname = p.server_hostname or (client.address if p.ssl_context.check_hostname else None)
        no_delay(sock)
        try:
            tls = p.ssl_context.wrap_socket(
                sock, server_side=False, server_hostname=hostname, do_handshake_on_connect=False
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            sock.close()
            heap.pop("server", None)
            failure = ("handshake", getattr(exc, "errno", 0) or 0, str(exc))
            client.connect_error(with_args(_, failure))
            return
        heap["server"] = TLSHandshake(tls, "got_tls_up", "got_tls_failed", p.handshake_timeout)
        return
    _established(heap, sock, None)
    if p.connected is not None:
        p.connected(_)


def _established(heap: _Heap, sock: Any, driver: TLSDriver | None) -> None:
    client = heap.client
    if driver is None:
        heap["server"] = ReadWrite(Handle=sock, Filter=client.filter(), **client.wheel_params)
    else:
        heap["server"] = ReadWrite(
            Handle=sock, Filter=client.filter(), Driver=driver, **client.wheel_params
        )
    heap["connected"] = True


def _got_tls_up(_: HandlerArgs) -> None:
    """The TLS handshake is done: the ReadWrite over it, Connected."""
    tls, heap = _[ARG0], _[HEAP]
    _established(heap, tls, TLSDriver(tls))
    connected = heap.client.p.connected
    if connected is not None:
        try:
            address, port = tls.getpeername()[:2]
        except (OSError, ValueError):
            address, port = None, None
        connected(with_args(_, (tls, address, port, _[ARG1])))


def _got_tls_failed(_: HandlerArgs) -> None:
    """The TLS handshake failed or timed out: ConnectError."""
    heap = _[HEAP]
    heap["connected"] = False
    heap.client.connect_error(_)
    heap.pop("server", None)


def _got_connect_error(_: HandlerArgs) -> None:
    """SocketFactory's FailureEvent: ConnectError; the factory goes."""
    heap = _[HEAP]
    _cancel_timeout(_[KERNEL], heap)
    heap["connected"] = False
    heap.client.connect_error(_)
    heap.pop("server", None)


def _got_connect_timeout(_: HandlerArgs) -> None:
    """ConnectTimeout passed: ConnectError('connect', ETIMEDOUT, ...)."""
    heap = _[HEAP]
    heap.pop("ctimeout_id", None)
    heap["connected"] = False
    code = errno.ETIMEDOUT
    heap.client.connect_error(with_args(_, ("connect", code, os.strerror(code))))
    heap.pop("server", None)


def _got_server_error(_: HandlerArgs) -> None:
    """ReadWrite's ErrorEvent: ServerError, then shutdown (by default)."""
    heap = _[HEAP]
    heap.client.server_error(_)
    if heap["shutdown_on_error"]:
        _[KERNEL].yield_("shutdown")
        heap["got_an_error"] = True


def _got_server_flush(_: HandlerArgs) -> None:
    """ReadWrite's FlushedEvent: ServerFlushed; close if shutting down."""
    heap = _[HEAP]
    flushed = heap.client.p.server_flushed
    if flushed is not None:
        flushed(_)
    if heap["shutdown"]:
        _disconnect(_, heap)


def _shutdown(_: HandlerArgs) -> None:
    """``shutdown``: no more input; close once the output is flushed."""
    kernel, heap = _[KERNEL, HEAP]
    heap["shutdown"] = True
    _cancel_timeout(kernel, heap)
    server = heap.get("server")
    if heap.get("connected") and isinstance(server, ReadWrite):
        if heap.get("got_an_error") or not server.get_driver_out_octets():
            _disconnect(_, heap)
        else:
            # No more input; close once the output is flushed.
            server.event(InputEvent="got_server_ignore", FlushedEvent="got_server_flush")
    else:
        heap.pop("server", None)
    alias = heap.client.p.alias
    if alias is not None:
        kernel.alias_remove(alias)


def _disconnect(_: HandlerArgs, heap: _Heap) -> None:
    server = heap.pop("server", None)
    p = heap.client.p
    if p.ssl_context is not None and isinstance(server, ReadWrite):
        close_notify(server.get_output_handle())
    del server  # closed now, before Disconnected runs (POE's order)
    if heap.get("connected"):
        heap["connected"] = False
        if p.disconnected is not None:
            p.disconnected(_)


def _nothing(_: HandlerArgs) -> None:
    """A state that does nothing."""


#: The component's own states: the same functions for every ClientTCP.
_ALWAYS: dict[str, Callable[[HandlerArgs], Any]] = {
    "_start": _start,
    "_stop": _stop,
    "reconnect": _reconnect,
    "connect": _connect,
    "shutdown": _shutdown,
    "got_connect_success": _got_connect_success,
    "got_connect_error": _got_connect_error,
    "got_server_error": _got_server_error,
    "got_server_flush": _got_server_flush,
    "got_server_ignore": _nothing,
}
_TIMEOUT = {"got_connect_timeout": _got_connect_timeout}
_TLS = {"got_tls_up": _got_tls_up, "got_tls_failed": _got_tls_failed}

#: The own states of each shape (ConnectTimeout given, SSLContext given) --
#: only those a client can receive, each a registration --, as the kernel
#: stores states: ``(handler, None)``.
_TABLES: dict[tuple[bool, bool], dict[str, tuple[Callable[[HandlerArgs], Any], Any]]] = {}
for _timeout_given in (False, True):
    for _tls_given in (False, True):
        _own = {**_ALWAYS, **(_TIMEOUT if _timeout_given else {}), **(_TLS if _tls_given else {})}
        _TABLES[_timeout_given, _tls_given] = {name: (func, None) for name, func in _own.items()}
del _timeout_given, _tls_given, _own


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
        inline, objects, packages = p.inline_states, p.object_states, p.package_states
        if inline or objects or packages:
            given = {"InlineStates": inline, "ObjectStates": objects, "PackageStates": packages}
            check_states(_OWNER, _OWN.__contains__, given)
        options = {} if p.session_params is None else session_options(_OWNER, p.session_params)
        heap = _Heap()
        heap.client = _Client(p)
        table = _TABLES[p.connect_timeout is not None, p.ssl_context is not None]
        session: Session | None
        if p.session_type is Session and not objects and not packages:
            # The common case: the shape's table copied, the user's handlers
            # registered as Session.create would (ServerInput is a state).
            states = table.copy()
            states["got_server_input"] = (as_handler(p.server_input), None)
            if p.server_high is not None and p.server_low is not None:
                states["got_high"] = (as_handler(p.server_high), None)
                states["got_low"] = (as_handler(p.server_low), None)
            for name, func in (inline or {}).items():
                states[name] = (as_handler(func), None)
            session = Session.create_registered(states, heap, tuple(p.args), options.get("options"))
        else:
            handlers = {name: entry[0] for name, entry in table.items()}
            handlers["got_server_input"] = p.server_input
            if p.server_high is not None and p.server_low is not None:
                handlers["got_high"], handlers["got_low"] = p.server_high, p.server_low
            handlers.update(inline or {})
            session = p.session_type.create(
                inline_states=handlers,
                object_states=objects,
                package_states=packages,
                heap=heap,
                args=list(p.args),
                **options,
            )
        if session is None:  # pragma: no cover - Session.create refused
            raise RuntimeError("ClientTCP: the session was not created")
        return super().__new__(cls, session.ID)
