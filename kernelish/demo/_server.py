"""The demo daemon: one session that listens, serves, and (in the parent) watches.

The same session object runs in the parent and, after each fork, in every
child: ``daemon_child`` is the moment it stops being the watcher and becomes a
server.  The protocol is three commands: ``PING`` -> ``PONG``; ``SLOW`` ->
``SLEPT`` after 50 ms of a kernel delay (the request is marked ``long`` on the
scoreboard meanwhile); ``DONE`` -> ``OK`` and the server closes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from kernelish import ARG0, ARG1, ARG2, HEAP, KERNEL, HandlerArgs, Session
from kernelish.components.daemon import Daemon, DaemonComponent
from kernelish.filters import Line
from kernelish.wheels import ReadWrite, SocketFactory

from ._display import Frame, Screen

__all__ = ["CountingDaemon", "DemoOptions", "DemoServer"]

SLOW_SECONDS = 0.05
TICK_SECONDS = 0.1


@dataclass
class DemoOptions:
    """What ``kernelish demo`` was asked to do."""

    forking: bool = False
    port: int = 0
    seconds: float | None = 4.0  # None: serve until Ctrl-C
    clients: int = 4
    ansi: bool = False


class CountingDaemon(DaemonComponent):
    """The Daemon component, counting the children it forks and reaps.

    A child's scoreboard slot keeps its request count until the parent reuses
    the slot, so reading it as the child is reaped counts every request.
    """

    forked = 0
    recycled = 0
    stopped = 0
    retired_requests = 0

    def fork(self, _: HandlerArgs) -> None:
        before = len(self.children or ())
        super().fork(_)
        if not self.is_child and len(self.children or ()) > before:
            self.forked += 1

    def sig_CHLD(self, _: HandlerArgs) -> None:  # the seed's state name
        slot = (self.children or {}).get(_[ARG1])
        if slot is not None and self.scoreboard is not None:
            self.retired_requests += self.scoreboard.slot(slot).requests
            if self.die:
                self.stopped += 1
            else:
                self.recycled += 1
        super().sig_CHLD(_)

    def served(self) -> int:
        """Requests served so far: by the reaped children, then the live ones."""
        live = 0
        if self.scoreboard is not None and self.children is not None:
            live = sum(self.scoreboard.slot(slot).requests for slot in self.children.values())
        return self.retired_requests + live


_STATES = (
    "_start",
    "daemon_child",
    "daemon_pause",
    "daemon_accept",
    "daemon_shutdown",
    "accept",
    "accept_failed",
    "input",
    "slow_done",
    "flushed",
    "finish",
    "tick",
    "client_done",
    "give_up",
)


@dataclass
class DemoServer:
    """The demo's session: the states are its methods."""

    options: DemoOptions
    daemon: CountingDaemon
    screen: Screen
    parent_pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.monotonic)
    port: int = 0
    paused: int = 0
    resumed: int = 0
    client: subprocess.Popen[str] | None = None
    results: dict[str, float] | None = None
    stopping: bool = False
    #: Why the demo could not serve (the listener's setup failed).
    failure: str | None = None
    last_frame: Frame | None = None

    def create(self) -> Session | None:
        """Create the session (it runs ``_start`` at once)."""
        return Session.create(object_states=[(self, _STATES)])

    @property
    def in_parent(self) -> bool:
        """Whether this process is the daemon's parent (not a forked child)."""
        return os.getpid() == self.parent_pid

    # -- the parent -------------------------------------------------------------

    def _start(self, _: HandlerArgs) -> None:
        kernel, heap = _[KERNEL, HEAP]
        heap["listener"] = SocketFactory(
            BindAddress="127.0.0.1",
            BindPort=self.options.port,
            Reuse="yes",
            SuccessEvent="accept",
            FailureEvent="accept_failed",
        )
        if not self.options.forking:
            heap["listener"].pause_accept()  # pre-forking: only children accept
        address = heap["listener"].getsockname()
        if address is None:
            return  # the bind failed: accept_failed says why and stops the demo
        self.port = address[1]
        for name in ("daemon_child", "daemon_pause", "daemon_accept", "daemon_shutdown"):
            kernel.sig(name, name)
        if self.options.seconds is None:
            print(f"Serving on 127.0.0.1:{self.port}; Ctrl-C stops.", flush=True)
        else:
            self._start_clients(_)
        kernel.delay("tick", TICK_SECONDS)

    def _start_clients(self, _: HandlerArgs) -> None:
        kernel = _[KERNEL]
        assert self.options.seconds is not None
        clients = 6 if self.options.forking else self.options.clients
        self.client = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernelish.demo._client",
                str(self.port),
                str(self.options.seconds),
                str(clients),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        kernel.sig_child(self.client.pid, "client_done")
        kernel.delay("give_up", self.options.seconds + 20)

    def frame(self) -> Frame:
        """What the scoreboard says now."""
        board = self.daemon.scoreboard
        slots = "".join(board.read_all()) if board is not None else ""
        return Frame(
            elapsed=time.monotonic() - self.started,
            slots=slots,
            alive=len(self.daemon.children or ()),
            forked=self.daemon.forked,
            recycled=self.daemon.recycled,
            served=self.daemon.served(),
            paused=self.paused,
            resumed=self.resumed,
        )

    def tick(self, _: HandlerArgs) -> None:
        """Every 100 ms in the parent: draw the scoreboard."""
        if not self.in_parent:
            return
        self.last_frame = self.frame()
        self.screen.show(self.last_frame)
        if not (self.stopping and not self.daemon.children):
            _[KERNEL].delay("tick", TICK_SECONDS)

    def client_done(self, _: HandlerArgs) -> None:
        """The clients are through: read their tally, then SIGTERM ourselves."""
        kernel = _[KERNEL]
        kernel.delay("give_up")
        if self.client is not None and self.client.stdout is not None:
            line = self.client.stdout.read().strip()
            self.client.stdout.close()
            self.results = json.loads(line) if line else None
            self.client.poll()  # the kernel reaped it already; Popen learns that here
        if not self.stopping:  # not after a Ctrl-C: the Daemon no longer watches TERM
            os.kill(os.getpid(), signal.SIGTERM)

    def give_up(self, _: HandlerArgs) -> None:
        """The clients hang: end them (their exit brings ``client_done``)."""
        if self.client is not None:
            self.client.kill()

    def daemon_pause(self, _: HandlerArgs) -> None:
        self.paused += 1
        _[HEAP]["listener"].pause_accept()

    def daemon_accept(self, _: HandlerArgs) -> None:
        listener = _[HEAP].get("listener")
        if self.in_parent:
            self.resumed += 1
        if listener is not None:
            listener.resume_accept()

    def daemon_shutdown(self, _: HandlerArgs) -> None:
        heap = _[HEAP]
        heap.pop("listener", None)
        heap.pop("wheel", None)
        self.stopping = True

    # -- a child ----------------------------------------------------------------

    def daemon_child(self, _: HandlerArgs) -> None:
        """We are a child now: the parent's timers are not ours."""
        kernel, heap = _[KERNEL, HEAP]
        kernel.delay("tick")
        kernel.delay("give_up")
        if self.options.forking:
            info = _[ARG1]
            heap.pop("listener", None)
            self._serve(heap, info["handle"])
        else:
            Daemon.update_status("wait")

    def accept(self, _: HandlerArgs) -> None:
        heap, handle = _[HEAP], _[ARG0]
        if self.options.forking:
            Daemon.update_status("req", {"handle": handle})
            return
        heap["listener"].pause_accept()
        Daemon.update_status("req")
        self._serve(heap, handle)

    def _serve(self, heap: dict[str, Any], handle: Any) -> None:
        heap["wheel"] = ReadWrite(
            Handle=handle,
            Filter=Line(),
            InputEvent="input",
            ErrorEvent="finish",
            FlushedEvent="flushed",
        )

    def accept_failed(self, _: HandlerArgs) -> None:
        operation, errnum, errstr = _[ARG0], _[ARG1], _[ARG2]
        if operation == "accept":  # the listener backs off and goes on
            print(f"{os.getpid()}: accept error {errnum}: {errstr}", file=sys.stderr)
            return
        self.failure = f"{operation} 127.0.0.1:{self.options.port}: {errstr}"
        _[HEAP].pop("listener", None)
        Daemon.shutdown()

    def input(self, _: HandlerArgs) -> None:
        kernel, heap, line = _[KERNEL], _[HEAP], _[ARG0]
        wheel = heap.get("wheel")
        if wheel is None:
            return
        command = line.strip().upper()
        if command == "PING":
            wheel.put("PONG")
        elif command == "SLOW":
            Daemon.update_status("long")
            kernel.delay_set("slow_done", SLOW_SECONDS)
        elif command == "DONE":
            heap["closing"] = True
            wheel.put("OK")
        else:
            wheel.put("???")

    def slow_done(self, _: HandlerArgs) -> None:
        wheel = _[HEAP].get("wheel")
        if wheel is not None:
            wheel.put("SLEPT")

    def flushed(self, _: HandlerArgs) -> None:
        if _[HEAP].pop("closing", False):
            self.finish(_)

    def finish(self, _: HandlerArgs) -> None:
        """The connection is over: drop it, and say 'done'."""
        if _[HEAP].pop("wheel", None) is not None:
            Daemon.update_status("done")
