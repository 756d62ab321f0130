"""Dispatch throughput: post ping-pong, yield_ to self and call, against asyncio.

Run: ``.venv/bin/python bench/dispatch.py [--events N] [--repeats R]``.

Every figure is events per second, the best of R runs (the machine is noisy).
The baseline is a bare asyncio ``loop.call_soon`` ping-pong run in the same
process, so the ratios hold across machines.  Target (issue 2): post
ping-pong >= 2.0x asyncio.

The last figure checks that a flood of posts does not starve I/O: the longest
gap between two selector polls while sessions keep yielding to themselves
(target <= 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import itertools

from _common import check, emit, table

from kernelish import ARG0, HEAP, KERNEL, SENDER, Session, poe_kernel


def asyncio_ping_pong(n: int) -> float:
    """Events/s of two callbacks scheduling each other with call_soon."""
    loop = asyncio.new_event_loop()
    count = [0]

    def ping() -> None:
        count[0] += 1
        if count[0] < n:
            loop.call_soon(pong)
        else:
            loop.stop()

    def pong() -> None:
        count[0] += 1
        if count[0] < n:
            loop.call_soon(ping)
        else:
            loop.stop()

    try:
        loop.call_soon(ping)
        start = time.perf_counter()
        loop.run_forever()
        elapsed = time.perf_counter() - start
    finally:
        loop.close()
    return count[0] / elapsed


def post_ping_pong(n: int) -> float:
    """Events/s of two sessions posting to each other."""
    count = [0]

    def ball(_: Any) -> None:
        count[0] += 1
        if count[0] < n:
            _[KERNEL].post(_[SENDER], "ball")

    Session.create(inline_states={"_start": lambda _: _[KERNEL].alias_set("pong"), "ball": ball})

    def start(_: Any) -> None:
        _[KERNEL].post("pong", "ball")

    Session.create(inline_states={"_start": start, "ball": ball})
    begin = time.perf_counter()
    poe_kernel.run()
    return count[0] / (time.perf_counter() - begin)


def yield_to_self(n: int) -> float:
    """Events/s of one session yielding to itself."""

    def tick(_: Any) -> None:
        heap = _[HEAP]
        heap["n"] += 1
        if heap["n"] < n:
            _[KERNEL].yield_("tick")

    Session.create(
        inline_states={"_start": lambda _: _[KERNEL].yield_("tick"), "tick": tick},
        heap={"n": 0},
    )
    begin = time.perf_counter()
    poe_kernel.run()
    return n / (time.perf_counter() - begin)


def call_rate(n: int) -> float:
    """Calls/s from one session to another."""
    Session.create(
        inline_states={
            "_start": lambda _: _[KERNEL].alias_set("callee"),
            "add": lambda _: _[ARG0] + 1,
        }
    )
    result = [0.0]

    def start(_: Any) -> None:
        call = _[KERNEL].call
        begin = time.perf_counter()
        value = 0
        for _i in range(n):
            value = call("callee", "add", value)
        result[0] = n / (time.perf_counter() - begin)

    Session.create(inline_states={"_start": start})
    poe_kernel.run()
    return result[0]


def longest_poll_gap(seconds: float) -> float:
    """Longest gap (s) between selector polls during a flood of posts."""
    selector = poe_kernel.io.selector
    real_select = selector.select
    stamps: list[float] = []

    def select(timeout: float | None = None) -> Any:
        stamps.append(time.perf_counter())
        return real_select(timeout)

    deadline = time.perf_counter() + seconds

    def tick(_: Any) -> None:
        if time.perf_counter() < deadline:
            _[KERNEL].yield_("tick", _[ARG0])

    def start(_: Any) -> None:
        for i in range(10):  # ten posts in flight at every moment
            _[KERNEL].yield_("tick", i)

    selector.select = select  # type: ignore[method-assign]
    try:
        Session.create(inline_states={"_start": start, "tick": tick})
        stamps.append(time.perf_counter())
        poe_kernel.run()
    finally:
        del selector.select
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return max(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    n, r = opts.events, opts.repeats

    # Baseline and kernelish runs alternate, so both see the same machine load.
    base = 0.0
    rates = {"post ping-pong": 0.0, "yield_ to self": 0.0, "call": 0.0}
    benches = {"post ping-pong": post_ping_pong, "yield_ to self": yield_to_self, "call": call_rate}
    for _ in range(r):
        for name, bench in benches.items():
            base = max(base, asyncio_ping_pong(n))
            rates[name] = max(rates[name], bench(n))
    emit("asyncio call_soon ping-pong", base, "events/s", baseline=True)
    for name, perl in (
        ("post ping-pong", 69_000.0),
        ("yield_ to self", 85_000.0),
        ("call", 253_000.0),
    ):
        rate = rates[name]
        emit(name, rate, "events/s", group="dispatch", perl=perl)
        if name == "post ping-pong":
            check("post ping-pong / asyncio call_soon", rate / base, ">=", 2.0, group="dispatch")
        else:
            emit(f"{name} / asyncio call_soon", rate / base, "x")
    gap = min(longest_poll_gap(0.5) for _ in range(3))
    check("longest selector gap in a post flood", gap * 1000, "<=", 10.0, unit="ms")
    table(f"kernelish dispatch, best of {r}, {n:,} events, pid {os.getpid()}")


if __name__ == "__main__":
    main()
