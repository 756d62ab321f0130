"""The filter interface and filter errors."""

from __future__ import annotations

import errno as _errno
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Generic, Self, TypeVar

__all__ = ["Filter", "FilterError", "RecordTooLong"]

R = TypeVar("R")


class FilterError(ValueError):
    """A filter could not parse its input stream.

    POE filters ``die`` on malformed input; kernelish raises this instead.  ``errno`` carries
    the closest OS error number so wheels can report it the way they report I/O errors.
    """

    errno: int = _errno.EINVAL

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        if errno is not None:
            self.errno = errno


class RecordTooLong(FilterError):
    """A record (or the unterminated data buffered for one) exceeded the filter's limit.

    Port of POE::Filter::Line's "Next line exceeds maximum line length" / "Framing buffer
    exceeds the limit" deaths.  ``errno`` is ``EMSGSIZE``.
    """

    errno: int = _errno.EMSGSIZE


class Filter(ABC, Generic[R]):
    """Abstract base for filters: turn a stream of octet chunks into records and back.

    Port of POE::Filter.  ``get``/``get_one_start``/``get_one`` parse input, ``put`` serializes
    records, ``get_pending`` returns buffered unparsed octets, ``clone`` gives a filter with the
    same configuration and an empty buffer.
    """

    def get(self, chunks: Iterable[bytes]) -> list[R]:
        """Parse ``chunks`` and return every complete record (POE::Filter::get)."""
        self.get_one_start(chunks)
        records: list[R] = []
        while batch := self.get_one():
            records.extend(batch)
        return records

    @abstractmethod
    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` for later ``get_one`` calls (POE::Filter::get_one_start)."""

    @abstractmethod
    def get_one(self) -> list[R]:
        """Return ``[record]`` for the next complete record, or ``[]`` (POE::Filter::get_one)."""

    @abstractmethod
    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Serialize ``records`` into octet chunks (POE::Filter::put)."""

    @abstractmethod
    def get_pending(self) -> list[bytes] | None:
        """Return buffered unparsed octets as ``[data]``, or ``None`` (POE::Filter::get_pending)."""

    @abstractmethod
    def clone(self) -> Self:
        """Return a filter with the same configuration and an empty buffer (POE::Filter::clone)."""
