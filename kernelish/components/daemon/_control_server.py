"""The daemon's side of the control channel (``<pidfile>.sock``).

Discussion
----------
The protocol -- framing, limits, who may ask -- is :mod:`.control`'s; this
module serves it inside the daemon's parent, as a session of its own with
the kernel's own wheels, so that no client can delay the daemon:

* the listening socket is a :class:`~kernelish.wheels.SocketFactory`
  (``Handle=``): an ``accept`` error backs off instead of ending the
  channel;
* each client's credentials (``SO_PEERCRED``) are checked when it is
  accepted, *before* anything it sent is read.  A refused client gets
  ``{"ok": false, "error": "permission denied"}`` at once and its side of
  the connection is shut; what it sends is read and thrown away unparsed (at
  most :data:`~.control.MAX_REQUEST` octets, for at most a second), only so
  that closing does not reset the connection under the answer;
* an accepted client is a :class:`~kernelish.wheels.ReadWrite` with a
  :class:`~kernelish.filters.Line` filter of ``MaxLength``
  :data:`~.control.MAX_REQUEST` and ``InputTimeout``
  :data:`~.control.REQUEST_TIMEOUT`: one line is read, non-blocking,
  whenever it comes; a client that dribbles a byte at a time costs one read
  per byte and never more than that; the connection is closed
  :data:`~.control.ANSWER_TIMEOUT` seconds after it was accepted in any case
  (a waiting ``peek``: :data:`~.control.PEEK_TIMEOUT`);
* at most :data:`~.control.MAX_CONNECTIONS` at once; more are closed on
  arrival.

The socket is bound with umask 0177 (mode 0600: only its owner, the
daemon's user, and root can connect) after the privileges were dropped, so
it belongs to the daemon's user and root never touches it by path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelish import ARG0, ARG1, ARG3, HEAP, HandlerArgs, Session, current_kernel
from kernelish.filters import Line, Stream
from kernelish.wheels import ReadWrite, SocketFactory

from . import control
from ._process import log
from ._states import state, states_of

__all__ = ["ControlServer"]

#: Seconds, and octets, a refused client's data is drained for.
_REFUSED_DRAIN = 1.0


@dataclass
class _Client:
    """One control connection."""

    wheel: ReadWrite
    state: str  # refused | reading | answering | parked
    alarm: int | None = None
    drained: int = 0


class ControlServer:
    """The control socket of one daemon: bound by :meth:`start`, served by a
    session of its own, closed by :meth:`stop` (and the path removed)."""

    def __init__(self, answer: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
        #: The daemon's answer to a request (None: a ``peek`` that waits).
        self.answer = answer
        self.path: Path | None = None
        self.sock: socket.socket | None = None
        self.inode: tuple[int, int] | None = None
        self.session: Session | None = None
        self.clients: dict[int, _Client] = {}

    # -- life -------------------------------------------------------------------------

    def start(self, path: Path) -> bool:
        """Bind ``path`` and serve it; False (and a warning) if it cannot be."""
        sock = _bind(path)
        if sock is None:
            return False
        self.sock, self.path = sock, path
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            self.inode = (st.st_dev, st.st_ino)
        self.session = Session.create(object_states=[(self, states_of(type(self)))])
        return True

    def stop(self) -> None:
        """Close every connection and the socket; remove the path (ours only)."""
        session, self.session = self.session, None
        if session is not None:
            current_kernel().call(session, "bye")
        self._close_socket()
        path, self.path = self.path, None
        if path is not None:
            _unlink_if(path, self.inode)

    def in_child(self) -> None:
        """A forked child serves nothing and removes nothing."""
        self.path = None
        self.stop()

    def remove_at_exit(self) -> None:
        """What is left of the socket when the process exits (atexit)."""
        path = self.path
        if path is not None:
            _unlink_if(path, self.inode)

    def peeked(self, text: str) -> None:
        """A SIGUSR2 dump was written: send it to the ``peek`` requests waiting."""
        if self.session is not None:
            current_kernel().call(self.session, "dump", text)

    # -- the session ------------------------------------------------------------------

    @state
    def dump(self, _: HandlerArgs) -> None:
        """(As the control session: its alarms are its own.)"""
        text = _[ARG0]
        for wheel_id, client in list(self.clients.items()):
            if client.state == "parked":
                client.state = "answering"
                client.wheel.put(control.dumps({"ok": True, "peek": text}))
                self._set_alarm(wheel_id, control.ANSWER_TIMEOUT)

    @state
    def _start(self, _: HandlerArgs) -> None:
        _[HEAP]["listener"] = SocketFactory(
            Handle=self.sock, SuccessEvent="accepted", FailureEvent="accept_failed"
        )

    @state
    def accepted(self, _: HandlerArgs) -> None:
        conn: socket.socket = _[ARG0]
        if len(self.clients) >= control.MAX_CONNECTIONS:
            conn.close()
            return
        try:
            peer = control.peer_credentials(conn)
        except OSError:
            conn.close()
            return
        if not control.peer_allowed(peer.uid, os.geteuid()):
            self._refuse(conn)
            return
        wheel = ReadWrite(
            Handle=conn,
            Filter=Line(Literal="\n", MaxLength=control.MAX_REQUEST),
            InputEvent="request",
            ErrorEvent="gone",
            FlushedEvent="flushed",
            InputTimeout=control.REQUEST_TIMEOUT,
        )
        self.clients[wheel.ID] = _Client(wheel, "reading")
        self._set_alarm(wheel.ID, control.ANSWER_TIMEOUT)

    def _refuse(self, conn: socket.socket) -> None:
        """Answer a client that may not ask, without reading what it asks."""
        with contextlib.suppress(OSError):
            conn.send(control.encode({"ok": False, "error": "permission denied"}))
            conn.shutdown(socket.SHUT_WR)
        wheel = ReadWrite(
            Handle=conn,
            Filter=Stream(),
            InputEvent="discard",
            ErrorEvent="gone",
            InputTimeout=_REFUSED_DRAIN,
        )
        self.clients[wheel.ID] = _Client(wheel, "refused")

    @state
    def accept_failed(self, _: HandlerArgs) -> None:
        operation, errnum, errstr = _[ARG0 : ARG0 + 3]
        # Transient accept errors back off inside the wheel; it stays.
        log.warning("%d: control socket %s: %s (errno %s)", os.getpid(), operation, errstr, errnum)

    @state
    def request(self, _: HandlerArgs) -> None:
        line, wheel_id = _[ARG0], _[ARG1]
        client = self.clients.get(wheel_id)
        if client is None or client.state != "reading":
            return
        client.wheel.event(InputEvent=None)  # one request per connection
        request = control.decode(line)
        if request is None:
            answer: dict[str, Any] | None = {"ok": False, "error": "bad request"}
        else:
            answer = self.answer(request)
        if answer is None:  # a peek waiting for the next SIGUSR2
            client.state = "parked"
            client.wheel.put(control.dumps({"ok": True, "waiting": "USR2"}))
            self._set_alarm(wheel_id, control.PEEK_TIMEOUT)
            return
        client.state = "answering"
        client.wheel.put(control.dumps(answer))

    @state
    def flushed(self, _: HandlerArgs) -> None:
        client = self.clients.get(_[ARG0])
        if client is not None and client.state == "answering":
            self._drop(_[ARG0])

    @state
    def discard(self, _: HandlerArgs) -> None:
        data, wheel_id = _[ARG0], _[ARG1]
        client = self.clients.get(wheel_id)
        if client is not None:
            client.drained += len(data)
            if client.drained > control.MAX_REQUEST:
                self._drop(wheel_id)

    @state
    def gone(self, _: HandlerArgs) -> None:
        operation, errnum, wheel_id = _[ARG0], _[ARG1], _[ARG3]
        client = self.clients.get(wheel_id)
        if client is None:
            return
        if operation == "read" and errnum == errno.EMSGSIZE and client.state == "reading":
            client.state = "answering"
            client.wheel.put(control.dumps({"ok": False, "error": "request too long"}))
            return
        self._drop(wheel_id)

    @state
    def expire(self, _: HandlerArgs) -> None:
        client = self.clients.get(_[ARG0])
        if client is not None:
            client.alarm = None
            self._drop(_[ARG0])

    @state
    def bye(self, _: HandlerArgs) -> None:
        for wheel_id in list(self.clients):
            self._drop(wheel_id)
        _[HEAP].pop("listener", None)
        self._close_socket()

    # -- helpers ----------------------------------------------------------------------

    def _set_alarm(self, wheel_id: int, seconds: float) -> None:
        client = self.clients[wheel_id]
        kernel = current_kernel()
        if client.alarm is not None:
            kernel.alarm_remove(client.alarm)
        client.alarm = kernel.delay_set("expire", seconds, wheel_id)

    def _drop(self, wheel_id: int) -> None:
        client = self.clients.pop(wheel_id, None)
        if client is not None and client.alarm is not None:
            current_kernel().alarm_remove(client.alarm)

    def _close_socket(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def _unlink_if(path: Path, inode: tuple[int, int] | None) -> None:
    """Remove the socket at ``path`` if it is still the one we bound."""
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (inode is None or (st.st_dev, st.st_ino) == inode):
            os.unlink(path)


def _bind(path: Path) -> socket.socket | None:
    """Bind the control socket, mode 0600; a stale one (the pidfile's lock
    is ours, so nobody else serves it) is replaced."""
    if len(os.fsencode(path)) > control.SOCKET_PATH_MAX:
        log.warning("%d: control socket path too long, no control socket: %s", os.getpid(), path)
        return None
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            log.warning("%d: %s exists and is not a socket; no control socket", os.getpid(), path)
            return None
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # born 0600: never a chmod by path
    try:
        sock.bind(str(path))
        sock.listen(8)
    except OSError as exc:
        sock.close()
        log.warning("%d: cannot bind control socket %s: %s", os.getpid(), path, exc)
        return None
    finally:
        os.umask(old)
    return sock
