"""Filters: translate between octet streams and records (POE::Filter::*)."""

from kernelish.filters._base import Filter, FilterError, RecordTooLong
from kernelish.filters._line import Line
from kernelish.filters._stream import Stream

__all__ = ["Filter", "FilterError", "Line", "RecordTooLong", "Stream"]
