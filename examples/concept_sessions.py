"""Sessions and the heap: two sessions, each with its own heap, talking by alias.

python examples/concept_sessions.py
"""

from __future__ import annotations

from kernelish import ARG0, HEAP, KERNEL, SENDER, HandlerArgs, Session, poe_kernel


def counter_start(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL, HEAP]
    kernel.alias_set("counter")  # other sessions may now post to "counter"
    heap["total"] = 0


def add(_: HandlerArgs) -> None:
    heap, amount, sender = _[HEAP], _[ARG0], _[SENDER]
    heap["total"] += amount
    _[KERNEL].post(sender, "added", heap["total"])


def counter_stop(_: HandlerArgs) -> None:
    _[KERNEL].alias_remove("counter")


def client_start(_: HandlerArgs) -> None:
    kernel, heap = _[KERNEL, HEAP]
    heap["replies"] = []
    for amount in (1, 2, 3):
        kernel.post("counter", "add", amount)


def added(_: HandlerArgs) -> None:
    heap, total = _[HEAP], _[ARG0]
    heap["replies"].append(total)
    print(f"the counter says {total}")
    if len(heap["replies"]) == 3:
        _[KERNEL].post("counter", "stop")


Session.create(inline_states={"_start": counter_start, "add": add, "stop": counter_stop})
Session.create(inline_states={"_start": client_start, "added": added}, heap={"name": "client"})
poe_kernel.run()
print("every session is gone; run() returned")
