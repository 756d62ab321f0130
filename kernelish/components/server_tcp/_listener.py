"""ServerTCP: the listening session, and the constructor that makes it
(POE::Component::Server::TCP->new).

Discussion
----------
POE's ``new`` validates its parameters, builds the connection sessions'
states once, and creates the listening session, whose ``_start`` puts a
SocketFactory (``Reuse => 'yes'``) in ``heap['listener']`` and runs
``Started``; it returns that session's ID.  Each accepted connection
(``tcp_server_got_connection``) counts in ``heap['connections']`` and goes
to the ``Acceptor`` -- by default, one that starts a connection session
(:mod:`._connection`).  ``Concurrency`` pauses accepting while that many
connections are open; a connection session's ``_stop`` calls
``disconnected`` here, which resumes it.  Commands: ``shutdown`` (close the
listener, drop the alias; open connections go on), ``set_concurrency``,
``disconnected``.

Different from POE, on purpose:

* ``Concurrency => 0`` accepts nothing until ``set_concurrency`` (POE's
  own documentation says so; its code accepts one connection first).
* The default ``Error`` callback closes the listener on a setup error
  (``bind``, ``listen``...) as POE's does, but only logs an ``accept``
  error: SocketFactory backs off and goes on accepting (one ``EMFILE``
  must not end the service).
* ``Hostname`` that does not resolve is an error at construction (POE
  silently binds every interface).
* ``Daemon=True`` runs the listener under the Daemon component
  (:mod:`._daemon`).
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import Callable
from typing import Any

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL, SENDER, SESSION, HandlerArgs, Session
from kernelish._params import ParameterError, parse_params
from kernelish.filters import Line
from kernelish.wheels import SocketFactory

from .._shared import SessionID, check_states, filter_factory, session_options
from ._connection import Connection, is_reserved
from ._daemon import DaemonGlue
from ._params import ServerTCPParams

__all__ = ["ServerTCP"]

log = logging.getLogger("kernelish.components.server_tcp")

_OWNER = "ServerTCP"


def default_server_error(_: HandlerArgs) -> None:
    """The default ``Error``: log it; a setup error closes the listener
    (POE's), an ``accept`` error does not (see the module notes)."""
    operation, errnum, errstr = _[ARG0], _[ARG0 + 1], _[ARG0 + 2]
    log.warning(
        "%d: Server %d got %s error %s (%s)", os.getpid(), _[SESSION].ID, operation, errnum, errstr
    )
    if operation != "accept":
        _[HEAP].pop("listener", None)


class Listener:
    """The listening session's states and what it keeps beside its heap:
    whether accepting is held (by the Daemon), and the connection sessions
    it started (for a graceful stop)."""

    def __init__(self, p: ServerTCPParams, connection: Connection | None) -> None:
        self.p = p
        self.connection = connection
        self.bind_address = _bind_address(p)
        #: The program's Acceptor; None: the default one (:meth:`spawn`).
        self.acceptor: Callable[[HandlerArgs], Any] | None = p.acceptor
        self.error: Callable[[HandlerArgs], Any] = p.error or default_server_error
        self.options = session_options(_OWNER, p.session_params)
        self.session_options: dict[str, Any] | None = self.options.get("options")
        self.glue = DaemonGlue(self) if p.daemon else None
        #: The Daemon holds accepting (pre-forking parent, busy child...).
        self.held = False
        self.accepting = True
        self.sessions: set[int] = set()

    def states(self) -> dict[str, Callable[[HandlerArgs], Any]]:
        """The listening session's states (POE's names)."""
        states: dict[str, Callable[[HandlerArgs], Any]] = {
            "_start": self.start,
            "_stop": self.stop,
            "tcp_server_child_died": self.child_died,
            "tcp_server_got_error": self.error,
            "tcp_server_got_connection": self.got_connection,
            "disconnected": self.disconnected,
            "set_concurrency": self.set_concurrency,
            "shutdown": self.shutdown,
        }
        if self.glue is not None:
            states.update(self.glue.states())
        return states

    # -- life -------------------------------------------------------------------

    def start(self, _: HandlerArgs) -> None:
        """``_start``: alias, counters, the SocketFactory, then Started."""
        kernel, heap, p = _[KERNEL], _[HEAP], self.p
        if p.alias is not None:
            heap["alias"] = p.alias
            kernel.alias_set(p.alias)
        heap["concurrency"] = p.concurrency
        heap["connections"] = 0
        if self.connection is not None:
            self.connection.listener_id = _[SESSION].ID
            # A DIE in a connection reaches its parent, this session: one
            # watcher here, not one per connection (12 us each).
            kernel.sig("DIE", "tcp_server_child_died")
        where: dict[str, Any] = {"BindAddress": self.bind_address}
        if p.domain != socket.AF_UNIX:
            where["BindPort"] = p.port
        heap["listener"] = SocketFactory(
            **where,
            SocketDomain=p.domain,
            Reuse="yes",
            SuccessEvent="tcp_server_got_connection",
            FailureEvent="tcp_server_got_error",
            AcceptBatch=p.accept_batch,
        )
        if self.glue is not None:
            self.glue.start(_)
        self.gate(heap)
        if p.started is not None:
            p.started(_)

    def child_died(self, _: HandlerArgs) -> None:
        """The DIE signal: if a callback of one of our connections raised,
        handle it and let that connection close (the rest go on)."""
        info = _[ARG0 + 1]
        if not isinstance(info, dict):
            return
        where = info.get("dest_session")
        if not isinstance(where, Session) or where.ID not in self.sessions:
            return  # the listener's own error, or not a connection of ours
        kernel = _[KERNEL]
        kernel.sig_handled()
        error = info.get("error")
        log.error(
            "%d: Client session %d: %s in %s; closing the connection",
            os.getpid(),
            where.ID,
            info.get("error_str"),
            info.get("event"),
            exc_info=error if isinstance(error, BaseException) else None,
        )
        if isinstance(error, BaseException) and error.__traceback__ is not None:
            # The traceback's frames hold the connection's wheel (and so its
            # socket) for as long as anything keeps the exception -- a log
            # handler that keeps records, say: let go of their locals.
            traceback.clear_frames(error.__traceback__)
        where.heap["got_an_error"] = True
        kernel.call(where, "shutdown")

    def stop(self, _: HandlerArgs) -> None:
        """``_stop``: Stopped."""
        if self.p.stopped is not None:
            self.p.stopped(_)

    # -- accepting --------------------------------------------------------------

    def gate(self, heap: Any) -> None:
        """Accept or not: not while the Daemon holds it, nor with
        ``Concurrency`` connections open, nor (a pre-forked child) with as
        many connections open as requests left."""
        listener = heap.get("listener")
        if listener is None:
            return
        limit = heap["concurrency"]
        want = not self.held and (limit == -1 or heap["connections"] < limit)
        if want and self.glue is not None and self.glue.over_quota(heap):
            want = False
        if want != self.accepting:
            self.accepting = want
            if want:
                listener.resume_accept()
            else:
                listener.pause_accept()

    def got_connection(self, _: HandlerArgs) -> None:
        """SocketFactory's SuccessEvent: count it, then the Acceptor."""
        if self.glue is not None and self.glue.accepted(_):
            return  # a post-forking parent handed it to a child
        heap = _[HEAP]
        heap["connections"] += 1
        self.gate(heap)
        if self.acceptor is not None:
            self.acceptor(_)
        else:  # the default Acceptor: a connection session
            self.spawn(*_[ARG0, ARG1, ARG2])

    def spawn(self, sock: socket.socket, address: Any, port: Any) -> None:
        """Start the session of one connection."""
        connection = self.connection
        assert connection is not None
        registered = connection.registered
        session: Session | None
        if registered is not None:
            # The common case: the server's table of states, copied.
            session = Session.create_registered(
                registered.copy(),
                {},
                (sock, connection.client_args, address, port),
                self.session_options,
            )
        else:
            p = self.p
            session = p.session_type.create(
                inline_states=connection.states,
                object_states=p.object_states,
                package_states=p.package_states,
                args=[sock, connection.client_args, address, port],
                **self.options,
            )
        if session is not None and session.alive:
            self.sessions.add(session.ID)

    # -- commands ---------------------------------------------------------------

    def disconnected(self, _: HandlerArgs) -> None:
        """``disconnected``: a connection ended (its session's ``_stop``, or
        the program's own with a custom Acceptor)."""
        heap = _[HEAP]
        sender = _[SENDER]
        if isinstance(sender, Session):
            self.sessions.discard(sender.ID)
        heap["connections"] -= 1
        if heap["connections"] < 0:
            log.warning("%d: Excessive 'disconnected' event", os.getpid())
            heap["connections"] = 0
        if self.glue is not None:
            self.glue.done()
        self.gate(heap)

    def set_concurrency(self, _: HandlerArgs) -> None:
        """``set_concurrency``: the new limit (-1: none)."""
        heap = _[HEAP]
        heap["concurrency"] = int(_[ARG0])
        self.gate(heap)

    def shutdown(self, _: HandlerArgs) -> None:
        """``shutdown``: stop listening, drop the alias; connections go on."""
        heap = _[HEAP]
        self.drop(heap)
        if "alias" in heap:
            _[KERNEL].alias_remove(heap["alias"])

    def drop(self, heap: Any) -> None:
        """Close the listening socket."""
        heap.pop("listener", None)

    def drain(self, _: HandlerArgs) -> None:
        """Close every connection once it is answered (the Daemon stops)."""
        kernel = _[KERNEL]
        for session_id in sorted(self.sessions):
            kernel.call(session_id, "tcp_server_drain")


def _bind_address(p: ServerTCPParams) -> str:
    """Address, else Hostname resolved now (once), else every interface."""
    if p.address is not None:
        return p.address
    if p.hostname is not None:
        try:
            infos = socket.getaddrinfo(p.hostname, None, p.domain, socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ParameterError(
                f"{_OWNER}: Hostname {p.hostname!r} does not resolve ({exc})",
                owner=_OWNER,
                params=("Hostname",),
            ) from None
        return str(infos[0][4][0])
    return "::" if p.domain == socket.AF_INET6 else "0.0.0.0"


class ServerTCP(SessionID):
    """A TCP server in a few lines (port of POE::Component::Server::TCP).

    ``ServerTCP(Port=12345, ClientInput=lambda _: _[HEAP]['client'].put(_[ARG0]))``
    starts a listening session (its ``Started`` runs before this returns)
    and, for each connection, a session whose ``heap['client']`` is its
    ReadWrite.  The value is the listening session's ID, as POE's ``new``
    returns it (an ``int``: ``kernel.post(server, 'shutdown')``), with
    :attr:`address` and :attr:`port` for code written fresh in Python.

    Every parameter of POE's, in CamelCase or snake_case, and kernelish's
    own: ``ClientIdleTimeout``, ``ClientBackpressure`` (on by default),
    ``SSLContext`` / ``HandshakeTimeout``, ``Daemon``, ``AcceptBatch``
    (see ``docs/toolbox/server_tcp.md``).
    """

    #: The listening address once started (None if the bind failed).
    address: Any

    def __new__(cls, **params: Any) -> ServerTCP:
        p = parse_params(ServerTCPParams, _OWNER, params)
        check_states(_OWNER, is_reserved, params)
        connection = None
        if p.client_input is not None:
            if p.client_input_filter is not None:
                in_filter = filter_factory(_OWNER, "ClientInputFilter", p.client_input_filter)
                out_filter = filter_factory(_OWNER, "ClientOutputFilter", p.client_output_filter)
                assert in_filter is not None
            else:
                in_filter = filter_factory(_OWNER, "ClientFilter", p.client_filter)
                out_filter = None
            connection = Connection(p, in_filter or Line, out_filter)
        listener = Listener(p, connection)
        session = p.session_type.create(
            inline_states=listener.states(), args=list(p.listener_args), **listener.options
        )
        if session is None:  # pragma: no cover - Session.create refused
            raise RuntimeError("ServerTCP: the listening session was not created")
        self = super().__new__(cls, session.ID)
        factory = session.heap.get("listener") if session.alive else None
        self.address = factory.getsockname() if factory is not None else None
        return self

    @property
    def port(self) -> int | None:
        """The listening port (``Port=0``: the one the system chose); None
        for a UNIX socket or a failed bind."""
        address = self.address
        if isinstance(address, tuple):
            return int(address[1])
        return None
