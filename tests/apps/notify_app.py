#!/usr/bin/env python3
"""A small Daemon for the systemd / pidfile / control tests.

    python tests/apps/notify_app.py LOGFILE [--pidfile P] [--mode prefork|fork|plain]
        [--children N] [--no-detach] [--notify yes|no|auto] [--stubborn]

No sockets: a pre-forking pool of ``--children`` children that wait forever
(each says 'wait' once), a post-forking parent with no requests, or a plain
daemon.  ``--stubborn`` children ignore SIGTERM (for ``kernelish stop
--timeout``).  NOTIFY_SOCKET / WATCHDOG_USEC come from the environment.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from kernelish import KERNEL, Session, poe_kernel
from kernelish.components.daemon import Daemon, DaemonComponent

parser = argparse.ArgumentParser()
parser.add_argument("logfile")
parser.add_argument("--pidfile")
parser.add_argument("--mode", choices=["prefork", "fork", "plain"], default="prefork")
parser.add_argument("--children", type=int, default=2)
parser.add_argument("--no-detach", action="store_true")
parser.add_argument("--notify", choices=["yes", "no", "auto"], default="auto")
parser.add_argument("--stubborn", action="store_true")
args = parser.parse_args()


def _start(_: Any) -> None:
    kernel = _[KERNEL]
    kernel.alias_set("app")  # alive until daemon_shutdown
    kernel.sig("daemon_child", "daemon_child")
    kernel.sig("daemon_shutdown", "daemon_shutdown")


def daemon_child(_: Any) -> None:
    _[KERNEL].delay("tick", 3600)  # something to wait for (an alias alone is idle)
    if args.stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.mode == "prefork":
        Daemon.update_status("wait")


def daemon_shutdown(_: Any) -> None:
    kernel = _[KERNEL]
    kernel.alias_remove("app")
    kernel.delay("tick")
    kernel.sig("daemon_child")
    kernel.sig("daemon_shutdown")


Session.create(
    inline_states={
        "_start": _start,
        "daemon_child": daemon_child,
        "daemon_shutdown": daemon_shutdown,
        "tick": lambda _: None,
    }
)

params: dict[str, Any] = {
    "logfile": args.logfile,
    "detach": not args.no_detach,
    "verbose": True,
    "pidfile": args.pidfile,
    "notify": {"yes": True, "no": False, "auto": None}[args.notify],
}
if args.mode == "prefork":
    params.update(start_children=args.children, min_spare=args.children, max_spare=args.children)
elif args.mode == "fork":
    params.update(max_children=args.children)
DaemonComponent.spawn(**params)
poe_kernel.run()
