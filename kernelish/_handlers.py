"""How a state's callable is stored: plain functions as they are, coroutine
functions wrapped to run as asyncio tasks (see :mod:`kernelish._asyncio`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["as_handler"]


def as_handler(func: Callable[..., Any]) -> Callable[..., Any]:
    """A state's callable as the kernel runs it.

    A coroutine function is wrapped so that its coroutine becomes a task on
    the loop of ``run_async``; the choice is made once, when the state is
    registered, so the dispatch path pays nothing for it.
    """
    if not inspect.iscoroutinefunction(func):
        return func

    @functools.wraps(func)
    def run_coroutine(_: Any) -> Any:
        from ._asyncio import adopt_coroutine

        return adopt_coroutine(_.kernel, _.session, _.state, func(_))

    return run_coroutine
