"""``ServerTCP(Daemon=True)``: the listening session's side of running
under :class:`~kernelish.components.daemon.DaemonComponent`.

Discussion
----------
The seed's eg/preforking and eg/forking show the glue a listener needs
under the Daemon (``examples/preforking.py`` and ``examples/forking.py``
port it, some forty lines each).  With ``Daemon=True`` the listener does it
itself:

* **pre-forking**: the listener stays paused in the parent.  A child
  says ``update_status('wait')`` on ``daemon_child``, accepts on
  ``daemon_accept``, and on a connection pauses again, says
  ``update_status('req')`` and starts the connection's session; when that
  session ends, ``update_status('done')`` -- the Daemon then lets the child
  accept again (``daemon_accept``) or retires it after ``requests``.
* **post-forking**: the parent accepts (paused on ``daemon_pause``,
  resumed on ``daemon_accept``) and hands each connection over with
  ``update_status('req', info)``; the Daemon forks at once, and the child,
  on ``daemon_child`` with that ``info``, drops the listener and starts the
  connection's session there; ``update_status('done')`` when it ends makes
  the child exit.  The parent keeps no count of connections (they are the
  children's; ``max_children`` bounds them).
* **both**: on ``daemon_shutdown`` the listener closes and every
  connection is closed once what its client already sent is answered
  (:meth:`ReadWrite.is_idle`); the Daemon's ``shutdown_timeout`` bounds
  that.

``DaemonRequests='program'`` (kernelish) hands the requests to the program:
a pre-forked child keeps accepting up to ``Concurrency`` connections at
once and the glue reports none of them; the program says
``update_status('req')`` / ``('done')`` around each of its requests and
drains its own connections on ``daemon_shutdown`` (the listener still
closes), and it accepts no more connections than it has requests left
(``Daemon.requests_left()``; the program asks the listener to look again,
``tcp_server_daemon_gate``, when a request starts).  That is the shape of
a protocol with many requests per connection (HTTP keep-alive:
``ServerHTTP``), where a connection is not a request and "idle" is the
program's to judge.  Post-forking is the same in
both: a child per connection, whose end is the child's end.

Which mode the Daemon runs is asked of it (:func:`pool_mode`) when the
listener starts, or on ``daemon_start`` if the Daemon is spawned after the
server; until then the listener does not accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kernelish import ARG0, ARG1, ARG2, ARG3, HEAP, KERNEL, SESSION, HandlerArgs
from kernelish.components.daemon import Daemon, pool_mode

if TYPE_CHECKING:
    from ._listener import Listener

__all__ = ["SIGNALS", "DaemonGlue"]

#: The Daemon's signals, and the listener's states that watch them.
SIGNALS = {
    "daemon_start": "tcp_server_daemon_start",
    "daemon_child": "tcp_server_daemon_child",
    "daemon_accept": "tcp_server_daemon_accept",
    "daemon_pause": "tcp_server_daemon_pause",
    "daemon_shutdown": "tcp_server_daemon_shutdown",
}


class DaemonGlue:
    """The Daemon's side of one listener (see the module notes)."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.mode: str | None = None
        #: A child the Daemon forked (each serves one connection at a time).
        self.child = False
        #: The program reports requests and drains (DaemonRequests='program').
        self.program = listener.p.daemon_requests == "program"

    def states(self) -> dict[str, Any]:
        """The listener's states for the Daemon's signals."""
        return {
            "tcp_server_daemon_start": self.daemon_start,
            "tcp_server_daemon_child": self.daemon_child,
            "tcp_server_daemon_accept": self.daemon_accept,
            "tcp_server_daemon_pause": self.daemon_pause,
            "tcp_server_daemon_shutdown": self.daemon_shutdown,
            "tcp_server_daemon_gate": self.daemon_gate,
        }

    def start(self, _: HandlerArgs) -> None:
        """In the listener's ``_start``: watch the signals; closed until
        the Daemon's mode is known."""
        kernel = _[KERNEL]
        for name, state in SIGNALS.items():
            kernel.sig(name, state)
        self.listener.held = True
        mode = pool_mode()
        if mode is not None:
            self._decide(_, mode)

    def _decide(self, _: HandlerArgs, mode: str) -> None:
        self.mode = mode
        # Pre-forking: the parent never accepts.  Otherwise the parent does.
        self.listener.held = mode == "prefork"
        self.listener.gate(_[HEAP])

    def daemon_start(self, _: HandlerArgs) -> None:
        """``daemon_start``: the Daemon runs; now its mode is known."""
        mode = pool_mode()
        if mode is not None and self.mode is None:
            self._decide(_, mode)

    def daemon_child(self, _: HandlerArgs) -> None:
        """``daemon_child``: we are a child now.  Pre-forking: ready to
        wait.  Post-forking: serve the connection ``info`` (ARG1) names."""
        heap, info = _[HEAP], _[ARG1]
        self.child = True
        if isinstance(info, dict) and "tcp_server" in info:
            # This process serves one connection: no listener here.
            self.listener.drop(heap)
            if info["tcp_server"] == _[SESSION].ID:
                heap["connections"] += 1
                self.listener.spawn(info["handle"], info["peer"], info["port"])
            return
        if self.mode == "prefork" and info is None:
            Daemon.update_status("wait")

    def daemon_accept(self, _: HandlerArgs) -> None:
        """``daemon_accept``: accept again."""
        self.listener.held = False
        self.listener.gate(_[HEAP])

    def daemon_pause(self, _: HandlerArgs) -> None:
        """``daemon_pause`` (post-forking): every child is busy."""
        self.listener.held = True
        self.listener.gate(_[HEAP])

    def daemon_gate(self, _: HandlerArgs) -> None:
        """``tcp_server_daemon_gate`` (from the program, kernelish): its
        requests left changed; accept or not again (:meth:`over_quota`)."""
        self.listener.gate(_[HEAP])

    def over_quota(self, heap: Any) -> bool:
        """Whether a pre-forked child of ``DaemonRequests='program'`` has as
        many connections open as requests left before it leaves: it accepts
        no more, so no connection waits on a child that is about to go while
        the pool's next one could serve it."""
        if not (self.program and self.child and self.mode == "prefork"):
            return False
        left = Daemon.requests_left()
        return left is not None and heap["connections"] >= left

    def daemon_shutdown(self, _: HandlerArgs) -> None:
        """``daemon_shutdown``: stop listening; drain the connections
        (unless the program drains its own)."""
        self.listener.drop(_[HEAP])
        if not self.program:
            self.listener.drain(_)

    def accepted(self, _: HandlerArgs) -> bool:
        """A connection was accepted: True if the Daemon took it (a
        post-forking parent hands it to a new child)."""
        if self.mode == "fork" and not self.child:
            info = {
                "handle": _[ARG0],
                "peer": _[ARG1],
                "port": _[ARG2],
                "id": _[ARG3],
                "tcp_server": _[SESSION].ID,
            }
            Daemon.update_status("req", info)
            return True
        if self.mode == "prefork" and self.child and not self.program:
            self.listener.held = True  # one connection at a time
            self.listener.gate(_[HEAP])
            Daemon.update_status("req")
        return False

    def done(self) -> None:
        """A connection ended: tell the Daemon (in a child)."""
        if self.child and (self.mode == "fork" or (self.mode == "prefork" and not self.program)):
            Daemon.update_status("done")
