"""Filters: translate between octet streams and records (POE::Filter::*)."""

from kernelish.filters._base import Filter, FilterError, RecordTooLong
from kernelish.filters._block import Block
from kernelish.filters._grep import Grep
from kernelish.filters._httpclient import HTTPClient
from kernelish.filters._httpclient_reader import BadResponse, ContentTooLong, IncompleteResponse
from kernelish.filters._httpd import HTTPD
from kernelish.filters._line import Line
from kernelish.filters._map import Map
from kernelish.filters._recordblock import RecordBlock
from kernelish.filters._reference import Reference
from kernelish.filters._stackable import Stackable
from kernelish.filters._stream import Stream

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
