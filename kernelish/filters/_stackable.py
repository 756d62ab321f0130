"""Filter stack (POE::Filter::Stackable).

Discussion
----------
A stack runs input up through its filters, first to last (the first faces the wire), and
output down, last to first.  POE's ``get_one`` asks every filter for one record per pass;
here :meth:`Stackable.get_one` pulls instead: it asks the top filter for a record and, only if
it has none, pulls one record from the filter below and feeds it up -- so unparsed input stays
as low in the stack as it can, which is what ``get_pending`` and a filter switch need.
``get`` passes the whole input through each filter's ``get`` in turn (the same records, one
call per filter instead of one per record).

Three POE 1.370 bugs are not copied, all of the same kind -- data handed to a filter's ``put``
and the result thrown away:

* ``get_pending`` returned only the last filter's pending data; the lower filters' pending
  data was ``put`` into the filter above and lost.  Here each filter's pending data is encoded
  down through the ``put`` of the filters below it (clones, so no filter's state changes) and
  all of it is returned, earliest first.
* ``shift`` ``put`` the removed first filter's pending octets into the new first filter and
  dropped the result.  Those octets are input: here they go to its ``get_one_start``.
* ``pop`` did the same with the removed last filter's pending data.  Those are records of the
  new last filter's kind, not yet delivered: here they are the next records the stack returns.

An empty stack passes records through unchanged both ways (POE's ``get_one_start`` dies).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Self

from kernelish._params import LazyParams
from kernelish.filters._base import Filter

__all__ = ["Stackable", "is_filter"]

_METHODS = ("get_one_start", "get_one", "get", "put", "get_pending", "clone")


def is_filter(obj: Any) -> bool:
    """A Filter, or anything with a filter's methods (POE duck-types its stack)."""
    return isinstance(obj, Filter) or all(callable(getattr(obj, m, None)) for m in _METHODS)


#: Stackable's parameters (the model: :mod:`._models`); ``Stackable()`` skips pydantic.
_PARAMS = LazyParams("Stackable", "kernelish.filters._models:StackableParams", {"filters": []})


class Stackable(Filter[Any]):
    """Chain filters: input goes up through ``Filters`` in order, output down in reverse.

    Port of POE::Filter::Stackable.  ``Stackable(Filters=[Line(), Map(Code=str.upper)])``
    reads lines and upper-cases them.  The stack is changed with :meth:`push` (on top, the
    record end), :meth:`pop`, :meth:`unshift` (at the bottom, the octet end) and :meth:`shift`;
    :meth:`filters` and :meth:`filter_types` show it.  Unlike POE's, ``get_pending``, ``pop``
    and ``shift`` lose no buffered data (see the module notes).
    """

    __slots__ = ("_filters", "_ready")

    def __init__(self, **params: Any) -> None:
        parsed = _PARAMS.parse(params)
        self._filters: list[Any] = list(parsed.filters)
        # Records to return before asking the filters (after a pop), or, in an empty stack,
        # everything given to it.
        self._ready: deque[Any] = deque()

    def clone(self) -> Self:
        """Return a stack of clones of the filters, all with empty buffers."""
        return type(self)(Filters=[f.clone() for f in self._filters])

    @property
    def deferred_error(self) -> Exception | None:
        if self._error is not None:
            return self._error
        for filt in self._filters:
            error = filt.deferred_error
            if error is not None:
                return error  # type: ignore[no-any-return]
        return None

    # -- input ---------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[Any]) -> None:
        """Give ``chunks`` to the first filter."""
        if self._filters:
            self._filters[0].get_one_start(chunks)
        else:
            self._ready.extend(chunks)

    def get_one(self) -> list[Any]:
        """Return the next record(s) out of the last filter, or ``[]``."""
        self._raise_deferred()
        if self._ready:
            return [self._ready.popleft()]
        if not self._filters:
            return []
        return self._pull(len(self._filters) - 1)

    def _pull(self, level: int) -> list[Any]:
        """Records out of filter ``level``, feeding it one batch at a time from below."""
        filt = self._filters[level]
        while True:
            records: list[Any] = filt.get_one()
            if records or level == 0:
                return records
            below = self._pull(level - 1)
            if not below:
                return []
            filt.get_one_start(below)

    def get(self, chunks: Iterable[Any]) -> list[Any]:
        """Pass ``chunks`` up through every filter's ``get``; return the last one's records."""
        if self._ready or not self._filters or self._error is not None:
            # Records or an error waiting: buffer the input, then deliver in order.
            return super().get(chunks)
        data: Any = chunks
        for filt in self._filters:
            data = filt.get(data)
        return data  # type: ignore[no-any-return]

    def get_pending(self) -> list[Any] | None:
        """Everything buffered, as input for the first filter, earliest first; or ``None``.

        Each filter's pending data is encoded down through clones of the filters below it,
        so this is exact when each of them turns records back into the same octets (Line with
        one terminator, Block, Reference, Map with inverse ``Get`` and ``Put``) and otherwise
        the nearest equivalent.
        """
        filters = self._filters
        pending: list[Any] = []
        for level in range(len(filters), -1, -1):
            data = list(self._ready) if level == len(filters) else filters[level].get_pending()
            if not data:
                continue
            for below in reversed(filters[:level]):
                data = below.clone().put(data)
            pending.extend(data)
        return pending or None

    # -- output ----------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[Any]:
        """Pass ``records`` down through every filter's ``put``, last to first."""
        data: Any = records
        for filt in reversed(self._filters):
            data = filt.put(data)
            if not data:
                return []
        return list(data)

    # -- the stack ---------------------------------------------------------------------------

    def filters(self) -> list[Any]:
        """The filters, first (octet end) to last (POE::Filter::Stackable::filters)."""
        return list(self._filters)

    def filter_types(self) -> list[type]:
        """The filters' classes, first to last (POE returns their package names)."""
        return [type(f) for f in self._filters]

    def push(self, *filters: Any) -> None:
        """Add ``filters`` on top, at the record end; records already waiting go into them."""
        self._check("push", filters)
        if not filters:
            return
        self._filters.extend(filters)
        if self._ready:
            ready = list(self._ready)
            self._ready.clear()
            filters[0].get_one_start(ready)

    def unshift(self, *filters: Any) -> None:
        """Add ``filters`` at the bottom, at the octet end (POE::Filter::Stackable::unshift)."""
        self._check("unshift", filters)
        if not filters:
            return
        was_empty = not self._filters
        self._filters[0:0] = filters
        if was_empty and self._ready:
            # An empty stack's buffer is raw input: the new filters parse it.
            ready = list(self._ready)
            self._ready.clear()
            filters[0].get_one_start(ready)

    def pop(self) -> Any:
        """Remove and return the last filter; its pending data and any records it had not
        returned become the stack's next records (POE: lost)."""
        if not self._filters:
            raise IndexError("Stackable.pop: the stack is empty")
        filt = self._filters.pop()
        waiting = filt.put(list(self._ready)) if self._ready else []
        self._ready = deque([*waiting, *(filt.get_pending() or ())])
        return filt

    def shift(self) -> Any:
        """Remove and return the first filter; its pending octets go to the new first filter
        as input (POE: lost)."""
        if not self._filters:
            raise IndexError("Stackable.shift: the stack is empty")
        filt = self._filters.pop(0)
        pending = filt.get_pending()
        if pending:
            self.get_one_start(pending)
        return filt

    @staticmethod
    def _check(method: str, filters: Sequence[Any]) -> None:
        for index, filt in enumerate(filters):
            if not is_filter(filt):
                raise TypeError(f"Stackable.{method}: argument {index} is not a filter ({filt!r})")
