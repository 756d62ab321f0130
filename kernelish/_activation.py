"""systemd socket activation: listening sockets inherited as fds 3, 4, ...

systemd (or any supervisor speaking its protocol) starts the daemon with
``LISTEN_PID`` (this process), ``LISTEN_FDS`` (how many) and optionally
``LISTEN_FDNAMES`` (colon-separated names).  :func:`inherited_sockets` reads
them once, wraps the fds as sockets (close-on-exec, so programs the daemon
executes do not inherit them), and removes the variables from the
environment so children never misread them.  The result is cached for the
life of the process: ``detach()`` reads it *before* forking (the daemon's pid
no longer matches ``LISTEN_PID`` afterwards), and :class:`SocketFactory`
adopts these sockets, in order or by name, instead of binding.
"""

from __future__ import annotations

import os
import socket

__all__ = ["SD_LISTEN_FDS_START", "inherited_sockets", "take_inherited_socket"]

#: The first fd systemd passes (``SD_LISTEN_FDS_START``).
SD_LISTEN_FDS_START = 3

_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")
_inherited: list[tuple[str | None, socket.socket]] | None = None


def inherited_sockets() -> list[tuple[str | None, socket.socket]]:
    """The sockets passed to this process, as ``(name, socket)``, not yet
    adopted; read (and the variables consumed) on the first call."""
    global _inherited
    if _inherited is None:
        _inherited = _read_environment()
    return _inherited


def _read_environment() -> list[tuple[str | None, socket.socket]]:
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if pid is None or count is None or not pid.isdigit() or int(pid) != os.getpid():
        return []
    names_text = os.environ.get("LISTEN_FDNAMES")
    for key in _ENV:
        os.environ.pop(key, None)
    try:
        n = int(count)
    except ValueError:
        return []
    names: list[str | None] = list(names_text.split(":")) if names_text else []
    names += [None] * (n - len(names))
    found = []
    for i in range(n):
        fd = SD_LISTEN_FDS_START + i
        try:
            os.set_inheritable(fd, False)
            found.append((names[i], socket.socket(fileno=fd)))
        except OSError:
            continue
    return found


def take_inherited_socket(name: str | None = None) -> socket.socket | None:
    """Claim the next inherited socket (the one called ``name`` if given)."""
    sockets = inherited_sockets()
    for index, (sock_name, sock) in enumerate(sockets):
        if name is None or sock_name == name:
            del sockets[index]
            return sock
    return None
