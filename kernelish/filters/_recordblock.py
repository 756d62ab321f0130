"""Record-grouping filter (POE::Filter::RecordBlock)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import LazyParams
from kernelish.filters._base import Filter

if TYPE_CHECKING:
    from kernelish.filters._models import RecordBlockParams

__all__ = ["RecordBlock"]


#: RecordBlock's parameters (the model: :mod:`._models`); BlockSize is required.
_PARAMS = LazyParams("RecordBlock", "kernelish.filters._models:RecordBlockParams")


class RecordBlock(Filter[list[Any]]):
    """Group records into lists of ``BlockSize`` records, and flatten them back.

    Port of POE::Filter::RecordBlock, a filter between filters (in a :class:`Stackable`):
    ``get`` takes records and returns lists of exactly ``BlockSize`` of them, the rest waiting
    for more; ``put`` takes lists and returns their records, flattened.  With ``CheckPut``,
    ``put`` too returns only whole blocks and keeps the remainder for the next ``put``
    (:meth:`put_pending` shows it).  ``BlockSize`` is required.
    """

    __slots__ = ("_block_size", "_check_put", "_get_buffer", "_put_buffer")

    def __init__(self, **params: Any) -> None:
        parsed: RecordBlockParams = _PARAMS.parse(params)
        self._block_size = parsed.block_size
        self._check_put = parsed.check_put
        self._get_buffer: list[Any] = []
        self._put_buffer: list[Any] = []

    def clone(self) -> Self:
        """Return a filter with the same BlockSize and CheckPut and empty buffers."""
        return type(self)(BlockSize=self._block_size, CheckPut=self._check_put)

    def get_one_start(self, chunks: Iterable[Any]) -> None:
        """Buffer the records ``chunks`` (POE::Filter::RecordBlock::get_one_start)."""
        self._get_buffer.extend(chunks)

    def get_one(self) -> list[list[Any]]:
        """Return ``[block]`` once ``BlockSize`` records are buffered, else ``[]``."""
        self._raise_deferred()
        size = self._block_size
        buffer = self._get_buffer
        if len(buffer) < size:
            return []
        block = buffer[:size]
        del buffer[:size]
        return [block]

    def get(self, chunks: Iterable[Any]) -> list[list[Any]]:
        """Return every whole block of the buffered and given records (POE::Filter::get)."""
        self.get_one_start(chunks)
        self._raise_deferred()
        size = self._block_size
        buffer = self._get_buffer
        whole = len(buffer) - len(buffer) % size
        blocks = [buffer[start : start + size] for start in range(0, whole, size)]
        del buffer[:whole]
        return blocks

    def put(self, records: Iterable[Any]) -> list[Any]:
        """Flatten blocks into their records (POE::Filter::RecordBlock::put).

        Each item of ``records`` is a block: a list or tuple of records.  With ``CheckPut`` only
        whole blocks' worth of records are returned; the remainder waits for the next ``put``.
        """
        blocks = [_block(item) for item in records]
        if self._check_put:
            buffer = self._put_buffer
            for block in blocks:
                buffer.extend(block)
            whole = len(buffer) - len(buffer) % self._block_size
            flat = buffer[:whole]
            del buffer[:whole]
            return flat
        # Records left over from a CheckPut that was turned off go first (POE).
        flat, self._put_buffer = self._put_buffer, []
        for block in blocks:
            flat.extend(block)
        return flat

    def get_pending(self) -> list[Any] | None:
        """Return the records waiting for a whole block, or ``None``."""
        return list(self._get_buffer) or None

    def put_pending(self) -> list[Any] | None:
        """Return the records ``put`` is holding for a whole block (CheckPut), or ``None``."""
        if not self._check_put:
            return None
        return list(self._put_buffer) or None

    def blocksize(self, size: int | None = None) -> int:
        """Return BlockSize, first setting it to ``size`` if that is a positive int (POE)."""
        if size is not None:
            if type(size) is not int or size <= 0:
                raise ValueError(f"RecordBlock.blocksize: {size!r} is not a positive int")
            self._block_size = size
        return self._block_size

    def checkput(self, value: bool | None = None) -> bool:
        """Return CheckPut, first setting it to ``value`` if given (POE)."""
        if value is not None:
            self._check_put = bool(value)
        return self._check_put


def _block(item: Any) -> Sequence[Any]:
    if not isinstance(item, list | tuple):
        raise TypeError(
            f"RecordBlock.put: a block must be a list or tuple of records "
            f"(got {type(item).__name__})"
        )
    return item
