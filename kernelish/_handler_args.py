"""The one argument every handler receives: Python's stand-in for Perl's ``@_``.

Indexing follows POE's positions (see :mod:`kernelish._constants`): an int gives
one value, a tuple of ints gives a tuple (``kernel, heap = _[KERNEL, HEAP]``),
and a slice gives a tuple (``_[ARG0:ARG3 + 1]``).  Positions past the last
argument read as ``None``, as Perl's do (and a negative position counts from
the end, as Perl's ``$_[-1]``).  Code written fresh in Python may use the
attributes instead (``_.kernel``, ``_.heap``, ``_.args`` ...).

One is built for every dispatched event, so it is only a wrapper around the
tuple of positions, ``(OBJECT, SESSION, KERNEL, HEAP, STATE, SENDER, None,
CALLER_FILE, CALLER_LINE, CALLER_STATE, ARG0, ...)``: the kernel builds the
tuple and wraps it (:meth:`HandlerArgs.of`; the class has no ``__init__``, so
``HandlerArgs()`` runs no Python frame -- the dispatch loop fills one in
place); ``_[KERNEL]`` is one tuple index.  ``_[KERNEL, HEAP]`` -- the
porting idiom -- uses a cached ``operator.itemgetter`` per index tuple.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

__all__ = ["HandlerArgs"]

_getters: dict[tuple[int, ...], Any] = {}


def _getter(key: tuple[Any, ...]) -> Any:
    """A C-level getter of the positions in ``key`` (a tuple of ints), cached."""
    if len(key) < 2 or not all(k.__class__ is int for k in key) or len(_getters) > 256:
        return _slow_getter
    getter = _getters[key] = itemgetter(*key)
    return getter


def _slow_getter(positions: tuple[Any, ...]) -> Any:
    raise IndexError  # the caller falls back to one position at a time


_ARG0 = 10


class HandlerArgs:
    """A handler's view of the event it handles (POE's ``@_``)."""

    __slots__ = ("_positions",)

    _positions: tuple[Any, ...]

    @classmethod
    def of(cls, positions: tuple[Any, ...]) -> HandlerArgs:
        """A handler's argument with these positions."""
        handler_args = cls()
        handler_args._positions = positions
        return handler_args

    def __getitem__(self, key: int | slice | tuple[int, ...]) -> Any:
        if key.__class__ is int:
            try:
                return self._positions[key]
            except IndexError:
                return None
        if key.__class__ is tuple:
            getter = _getters.get(key)
            if getter is None:
                getter = _getter(key)
            try:
                return getter(self._positions)
            except IndexError:
                return tuple([self[k] for k in key])
        if isinstance(key, tuple):
            return tuple([self[k] for k in key])
        if isinstance(key, slice):
            positions = self._positions
            start, stop, step = key.start, key.stop, key.step
            if stop is None:
                stop = len(positions)
            if start is None:
                start = 0
            padded = positions + (None,) * max(0, stop - len(positions))
            return padded[start:stop:step]
        if isinstance(key, int):  # an int subclass (an IntEnum)
            return self[int(key)]
        raise TypeError(f"handler arguments are indexed by int, tuple or slice, not {key!r}")

    def __len__(self) -> int:
        return len(self._positions)

    def __iter__(self) -> Any:
        return iter(self._positions)

    @property
    def object(self) -> Any:
        """The object (or class) of an object/package state; None inline."""
        return self._positions[0]

    @property
    def session(self) -> Any:
        """The session handling the event (``$_[SESSION]``)."""
        return self._positions[1]

    @property
    def kernel(self) -> Any:
        """The kernel (``$_[KERNEL]``)."""
        return self._positions[2]

    @property
    def heap(self) -> Any:
        """The session's heap (``$_[HEAP]``)."""
        return self._positions[3]

    @property
    def state(self) -> str:
        """The event name being handled (``$_[STATE]``)."""
        return self._positions[4]  # type: ignore[no-any-return]

    @property
    def sender(self) -> Any:
        """The session that sent the event (``$_[SENDER]``)."""
        return self._positions[5]

    @property
    def caller_file(self) -> str | None:
        """File the event was posted from (``$_[CALLER_FILE]``)."""
        return self._positions[7]  # type: ignore[no-any-return]

    @property
    def caller_line(self) -> int | None:
        """Line the event was posted from (``$_[CALLER_LINE]``)."""
        return self._positions[8]  # type: ignore[no-any-return]

    @property
    def caller_state(self) -> str | None:
        """Event that was active when this one was posted (``$_[CALLER_STATE]``)."""
        return self._positions[9]  # type: ignore[no-any-return]

    @property
    def args(self) -> tuple[Any, ...]:
        """The event's arguments (``@_[ARG0..$#_]``)."""
        return self._positions[_ARG0:]

    def __repr__(self) -> str:
        return f"<HandlerArgs state={self.state!r} args={self.args!r}>"
