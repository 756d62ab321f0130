"""Record-transforming filter (POE::Filter::Map)."""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any

from kernelish.filters._code import CodeFilter

__all__ = ["Map"]


class Map(CodeFilter):
    """Pass each record through a callable, in both directions.

    Port of POE::Filter::Map, a filter between filters (in a :class:`Stackable`):
    ``Map(Code=f)`` applies ``f`` to records going both ways, ``Map(Get=f, Put=g)`` applies
    ``f`` to records read and ``g`` to records written; ``modify(...)`` swaps them later.

    The callable's return value is the new record.  A Perl map block returns a *list*, so it
    may drop a record or make several; in Python a callable that does so is a generator
    (``def f(record): ... yield ...``), whose items are the records -- none, one or many.
    Any other return value, a list included, is one record.

    Unlike POE 1.370, a record that maps to nothing does not end ``get`` early: POE's
    ``get_one`` returns an empty list for it, which its ``get`` takes for "no more input",
    leaving the records behind it buffered until the next read.
    """

    __slots__ = ()

    _owner = "Map"

    def get_one(self) -> list[Any]:
        """Return the records the next buffered record maps to, skipping those that map to
        none; ``[]`` once the buffer is empty."""
        self._raise_deferred()
        buffer = self._buffer
        code = self._get_code
        while buffer:
            records = _records(code(buffer.popleft()))
            if records:
                return records
        return []

    def put(self, records: Iterable[Any]) -> list[Any]:
        """Return the records ``Put`` (or ``Code``) maps ``records`` to."""
        code = self._put_code
        out: list[Any] = []
        for record in records:
            out += _records(code(record))
        return out


def _records(result: Any) -> list[Any]:
    return list(result) if isinstance(result, types.GeneratorType) else [result]
