"""Wheels: an echo server and its client in one process, with SocketFactory and ReadWrite.

python examples/concept_wheels_echo.py
"""

from __future__ import annotations

from kernelish import ARG0, HEAP, HandlerArgs, Session, poe_kernel
from kernelish.filters import Line
from kernelish.wheels import ReadWrite, SocketFactory

# -- the server: accept, echo lines back, stop after one client ---------------------


def server_start(_: HandlerArgs) -> None:
    heap = _[HEAP]
    heap["listener"] = SocketFactory(
        BindAddress="127.0.0.1", BindPort=0, SuccessEvent="accepted", FailureEvent="failed"
    )
    port = heap["listener"].getsockname()[1]
    Session.create(inline_states=client_states, args=[port])  # a child session


def accepted(_: HandlerArgs) -> None:
    heap, handle = _[HEAP], _[ARG0]
    del heap["listener"]  # one client is enough: stop listening
    heap["wheel"] = ReadWrite(Handle=handle, Filter=Line(), InputEvent="echo", ErrorEvent="closed")


def echo(_: HandlerArgs) -> None:
    _[HEAP]["wheel"].put(_[ARG0].upper())


def closed(_: HandlerArgs) -> None:
    _[HEAP].pop("wheel", None)  # dropping the wheel releases the socket


def failed(_: HandlerArgs) -> None:
    operation, errnum, errstr = _[ARG0 : ARG0 + 3]
    print(f"{operation} failed: {errstr} ({errnum})")
    _[HEAP].clear()


# -- the client: connect, send three lines, hang up after the third answer ----------


def client_start(_: HandlerArgs) -> None:
    _[HEAP]["connector"] = SocketFactory(
        RemoteAddress="127.0.0.1",
        RemotePort=_[ARG0],
        SuccessEvent="connected",
        FailureEvent="failed",
    )


def connected(_: HandlerArgs) -> None:
    heap = _[HEAP]
    del heap["connector"]
    heap["wheel"] = ReadWrite(Handle=_[ARG0], Filter=Line(), InputEvent="answer")
    heap["wheel"].put("hello", "wheels", "bye")
    heap["answers"] = 0


def answer(_: HandlerArgs) -> None:
    heap = _[HEAP]
    print("client got", _[ARG0])
    heap["answers"] += 1
    if heap["answers"] == 3:
        del heap["wheel"]  # hang up: the server sees end of file


client_states = {
    "_start": client_start,
    "connected": connected,
    "answer": answer,
    "failed": failed,
}
Session.create(
    inline_states={
        "_start": server_start,
        "accepted": accepted,
        "echo": echo,
        "closed": closed,
        "failed": failed,
    }
)
poe_kernel.run()
