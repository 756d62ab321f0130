"""Pass-through filter."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Self

from kernelish._params import LazyParams
from kernelish.filters._base import Filter

__all__ = ["Stream"]


#: Stream takes no parameters: ``Stream()`` skips pydantic, anything else is refused by it.
_PARAMS = LazyParams("Stream", "kernelish.filters._models:StreamParams", {})


class Stream(Filter[bytes]):
    """Pass octets through unchanged: each ``get`` returns the chunks received.

    Port of POE::Filter::Stream.  Records are ``bytes``; ``put`` accepts bytes-like records
    and ``str`` (encoded as UTF-8).
    """

    __slots__ = ("_buffer",)

    def __init__(self, **params: Any) -> None:
        _PARAMS.parse(params)
        self._buffer: list[bytes] = []

    def get(self, chunks: Iterable[bytes]) -> list[bytes]:
        """Return all buffered and given octets as one record (POE::Filter::Stream::get)."""
        self.get_one_start(chunks)
        return self.get_one()

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` (POE::Filter::Stream::get_one_start)."""
        self._buffer.extend(bytes(chunk) for chunk in chunks if chunk)

    def get_one(self) -> list[bytes]:
        """Return everything buffered as one record, or ``[]`` (POE::Filter::Stream::get_one)."""
        if not self._buffer:
            return []
        data = b"".join(self._buffer)
        self._buffer.clear()
        return [data]

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Return the records as octet chunks (POE::Filter::Stream::put)."""
        return [
            record.encode("utf-8") if isinstance(record, str) else bytes(record)
            for record in records
        ]

    def get_pending(self) -> list[bytes] | None:
        """Return ``[buffered octets]`` or ``None`` (POE::Filter::Stream::get_pending)."""
        if not self._buffer:
            return None
        return [b"".join(self._buffer)]

    def clone(self) -> Self:
        """Return a new Stream filter with an empty buffer (POE::Filter::clone)."""
        return type(self)()
