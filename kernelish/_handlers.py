"""How a state's callable is stored: plain functions as they are, coroutine
functions wrapped to run as asyncio tasks (see :mod:`kernelish._asyncio`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["as_handler"]

#: ``inspect.CO_COROUTINE``: inspect itself (with dis, ast and the _opcode
#: extension) is 0.9 MB and 6 mappings more in every process.
_CO_COROUTINE = 0x80


def _is_coroutine_function(func: Any) -> bool:
    """``inspect.iscoroutinefunction``: an ``async def``, also behind
    ``functools.partial`` or as a bound method."""
    while isinstance(func, functools.partial):
        func = func.func
    func = getattr(func, "__func__", func)
    code = getattr(func, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_COROUTINE)


def as_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """A state's callable as the kernel runs it.

    A coroutine function is wrapped so that its coroutine becomes a task on
    the loop of ``run_async``; the choice is made once, when the state is
    registered, so the dispatch path pays nothing for it.
    """
    if not _is_coroutine_function(func):
        return func

    @functools.wraps(func)
    def run_coroutine(_: Any) -> Any:
        from ._asyncio import adopt_coroutine

        return adopt_coroutine(_.kernel, _.session, _.state, func(_))

    return run_coroutine
