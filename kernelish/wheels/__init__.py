"""Wheels: reusable I/O state machines that live in a session's heap
(POE::Wheel::*).

``SocketFactory`` listens for and makes connections; ``ListenAccept``
accepts on a listening socket the program made; ``ReadWrite`` moves
records over a handle through a filter and a driver; ``FollowTail`` follows
the end of a growing file through rotation; ``Run`` runs a program or a
callable in a child process and talks to it over its stdio.  Dropping a wheel's last
reference (``del heap['wheel']``) releases its watchers at once, as POE's
DESTROY does.
"""

from kernelish.wheels._base import MODE_READ, MODE_WRITE, Wheel
from kernelish.wheels._followtail import FollowTail
from kernelish.wheels._listenaccept import ListenAccept
from kernelish.wheels._readwrite import ReadWrite
from kernelish.wheels._run import Run
from kernelish.wheels._socketfactory import SocketFactory, reuse_enabled

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
