"""Event order: posts are FIFO, call() runs at once, a due timer runs by its time.

python examples/concept_event_order.py
"""

from __future__ import annotations

from kernelish import ARG0, KERNEL, SESSION, STATE, HandlerArgs, Session, poe_kernel

trace: list[str] = []


def _start(_: HandlerArgs) -> None:
    kernel = _[KERNEL]
    kernel.yield_("note", "first post")
    kernel.yield_("note", "second post")
    kernel.delay("note", 0.01, "timer, 10 ms")
    result = kernel.call(_[SESSION], "note", "call, at once")
    trace.append(f"call() returned {result!r}")


def note(_: HandlerArgs) -> str:
    trace.append(f"{_[STATE]}: {_[ARG0]}")
    return "noted"


Session.create(inline_states={"_start": _start, "note": note})
poe_kernel.run()
print("\n".join(trace))
assert trace == [
    "note: call, at once",
    "call() returned 'noted'",
    "note: first post",
    "note: second post",
    "note: timer, 10 ms",
]
