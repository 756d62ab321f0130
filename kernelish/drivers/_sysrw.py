"""Buffered non-blocking I/O with read(2) and write(2)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

from kernelish._params import LazyParams, positive_int

__all__ = [
    "COALESCE_LIMIT",
    "DEFAULT_BLOCK_SIZE",
    "Driver",
    "Handle",
    "HasFileno",
    "Octets",
    "SysRW",
]

DEFAULT_BLOCK_SIZE = 65536
"""Default ``BlockSize``: the most octets one read takes."""

COALESCE_LIMIT = 65536
"""Small queued chunks are joined into writes of up to this many octets (one syscall each)."""


class HasFileno(Protocol):
    """Anything with a ``fileno()`` method: sockets, pipes, file objects."""

    def fileno(self) -> int:
        """Return the underlying OS file descriptor."""
        ...


Handle = HasFileno | int
"""A handle a driver reads or writes: an object with ``fileno()`` or a raw descriptor."""


Octets = bytes | bytearray | memoryview
"""Output chunks a driver accepts (``collections.abc.Buffer`` needs Python 3.12)."""


def _fd(handle: Handle) -> int:
    return handle if isinstance(handle, int) else handle.fileno()


class Driver(ABC):
    """Abstract base for drivers: move octets between a handle and the filter layer.

    Port of POE::Driver.  ``get`` reads once; ``put`` queues output; ``flush`` writes as much
    of the queue as the handle accepts without blocking.
    """

    @abstractmethod
    def get(self, handle: Handle) -> list[bytes] | None:
        """Read once: ``[data]``, ``[]`` if nothing is ready, ``None`` at EOF (POE's get)."""

    @abstractmethod
    def put(self, chunks: Iterable[Octets]) -> int:
        """Queue ``chunks`` for output; return the octets queued in total (POE's put)."""

    @abstractmethod
    def flush(self, handle: Handle) -> int:
        """Write queued output until done or blocked; return octets left (POE's flush)."""

    @abstractmethod
    def get_out_messages_buffered(self) -> int:
        """Number of chunks still queued (POE::Driver::get_out_messages_buffered)."""

    @abstractmethod
    def get_out_octets_buffered(self) -> int:
        """Number of octets still queued."""


#: SysRW's parameters (the model: :mod:`._sysrw_params`).
_PARAMS = LazyParams(
    "SysRW",
    "kernelish.drivers._sysrw_params:SysRWParams",
    {"block_size": DEFAULT_BLOCK_SIZE},
    {"block_size": positive_int},
)


class SysRW(Driver):
    """Non-blocking buffered I/O using ``os.read`` and ``os.write``.

    Port of POE::Driver::SysRW.  ``SysRW(BlockSize=65536)`` (or ``block_size=``) sets the
    most octets one :meth:`get` reads.  Where POE signals errors through ``$!``, this raises
    :class:`OSError`; "would block" (EAGAIN/EWOULDBLOCK) and EINTR are not errors.
    """

    __slots__ = ("_block_size", "_octets", "_offset", "_queue")

    def __init__(self, **params: Any) -> None:
        self._block_size: int = _PARAMS.parse(params).block_size
        # Output queue; the first _offset octets of _queue[0] are already written.  Partial
        # writes advance the offset instead of re-slicing, so output stays linear in size.
        self._queue: deque[bytes] = deque()
        self._offset = 0
        self._octets = 0

    @property
    def block_size(self) -> int:
        """The most octets one :meth:`get` reads (POE's BlockSize)."""
        return self._block_size

    def get(self, handle: Handle) -> list[bytes] | None:
        """Read up to BlockSize octets once (POE::Driver::SysRW::get).

        Returns ``[data]``, ``[]`` if the read would block (or was interrupted), ``None`` at
        EOF.  Raises :class:`OSError` on a real error such as ECONNRESET.
        """
        try:
            data = os.read(_fd(handle), self._block_size)
        except (BlockingIOError, InterruptedError):
            return []
        return [data] if data else None

    def put(self, chunks: Iterable[Octets]) -> int:
        """Queue the non-empty ``chunks``; return the octets queued (POE::Driver::SysRW::put).

        Mutable buffers (bytearray, memoryview) are copied, so the caller may reuse them.
        """
        queue = self._queue
        octets = self._octets
        for chunk in chunks:
            data = chunk if type(chunk) is bytes else bytes(chunk)
            if data:
                queue.append(data)
                octets += len(data)
        self._octets = octets
        return octets

    def flush(self, handle: Handle) -> int:
        """Write queued output until it is all written or the handle would block.

        Port of POE::Driver::SysRW::flush.  Returns the octets still queued.  Raises
        :class:`OSError` on a real error (EPIPE, ECONNRESET, ...); the queue is kept.
        """
        fd = _fd(handle)
        queue = self._queue
        while queue:
            first = queue[0]
            offset = self._offset
            if len(first) - offset < COALESCE_LIMIT and len(queue) > 1:
                data: Octets = self._coalesce()
            elif offset:
                data = memoryview(first)[offset:]
            else:
                data = first
            try:
                written = os.write(fd, data)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            self._consume(written)
        return self._octets

    def _coalesce(self) -> bytes:
        """Join the head of the queue into one buffer of at most COALESCE_LIMIT octets."""
        queue = self._queue
        head = queue[0]
        parts: list[Octets] = [memoryview(head)[self._offset :] if self._offset else head]
        total = len(head) - self._offset
        for index in range(1, len(queue)):
            chunk = queue[index]
            if total + len(chunk) > COALESCE_LIMIT:
                break
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)

    def _consume(self, written: int) -> None:
        """Drop ``written`` octets from the front of the queue."""
        self._octets -= written
        queue = self._queue
        offset = self._offset + written
        while queue and offset >= len(queue[0]):
            offset -= len(queue.popleft())
        self._offset = offset

    def get_out_messages_buffered(self) -> int:
        """Number of chunks still (at least partly) queued (POE's get_out_messages_buffered)."""
        return len(self._queue)

    def get_out_octets_buffered(self) -> int:
        """Number of octets still queued."""
        return self._octets
