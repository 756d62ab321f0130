"""SocketFactory: listening and connecting sockets (POE::Wheel::SocketFactory).

Discussion
----------
POE-SEMANTICS 7.1 is the spec.  The setup runs in POE's order -- socket,
non-blocking, SO_REUSEADDR, bind, then listen or connect -- and every failure
there is *posted* to the session with ``yield`` (operation, errno, error text,
wheel ID): the constructor still returns the wheel, and the FailureEvent
arrives later, as POE's does.

Differences from POE, all deliberate:

* SuccessEvent's ARG1 is the peer address as a string (``'127.0.0.1'``,
  ``'::1'``); POE gives a packed address (``inet_ntoa`` it there).  For UNIX
  sockets ARG1 is the peer's path or None, ARG2 None.
* A listener accepts up to ``AcceptBatch`` (default 16) connections per
  readiness, where POE accepts one; each gets its own SuccessEvent, and the
  batch stops at once if a handler pauses or drops the wheel.
  ``AcceptBatch=1`` is POE's behaviour.  Accepted sockets are non-blocking
  and close-on-exec.
* ``getsockname()`` returns Python's address tuple (or path), not a packed
  sockaddr; None when the wheel has no socket.
* ``Handle=`` adopts an already-listening socket (a ``socket.socket`` or a raw
  fd number, e.g. one inherited from a parent process or systemd).
* Socket activation: when systemd passed listening sockets (``LISTEN_FDS``
  naming this process), a factory that would bind and listen adopts the next
  one instead -- or the one named ``ListenFdName`` (``LISTEN_FDNAMES``).
  ``SocketActivation=False`` opts out.  See :mod:`kernelish._activation`.
* An IPv6 literal in BindAddress/RemoteAddress selects AF_INET6 when
  SocketDomain is not given (POE needs ``SocketDomain => AF_INET6``).

Accept errors never kill a listener
-----------------------------------
POE reports every failed ``accept()`` as a FailureEvent, and the idiom of
its examples (``delete $heap->{server}``) then closes the listener for good:
one ``EMFILE`` under a low ``ulimit -n`` and the service is gone while its
process lives on.  Here, as in nginx and gunicorn:

* errors about one connection that died before it was accepted
  (``ECONNABORTED``, ``EPROTO``, ``EPERM`` from a firewall, and the network
  errors accept(2) says to treat like ``EAGAIN``: ``ENETDOWN``,
  ``ENOPROTOOPT``, ``EHOSTDOWN``, ``ENONET``, ``EHOSTUNREACH``,
  ``EOPNOTSUPP``, ``ENETUNREACH``) are skipped: the batch goes on with the
  next connection;
* running out of a resource (``EMFILE``, ``ENFILE``, ``ENOBUFS``,
  ``ENOMEM``) *backs off*: the listener stops accepting for
  :data:`BACKOFF_FIRST` seconds (0.1), doubling up to :data:`BACKOFF_MAX`
  (1 s) while the error lasts -- the pending connection stays in the
  backlog, so accepting at once again would only spin -- and resumes by
  itself.  The first error of such a burst is logged (logger
  ``kernelish.wheels``) and reported once as POE's
  ``FailureEvent('accept', errnum, errstr, wheel_id)``; the burst ends with
  the next accept that succeeds or finds the backlog empty.  A listener the program paused meanwhile
  (``pause_accept``) stays paused;
* anything else (``EBADF``, ``EINVAL``: a program error) is reported as
  POE does, on every readiness.

A FailureEvent for ``'accept'`` therefore never means "the listener is
dead": a handler should log it and keep the wheel.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
from typing import TYPE_CHECKING, Any

from .._activation import take_inherited_socket
from .._params import Check, LazyParams, exact, positive_int
from ._accept import BACKOFF_FIRST, BACKOFF_MAX, AcceptingWheel
from ._base import MODE_READ, MODE_WRITE

if TYPE_CHECKING:
    from ._socketfactory_params import SocketFactoryParams

__all__ = [
    "BACKOFF_FIRST",
    "BACKOFF_MAX",
    "DEFAULT_ACCEPT_BATCH",
    "SocketFactory",
    "reuse_enabled",
]

#: Connections accepted at most per readiness of the listener (``AcceptBatch``).
DEFAULT_ACCEPT_BATCH = 16


def _an_int(value: Any) -> bool:
    """An int, an IntEnum (``socket.AF_UNIX``) included, but not a bool."""
    return isinstance(value, int) and value.__class__ is not bool


def _handle(value: Any) -> bool:
    return value is None or value.__class__ is int or isinstance(value, socket.socket)


def _maybe(check: Check) -> Check:
    return lambda value: value is None or check(value)


#: SocketFactory's parameters (the model: :mod:`._socketfactory_params`); the
#: common shape is every parameter with a plain value, so a server's listener
#: never imports pydantic.
_PARAMS = LazyParams(
    "SocketFactory",
    "kernelish.wheels._socketfactory_params:SocketFactoryParams",
    {
        "socket_domain": None,
        "socket_type": None,
        "socket_protocol": "tcp",
        "bind_address": None,
        "bind_port": None,
        "remote_address": None,
        "remote_port": None,
        "listen_queue": socket.SOMAXCONN,
        "reuse": None,
        "handle": None,
        "accept_batch": DEFAULT_ACCEPT_BATCH,
        "listen_fd_name": None,
        "socket_activation": True,
    },
    {
        "success_event": exact(str),
        "failure_event": exact(str),
        "socket_domain": _maybe(_an_int),
        "socket_type": _maybe(_an_int),
        "socket_protocol": exact(str, int),
        "bind_address": exact(str, None),
        "bind_port": exact(int, str, None),
        "remote_address": exact(str, None),
        "remote_port": exact(int, str, None),
        "listen_queue": positive_int,
        "reuse": exact(str, int, bool, None),
        "handle": _handle,
        "accept_batch": positive_int,
        "listen_fd_name": exact(str, None),
        "socket_activation": exact(bool),
    },
    required=("success_event", "failure_event"),
)


def reuse_enabled(value: Any) -> bool:
    """POE's Reuse rule: ``'yes'``/``'on'`` (any case), or a true value
    containing a digit (``1``, ``'1'``); Python's ``True`` too."""
    if value is True:
        return True
    if value is None or value is False:
        return False
    text = str(value)
    perl_true = text not in ("", "0") and bool(value)  # Perl: '' and '0' are false
    return text.lower() in ("yes", "on") or (perl_true and any(c.isdigit() for c in text))


class _Failed(Exception):
    def __init__(self, operation: str, errnum: int, errstr: str) -> None:
        super().__init__(operation, errnum, errstr)
        self.operation = operation
        self.errnum = errnum
        self.errstr = errstr


def _failed(operation: str, exc: OSError) -> _Failed:
    errnum = exc.errno or 0
    return _Failed(operation, errnum, exc.strerror or os.strerror(errnum) if errnum else str(exc))


class SocketFactory(AcceptingWheel):
    """Create a listening or connecting socket and report its connections
    (port of POE::Wheel::SocketFactory).

    Listening (no RemoteAddress): ``SuccessEvent(socket, peer_address,
    peer_port, wheel_id)`` for each accepted connection.  Connecting
    (RemoteAddress/RemotePort): one SuccessEvent with the connected socket.
    ``FailureEvent(operation, errnum, errstr, wheel_id)`` for errors; setup
    errors such as ``('bind', EADDRINUSE, ...)`` arrive after the
    constructor has returned.
    """

    __slots__ = ("_connecting", "_domain", "_success_event")

    def __init__(self, **params: Any) -> None:
        p: SocketFactoryParams = _PARAMS.parse(params)
        super().__init__(p.failure_event, p.accept_batch)
        self._success_event: str | None = p.success_event
        self._connecting = False
        self._domain: int = socket.AF_INET
        try:
            inherited = self._activated_socket(p) if p.handle is None else None
            if p.handle is not None:
                self._adopt(p.handle)
            elif inherited is not None:
                self._adopt(inherited)
            else:
                self._setup(p)
        except _Failed as failure:
            self._close()
            self._kernel.yield_(
                p.failure_event, failure.operation, failure.errnum, failure.errstr, self._id
            )

    # -- setup ----------------------------------------------------------------

    @staticmethod
    def _activated_socket(p: SocketFactoryParams) -> socket.socket | None:
        """A listener systemd passed us (``LISTEN_FDS``), for a factory that
        would otherwise bind and listen; by ``ListenFdName`` or in order."""
        if not p.socket_activation or p.remote_address is not None:
            return None
        if p.socket_type == socket.SOCK_DGRAM or p.socket_protocol == "udp":
            return None
        return take_inherited_socket(p.listen_fd_name)

    def _adopt(self, handle: socket.socket | int) -> None:
        sock = socket.socket(fileno=handle) if isinstance(handle, int) else handle
        try:
            sock.setblocking(False)
            sock.set_inheritable(False)
        except OSError as exc:
            raise _failed("socket", exc) from None
        self._socket = sock
        self.hold(sock)
        self._domain = sock.family
        self._start_listening()

    def _setup(self, p: SocketFactoryParams) -> None:
        domain: int | None = p.socket_domain
        if domain is None:
            domain = socket.AF_INET
            for address in (p.bind_address, p.remote_address):
                if address is not None and ":" in address:
                    domain = socket.AF_INET6
        self._domain = domain
        proto_name = p.socket_protocol
        if isinstance(proto_name, str):
            try:
                proto = _protocol_number(proto_name) if domain != socket.AF_UNIX else 0
            except OSError:
                raise _Failed("getprotobyname", 0, f"unknown protocol {proto_name!r}") from None
        else:
            proto = proto_name
        sock_type = p.socket_type
        if sock_type is None:
            udp = proto_name == "udp" or proto == socket.IPPROTO_UDP
            sock_type = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
        try:
            sock = socket.socket(domain, sock_type | socket.SOCK_CLOEXEC, proto)
        except OSError as exc:
            raise _failed("socket", exc) from None
        self._socket = sock
        self.hold(sock)
        sock.setblocking(False)
        if reuse_enabled(p.reuse):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            except OSError as exc:
                raise _failed("setsockopt", exc) from None
        if domain == socket.AF_UNIX:
            if p.bind_address is not None:
                self._bind(p.bind_address)
        elif p.bind_address is not None or p.bind_port is not None:
            self._bind(self._inet_address(p.bind_address, p.bind_port, passive=True))
        if p.remote_address is not None:
            self._connect(p)
        elif sock_type == socket.SOCK_DGRAM:
            self._kernel.yield_(p.success_event, sock, None, None, self._id)
        else:
            try:
                sock.listen(p.listen_queue)
            except OSError as exc:
                raise _failed("listen", exc) from None
            self._start_listening()

    def _port(self, port: int | str | None) -> int:
        if port is None:
            return 0
        if isinstance(port, int):
            return port
        if port.isdigit():
            return int(port)
        try:
            return socket.getservbyname(port, "tcp")
        except OSError:
            raise _Failed("getservbyname", 0, f"unknown service {port!r}") from None

    def _inet_address(
        self, host: str | None, port: int | str | None, *, passive: bool
    ) -> tuple[Any, ...]:
        number = self._port(port)
        if host is None or host == "":
            return ("::" if self._domain == socket.AF_INET6 else "0.0.0.0", number)
        if self._domain == socket.AF_INET and _is_ipv4(host):
            return (host, number)  # a numeric address: no resolver call
        try:
            infos = socket.getaddrinfo(
                host,
                number,
                self._domain,
                socket.SOCK_STREAM,
                0,
                socket.AI_PASSIVE if passive else 0,
            )
        except socket.gaierror as exc:
            raise _Failed("getaddrinfo", exc.errno or 0, exc.strerror or str(exc)) from None
        return tuple(infos[0][4])

    def _bind(self, address: Any) -> None:
        assert self._socket is not None
        try:
            self._socket.bind(address)
        except OSError as exc:
            raise _failed("bind", exc) from None

    def _connect(self, p: SocketFactoryParams) -> None:
        sock = self._socket
        assert sock is not None
        assert p.remote_address is not None
        if self._domain == socket.AF_UNIX:
            address: Any = p.remote_address
        else:
            if p.remote_port is None:
                raise _Failed("connect", errno.EINVAL, "RemotePort is required")
            address = self._inet_address(p.remote_address, p.remote_port, passive=False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            raise _Failed("connect", code, os.strerror(code))
        self._connecting = True
        self.watch(sock, MODE_WRITE, SocketFactory._on_connect)

    # -- readiness ------------------------------------------------------------

    def _accepted(self, conn: socket.socket, peer: Any) -> None:
        if isinstance(peer, tuple):
            address, port = peer[0], peer[1]
        else:
            address, port = (peer or None), None
        self.emit(self._success_event, conn, address, port, self._id)

    def _on_connect(self) -> None:
        sock = self._socket
        if sock is None or not self._connecting:
            return
        self._connecting = False
        self.unwatch(sock, MODE_WRITE)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.emit(self._failure_event, "connect", code, os.strerror(code), self._id)
            return
        try:
            peer = sock.getpeername()
        except OSError as exc:
            self.emit(
                self._failure_event, "getpeername", exc.errno, exc.strerror or str(exc), self._id
            )
            return
        # The connected socket now belongs to the session, not the wheel.
        self._socket = None
        self.disown(sock)
        if isinstance(peer, tuple):
            address, port = peer[0], peer[1]
        else:
            address, port = (peer or None), None
        self.emit(self._success_event, sock, address, port, self._id)

    # -- public methods -------------------------------------------------------

    def event(self, **events: str | None) -> None:
        """Rename events: ``event(SuccessEvent='x', FailureEvent='y')``
        (snake_case accepted) -- POE's ``event``."""
        for name, value in events.items():
            if name in ("SuccessEvent", "success_event"):
                self._success_event = value
            elif name in ("FailureEvent", "failure_event"):
                self._failure_event = value
            else:
                raise TypeError(f"SocketFactory.event: unknown event parameter {name!r}")

    # -- lifetime ---------------------------------------------------------------

    def _close(self) -> None:
        sock = self._socket
        self._socket = None
        self._listening = self._connecting = False
        if sock is not None:
            if self.watching(sock, MODE_READ):
                self.unwatch(sock, MODE_READ)
            if self.watching(sock, MODE_WRITE):
                self.unwatch(sock, MODE_WRITE)
            self.disown(sock)
            sock.close()


@functools.cache
def _protocol_number(name: str) -> int:
    """``getprotobyname``, once per name (it reads /etc/protocols each time)."""
    return socket.getprotobyname(name)


def _is_ipv4(host: str) -> bool:
    """Whether ``host`` is a dotted-quad IPv4 address (what getaddrinfo
    would return unchanged)."""
    try:
        socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return False
    return True
