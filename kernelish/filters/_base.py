"""The filter interface and filter errors."""

from __future__ import annotations

import errno as _errno
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
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

    An error found behind complete records does not lose them: ``get`` returns the records
    before it and the error is raised by the next ``get`` or ``get_one`` (the wheels ask again
    at once when ``deferred_error`` is set, so the error is reported without waiting for input).
    """

    #: The error the next ``get``/``get_one`` raises (see the class notes); None if none.
    _error: Exception | None = None

    @property
    def deferred_error(self) -> Exception | None:
        """The error held back behind records already returned, or None (read by the wheels)."""
        return self._error

    def get(self, chunks: Iterable[bytes]) -> list[R]:
        """Parse ``chunks`` and return every complete record (POE::Filter::get)."""
        self.get_one_start(chunks)
        return self._drain(self.get_one)

    def _raise_deferred(self) -> None:
        """Raise the error held back by the last ``get``, once."""
        error = self._error
        if error is not None:
            self._error = None
            raise error

    def _drain(self, next_batch: Callable[[], list[R]]) -> list[R]:
        """Call ``next_batch`` until it returns ``[]``; an error after some records is held
        back for the next call instead of discarding them."""
        self._raise_deferred()
        records: list[R] = []
        try:
            while batch := next_batch():
                records.extend(batch)
        except Exception as exc:
            if not records:
                raise
            self._error = exc
        return records

    def _get_chunkwise(self, chunks: Iterable[bytes]) -> list[R]:
        """``get`` for framing filters: parse each chunk as soon as it is buffered, so the
        filter never holds more than one partial record and one chunk, however many chunks
        come at once.  After an error the chunks behind it are still buffered (not parsed),
        and the error waits behind the records already parsed."""
        pending = list(chunks)
        records: list[R] = []
        for index, chunk in enumerate(pending):
            try:
                self.get_one_start((chunk,))
                records += self._drain(self.get_one)
            except Exception as exc:
                error: Exception = exc
            else:
                if self._error is None:
                    continue
                error, self._error = self._error, None
            try:
                self.get_one_start(pending[index + 1 :])
            except FilterError:
                pass  # the buffer is gone; the first error stands for both
            if not records:
                raise error
            self._error = error
            return records
        if not pending:
            records = self._drain(self.get_one)
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
