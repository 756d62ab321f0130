"""Reference filter throughput against pickle and multiprocessing's framing, in one process.

Run: ``.venv/bin/python bench/filters.py [--repeats 5] [--messages 20000]``

``Reference`` is the pipe format between a daemon and its ``Run`` workers, so what matters
is one small message (a dict of a few keys) per ``put`` and per read.  Every figure is a best
of R, in messages per second, and every ratio compares figures of this run:

* in memory (no I/O), one message at a time: ``Reference.put`` + ``Reference.get`` against
  ``pickle.dumps`` + ``pickle.loads`` with multiprocessing.connection's framing (a 4-octet
  length, ``struct``), and against what ``Connection.send``/``recv`` do without their system
  calls (``ForkingPickler`` and a ``BytesIO`` per message);
* through a pipe in this process: ``Reference`` with ``os.write``/``os.read`` against
  ``multiprocessing.Pipe(duplex=False)``'s ``send``/``recv`` of the same objects;
* many frames per 64 KiB read (a burst), against ``pickle.loads`` alone;
* with ``Serializer=json``, against ``json.dumps``/``json.loads``.

The round trip between two processes (``Run`` + ``Reference`` against ``multiprocessing``) is
measured by the ``Run`` benchmark.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import struct
import sys
import time
from collections.abc import Callable
from multiprocessing import Pipe
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, check, emit, table

from kernelish.filters import Reference

MESSAGE = {"id": 17, "cmd": "query", "sql": "SELECT name FROM users WHERE id = ?", "args": [42]}


def rate(count: int, run: Callable[[], Any]) -> Callable[[], float]:
    """A measurement: messages per second of ``run()``, which handles ``count`` messages."""

    def measure() -> float:
        start = time.perf_counter()
        run()
        return count / (time.perf_counter() - start)

    return measure


# -- in memory, one message at a time ----------------------------------------------------------


def reference_one(messages: list[Any], ref: Reference) -> Callable[[], None]:
    put, get = ref.put, ref.get

    def run() -> None:
        for message in messages:
            get(put((message,)))

    return run


def pickle_struct_one(messages: list[Any]) -> Callable[[], None]:
    dumps, loads, pack, unpack = pickle.dumps, pickle.loads, struct.pack, struct.unpack

    def run() -> None:
        for message in messages:
            payload = dumps(message)
            wire = pack("!i", len(payload)) + payload
            (size,) = unpack("!i", wire[:4])
            loads(wire[4 : 4 + size])

    return run


def connection_one(messages: list[Any]) -> Callable[[], None]:
    """Connection.send/recv's own steps, minus the system calls."""
    dumps, loads = ForkingPickler.dumps, ForkingPickler.loads
    pack, unpack = struct.pack, struct.unpack

    def run() -> None:
        for message in messages:
            buf = dumps(message)
            wire = pack("!i", len(buf)) + buf
            (size,) = unpack("!i", wire[:4])
            loads(io.BytesIO(wire[4 : 4 + size]).getbuffer())

    return run


def json_one(messages: list[Any]) -> Callable[[], None]:
    dumps, loads = json.dumps, json.loads

    def run() -> None:
        for message in messages:
            loads(dumps(message))

    return run


# -- through a pipe, in this process -------------------------------------------------------------


def reference_pipe(messages: list[Any]) -> Callable[[], None]:
    ref = Reference()
    put, get, write, read = ref.put, ref.get, os.write, os.read
    rfd, wfd = os.pipe()

    def run() -> None:
        for message in messages:
            for frame in put((message,)):
                write(wfd, frame)
            get([read(rfd, 65536)])

    return run


def connection_pipe(messages: list[Any]) -> Callable[[], None]:
    reader, writer = Pipe(duplex=False)
    send, recv = writer.send, reader.recv

    def run() -> None:
        for message in messages:
            send(message)
            recv()

    return run


# -- bursts ------------------------------------------------------------------------------------


def reference_burst(messages: list[Any]) -> Callable[[], None]:
    ref = Reference()
    stream = b"".join(ref.put(messages))
    reads = [[stream[i : i + 65536]] for i in range(0, len(stream), 65536)]
    get = ref.get

    def run() -> None:
        for chunk in reads:
            get(chunk)

    return run


def pickle_loads_only(messages: list[Any]) -> Callable[[], None]:
    payloads = [pickle.dumps(message) for message in messages]
    loads = pickle.loads

    def run() -> None:
        for payload in payloads:
            loads(payload)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20_000)
    opts = parser.parse_args()
    count, repeats = opts.messages, opts.repeats
    messages = [dict(MESSAGE, id=n) for n in range(count)]

    def measure(name: str, run: Callable[[], None], **extra: Any) -> float:
        run()  # warm up
        value = best_of(repeats, rate(count, run))
        emit(name, value, "msg/s", group="filters", **extra)
        return value

    ours = measure("Reference put+get, in memory", reference_one(messages, Reference()))
    conn = measure("Connection send+recv steps, no I/O", connection_one(messages), baseline=True)
    floor = measure("pickle dumps+loads, struct length", pickle_struct_one(messages), baseline=True)
    check("Reference in memory / Connection's steps", ours / conn, ">=", 1.0, group="filters")
    emit("Reference in memory / pickle + struct length", ours / floor, "x", group="filters")

    piped = measure("Reference over os.pipe, one process", reference_pipe(messages))
    mp_pipe = measure("multiprocessing.Pipe send+recv", connection_pipe(messages), baseline=True)
    check("Reference over a pipe / Pipe send+recv", piped / mp_pipe, ">=", 1.0, group="filters")

    burst = measure("Reference get, 64 KiB reads", reference_burst(messages))
    loads = measure("pickle.loads alone", pickle_loads_only(messages), baseline=True)
    emit("Reference burst / pickle.loads alone", burst / loads, "x", group="filters")

    with_json = reference_one(messages, Reference(Serializer=json))
    as_json = measure("Reference(json) put+get", with_json)
    plain_json = measure("json dumps+loads", json_one(messages), baseline=True)
    emit("Reference(json) / json dumps+loads", as_json / plain_json, "x", group="filters")

    table(f"Reference filter, {count:,} messages, best of {repeats}")


if __name__ == "__main__":
    main()
