"""Filters: translate between octet streams and records (POE::Filter::*).

The HTTP filters (``HTTPD``, ``HTTPClient`` and its errors) are imported on
first use (``from kernelish.filters import HTTPD`` does it): they bring
:mod:`kernelish.http` with ``email``, ``http``, ``datetime``, ``random`` and
``dataclasses`` -- some 1.5 MB and 35 mappings that a line server would
otherwise carry into every child it forks.
"""

from typing import TYPE_CHECKING, Any

from kernelish.filters._base import Filter, FilterError, RecordTooLong
from kernelish.filters._block import Block
from kernelish.filters._grep import Grep
from kernelish.filters._line import Line
from kernelish.filters._map import Map
from kernelish.filters._recordblock import RecordBlock
from kernelish.filters._reference import Reference
from kernelish.filters._stackable import Stackable
from kernelish.filters._stream import Stream

if TYPE_CHECKING:
    from kernelish.filters._httpclient import HTTPClient
    from kernelish.filters._httpclient_reader import (
        BadResponse,
        ContentTooLong,
        IncompleteResponse,
    )
    from kernelish.filters._httpd import HTTPD

__all__ = [
    "HTTPD",
    "BadResponse",
    "Block",
    "ContentTooLong",
    "Filter",
    "FilterError",
    "Grep",
    "HTTPClient",
    "IncompleteResponse",
    "Line",
    "Map",
    "RecordBlock",
    "RecordTooLong",
    "Reference",
    "Stackable",
    "Stream",
]

#: The names imported on first use, and their modules.
_LAZY = {
    "HTTPD": "kernelish.filters._httpd",
    "HTTPClient": "kernelish.filters._httpclient",
    "BadResponse": "kernelish.filters._httpclient_reader",
    "ContentTooLong": "kernelish.filters._httpclient_reader",
    "IncompleteResponse": "kernelish.filters._httpclient_reader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
