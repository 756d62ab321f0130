"""What a daemon owes the world outside POE: systemd notifications, the
pidfile, and the control socket the ``kernelish status|peek|stop`` command
talks to.

Discussion
----------
:class:`DaemonServices` is the one object the component calls at a few points
of its life; each call does nothing when the feature is off:

* ``before_detach`` (spawn, in the launcher): read and consume
  ``NOTIFY_SOCKET``/``WATCHDOG_*``; refuse at once if a live daemon holds the
  pidfile; under systemd with ``detach``, leave the launcher waiting for
  readiness (:class:`~._systemd.LaunchWait`);
* ``after_detach`` (spawn, in the daemon): write and lock the pidfile;
* ``started`` (``_start``): bind the control socket, start the watchdog;
* ``ready`` (first ``waste_time``: the pool is up): ``READY=1`` + ``MAINPID``;
* ``status_changed`` (``check_scoreboard``): ``STATUS=`` when the text changed;
* ``reloading``/``reloaded`` (HUP), ``peeked`` (USR2: answers waiting
  ``peek`` requests), ``stopping`` (``shutdown``), ``stopped`` (``_stop``:
  the pidfile goes);
* ``in_child`` (``become_child``): a child drops all of it -- it never
  notifies systemd, holds no pidfile lock, answers no control request.

The control channel
-------------------
A UNIX stream socket beside the pidfile, ``<pidfile>.sock``, bound with umask
077 (mode 0600: only the daemon's owner, and root, can connect), and each
peer's credentials are checked (``SO_PEERCRED``: its uid must be the daemon's
or 0).  One JSON request per connection, one JSON line back:

* ``{"cmd": "status"}`` -> ``{"ok": true, "pid", "mode", "children": {pid: slot},
  "slots": [{"index", "status", "pid", "requests", "changed"}...],
  "scoreboard", "status"}``;
* ``{"cmd": "peek"}`` -> ``{"ok": true, "peek": text}`` (a dump made now);
* ``{"cmd": "peek", "wait": true}`` -> ``{"ok": true, "waiting": "USR2"}``
  at once, then ``{"ok": true, "peek": text}`` with the dump the *next* SIGUSR2
  writes to the logfile -- so ``kernelish peek`` prints the very dump its signal
  produced.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernelish import KERNEL, HandlerArgs, Session, poe_kernel

from ._pidfile import Pidfile
from ._process import log
from ._systemd import LaunchWait, Notifier

if TYPE_CHECKING:
    from ._component import DaemonComponent

__all__ = ["DaemonServices", "control_socket_path", "summary"]

#: Longest request line a control client may send.
_MAX_REQUEST = 4096
#: Most ``peek`` requests waiting for a USR2 at once.
_MAX_PARKED = 8


def control_socket_path(pidfile: Path) -> Path:
    """Where the control socket of the daemon with ``pidfile`` lives."""
    return pidfile.with_name(pidfile.name + ".sock")


def summary(component: DaemonComponent) -> str:
    """One line for systemd's ``STATUS=``: the pool as the scoreboard sees it."""
    if component.children is None or component.scoreboard is None:
        text = "Daemon server running"
    else:
        slots = component.scoreboard.read_all()
        states = [slots[slot] for slot in component.children.values()]
        idle = sum(s in "wfF" for s in states)
        busy = sum(s in "rl" for s in states)
        mode = "Pre-forking" if component.is_prefork() else "Forking"
        text = f"{mode} server: {len(states)} children, {idle} idle, {busy} busy"
    return text + (", shutting down" if component.die else "")


class DaemonServices:
    """systemd notifications, pidfile and control socket of one component."""

    def __init__(self, component: DaemonComponent) -> None:
        self.component = component
        self.notifier: Notifier | None = None
        self.launch: LaunchWait | None = None
        self.pidfile: Pidfile | None = None
        self.session: Session | None = None
        self.listener: socket.socket | None = None
        self.socket_path: Path | None = None
        self.parked: list[socket.socket] = []
        self.is_ready = False

    # -- spawn ------------------------------------------------------------------

    def before_detach(self) -> None:
        cfg = self.component.config
        self.notifier = Notifier.from_environ(cfg.notify)
        if cfg.pidfile is not None:
            self.pidfile = Pidfile(cfg.pidfile)
            self.pidfile.check()
        if self.notifier is not None and cfg.detach:
            self.launch = LaunchWait()
            self.launch.fork()

    def after_detach(self) -> None:
        if self.pidfile is not None:
            self.pidfile.acquire()

    # -- the parent's life ------------------------------------------------------------

    def started(self) -> None:
        """In ``_start``: control socket and watchdog, in a session of their own."""
        if self.pidfile is not None:
            self.listener = self._bind(control_socket_path(self.pidfile.path))
        interval = self.notifier.watchdog_interval if self.notifier is not None else None
        if self.listener is None and interval is None:
            return
        self.session = Session.create(
            inline_states={
                "_start": self._session_start,
                "control": self._control,
                "watchdog": self._watchdog,
                "bye": self._bye,
            },
            args=[interval],
        )

    def ready(self) -> None:
        """The pool is up: ``READY=1`` with ``MAINPID``; the launcher may go."""
        if self.component.is_child or self.is_ready:
            return
        self.is_ready = True
        if self.notifier is not None:
            self.notifier.ready(summary(self.component))
        if self.launch is not None:
            self.launch.release(True)
            self.launch = None

    def status_changed(self) -> None:
        if self.notifier is not None and self.is_ready and not self.component.is_child:
            self.notifier.status(summary(self.component))

    def reloading(self) -> None:
        if self.notifier is not None and not self.component.is_child:
            self.notifier.reloading()

    def reloaded(self) -> None:
        if self.notifier is not None and not self.component.is_child:
            self.notifier.notify("READY=1")

    def peeked(self, text: str) -> None:
        """A USR2 dump was written: send it to the ``peek`` requests waiting."""
        parked, self.parked = self.parked, []
        for conn in parked:
            _reply(conn, {"ok": True, "peek": text})

    def stopping(self) -> None:
        """``shutdown``: ``STOPPING=1``; the control socket and watchdog go."""
        if self.component.is_child:
            return
        if self.notifier is not None:
            self.notifier.status(summary(self.component))
            self.notifier.stopping()
        if self.launch is not None:  # stopped before it was ever ready
            self.launch.release(False)
            self.launch = None
        self._end_session()

    def stopped(self) -> None:
        """``_stop``: the pidfile goes (only in the process that wrote it)."""
        if self.pidfile is not None:
            self.pidfile.remove()
        self._end_session()
        if self.notifier is not None:
            self.notifier.close()

    def in_child(self) -> None:
        """A forked child keeps none of it."""
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None
        if self.launch is not None:
            self.launch.release(False)
            self.launch = None
        if self.pidfile is not None:
            self.pidfile.close_in_child()
            self.pidfile = None
        self.socket_path = None  # the parent's to remove, not ours
        for conn in self.parked:
            conn.close()
        self.parked = []
        self._end_session()

    # -- the control session --------------------------------------------------------

    def _end_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            poe_kernel.call(session, "bye")
        elif self.listener is not None:
            self._close_listener()

    def _session_start(self, _: HandlerArgs) -> None:
        kernel, interval = _[KERNEL], _.args[0]
        if self.listener is not None:
            kernel.select_read(self.listener, "control")
        if interval is not None:
            kernel.delay("watchdog", interval, interval)

    def _watchdog(self, _: HandlerArgs) -> None:
        kernel, interval = _[KERNEL], _.args[0]
        if self.notifier is not None and not self.notifier.closed:
            self.notifier.watchdog()
            kernel.delay("watchdog", interval, interval)

    def _bye(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        kernel.delay("watchdog")
        if self.listener is not None:
            kernel.select_read(self.listener)
        self._close_listener()
        for conn in self.parked:
            conn.close()
        self.parked = []

    def _close_listener(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        path, self.socket_path = self.socket_path, None
        if path is not None:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)

    def _bind(self, path: Path) -> socket.socket | None:
        """Bind the control socket, mode 0600; a stale one (the pidfile's lock
        is ours, so nobody else serves it) is replaced."""
        if len(os.fsencode(path)) >= 108:
            log.warning(
                "%d: control socket path too long, no control socket: %s", os.getpid(), path
            )
            return None
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                log.warning(
                    "%d: %s exists and is not a socket; no control socket", os.getpid(), path
                )
                return None
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o077)
        try:
            sock.bind(str(path))  # born 0700: the umask
            os.chmod(path, 0o600)
        except OSError as exc:
            sock.close()
            log.warning("%d: cannot bind control socket %s: %s", os.getpid(), path, exc)
            return None
        finally:
            os.umask(old)
        sock.listen(8)
        sock.setblocking(False)
        self.socket_path = path
        return sock

    def _control(self, _: HandlerArgs) -> None:
        """One connection: check the peer, read one JSON request, answer."""
        assert self.listener is not None
        try:
            conn, _addr = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("%d: control socket accept: %s", os.getpid(), exc)
            return
        conn.settimeout(1.0)
        try:
            _pid, uid, _gid = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            )
            # Read (at most a line) before answering, even a refusal: closing
            # with unread data would reset the connection under the reply.
            request = _read_request(conn)
            if uid not in (0, os.geteuid()):
                _reply(conn, {"ok": False, "error": "permission denied"})
                return
            if request is None:
                _reply(conn, {"ok": False, "error": "bad request"})
                return
            answer = self._answer(request, conn)
        except OSError:
            conn.close()
            return
        if answer is not None:
            _reply(conn, answer)

    def _answer(self, request: dict[str, Any], conn: socket.socket) -> dict[str, Any] | None:
        from ._facade import Daemon

        comp = self.component
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, **status_info(comp)}
        if cmd == "peek":
            if not request.get("wait"):
                return {"ok": True, "peek": Daemon.peek(True)}
            if len(self.parked) >= _MAX_PARKED:
                self.parked.pop(0).close()
            conn.sendall(json.dumps({"ok": True, "waiting": "USR2"}).encode() + b"\n")
            self.parked.append(conn)
            return None
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def status_info(comp: DaemonComponent) -> dict[str, Any]:
    """What ``{"cmd": "status"}`` answers (JSON-ready)."""
    if comp.is_prefork():
        mode = "pre-forking"
    elif comp.is_fork():
        mode = "forking"
    else:
        mode = "daemon"
    info: dict[str, Any] = {
        "pid": os.getpid(),
        "mode": mode,
        "alias": comp.config.alias,
        "shutting_down": comp.die,
        "summary": summary(comp),
        "children": {str(pid): slot for pid, slot in (comp.children or {}).items()},
        "slots": [],
        "scoreboard": "",
        "status": comp.status(),
    }
    if comp.scoreboard is not None:
        info["scoreboard"] = comp.scoreboard.status()
        info["slots"] = [
            {
                "index": s.index,
                "status": s.status,
                "pid": s.pid,
                "requests": s.requests,
                "changed": s.changed,
            }
            for s in comp.scoreboard.slots()
        ]
    return info


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    data = b""
    while b"\n" not in data and len(data) < _MAX_REQUEST:
        chunk = conn.recv(_MAX_REQUEST)
        if not chunk:
            break
        data += chunk
    try:
        request = json.loads(data.split(b"\n", 1)[0] or b"null")
    except ValueError:
        return None
    return request if isinstance(request, dict) else None


def _reply(conn: socket.socket, answer: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps(answer).encode() + b"\n")
    conn.close()
