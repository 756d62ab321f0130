"""Signals: OS signals and invented ones reach watchers; classes decide who dies.

python examples/concept_signals.py
"""

from __future__ import annotations

import os
import signal

from kernelish import ARG0, ARG1, KERNEL, SESSION, HandlerArgs, Session, poe_kernel, signal_type


def _start(_: HandlerArgs) -> None:
    kernel, session = _[KERNEL, SESSION]
    # sig() watchers do not keep a session alive: an extra reference does.
    kernel.refcount_increment(session.ID, "until TERM")
    kernel.sig("USR1", "got_signal")  # an OS signal
    kernel.sig("reload", "got_signal")  # a signal we invent
    kernel.sig("TERM", "got_term")
    os.kill(os.getpid(), signal.SIGUSR1)  # arrives when the loop next polls
    kernel.signal(kernel, "reload", "config.toml")  # queued at once, to every watcher


def got_signal(_: HandlerArgs) -> None:
    name, arg = _[ARG0], _[ARG1]
    print(f"{name} ({signal_type(name).name.lower()}) arg={arg!r}")
    if name == "USR1":
        os.kill(os.getpid(), signal.SIGTERM)


def got_term(_: HandlerArgs) -> None:
    kernel, session = _[KERNEL, SESSION]
    print(f"TERM ({signal_type('TERM').name.lower()}): unhandled, it would stop us")
    kernel.sig_handled()  # we survive it, and leave in our own way:
    for name in ("USR1", "reload", "TERM"):
        kernel.sig(name)
    kernel.refcount_decrement(session.ID, "until TERM")


Session.create(inline_states={"_start": _start, "got_signal": got_signal, "got_term": got_term})
poe_kernel.run()
print("done")
