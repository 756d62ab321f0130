"""What Map and Grep share: their ``Code`` / ``Get`` / ``Put`` parameters and ``modify``."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Self

from pydantic import field_validator, model_validator

from kernelish._params import ParameterError, Params, parse_params
from kernelish.filters._base import Filter

__all__ = ["CodeFilter", "CodeParams", "ModifyParams"]

Code = Callable[[Any], Any]


def _callable(value: Any) -> Any:
    if value is not None and not callable(value):
        raise ValueError(f"must be callable (got {value!r})")
    return value


class ModifyParams(Params):
    """Parameters of ``modify`` (POE::Filter::Map::modify and ::Grep::modify)."""

    code: Any = None
    get: Any = None
    put: Any = None

    _callables = field_validator("code", "get", "put")(_callable)


class CodeParams(ModifyParams):
    """Constructor parameters of :class:`Map` and :class:`Grep`: ``Code``, or ``Get`` and
    ``Put`` (POE::Filter::Map::new, POE::Filter::Grep::new)."""

    @model_validator(mode="after")
    def _code_or_get_and_put(self) -> Self:
        if self.code is not None:
            # POE silently prefers Code; two answers to one question is a mistake.
            if self.get is not None or self.put is not None:
                raise ValueError("Code cannot be combined with Get or Put")
        elif self.get is None or self.put is None:
            raise ValueError("requires a Code or both Get and Put parameters")
        return self


class CodeFilter(Filter[Any]):
    """Base of Map and Grep: a record buffer and the two callables (not public)."""

    __slots__ = ("_buffer", "_get_code", "_put_code")

    _owner = "Filter"

    def __init__(self, **params: Any) -> None:
        parsed = parse_params(CodeParams, self._owner, params)
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
        parsed = parse_params(ModifyParams, f"{self._owner}.modify", params)
        if parsed.code is not None:
            self._get_code = self._put_code = parsed.code
        if parsed.get is not None:
            self._get_code = parsed.get
        if parsed.put is not None:
            self._put_code = parsed.put
