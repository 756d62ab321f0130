"""A ServerTCP connection session: POE's per-connection inline states.

Discussion
----------
POE::Component::Server::TCP starts one session per accepted connection.
Its ``_start`` sets the heap keys (``remote_ip``, ``remote_port``,
``shutdown``, ``shutdown_on_error``), lets ``ClientPreConnect`` replace or
refuse the socket, puts a ReadWrite in ``heap['client']`` and calls
``ClientConnected`` with ``ClientArgs`` as its ARG0...  Input goes to
``ClientInput`` (ARG0 the record, ARG1 the wheel ID), errors to
``ClientError`` (operation, errnum, errstr) followed -- with
``ClientShutdownOnError``, the default -- by ``shutdown``, which closes the
connection at once after an error, or once the output is flushed.

What is the same, line for line: the state names (``tcp_server_got_input``,
``tcp_server_got_error``, ``tcp_server_got_flush``, ``shutdown``...), the
heap keys, the callbacks' positions, the order (``ClientDisconnected`` runs
before ``heap['client']`` goes), and ``disconnected`` called on the
listening session from ``_stop``.

What is different, and why:

* ``ClientInput`` *is* the ``tcp_server_got_input`` state -- no wrapper
  call per record, which is what keeps a ServerTCP echo at the speed of a
  hand-written one.  POE's wrapper drops input once ``shutdown`` was
  asked; here ``shutdown`` points the wheel's InputEvent at a state that
  drops it (``tcp_server_ignore``), which is the same from the next record
  on, read end of file and errors included.
* ``ClientDisconnected`` is called exactly once for every connection whose
  ``ClientConnected`` was called -- also when the session ends some other
  way (the program dropped ``heap['client']`` itself, an error in a
  callback).  POE misses it in those cases.
* An exception in a callback (``ClientInput`` that raises) is POE's DIE
  signal, which reaches the connection's parent, the listening session:
  one watcher there handles the DIE of any of its connections, logs it
  with its traceback (logger ``kernelish.components.server_tcp``) and
  shuts that connection down at once; the listener and every other
  connection go on.  In POE the unhandled DIE stops every session and
  ``run()`` dies.
* Only the states a connection can receive are registered when its
  session is made (each costs its registration, per connection);
  ``tcp_server_ignore`` and ``tcp_server_got_flush`` are added with
  ``kernel.state`` when a shutdown or a drain waits for the flush.
* With ``SSLContext`` the socket is wrapped and the handshake driven
  without blocking (:mod:`kernelish.components._tls`); ``heap['client']``
  holds the handshake wheel meanwhile, and ``ClientConnected`` comes once
  the handshake is done.  A failed or timed-out handshake is
  ``ClientError('handshake', errnum, errstr)``, and the session ends.
* ``heap['connected']`` is true from the moment the ReadWrite exists until
  ``ClientDisconnected``.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, ARG3, HEAP, KERNEL, SESSION, HandlerArgs, Session
from kernelish._handlers import as_handler
from kernelish.wheels import ReadWrite

from .._shared import FilterFactory, with_args
from .._tls import TLSDriver, TLSHandshake, close_notify, no_delay
from ._params import DEFAULT_HIGH_MARK, DEFAULT_LOW_MARK

if TYPE_CHECKING:
    from ._params import ServerTCPParams

__all__ = ["Connection", "default_client_error"]

log = logging.getLogger("kernelish.components.server_tcp")

#: The connection session's own states; the user's may not replace them.
OWN_STATES = frozenset({"_start", "_stop", "_child", "shutdown"})


def is_reserved(name: str) -> bool:
    """Whether ``name`` is a state the connection session needs."""
    return name in OWN_STATES or name.startswith("tcp_server_")


def default_client_error(_: HandlerArgs) -> None:
    """POE's default ClientError: log every error but a plain disconnect."""
    operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
    if operation == "read" and errnum in (0, 104):  # EOF, ECONNRESET
        return
    log.warning(
        "%d: Client session %d got %s error %s (%s)",
        os.getpid(),
        _[SESSION].ID,
        operation,
        errnum,
        errstr if errnum else "(no error)",
    )


class Connection:
    """The states of a ServerTCP's connection sessions (one object per
    server, shared by its connections; per-connection data is in the heap)."""

    def __init__(
        self,
        p: ServerTCPParams,
        in_filter: FilterFactory,
        out_filter: FilterFactory | None,
    ) -> None:
        self.listener_id: int | None = None
        self.client_args = tuple(p.client_args)
        self.unix = p.domain == socket.AF_UNIX
        self.shutdown_on_error = p.client_shutdown_on_error
        self.pre_connect = p.client_pre_connect
        self.connected = p.client_connected
        self.disconnected = p.client_disconnected
        self.client_error: Callable[[HandlerArgs], Any] = p.client_error or default_client_error
        self.flushed = p.client_flushed
        self.ssl_context = p.ssl_context
        self.handshake_timeout = p.handshake_timeout
        self.in_filter = in_filter
        self.out_filter = out_filter
        wheel: dict[str, Any] = {
            "InputEvent": "tcp_server_got_input",
            "ErrorEvent": "tcp_server_got_error",
        }
        if p.client_flushed is not None:
            # Otherwise FlushedEvent is set only when a shutdown or a drain
            # waits for it: every flush event is a dispatch.
            wheel["FlushedEvent"] = "tcp_server_got_flush"
        high, low = p.high_mark, p.low_mark
        if high is None and p.client_backpressure:
            high, low = DEFAULT_HIGH_MARK, DEFAULT_LOW_MARK
        if high is not None:
            wheel["HighMark"], wheel["LowMark"] = high, low
            if p.client_backpressure:
                wheel["Backpressure"] = True
            if p.client_high is not None:
                wheel["HighEvent"], wheel["LowEvent"] = "tcp_server_got_high", "tcp_server_got_low"
        if p.client_idle_timeout is not None:
            wheel["InputTimeout"] = p.client_idle_timeout
        self.wheel_params = wheel
        # Only the states a connection can receive: a session is made per
        # connection, and each state costs its registration.
        # (``tcp_server_ignore`` and ``tcp_server_got_flush`` are added when
        # a shutdown or a drain needs them.)
        states: dict[str, Callable[[HandlerArgs], Any]] = {
            "_start": self.start,
            "_stop": self.stop,
            "shutdown": self.shutdown,
            "tcp_server_got_input": p.client_input or _nothing,
            "tcp_server_got_error": self.got_error,
        }
        if p.client_flushed is not None:
            states["tcp_server_got_flush"] = self.got_flush
        if p.daemon:
            states["tcp_server_drain"] = self.drain
        if p.ssl_context is not None:
            states["tcp_server_tls_up"] = self.tls_up
            states["tcp_server_tls_failed"] = self.tls_failed
        if p.client_high is not None and p.client_low is not None:
            states["tcp_server_got_high"] = p.client_high
            states["tcp_server_got_low"] = p.client_low
        user = p.inline_states or {}
        if "_default" in user:
            states["_child"] = _nothing  # POE's: not for the user's _default
        states.update(user)
        self.states = states
        #: The same states as the kernel stores them (``{event: (handler,
        #: None)}``), registered once for every connection of this server:
        #: each connection's session gets a copy (Session.create_registered)
        #: instead of registering them one by one.  None when the program
        #: gave ObjectStates, PackageStates or a SessionType: Session.create
        #: (the general path) then makes each session.
        self.registered: dict[str, tuple[Callable[..., Any], Any]] | None = None
        if p.session_type is Session and not p.object_states and not p.package_states:
            self.registered = {name: (as_handler(func), None) for name, func in states.items()}

    # -- start ------------------------------------------------------------------

    def start(self, _: HandlerArgs) -> None:
        """``_start``: heap keys, ClientPreConnect, TLS or the ReadWrite."""
        heap, sock, address, port = _[HEAP, ARG0, ARG2, ARG3]
        heap["shutdown"] = False
        heap["shutdown_on_error"] = self.shutdown_on_error
        heap["connected"] = False
        heap["remote_ip"] = "LOCAL" if self.unix else address
        heap["remote_port"] = port
        if self.pre_connect is not None:
            given = self.pre_connect(_)
            if given is None or not callable(getattr(given, "fileno", None)):
                sock.close()  # refused
                return
            if given is not sock and sock.fileno() >= 0 and given.fileno() != sock.fileno():
                sock.close()
            sock = given
        if self.ssl_context is not None:
            no_delay(sock)
            try:
                tls = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
            except (ssl.SSLError, OSError, ValueError) as exc:
                sock.close()
                self._report(_, "handshake", getattr(exc, "errno", 0) or 0, str(exc))
                return
            heap["client"] = TLSHandshake(
                tls, "tcp_server_tls_up", "tcp_server_tls_failed", self.handshake_timeout
            )
            return
        self._connect(_, sock, None)

    def _connect(self, _: HandlerArgs, sock: Any, driver: TLSDriver | None) -> None:
        heap = _[HEAP]
        if self.out_filter is None and driver is None:
            # The common case: no dict made per connection for the wheel.
            heap["client"] = ReadWrite(Handle=sock, Filter=self.in_filter(), **self.wheel_params)
        else:
            params = dict(self.wheel_params)
            if self.out_filter is not None:
                params["InputFilter"], params["OutputFilter"] = self.in_filter(), self.out_filter()
            else:
                params["Filter"] = self.in_filter()
            if driver is not None:
                params["Driver"] = driver
            heap["client"] = ReadWrite(Handle=sock, **params)
        heap["connected"] = True
        if self.connected is not None:
            self.connected(with_args(_, self.client_args))

    def tls_up(self, _: HandlerArgs) -> None:
        """The handshake is done: the ReadWrite over TLS, ClientConnected."""
        heap, tls = _[HEAP], _[ARG0]
        heap.pop("client", None)
        if heap["shutdown"]:
            close_notify(tls)
            tls.close()
            return
        self._connect(_, tls, TLSDriver(tls))

    def tls_failed(self, _: HandlerArgs) -> None:
        """The handshake failed or timed out: ClientError, and the end."""
        _[HEAP].pop("client", None)
        self.client_error(_)

    def _report(self, _: HandlerArgs, operation: str, errnum: int, errstr: str) -> None:
        self.client_error(with_args(_, (operation, errnum, errstr, None)))

    # -- events of the wheel ------------------------------------------------------

    def got_error(self, _: HandlerArgs) -> None:
        """ReadWrite's ErrorEvent: ClientError, then shutdown (by default)."""
        self.client_error(_)
        heap = _[HEAP]
        if heap["shutdown_on_error"]:
            heap["got_an_error"] = True
            _[KERNEL].yield_("shutdown")

    def got_flush(self, _: HandlerArgs) -> None:
        """ReadWrite's FlushedEvent: ClientFlushed; close if shutting down."""
        if self.flushed is not None:
            self.flushed(_)
        heap = _[HEAP]
        if heap["shutdown"]:
            self._disconnect(_)
        elif heap.get("draining"):
            self._close_if_idle(_)

    # -- commands -------------------------------------------------------------------

    def shutdown(self, _: HandlerArgs) -> None:
        """``shutdown``: no more input; close once the output is flushed (at
        once after an error)."""
        heap = _[HEAP]
        heap["shutdown"] = True
        client = heap.get("client")
        if client is None:
            return
        if not isinstance(client, ReadWrite):
            del heap["client"]  # a handshake under way: nothing to flush
            return
        if heap.get("got_an_error") or not client.get_driver_out_octets():
            self._disconnect(_)
        else:
            # No more input; close once the output is flushed.
            kernel = _[KERNEL]
            kernel.state("tcp_server_ignore", _nothing)
            kernel.state("tcp_server_got_flush", self.got_flush)
            client.event(InputEvent="tcp_server_ignore", FlushedEvent="tcp_server_got_flush")

    def drain(self, _: HandlerArgs) -> None:
        """The Daemon stops gracefully: close once what the client already
        sent is answered (``tcp_server_drain``, kernelish)."""
        heap = _[HEAP]
        heap["draining"] = True
        client = heap.get("client")
        if isinstance(client, ReadWrite):
            _[KERNEL].state("tcp_server_got_flush", self.got_flush)
            client.event(FlushedEvent="tcp_server_got_flush")
        self._close_if_idle(_)

    def _close_if_idle(self, _: HandlerArgs) -> None:
        client = _[HEAP].get("client")
        if not isinstance(client, ReadWrite) or client.is_idle():
            self.shutdown(_)

    def _disconnect(self, _: HandlerArgs) -> None:
        heap = _[HEAP]
        if heap.get("connected"):
            heap["connected"] = False
            if self.disconnected is not None:
                self.disconnected(_)
        client = heap.pop("client", None)
        if client is not None and self.ssl_context is not None:
            close_notify(client.get_output_handle())

    # -- errors and the end ---------------------------------------------------------

    def stop(self, _: HandlerArgs) -> None:
        """``_stop``: ClientDisconnected if it is still owed; tell the
        listener (``disconnected``: its connection count)."""
        heap = _[HEAP]
        if heap.get("connected"):
            heap["connected"] = False
            if self.disconnected is not None:
                try:
                    self.disconnected(_)
                except Exception:  # an error in _stop would wait for run()'s end
                    log.exception("%d: ClientDisconnected failed", os.getpid())
        if self.listener_id is not None:
            _[KERNEL].call(self.listener_id, "disconnected")


def _nothing(_: HandlerArgs) -> None:
    """A state that does nothing (POE's ``_child => sub { }``)."""
