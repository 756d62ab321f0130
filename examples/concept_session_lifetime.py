"""Session lifetime: a session lives while something refers to it, then gets _stop.

Events queued to it, child sessions, watched handles and processes, and extra
references keep it alive.  An alias alone does not: when only aliases are left
the kernel is idle, signals IDLE, and everyone stops.

    python examples/concept_session_lifetime.py
"""

from __future__ import annotations

from kernelish import KERNEL, SESSION, HandlerArgs, Session, poe_kernel

log: list[str] = []


def worker_start(_: HandlerArgs) -> None:
    kernel, session = _[KERNEL, SESSION]
    kernel.refcount_increment(session.ID, "busy")  # an extra reference: stay alive
    kernel.delay("done", 0.01)


def done(_: HandlerArgs) -> None:
    log.append("worker: done, dropping the extra reference")
    _[KERNEL].refcount_decrement(_[SESSION].ID, "busy")  # nothing left: _stop follows


def waiter_start(_: HandlerArgs) -> None:
    _[KERNEL].alias_set("waiter")  # an alias only: stopped once the kernel is idle


Session.create(
    inline_states={
        "_start": worker_start,
        "done": done,
        "_stop": lambda _: log.append("worker: _stop"),
    }
)
Session.create(
    inline_states={"_start": waiter_start, "_stop": lambda _: log.append("waiter: _stop")}
)
poe_kernel.run()
print("\n".join(log))
assert log == ["worker: done, dropping the extra reference", "worker: _stop", "waiter: _stop"]
