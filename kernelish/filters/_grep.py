"""Record-selecting filter (POE::Filter::Grep)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kernelish.filters._code import CodeFilter

__all__ = ["Grep"]


class Grep(CodeFilter):
    """Pass only the records a predicate accepts, in both directions.

    Port of POE::Filter::Grep, a filter between filters (in a :class:`Stackable`):
    ``Grep(Code=pred)`` keeps the records for which ``pred(record)`` is true, going both ways;
    ``Grep(Get=p, Put=q)`` uses ``p`` on records read and ``q`` on records written;
    ``modify(...)`` swaps them later.  Records are passed through unchanged.
    """

    __slots__ = ()

    _owner = "Grep"

    def get_one(self) -> list[Any]:
        """Return ``[record]`` for the next buffered record ``Get`` accepts, else ``[]``."""
        self._raise_deferred()
        buffer = self._buffer
        accept = self._get_code
        while buffer:
            record = buffer.popleft()
            if accept(record):
                return [record]
        return []

    def put(self, records: Iterable[Any]) -> list[Any]:
        """Return the records ``Put`` (or ``Code``) accepts."""
        accept = self._put_code
        return [record for record in records if accept(record)]
