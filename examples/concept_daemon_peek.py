"""Debugging a daemon: SIGUSR2 makes the Daemon dump the kernel (Daemon.peek(True)).

A pre-forking daemon with two idle children; a helper process sends the parent
USR2, then TERM.  The dump goes to stderr (the logfile, for a real daemon).

    python examples/concept_daemon_peek.py
"""

from __future__ import annotations

import os
import subprocess
import sys

from kernelish import KERNEL, HandlerArgs, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent

KILLER = "import os, signal, sys, time; time.sleep({}); os.kill(int(sys.argv[1]), signal.{})"


def _start(_: HandlerArgs) -> None:
    kernel = _[KERNEL]
    kernel.alias_set("app")  # signal watchers alone would not keep us alive
    kernel.sig("daemon_child", "daemon_child")
    kernel.sig("daemon_parent", "daemon_parent")
    kernel.sig("daemon_shutdown", "daemon_shutdown")


def daemon_child(_: HandlerArgs) -> None:
    _[KERNEL].delay("linger", 60)  # a child with nothing to do would end at once
    Daemon.update_status("wait")


def daemon_parent(_: HandlerArgs) -> None:
    # As if you typed `kill -USR2 <pid>` in another window, then `kill -TERM <pid>`.
    pid = str(os.getpid())
    for seconds, name in ((0.4, "SIGUSR2"), (0.8, "SIGTERM")):
        subprocess.Popen([sys.executable, "-c", KILLER.format(seconds, name), pid])


def daemon_shutdown(_: HandlerArgs) -> None:
    _[KERNEL].delay("linger")
    _[KERNEL].alias_remove("app")


Session.create(
    inline_states={
        "_start": _start,
        "daemon_child": daemon_child,
        "daemon_parent": daemon_parent,
        "daemon_shutdown": daemon_shutdown,
    }
)
DaemonComponent.spawn(alias="Daemon", start_children=2, max_children=4)
parent = os.getpid()
try:
    poe_kernel.run()
finally:
    if os.getpid() != parent:  # a forked child never runs the parent's code below
        os._exit(0)
