"""What Map and Grep share: their ``Code`` / ``Get`` / ``Put`` parameters and ``modify``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import LazyParams, ParameterError
from kernelish.filters._base import Filter

if TYPE_CHECKING:
    from kernelish.filters._models import CodeParams, ModifyParams

__all__ = ["CodeFilter", "check_callable"]

Code = Callable[[Any], Any]


def check_callable(value: Any) -> Any:
    """A parameter that must be callable (or None); ValueError says why not."""
    if value is not None and not callable(value):
        raise ValueError(f"must be callable (got {value!r})")
    return value


#: The parameters of Map and Grep, and of their ``modify`` (the models: :mod:`._models`).
_PARAMS = LazyParams("Filter", "kernelish.filters._models:CodeParams")
_MODIFY = LazyParams("Filter.modify", "kernelish.filters._models:ModifyParams")


class CodeFilter(Filter[Any]):
    """Base of Map and Grep: a record buffer and the two callables (not public)."""

    __slots__ = ("_buffer", "_get_code", "_put_code")

    _owner = "Filter"

    def __init__(self, **params: Any) -> None:
        parsed: CodeParams = _PARAMS.parse(params, self._owner)
        self._get_code: Code = parsed.code or parsed.get
        self._put_code: Code = parsed.code or parsed.put
        self._buffer: deque[Any] = deque()

    def clone(self) -> Self:
        """Return a filter with the same callables and an empty buffer (POE::Filter::clone)."""
        return type(self)(Get=self._get_code, Put=self._put_code)

    def get_one_start(self, chunks: Iterable[Any]) -> None:
        """Buffer the records ``chunks``."""
        self._buffer.extend(chunks)

    def get_pending(self) -> list[Any] | None:
        """Return the buffered records not yet passed through, or ``None``."""
        return list(self._buffer) or None

    def modify(self, **params: Any) -> None:
        """Replace the callables: ``Code`` (both directions), ``Get`` or ``Put``.

        Port of ``modify``; where POE warns about a value that is not a code reference and
        ignores it, this raises ``ParameterError`` (a ``TypeError``) and changes nothing.
        """
        if not params:
            raise ParameterError(f"{self._owner}.modify: give Code, Get or Put", owner=self._owner)
        parsed: ModifyParams = _MODIFY.parse(params, f"{self._owner}.modify")
        if parsed.code is not None:
            self._get_code = self._put_code = parsed.code
        if parsed.get is not None:
            self._get_code = parsed.get
        if parsed.put is not None:
            self._put_code = parsed.put
