"""Shared fixtures: a clean kernel per test and process cleanup."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from kernelish import poe_kernel

from ._support import ProcessReaper


def _reset_kernel() -> None:
    """Leave the process's kernel empty, whatever a failed test left."""
    poe_kernel.reset()


@pytest.fixture(autouse=True)
def clean_kernel() -> Iterator[None]:
    """Every test starts and ends with an empty kernel and default signals."""
    _reset_kernel()
    pid = os.getpid()
    yield
    if os.getpid() != pid:  # a forked child escaped its test: never return into pytest
        os._exit(70)
    _reset_kernel()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


@pytest.fixture
def procs() -> Iterator[ProcessReaper]:
    """Register pids / session ids here; they are ended when the test ends."""
    r = ProcessReaper()
    yield r
    r.reap()
