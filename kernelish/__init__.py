"""kernelish: Perl's POE event kernel and POE::Component::Daemon, reborn in Python.

``from kernelish import poe_kernel, Session, KERNEL, HEAP, ARG0`` is the
Python for ``use POE;``.
"""

from ._children import exit_code as exit_code
from ._children import exit_signal as exit_signal
from ._constants import ARG0 as ARG0
from ._constants import ARG1 as ARG1
from ._constants import ARG2 as ARG2
from ._constants import ARG3 as ARG3
from ._constants import ARG4 as ARG4
from ._constants import ARG5 as ARG5
from ._constants import ARG6 as ARG6
from ._constants import ARG7 as ARG7
from ._constants import ARG8 as ARG8
from ._constants import ARG9 as ARG9
from ._constants import CALLER_FILE as CALLER_FILE
from ._constants import CALLER_LINE as CALLER_LINE
from ._constants import CALLER_STATE as CALLER_STATE
from ._constants import HEAP as HEAP
from ._constants import KERNEL as KERNEL
from ._constants import OBJECT as OBJECT
from ._constants import SENDER as SENDER
from ._constants import SESSION as SESSION
from ._constants import STATE as STATE
from ._handler_args import HandlerArgs as HandlerArgs
from ._kernel import Kernel as Kernel
from ._kernel import poe_kernel as poe_kernel
from ._runtime import current_kernel as current_kernel
from ._runtime import using_kernel as using_kernel
from ._session import Session as Session
from ._signals import SignalClass as SignalClass
from ._signals import signal_type as signal_type

__version__ = "0.1.0"

__all__ = [
    "ARG0",
    "ARG1",
    "ARG2",
    "ARG3",
    "ARG4",
    "ARG5",
    "ARG6",
    "ARG7",
    "ARG8",
    "ARG9",
    "CALLER_FILE",
    "CALLER_LINE",
    "CALLER_STATE",
    "HEAP",
    "KERNEL",
    "OBJECT",
    "SENDER",
    "SESSION",
    "STATE",
    "HandlerArgs",
    "Kernel",
    "Session",
    "SignalClass",
    "current_kernel",
    "exit_code",
    "exit_signal",
    "poe_kernel",
    "signal_type",
    "using_kernel",
]
