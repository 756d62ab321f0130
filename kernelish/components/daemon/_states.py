"""Session states declared where they are written: the ``@state`` decorator.

The seed named its states in a list (``object_states => [$self => [qw(_start
_stop ...)]]``), and the first port kept a tuple that had to match the method
names by hand: a new state left out of it was never called, silently.  Here a
method marked :func:`state` *is* a state, and :func:`states_of` collects the
names from the class and its bases when the session is created.  A subclass
that overrides a state (``kernelish.demo``'s ``CountingDaemon.fork``) keeps it
a state without marking it again: the session calls the method by name, so it
calls the override.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["state", "states_of"]

_MARK = "_kernelish_state"

F = TypeVar("F", bound=Callable[..., Any])


def state(method: F) -> F:
    """Mark ``method`` as a state of the object's session."""
    setattr(method, _MARK, True)
    return method


def states_of(cls: type) -> list[str]:
    """The names of ``cls``'s states (its bases' first), each once."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, _MARK, False):
                names[name] = None
    return list(names)
