"""What a daemon owes the world outside POE: the launching command,
systemd notifications, the pidfile, and the control socket the ``kernelish
status|peek|stop`` command talks to.

Discussion
----------
:class:`DaemonServices` is the one object the component calls at a few points
of its life; each call does nothing when the feature is off:

* ``before_detach`` (spawn, in the launching process): read and consume
  ``NOTIFY_SOCKET``/``WATCHDOG_*``; refuse at once if a live daemon holds the
  pidfile;
* ``launch_wait`` (spawn, once the logfile is open): with ``detach``, leave
  the launching command waiting until the daemon is up
  (:class:`~._launch.LaunchWait`, whatever the service manager);
* ``logging`` (spawn, once stderr is the logfile): copy stderr to the
  waiting launcher until the daemon is ready;
* ``after_detach`` (spawn, in the daemon): write and lock the pidfile;
* ``started`` (``_start``): bind the control socket, start the watchdog;
* ``ready`` (first ``waste_time``: the pool is up): ``READY=1`` + ``MAINPID``,
  and the launcher exits 0;
* ``status_changed`` (``check_scoreboard``): ``STATUS=`` when the text changed;
* ``reloading``/``reloaded`` (HUP), ``peeked`` (USR2: answers waiting
  ``peek`` requests), ``stopping`` (``shutdown``: the launcher, if it still
  waits, exits 1), ``stopped`` (``_stop``: the pidfile goes);
* ``in_child`` (``become_child``): a child drops all of it -- it never
  notifies systemd, holds no pidfile lock, answers no control request.

A daemon that dies without reaching ``_stop`` (an exception out of
``run()``) still removes its pidfile and control socket at exit (``atexit``);
only SIGKILL leaves them, and the next start takes them over.

The control channel
-------------------
A UNIX stream socket beside the pidfile, ``<pidfile>.sock``, served by
:class:`~._control_server.ControlServer` with the protocol of
:mod:`~kernelish.components.daemon.control`.  One JSON request per
connection, one JSON line back:

* ``{"cmd": "status"}`` -> ``{"ok": true, "service": "kernelish.daemon",
  "pid", "mode", "children": {pid: slot}, "slots": [{"index", "status", "pid",
  "requests", "changed"}...], "scoreboard", "status", "listening", "brake"}``;
* ``{"cmd": "peek"}`` -> ``{"ok": true, "peek": text}`` (a dump made now);
* ``{"cmd": "peek", "wait": true}`` -> ``{"ok": true, "waiting": "USR2"}``
  at once, then ``{"ok": true, "peek": text}`` with the dump the *next* SIGUSR2
  writes to the logfile -- so ``kernelish peek`` prints the very dump its signal
  produced.
"""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING, Any

from kernelish import KERNEL, HandlerArgs, Session, current_kernel

from . import control
from ._control_server import ControlServer
from ._launch import LaunchWait
from ._pidfile import Pidfile, PidfileError
from ._systemd import Notifier

if TYPE_CHECKING:
    from ._component import DaemonComponent

__all__ = ["DaemonServices", "status_info", "summary"]


def summary(component: DaemonComponent) -> str:
    """One line for systemd's ``STATUS=``: the pool as the scoreboard sees it."""
    pool = component.pool
    if pool is None:
        text = "Daemon server running"
    else:
        text = f"{component.mode.title}: {pool.census()}"
        brake = pool.brake_text()
        if brake:
            text += f", {brake}"
    return text + (", shutting down" if component.die else "")


class DaemonServices:
    """The launcher, systemd notifications, pidfile and control socket of
    one component."""

    def __init__(self, component: DaemonComponent) -> None:
        self.component = component
        self.notifier: Notifier | None = None
        self.launch: LaunchWait | None = None
        self.pidfile: Pidfile | None = None
        self.session: Session | None = None
        self.control = ControlServer(self._answer)
        self.is_ready = False
        #: The addresses the parent listened on when it became ready.
        self.listening: list[str] = []
        self._at_exit = False

    # -- spawn ------------------------------------------------------------------

    def before_detach(self) -> None:
        cfg = self.component.config
        self.notifier = Notifier.from_environ(cfg.notify)
        if cfg.pidfile is not None:
            self.pidfile = Pidfile(cfg.pidfile)
            self.pidfile.check()

    def launch_wait(self) -> None:
        """With ``detach``: the launching process waits here until the
        daemon is up (it never returns); the rest goes on in a child."""
        if self.component.config.detach and self.launch is None:
            self.launch = LaunchWait()
            self.launch.fork()

    def logging(self) -> None:
        """stderr is the logfile now: the waiting launcher gets a copy."""
        if self.launch is not None and self.component.config.logfile is not None:
            self.launch.copy_stderr()

    def after_detach(self) -> None:
        if self.launch is not None:
            self.launch.detached()
        if self.pidfile is not None:
            try:
                self.pidfile.acquire()
            except OSError as exc:
                where = self.pidfile.path.parent
                raise PidfileError(
                    f"cannot write pidfile {str(self.pidfile.path)!r}: {exc.strerror} "
                    f"(its directory {str(where)!r} must be writable by uid {os.geteuid()})"
                ) from None
            self._remove_at_exit()

    def _remove_at_exit(self) -> None:
        if not self._at_exit:
            self._at_exit = True
            atexit.register(self._exit_cleanup)

    def _exit_cleanup(self) -> None:
        """The process exits without ``_stop`` (an exception out of run()):
        what it created goes all the same."""
        self.control.remove_at_exit()
        if self.pidfile is not None:
            self.pidfile.remove()

    # -- the parent's life ------------------------------------------------------------

    def started(self) -> None:
        """In ``_start``: control socket and watchdog, in sessions of their own."""
        pidfile = self.pidfile
        if pidfile is not None and self.control.start(control.socket_path(pidfile.path)):
            self._remove_at_exit()
        interval = self.notifier.watchdog_interval if self.notifier is not None else None
        if interval is None:
            return
        self.session = Session.create(
            inline_states={
                "_start": self._session_start,
                "watchdog": self._watchdog,
                "bye": self._bye,
            },
            args=[interval],
        )

    def ready(self) -> None:
        """The pool is up: ``READY=1`` with ``MAINPID``; the launcher may go."""
        comp = self.component
        if comp.is_child or self.is_ready or comp.die:
            return
        self.is_ready = True
        self.listening = control.listening_addresses(os.getpid())
        if self.notifier is not None:
            self.notifier.ready(summary(comp))
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
        self.control.peeked(text)

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
        self.control.stop()

    def stopped(self) -> None:
        """``_stop``: the pidfile goes (only in the process that wrote it)."""
        if self.pidfile is not None:
            self.pidfile.remove()
        self._end_session()
        self.control.stop()
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
        self.control.in_child()
        self._end_session()

    # -- the watchdog session --------------------------------------------------------

    def _end_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            current_kernel().call(session, "bye")

    def _session_start(self, _: HandlerArgs) -> None:
        kernel, interval = _[KERNEL], _.args[0]
        kernel.delay("watchdog", interval, interval)

    def _watchdog(self, _: HandlerArgs) -> None:
        kernel, interval = _[KERNEL], _.args[0]
        if self.notifier is not None and not self.notifier.closed:
            self.notifier.watchdog()
            kernel.delay("watchdog", interval, interval)

    def _bye(self, _: HandlerArgs) -> None:
        _[KERNEL].delay("watchdog")

    # -- control requests -------------------------------------------------------------

    def _answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        from ._facade import Daemon

        comp = self.component
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, **status_info(comp)}
        if cmd == "peek":
            if not request.get("wait"):
                return {"ok": True, "peek": Daemon.peek(True)}
            return None  # parked until the next SIGUSR2
        return {"ok": False, "error": f"unknown command {cmd!r}"}


def status_info(comp: DaemonComponent) -> dict[str, Any]:
    """What ``{"cmd": "status"}`` answers (JSON-ready)."""
    pool = comp.pool
    info: dict[str, Any] = {
        "service": control.SERVICE,
        "pid": os.getpid(),
        "mode": comp.mode.value,
        "alias": comp.config.alias,
        "shutting_down": comp.die,
        "summary": summary(comp),
        "children": {},
        "slots": [],
        "scoreboard": "",
        "status": comp.status(),
        "listening": comp.services.listening,
        "brake": comp.brake_text(),
    }
    if pool is not None:
        info["children"] = {str(pid): slot for pid, slot in pool.children.items()}
        info["scoreboard"] = pool.scoreboard.status()
        info["slots"] = [
            {
                "index": s.index,
                "status": s.status,
                "pid": s.pid,
                "requests": s.requests,
                "changed": s.changed,
            }
            for s in pool.scoreboard.slots()
        ]
    return info
