"""The one argument every handler receives: Python's stand-in for Perl's ``@_``.

Indexing follows POE's positions (see :mod:`kernelish._constants`): an int gives
one value, a tuple of ints gives a tuple (``kernel, heap = _[KERNEL, HEAP]``),
and a slice gives a tuple (``_[ARG0:ARG3 + 1]``).  Positions past the last
argument read as ``None``, as Perl's do.  Code written fresh in Python may use
the attributes instead (``_.kernel``, ``_.heap``, ``_.args`` ...).
"""

from __future__ import annotations

from typing import Any

__all__ = ["HandlerArgs"]

_ARG0 = 10


class HandlerArgs:
    """A handler's view of the event it handles (POE's ``@_``)."""

    __slots__ = (
        "args",
        "caller_file",
        "caller_line",
        "caller_state",
        "heap",
        "kernel",
        "object",
        "sender",
        "session",
        "state",
    )

    def __init__(
        self,
        obj: Any,
        session: Any,
        kernel: Any,
        heap: Any,
        state: str,
        sender: Any,
        caller_file: str | None,
        caller_line: int | None,
        caller_state: str | None,
        args: tuple[Any, ...],
    ) -> None:
        self.object = obj
        self.session = session
        self.kernel = kernel
        self.heap = heap
        self.state = state
        self.sender = sender
        self.caller_file = caller_file
        self.caller_line = caller_line
        self.caller_state = caller_state
        self.args = args

    def _position(self, i: int) -> Any:
        if i >= _ARG0:
            i -= _ARG0
            args = self.args
            return args[i] if i < len(args) else None
        if i < 0:
            raise IndexError(f"negative handler argument position {i}")
        return (
            self.object,
            self.session,
            self.kernel,
            self.heap,
            self.state,
            self.sender,
            None,
            self.caller_file,
            self.caller_line,
            self.caller_state,
        )[i]

    def __getitem__(self, key: int | slice | tuple[int, ...]) -> Any:
        if isinstance(key, int):
            return self._position(key)
        if isinstance(key, tuple):
            return tuple(self[k] for k in key)
        if isinstance(key, slice):
            stop = key.stop if key.stop is not None else _ARG0 + len(self.args)
            start = key.start if key.start is not None else 0
            return tuple(self._position(i) for i in range(start, stop, key.step or 1))
        raise TypeError(f"handler arguments are indexed by int, tuple or slice, not {key!r}")

    def __len__(self) -> int:
        return _ARG0 + len(self.args)

    def __repr__(self) -> str:
        return f"<HandlerArgs state={self.state!r} args={self.args!r}>"
