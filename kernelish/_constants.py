"""Handler argument positions: the indices of Perl's ``@_`` in a POE handler.

``_[KERNEL, HEAP]`` in Python reads like ``@_[KERNEL, HEAP]`` in Perl.  Position 6
is reserved (POE::NFA uses it) and always reads as ``None``.
"""

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
]

OBJECT = 0
SESSION = 1
KERNEL = 2
HEAP = 3
STATE = 4
SENDER = 5
CALLER_FILE = 7
CALLER_LINE = 8
CALLER_STATE = 9
ARG0 = 10
ARG1 = 11
ARG2 = 12
ARG3 = 13
ARG4 = 14
ARG5 = 15
ARG6 = 16
ARG7 = 17
ARG8 = 18
ARG9 = 19
