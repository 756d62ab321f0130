"""The Daemon's control channel: one protocol for the daemon and ``kernelish``.

Discussion
----------
A daemon with a ``pidfile`` serves a UNIX stream socket beside it,
``<pidfile>.sock`` (:func:`socket_path`), and the ``kernelish
status|peek|stop`` command talks to it.  Both sides take everything from
this module: the path rule, the framing (one JSON object per line,
:func:`encode` / :func:`decode`), the size limits, the peer-credential rule
(:func:`peer_allowed`) and, on the client side, the proof that a pid is
really the daemon's (:func:`verify`).

The daemon's side (``_services.py``) reads through the kernel's own
watchers, never blocking: a client's credentials are checked (``SO_PEERCRED``)
when it is accepted, *before* anything it sent is read; a refused client gets
its answer at once and nothing it sends is parsed; an accepted one has
:data:`REQUEST_TIMEOUT` seconds to send one line of at most
:data:`MAX_REQUEST` octets, and its connection is closed
:data:`ANSWER_TIMEOUT` seconds after it was accepted whatever it does (a
``peek`` waiting for its dump: :data:`PEEK_TIMEOUT`).  At most
:data:`MAX_CONNECTIONS` are served at once; more are closed on arrival.

The identity proof
------------------
``kernelish stop`` runs as root and signals pids.  A pid read from a file
proves nothing: the pidfile's directory belongs to the service user (it must
write the file after dropping privileges), so that user can write any pid
into it -- root's sshd, say -- and hold a ``flock`` on it.  So the command
signals a pid only when every one of these holds (:func:`verify`):

1. the pidfile is a regular file (never a symbolic link), locked by a live
   process, naming a pid;
2. a *pidfd* is opened on that pid before anything else is checked, and
   every signal goes through it (``pidfd_send_signal``): once the checks
   pass, the pid cannot be reused behind the command's back;
3. the process listening on the control socket -- as the kernel reports it
   to the client (``SO_PEERCRED`` on a connected UNIX socket names the
   process that called ``listen()``, which no user can forge) -- *is* that
   pid;
4. the pidfile and the socket are owned by root or by the listener's uid;
5. the socket answers a ``status`` request as a kernelish daemon
   (:data:`SERVICE`) naming that pid.

Children are signalled only if ``/proc`` shows them as children of the
verified pid (or of a verified child), each through a pidfd opened before
its parent is checked; what the daemon *says* about its children is never
used for signalling.  Any failed check refuses with one line saying which,
and the command exits non-zero.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import stat
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ._pidfile import is_locked, read_pid

__all__ = [
    "ANSWER_TIMEOUT",
    "MAX_ANSWER",
    "MAX_CONNECTIONS",
    "MAX_REQUEST",
    "PEEK_TIMEOUT",
    "REQUEST_TIMEOUT",
    "SERVICE",
    "SOCKET_PATH_MAX",
    "ControlClient",
    "ControlError",
    "Credentials",
    "VerifiedDaemon",
    "VerifiedProcess",
    "decode",
    "dumps",
    "encode",
    "listening_addresses",
    "peer_allowed",
    "peer_credentials",
    "socket_path",
    "verified",
    "verify",
    "wait_gone",
]

#: Longest request line (octets, newline included) the daemon reads.
MAX_REQUEST = 4096
#: Longest answer line the command accepts (a ``peek`` dump can be long).
MAX_ANSWER = 16 * 2**20
#: Seconds a client has, from its connection, to send its request line.
REQUEST_TIMEOUT = 2.0
#: Seconds after which the daemon closes a control connection in any case.
ANSWER_TIMEOUT = 10.0
#: Seconds a ``peek`` request may wait for the SIGUSR2 dump.
PEEK_TIMEOUT = 30.0
#: Control connections the daemon serves at once; more are closed at once.
MAX_CONNECTIONS = 16
#: What a daemon's ``status`` answer says it is (``"service"``).
SERVICE = "kernelish.daemon"
#: Longest UNIX socket path (``sun_path`` is 108 octets with its NUL).
SOCKET_PATH_MAX = 107


class ControlError(RuntimeError):
    """The daemon is not running, cannot be proven to be the pidfile's
    process, or would not answer; the message says which, in one line."""


def socket_path(pidfile: Path) -> Path:
    """Where the control socket of the daemon with ``pidfile`` lives."""
    pidfile = Path(pidfile)
    return pidfile.with_name(pidfile.name + ".sock")


def dumps(message: dict[str, Any]) -> str:
    """A message as protocol text: compact JSON, no newline (one line)."""
    import json  # here: a master without a pidfile has no control socket

    return json.dumps(message, separators=(",", ":"))


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line: compact JSON and a newline."""
    return dumps(message).encode() + b"\n"


def decode(line: bytes | str) -> dict[str, Any] | None:
    """The JSON object on ``line`` (its newline optional); None if it is not one."""
    import json

    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Credentials(NamedTuple):
    """A UNIX socket peer as the kernel reports it (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


_UCRED = struct.Struct("3i")


def peer_credentials(sock: socket.socket) -> Credentials:
    """``SO_PEERCRED`` of a connected UNIX socket.  On the daemon's side:
    the client; on the client's side: the process that called ``listen()``."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return Credentials(*_UCRED.unpack(raw))


def peer_allowed(uid: int, daemon_uid: int) -> bool:
    """Whether a client with ``uid`` may use the control socket of a daemon
    running as ``daemon_uid``: root, or the daemon's own user."""
    return uid == 0 or uid == daemon_uid


def listening_addresses(pid: int) -> list[str]:
    """The TCP/UDP addresses process ``pid`` listens on, as ``host:port``
    ([] if they cannot be read): its listening TCP sockets and bound UDP
    ones -- what psutil's ``net_connections('inet')`` finds, without psutil
    (every master asks once it is ready, and psutil would be some 15
    mappings and 0.4 MB more for each child it forks after).

    This process's own sockets are asked directly (:func:`_own_listening`);
    another's are found in ``/proc`` (:func:`_proc_listening`), which lists
    every connection of the network namespace -- tens of thousands of rows,
    some 100 ms, on a host that has just served as many connections."""
    if pid == os.getpid():
        return _own_listening()
    return _proc_listening(pid)


def _own_listening() -> list[str]:
    """This process's listening TCP and bound UDP sockets (IPv4 and IPv6)."""
    out = set()
    try:
        fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    except OSError:
        return []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            # A socket object made on an fd sets it non-blocking when the
            # program has set a default timeout: it is put back after.
            blocking = os.get_blocking(fd)
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if sock.type == socket.SOCK_STREAM:
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    continue
            elif sock.type != socket.SOCK_DGRAM:
                continue
            host, port = sock.getsockname()[:2]
        except OSError:
            continue
        finally:
            sock.detach()  # the fd is someone else's: never closed here
            if os.get_blocking(fd) != blocking:
                os.set_blocking(fd, blocking)
        if port:
            host = host.partition("%")[0]  # /proc gives no IPv6 scope
            out.add(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return sorted(out)


def _proc_listening(pid: int) -> list[str]:
    """Process ``pid``'s listening TCP and bound UDP sockets, from ``/proc``."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, family in (("tcp", 4), ("tcp6", 6), ("udp", 4), ("udp6", 6)):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        tcp = table.startswith("tcp")
        for row in rows:
            # The namespace's every connection is there (thousands in
            # TIME_WAIT on a busy host): skip those before splitting.
            if tcp and " 0A " not in row:
                continue
            fields = row.split()
            if len(fields) < 10 or fields[9] not in inodes:
                continue
            if tcp and fields[3] != "0A":  # TCP_LISTEN
                continue
            address = _proc_address(fields[1], family)
            if address is not None:
                out.add(address)
    return sorted(out)


def _proc_address(text: str, family: int) -> str | None:
    """``"0100007F:1F90"`` (``/proc/net/*``: the address as the host's
    32-bit words, the port in hex) as ``"127.0.0.1:8080"``; None for port 0."""
    hex_ip, _, hex_port = text.partition(":")
    port = int(hex_port, 16)
    if not port:
        return None
    raw = bytes.fromhex(hex_ip)
    # Each 32-bit word is in the host's byte order.
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    packed = struct.pack(f"!{len(words)}I", *words)
    if family == 4:
        return f"{socket.inet_ntop(socket.AF_INET, packed)}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, packed)}]:{port}"


# -- the client ---------------------------------------------------------------------------


class ControlClient:
    """One connection to a daemon's control socket, from the ``kernelish`` side.

    ``expect_pid``: refuse (ControlError) unless the listener is that pid.
    """

    def __init__(self, pidfile: Path, timeout: float = 5.0, expect_pid: int | None = None) -> None:
        path = socket_path(pidfile)
        self.path = path
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ControlError(
                f"no control socket {str(path)!r}: the daemon does not serve one"
            ) from None
        except OSError as exc:
            raise ControlError(
                f"cannot look at the control socket {str(path)!r}: {exc.strerror}"
            ) from None
        if not stat.S_ISSOCK(st.st_mode):
            raise ControlError(f"{str(path)!r} is not a socket; refusing to use it")
        self.socket_uid = st.st_uid
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
            self.peer = peer_credentials(self.sock)
        except PermissionError:
            self.sock.close()
            raise ControlError(
                f"permission denied on the control socket {str(path)!r}: only root and its "
                f"owner (uid {st.st_uid}) may control the daemon"
            ) from None
        except OSError as exc:
            self.sock.close()
            raise ControlError(
                f"cannot reach the daemon's control socket {str(path)!r}: {exc.strerror or exc}"
            ) from None
        if expect_pid is not None and self.peer.pid != expect_pid:
            self.sock.close()
            raise ControlError(
                f"the control socket {str(path)!r} is served by pid {self.peer.pid}, not by "
                f"pid {expect_pid}; refusing to trust it"
            )
        self.buffer = b""

    def send(self, request: dict[str, Any]) -> None:
        """Send one request line."""
        try:
            self.sock.sendall(encode(request))
        except OSError as exc:
            raise ControlError(
                f"the daemon closed the control connection ({exc.strerror})"
            ) from None

    def receive(self) -> dict[str, Any]:
        """The next answer line; ControlError if it says ``ok: false``."""
        try:
            while b"\n" not in self.buffer:
                if len(self.buffer) > MAX_ANSWER:
                    raise ControlError("the daemon's answer is too long")
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ControlError("the daemon closed the control connection")
                self.buffer += chunk
        except TimeoutError:
            raise ControlError("the daemon did not answer in time") from None
        except OSError as exc:
            raise ControlError(f"the control connection failed: {exc.strerror or exc}") from None
        line, self.buffer = self.buffer.split(b"\n", 1)
        answer = decode(line)
        if answer is None:
            raise ControlError("the control socket's answer is not a JSON object")
        if not answer.get("ok"):
            raise ControlError(f"the daemon refused: {answer.get('error')}")
        return answer

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` and return its answer."""
        self.send(request)
        return self.receive()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the identity proof -----------------------------------------------------------------


@dataclass
class VerifiedProcess:
    """A process proven to be the daemon or one of its descendants, held by
    a pidfd: signalling it can never reach another process."""

    pid: int
    pidfd: int

    def signal(self, sig: int) -> bool:
        """Send ``sig``; False if the process is gone."""
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            raise ControlError(
                f"permission denied: cannot signal pid {self.pid} (run as root or as its user)"
            ) from None
        return True

    def alive(self) -> bool:
        """Whether the process still runs (a pidfd turns readable when it exits)."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.pidfd)


@dataclass
class VerifiedDaemon(VerifiedProcess):
    """The daemon behind a pidfile, proven by :func:`verify`."""

    pidfile: Path = Path()
    uid: int = -1
    info: dict[str, Any] = field(default_factory=dict)

    def client(self, timeout: float = 5.0) -> ControlClient:
        """Another connection to the control socket, checked to be this daemon's."""
        return ControlClient(self.pidfile, timeout, expect_pid=self.pid)

    def descendants(self) -> list[VerifiedProcess]:
        """The daemon's children, and theirs, each verified (module notes)."""
        found: list[VerifiedProcess] = []
        parents = [self.pid]
        seen = {self.pid}
        while parents:
            parent = parents.pop()
            for pid in _children_of(parent):
                if pid in seen:
                    continue
                proc = _verified_child(pid, parent)
                if proc is not None:
                    seen.add(pid)
                    found.append(proc)
                    parents.append(pid)
        return found


def _children_of(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def _verified_child(pid: int, parent: int) -> VerifiedProcess | None:
    """``pid`` held by a pidfd, if it is (still) a child of ``parent``."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None
    proc = VerifiedProcess(pid, pidfd)
    import psutil

    try:
        ppid = psutil.Process(pid).ppid()
    except psutil.Error:
        ppid = -1
    # Alive after the read: /proc described the process the pidfd holds.
    if ppid != parent or not proc.alive():
        proc.close()
        return None
    return proc


def _owner_check(path: Path, what: str, daemon_uid: int) -> None:
    try:
        owner = os.lstat(path).st_uid
    except OSError as exc:
        raise ControlError(f"cannot look at the {what} {str(path)!r}: {exc.strerror}") from None
    if owner not in (0, daemon_uid):
        raise ControlError(
            f"the {what} {str(path)!r} belongs to uid {owner}, neither root nor the "
            f"daemon's user (uid {daemon_uid}); refusing to trust it"
        )


def verify(pidfile: Path, timeout: float = 5.0) -> VerifiedDaemon:
    """Prove that the pid in ``pidfile`` is a live kernelish daemon serving
    ``<pidfile>.sock`` (module notes); ControlError says why not.  The
    caller closes the result (its pidfd)."""
    pidfile = Path(pidfile)
    where = repr(str(pidfile))
    try:
        st = os.lstat(pidfile)
    except FileNotFoundError:
        raise ControlError(f"no pidfile {where}: the daemon is not running") from None
    except OSError as exc:
        raise ControlError(f"cannot look at pidfile {where}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ControlError(f"pidfile {where} is not a regular file; refusing to trust it")
    pid = read_pid(pidfile)
    if not is_locked(pidfile):
        raise ControlError(
            f"pidfile {where} is stale (pid {pid}, not locked): the daemon is not running"
        )
    if pid is None:
        raise ControlError(f"pidfile {where} holds no pid")
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        raise ControlError(f"pid {pid} named in pidfile {where} does not exist") from None
    except OSError as exc:
        raise ControlError(f"cannot open pid {pid}: {exc.strerror}") from None
    daemon = VerifiedDaemon(pid, pidfd, pidfile=pidfile)
    try:
        with ControlClient(pidfile, timeout) as conn:
            listener = conn.peer
            if listener.pid != pid:
                raise ControlError(
                    f"pidfile {where} names pid {pid}, but its control socket is served by "
                    f"pid {listener.pid}; refusing to signal pid {pid}"
                )
            _owner_check(pidfile, "pidfile", listener.uid)
            _owner_check(conn.path, "control socket", listener.uid)
            info = conn.ask({"cmd": "status"})
        if info.get("service") != SERVICE or info.get("pid") != pid:
            raise ControlError(
                f"the control socket of pidfile {where} does not answer as kernelish "
                f"daemon {pid}; refusing to signal it"
            )
        if not daemon.alive():
            raise ControlError(f"daemon {pid} exited meanwhile")
    except BaseException:
        daemon.close()
        raise
    daemon.uid = listener.uid
    daemon.info = info
    return daemon


@contextlib.contextmanager
def verified(pidfile: Path, timeout: float = 5.0) -> Iterator[VerifiedDaemon]:
    """:func:`verify` as a context manager (the pidfd closed at the end)."""
    daemon = verify(pidfile, timeout)
    try:
        yield daemon
    finally:
        daemon.close()


def wait_gone(procs: list[VerifiedProcess], deadline: float) -> list[VerifiedProcess]:
    """Wait until every process in ``procs`` exited or ``deadline``
    (``time.monotonic()``) passed; the ones still running."""
    left = [p for p in procs if p.alive()]
    while left:
        wait = deadline - time.monotonic()
        if wait <= 0:
            break
        poller = select.poll()
        for proc in left:
            poller.register(proc.pidfd, select.POLLIN)
        poller.poll(min(wait, 0.5) * 1000)
        left = [p for p in left if p.alive()]
    return left
