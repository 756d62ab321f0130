"""The kernel inside an asyncio loop: ``await poe_kernel.run_async()``."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from kernelish import ARG0, HEAP, KERNEL, Session, poe_kernel
from kernelish.filters import Line
from kernelish.wheels import ReadWrite, SocketFactory


def line_server(prefix: str) -> dict[str, Any]:
    """A kernelish line server; returns a dict that will hold its port."""
    info: dict[str, Any] = {}

    def _start(_: Any) -> None:
        heap = _[HEAP]
        heap["listener"] = SocketFactory(
            BindAddress="127.0.0.1", BindPort=0, SuccessEvent="accept", FailureEvent="fail"
        )
        info["port"] = heap["listener"].getsockname()[1]
        _[KERNEL].alias_set("server")
        heap["clients"] = {}

    def accept(_: Any) -> None:
        wheel = ReadWrite(Handle=_[ARG0], Filter=Line(), InputEvent="line", ErrorEvent="gone")
        _[HEAP]["clients"][wheel.ID] = wheel

    def line(_: Any) -> None:
        _[HEAP]["clients"][_[ARG0 + 1]].put(prefix + _[ARG0])

    def gone(_: Any) -> None:
        _[HEAP]["clients"].pop(_[ARG0 + 3], None)

    def stop(_: Any) -> None:
        _[HEAP].clear()
        _[KERNEL].alias_remove("server")

    Session.create(
        inline_states={
            "_start": _start,
            "accept": accept,
            "line": line,
            "gone": gone,
            "stop": stop,
            "fail": lambda _: None,
        }
    )
    return info


async def ask(port: int, text: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text.encode() + b"\r\n")
    await writer.drain()
    reply = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    await writer.wait_closed()
    return reply.decode().rstrip("\r\n")


def test_a_kernelish_server_and_an_asyncio_server_side_by_side() -> None:
    info = line_server("kernelish:")

    async def main() -> list[str]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readline()
            writer.write(b"asyncio:" + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        aio_port = server.sockets[0].getsockname()[1]
        kernel_task = asyncio.create_task(poe_kernel.run_async())
        replies = await asyncio.gather(
            *(ask(info["port"], f"k{i}") for i in range(10)),
            *(ask(aio_port, f"a{i}") for i in range(10)),
        )
        poe_kernel.post("server", "stop")  # from asyncio code: the bridge wakes up
        await asyncio.wait_for(kernel_task, 5)
        server.close()
        await server.wait_closed()
        return replies

    replies = asyncio.run(main())
    assert replies[:10] == [f"kernelish:k{i}" for i in range(10)]
    assert replies[10:] == [f"asyncio:a{i}" for i in range(10)]


def test_coroutine_handlers_and_call_async() -> None:
    trace: list[str] = []

    async def fetch(_: Any) -> int:
        trace.append(f"fetch {_[ARG0]}")
        await asyncio.sleep(0.01)
        return 42 + _[ARG0]

    async def later(_: Any) -> None:
        await asyncio.sleep(0.01)
        trace.append("later done")
        _[KERNEL].refcount_decrement(_.session.ID, "wanted")

    def _start(_: Any) -> None:
        _[KERNEL].alias_set("svc")
        # An alias alone would not keep it alive past IDLE (POE 3.4).
        _[KERNEL].refcount_increment(_.session.ID, "wanted")

    Session.create(inline_states={"_start": _start, "fetch": fetch, "later": later})

    async def main() -> int:
        runner = asyncio.create_task(poe_kernel.run_async())
        result = await poe_kernel.call_async("svc", "fetch", 1)
        poe_kernel.post("svc", "later")
        await asyncio.wait_for(runner, 5)
        return int(result)

    assert asyncio.run(main()) == 43
    assert trace == ["fetch 1", "later done"]


def test_a_coroutine_handler_that_raises_becomes_die() -> None:
    async def boom(_: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("kaboom")

    def _start(_: Any) -> None:
        _[KERNEL].yield_("boom")

    Session.create(inline_states={"_start": _start, "boom": boom})
    with pytest.raises(ValueError, match="kaboom"):
        asyncio.run(poe_kernel.run_async())


def test_coroutine_handler_without_asyncio_is_refused() -> None:
    async def coro(_: Any) -> None:
        return None

    def _start(_: Any) -> None:
        _[KERNEL].yield_("coro")

    Session.create(inline_states={"_start": _start, "coro": coro})
    with pytest.raises(RuntimeError, match="run_async"):
        poe_kernel.run()


def test_a_child_forked_under_run_async_gets_its_own_loop() -> None:
    r, w = os.pipe()
    me = os.getpid()
    parent: dict[str, Any] = {}

    def _start(_: Any) -> None:
        _[KERNEL].yield_("fork")

    def fork(_: Any) -> None:
        pid = os.fork()
        if pid == 0:
            _[KERNEL].yield_("child_work")
        else:
            _[KERNEL].sig_child(pid, "reaped")

    async def child_work(_: Any) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.05)  # the loop's timers work in the child
        report = {
            "same_loop": loop is parent["loop"],
            "fresh_selector": loop._selector is not parent["selector"],  # type: ignore[attr-defined]
            "kernel_id": _[KERNEL].ID,
        }
        os.write(w, json.dumps(report).encode())
        os._exit(0)

    def reaped(_: Any) -> None:
        _[HEAP]["status"] = _[ARG0 + 2]

    session = Session.create(
        inline_states={"_start": _start, "fork": fork, "child_work": child_work, "reaped": reaped}
    )
    assert session is not None

    async def main() -> None:
        parent["loop"] = asyncio.get_running_loop()
        parent["selector"] = parent["loop"]._selector
        await poe_kernel.run_async()

    try:
        asyncio.run(main())
    finally:
        if os.getpid() != me:
            os._exit(1)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    report = json.loads(data)
    assert report["same_loop"] is True, "the child runs on in the loop it was forked in"
    assert report["fresh_selector"] is True, "but with its own epoll set"
    assert report["kernel_id"] != poe_kernel.ID
    assert session.heap["status"] == 0


def test_coroutine_functions_are_told_apart_as_inspect_does() -> None:
    """The kernel tells ``async def`` states without importing inspect."""
    import functools
    import inspect

    from kernelish._handlers import _is_coroutine_function

    async def coro(_: object) -> None:
        pass

    def plain(_: object) -> None:
        pass

    class Owner:
        async def coro(self) -> None:
            pass

        def plain(self) -> None:
            pass

    cases = [coro, plain, Owner().coro, Owner().plain, Owner.coro, len, lambda: 1]
    cases += [functools.partial(coro, 1), functools.partial(functools.partial(plain, 1))]
    for case in cases:
        assert _is_coroutine_function(case) == inspect.iscoroutinefunction(case), case
    assert sum(map(_is_coroutine_function, cases)) == 4
