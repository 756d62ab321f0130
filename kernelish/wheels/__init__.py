"""Wheels: reusable I/O state machines that live in a session's heap
(POE::Wheel::*).

``SocketFactory`` listens for and makes connections; ``ListenAccept``
accepts on a listening socket the program made; ``ReadWrite`` moves
records over a handle through a filter and a driver; ``FollowTail`` follows
the end of a growing file through rotation; ``Run`` runs a program or a
callable in a child process and talks to it over its stdio.  Dropping a wheel's last
reference (``del heap['wheel']``) releases its watchers at once, as POE's
DESTROY does.

``Run`` is imported on first use (``from kernelish.wheels import Run`` does
it): it brings ``subprocess``, ``termios``, ``pwd``, ``grp`` and its
parameter model, which a server that runs no programs should not carry into
every child it forks.
"""

from typing import TYPE_CHECKING, Any

from kernelish.wheels._base import MODE_READ, MODE_WRITE, Wheel
from kernelish.wheels._followtail import FollowTail
from kernelish.wheels._listenaccept import ListenAccept
from kernelish.wheels._readwrite import ReadWrite
from kernelish.wheels._socketfactory import SocketFactory, reuse_enabled

if TYPE_CHECKING:
    from kernelish.wheels._run import Run

__all__ = [
    "MODE_READ",
    "MODE_WRITE",
    "FollowTail",
    "ListenAccept",
    "ReadWrite",
    "Run",
    "SocketFactory",
    "Wheel",
    "reuse_enabled",
]


def __getattr__(name: str) -> Any:
    if name == "Run":
        from kernelish.wheels._run import Run

        globals()["Run"] = Run
        return Run
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
