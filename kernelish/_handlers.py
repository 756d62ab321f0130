"""How a state's callable is stored: plain functions as they are, coroutine
functions wrapped to run as asyncio tasks (see :mod:`kernelish._asyncio`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import FunctionType, MethodType
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
    # A plain function or a method -- nearly every state -- is looked at
    # directly: a component's session registers a dozen states per
    # connection (ClientTCP, ServerTCP's), and the general check cost a
    # ClientTCP's creation about a third of Session.create.
    kind = func.__class__
    if kind is MethodType:
        inner = func.__func__  # type: ignore[attr-defined]
        if inner.__class__ is FunctionType and not inner.__code__.co_flags & _CO_COROUTINE:
            return func
    elif kind is FunctionType and not func.__code__.co_flags & _CO_COROUTINE:
        return func
    if not _is_coroutine_function(func):
        return func

    @functools.wraps(func)
    def run_coroutine(_: Any) -> Any:
        from ._asyncio import adopt_coroutine

        return adopt_coroutine(_.kernel, _.session, _.state, func(_))

    return run_coroutine
