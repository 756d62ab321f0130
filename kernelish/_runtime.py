"""Which kernel the running code uses: ``current_kernel()``.

A leaf module: it imports nothing of kernelish at run time, so any module may
ask it for the kernel without an import cycle, and dependencies point one
way (everything -> ``_runtime``; ``_kernel`` installs the process's kernel,
``poe_kernel``, when it is first imported).

Code that is not a handler -- ``Session.create``, a wheel's constructor, the
Daemon facade -- reaches the kernel through :func:`current_kernel`, so a test
(or a program that wants a second, private kernel) can run code on another
instance: ``with using_kernel(Kernel(clock=manual)) as kernel: ...``.
Handlers get their kernel as ``_[KERNEL]`` and need neither.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._kernel import Kernel

__all__ = ["current_kernel", "set_current_kernel", "using_kernel"]

_current: Kernel | None = None


def current_kernel() -> Kernel:
    """The kernel new sessions and wheels belong to: ``poe_kernel`` unless
    :func:`using_kernel` chose another."""
    kernel = _current
    if kernel is None:
        from ._kernel import poe_kernel  # first use: the process's kernel

        return poe_kernel
    return kernel


def set_current_kernel(kernel: Kernel) -> Kernel | None:
    """Make ``kernel`` the current one; returns the previous one (or None)."""
    global _current
    previous, _current = _current, kernel
    return previous


@contextlib.contextmanager
def using_kernel(kernel: Kernel) -> Iterator[Kernel]:
    """Run a block with ``kernel`` as the current kernel, then restore the
    previous one (a test on its own kernel, with its own clock)."""
    global _current
    previous, _current = _current, kernel
    try:
        yield kernel
    finally:
        _current = previous
