"""A minimal stand-in for ``kernelish.filters.Reference`` (POE::Filter::Reference).

Another branch ports the real filter; until it is merged, the Run tests,
``bench/run.py`` and the ``examples/workers.py`` test use
:func:`reference_class`, which returns the real one when it exists and this
stand-in otherwise.  Once ``kernelish.filters.Reference`` is merged, this
module can go: replace ``reference_class()`` with the import.

The frame is POE's: ``<decimal length>\\0<serialized bytes>``; the
serializer is ``pickle`` (trusted peers: a parent and its own workers).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any, Self

import kernelish.filters
from kernelish.filters import Filter, FilterError

__all__ = ["Reference", "install", "reference_class"]

MAX_FRAME = 64 * 1024 * 1024


class Reference(Filter[Any]):
    """Frames of pickled objects (stand-in; see the module notes)."""

    def __init__(self, **params: Any) -> None:
        self._serializer = params.get("Serializer", pickle)
        self._buf = bytearray()

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self._buf += chunk

    def get_one(self) -> list[Any]:
        buf = self._buf
        nul = buf.find(b"\0", 0, 21)
        if nul < 0:
            if len(buf) > 20:
                raise FilterError("Reference: bogus frame length")
            return []
        head = bytes(buf[:nul])
        if not head.isdigit():
            raise FilterError(f"Reference: bogus frame length {head[:20]!r}")
        size = int(head)
        if size > MAX_FRAME:
            raise FilterError(f"Reference: frame of {size} octets is over the limit")
        end = nul + 1 + size
        if len(buf) < end:
            return []
        data = bytes(buf[nul + 1 : end])
        del buf[:end]
        return [self._serializer.loads(data)]

    def get(self, chunks: Iterable[bytes]) -> list[Any]:
        self.get_one_start(chunks)
        out: list[Any] = []
        while batch := self.get_one():
            out.extend(batch)
        return out

    def put(self, records: Iterable[Any]) -> list[bytes]:
        out = []
        for record in records:
            data = self._serializer.dumps(record)
            out.append(b"%d\0" % len(data) + data)
        return out

    def get_pending(self) -> list[bytes] | None:
        return [bytes(self._buf)] if self._buf else None

    def clone(self) -> Self:
        return type(self)(Serializer=self._serializer)


def reference_class() -> type[Filter[Any]]:
    """``kernelish.filters.Reference`` once merged, else the stand-in."""
    real = getattr(kernelish.filters, "Reference", None)
    return real if real is not None else Reference


def install() -> None:
    """Make ``from kernelish.filters import Reference`` work in this process
    (for running ``examples/workers.py`` before the real filter is merged)."""
    if getattr(kernelish.filters, "Reference", None) is None:
        kernelish.filters.Reference = Reference  # type: ignore[attr-defined]
