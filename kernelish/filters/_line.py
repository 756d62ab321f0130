"""Line-framing filter."""

from __future__ import annotations

import codecs
import functools
import re
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import LazyParams, ParameterError, exact, positive_int
from kernelish.filters._base import Filter, FilterError, RecordTooLong

if TYPE_CHECKING:
    from kernelish.filters._models import LineParams

__all__ = ["DEFAULT_ENCODING", "DEFAULT_MAX_BUFFER", "DEFAULT_MAX_LENGTH", "Line", "codec_problem"]

DEFAULT_MAX_LENGTH = 1024 * 1024
"""Default ``MaxLength``: 1 MiB per line (POE allows 64 MiB; kernelish is deliberately stricter)."""

DEFAULT_MAX_BUFFER = 64 * 1024 * 1024
"""Default ``MaxBuffer``: 64 MiB of buffered, not yet parsed input (POE: 512 MiB)."""

DEFAULT_ENCODING = "utf-8"
"""Default ``Encoding``: records are ``str``, decoded with ``surrogateescape``."""

# POE's default terminator (\x0D\x0A?|\x0A\x0D?), without the capture group so that
# re.split() yields records only.
_GENERIC_NEWLINE = re.compile(rb"\r\n?|\n\r?")
_CR = 0x0D
_LF = 0x0A
# Below this size one regex split beats the several bytes scans of _split_generic.
_SHORT = 256

# How many trailing octets to keep when discarding an overlong line under a custom
# InputRegexp, so that a terminator straddling the discard point is still recognised.
_REGEX_KEEP = 1024

# Framing modes.
_GENERIC = 0  # default terminator regex; the unterminated tail never holds CR or LF
_LITERAL = 1  # literal terminator, found with bytes.find / bytes.split
_REGEX = 2  # user InputRegexp; the unterminated tail is rescanned on each search
_AUTO_FIRST = 3  # InputLiteral autodetect: waiting for the first line ending
_AUTO_SECOND = 4  # autodetect: saw a lone CR or LF at the end of the buffer


def _split_generic(data: bytes) -> list[bytes]:
    """``_GENERIC_NEWLINE.split(data)``, via the much faster ``bytes.split`` when it can."""
    # Test with ints: `bytes in bytes` first tries the int protocol and is 5x slower.
    if _CR not in data:
        return data.split(b"\n")
    if len(data) < _SHORT:
        return _GENERIC_NEWLINE.split(data)
    if _LF not in data:
        return data.split(b"\r")
    # Every CR directly followed by an LF and every LF directly preceded by a CR: only CRLF.
    crlf = data.count(b"\r\n")
    if data.count(b"\r") == crlf == data.count(b"\n"):
        return data.split(b"\r\n")
    return _GENERIC_NEWLINE.split(data)


def _ascii_compatible(encoding: str) -> bool:
    ascii_octets = bytes(range(128))
    try:
        return ascii_octets.decode(encoding) == ascii_octets.decode("ascii")
    except (UnicodeError, LookupError):
        return False


@functools.cache
def codec_problem(encoding: str) -> str | None:
    """What is wrong with ``Encoding`` as Line's codec, or None: terminators are
    found in the raw octets, which is only sound if ASCII octets mean ASCII
    characters (true for UTF-8 and the Latin-N family, false for UTF-16)."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        return f"is not a known codec ({encoding!r})"
    if not _ascii_compatible(encoding):
        return f"must be an ASCII-compatible codec ({encoding!r} is not)"
    return None


def _encoding(value: Any) -> bool:
    return value is None or (value.__class__ is str and codec_problem(value) is None)


def _consistent(p: Any) -> bool:
    """LineParams' cross-field rules, for the common shape (which has no
    InputLiteral or InputRegexp); False lets the model word the error."""
    literal = p.literal
    if literal is not None and (not literal or p.output_literal is not None):
        return False
    return bool(p.max_buffer >= p.max_length)


#: Line's parameters (the model: :mod:`._models`).
_PARAMS = LazyParams(
    "Line",
    "kernelish.filters._models:LineParams",
    {
        "literal": None,
        "input_literal": None,
        "input_regexp": None,
        "output_literal": None,
        "max_length": DEFAULT_MAX_LENGTH,
        "max_buffer": DEFAULT_MAX_BUFFER,
        "encoding": DEFAULT_ENCODING,
    },
    {
        "literal": exact(str, bytes, None),
        "output_literal": exact(str, bytes, None),
        "max_length": positive_int,
        "max_buffer": positive_int,
        "encoding": _encoding,
    },
    consistent=_consistent,
)


class Line(Filter[str | bytes]):
    """Frame a byte stream into terminated records (lines).

    Port of POE::Filter::Line.  By default any of CR, LF, CRLF or LFCR ends a line and ``put``
    appends CRLF.  Faithful to POE, including its quirks: a CRLF split across two reads yields
    an extra empty record, and unterminated trailing data is never delivered (it stays in
    :meth:`get_pending`).

    Parameters (CamelCase as in POE, or snake_case): ``Literal``, ``InputLiteral`` (``''`` or
    ``None`` given explicitly: autodetect from the first line ending), ``InputRegexp``,
    ``OutputLiteral``, ``MaxLength`` (default 1 MiB), ``MaxBuffer`` (default 64 MiB) and the
    kernelish addition ``Encoding`` (default ``'utf-8'``: records are ``str`` decoded with
    ``surrogateescape`` so arbitrary octets round-trip; ``None``: records are ``bytes``).
    Terminators are matched against raw octets; ``str`` terminators and patterns are encoded
    with ``Encoding`` (UTF-8 when ``Encoding`` is ``None``).

    Limits (a kernelish addition; POE dies and keeps the whole buffer): a line longer than
    ``MaxLength`` octets, complete or still unterminated, is discarded and
    :class:`RecordTooLong` is raised; the rest of that line is discarded up to and including
    its terminator, then framing resumes.  So an endless line never makes the filter hold more
    than ``MaxLength`` octets plus one chunk.  Records that precede the overlong line are
    delivered first: ``get_one`` returns them one by one before raising, and ``get`` returns
    them and raises on its *next* call.  That call still parses its own chunks; the records in
    them (and after the overlong line) come from the call after, e.g. ``get([])``.  Buffering
    more than ``MaxBuffer`` octets raises at once and discards the whole buffer.
    """

    __slots__ = (
        "_buf",
        "_discarding",
        "_encoding",
        "_keep",
        "_lf",
        "_lf_found",
        "_max_buffer",
        "_max_length",
        "_mode",
        "_output",
        "_params",
        "_pos",
        "_ready",
        "_regex",
        "_scan",
        "_term",
        "_text_codec",
    )

    def __init__(self, **params: Any) -> None:
        self._configure(_PARAMS.parse(params))

    def _configure(self, params: LineParams) -> None:
        self._params = params
        self._encoding = params.encoding
        # Codec for str terminators and str records given to put() in bytes mode.
        self._text_codec = params.encoding or "utf-8"
        self._max_length = params.max_length
        self._max_buffer = params.max_buffer
        self._regex: re.Pattern[bytes] = _GENERIC_NEWLINE
        self._term = b""
        self._mode = _GENERIC
        given = params.model_fields_set

        if params.literal is not None:
            self._set_literal(self._octets(params.literal))
            self._output = self._term
        else:
            if "input_literal" in given:
                if params.input_literal:
                    self._set_literal(self._octets(params.input_literal))
                else:
                    self._mode = _AUTO_FIRST
            elif params.input_regexp is not None:
                self._regex = self._compile(params.input_regexp)
                self._mode = _REGEX
            self._output = (
                b"\r\n" if params.output_literal is None else self._octets(params.output_literal)
            )
        if self._mode == _REGEX:
            self._keep = min(_REGEX_KEEP, self._max_length)
        elif self._mode != _LITERAL:
            self._keep = 0

        # The unparsed input is _buf[_pos:]; no terminator starts in _buf[_pos:_scan], so a
        # search may resume at _scan instead of rescanning the unterminated tail.
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0
        # Generic-newline search cache: the next LF is at _lf (if _lf_found), else there is
        # none in _buf[_pos:_lf].  It keeps CR-only input from rescanning for an LF per line.
        self._lf = 0
        self._lf_found = False
        # True after an overlong line: drop input up to and including the next terminator.
        self._discarding = False
        # Records get() parsed but has not returned because an error came first, and the
        # errors to raise in order (get() returns records up to an error, then raises it).
        self._ready: deque[bytes | RecordTooLong] = deque()

    def _set_literal(self, term: bytes) -> None:
        self._term = term
        self._mode = _LITERAL
        # A literal split across chunks starts within the tail's last len-1 octets.
        self._keep = min(len(term) - 1, self._max_length)

    def _octets(self, value: str | bytes) -> bytes:
        if isinstance(value, str):
            return value.encode(self._text_codec, "surrogateescape")
        return bytes(value)

    def _compile(
        self, pattern: str | bytes | re.Pattern[str] | re.Pattern[bytes]
    ) -> re.Pattern[bytes]:
        flags = 0
        if isinstance(pattern, re.Pattern):
            # A str pattern carries re.UNICODE, which bytes patterns reject.
            flags = pattern.flags & ~re.UNICODE
            pattern = pattern.pattern
        source = self._octets(pattern)
        try:
            regex = re.compile(source, flags)
        except re.error as exc:
            raise ParameterError(
                f"Line: InputRegexp is not a valid regular expression ({exc})",
                owner="Line",
                params=("InputRegexp",),
            ) from None
        if regex.search(b"") is not None:
            # POE would loop forever emitting empty records.
            raise ParameterError(
                f"Line: InputRegexp must not match an empty string ({source!r})",
                owner="Line",
                params=("InputRegexp",),
            )
        return regex

    def clone(self) -> Self:
        """Return a new filter built from the same parameters, with empty buffers.

        Port of POE::Filter::clone.  An autodetecting filter's clone autodetects afresh.
        """
        new = type(self).__new__(type(self))
        new._configure(self._params)
        return new

    # -- input -----------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` for :meth:`get_one` (POE::Filter::Line::get_one_start).

        Raises :class:`RecordTooLong` (discarding everything buffered) if more than
        ``MaxBuffer`` octets would be buffered.
        """
        data = b"".join(chunks)
        if not data:
            return
        buf = self._buf
        if self._pos:
            # bytearray drops a prefix in O(1) by moving its start pointer.
            del buf[: self._pos]
            self._scan -= self._pos
            self._lf -= self._pos
            if self._lf < 0:
                self._lf, self._lf_found = 0, False
            self._pos = 0
        if len(buf) + len(data) > self._max_buffer:
            size = len(buf) + len(data)
            self._replace_buffer(b"")
            # The discarded data may end mid-line: resynchronise at the next terminator.
            self._discarding = True
            raise RecordTooLong(
                f"Line: framing buffer exceeds MaxBuffer ({size} > {self._max_buffer} octets)"
            )
        buf += data

    def get_one(self) -> list[str | bytes]:
        """Return ``[record]`` for the next complete record, else ``[]`` (POE's get_one).

        Raises :class:`RecordTooLong` for an overlong line, after discarding it.
        """
        if self._ready:
            return self._decode(self._deliver(1))
        record = self._next_record()
        if record is None:
            return []
        if self._encoding is None:
            return [record]
        return [record.decode(self._encoding, "surrogateescape")]

    def get(self, chunks: Iterable[bytes]) -> list[str | bytes]:
        """Parse ``chunks`` and return every complete record (POE::Filter::get).

        Same records as ``get_one_start`` followed by ``get_one`` until it returns ``[]``, but
        splits whole chunks at once where it safely can.  On an overlong line, returns the
        records before it and raises :class:`RecordTooLong` on the next call.
        """
        records: list[bytes]
        mode = self._mode
        buf = self._buf
        if self._pos == len(buf) and mode <= _LITERAL and not self._discarding and not self._ready:
            # Hot path: nothing buffered, so the chunk starts a record and can be split whole.
            data = b"".join(chunks)
            if len(data) <= self._max_buffer:
                records = _split_generic(data) if mode == _GENERIC else data.split(self._term)
                if len(data) <= self._max_length or max(map(len, records)) <= self._max_length:
                    tail = records.pop()
                    if tail or buf:
                        self._replace_buffer(tail)
                    return self._decode(records)
            # Too long somewhere: take the careful path.
            chunks = (data,)

        self.get_one_start(chunks)
        # Parse everything now, as POE does: leaving input unparsed until the next read could
        # join a CR at the end of this read to an LF at the start of the next.
        records = []
        batch = True
        while True:
            # Once at a record boundary, split the rest in one go (at most once per call,
            # so an overlong line in the rest cannot make this quadratic).
            if (
                batch
                and self._pos == self._scan
                and self._mode <= _LITERAL
                and not self._discarding
            ):
                batch = False
                if self._split_rest(records):
                    break
            try:
                record = self._next_record()
            except RecordTooLong as exc:
                self._ready.extend(records)
                self._ready.append(exc)
                records = []
                continue
            if record is None:
                break
            records.append(record)
        if not self._ready:
            return self._decode(records)
        self._ready.extend(records)
        return self._decode(self._deliver(len(self._ready)))

    def _deliver(self, limit: int) -> list[bytes]:
        """Pop up to ``limit`` parsed records, stopping before an error (raised if first)."""
        ready = self._ready
        records: list[bytes] = []
        while ready and len(records) < limit:
            item = ready[0]
            if isinstance(item, RecordTooLong):
                if records:
                    break
                ready.popleft()
                raise item
            records.append(item)
            ready.popleft()
        return records

    def _decode(self, records: list[bytes]) -> list[str | bytes]:
        encoding = self._encoding
        if encoding is None:
            return list(records)
        return [record.decode(encoding, "surrogateescape") for record in records]

    def _split_rest(self, records: list[bytes]) -> bool:
        """Split all of _buf[_pos:] at once; False (nothing consumed) if a line is overlong."""
        buf = self._buf
        data = bytes(buf[self._pos :]) if self._pos else bytes(buf)
        pieces = _split_generic(data) if self._mode == _GENERIC else data.split(self._term)
        if len(data) > self._max_length and max(map(len, pieces)) > self._max_length:
            return False
        self._replace_buffer(pieces.pop())
        records.extend(pieces)
        return True

    def _replace_buffer(self, tail: bytes) -> None:
        """Make ``tail`` (which holds no complete terminator) the whole unparsed buffer."""
        buf = self._buf
        if buf:
            buf.clear()
        if tail:
            buf += tail
        self._pos = 0
        self._scan = max(0, len(tail) - self._keep) if self._mode != _REGEX else 0
        self._lf, self._lf_found = 0, False

    def _find_newline(self, buf: bytearray, start: int) -> tuple[int, int]:
        """Find POE's default terminator (CR, LF, CRLF or LFCR) at or after ``start``.

        Same result as ``_GENERIC_NEWLINE.search`` but with two memchr-speed finds: the regex
        engine tests a character class octet by octet, ten times slower on long lines.
        """
        size = len(buf)
        lf = self._lf
        if not self._lf_found or lf < start:
            lf = buf.find(b"\n", max(start, lf))
            self._lf_found = lf >= 0
            self._lf = lf if lf >= 0 else size
        # Only a CR before the first LF can start the terminator.
        cr = buf.find(b"\r", start, self._lf)
        if cr >= 0:
            return cr, cr + 2 if cr + 1 < size and buf[cr + 1] == _LF else cr + 1
        if not self._lf_found:
            return -1, -1
        lf = self._lf
        return lf, lf + 2 if lf + 1 < size and buf[lf + 1] == _CR else lf + 1

    def _next_record(self) -> bytes | None:
        """Extract the next record from the buffer, POE's get_one loop with an offset."""
        buf = self._buf
        while True:
            pos = self._pos
            mode = self._mode
            if mode == _AUTO_SECOND:
                if pos >= len(buf):
                    return None
                # A lone CR followed by LF (or LF by CR) was a two-octet newline after all.
                if buf[pos] == (_LF if self._term == b"\r" else _CR):
                    self._term += bytes(buf[pos : pos + 1])
                    self._pos = self._scan = pos + 1
                self._set_literal(self._term)
                continue

            if mode == _LITERAL:
                start = buf.find(self._term, self._scan)
                end = start + len(self._term)
            elif mode == _REGEX:
                match = self._regex.search(buf, pos)
                start, end = (match.start(), match.end()) if match else (-1, -1)
                if match and start == end:
                    raise FilterError(
                        f"Line: InputRegexp matched an empty terminator at offset {start}"
                    )
            else:
                start, end = self._find_newline(buf, self._scan)

            if start < 0:
                self._no_terminator()
                return None

            if mode == _AUTO_FIRST:
                self._term = bytes(buf[start:end])
                if end - start == 2 or end < len(buf):
                    self._set_literal(self._term)
                else:
                    # The CR or LF ends the buffer; the next octet may complete it.
                    self._mode = _AUTO_SECOND

            self._pos = self._scan = end
            if self._discarding:
                # The end of a line already reported as too long.
                self._discarding = False
                continue
            if start - pos > self._max_length:
                raise RecordTooLong(
                    f"Line: record of {start - pos} octets exceeds MaxLength ({self._max_length})"
                )
            return bytes(buf[pos:start])

    def _no_terminator(self) -> None:
        buf = self._buf
        pending = len(buf) - self._pos
        self._scan = self._pos if self._mode == _REGEX else max(self._pos, len(buf) - self._keep)
        if pending <= self._max_length and not (self._discarding and pending > self._keep):
            return None
        # Keep only what could be the start of a terminator straddling the next chunk.
        self._replace_buffer(bytes(buf[len(buf) - self._keep :]))
        if self._discarding:
            return None
        self._discarding = True
        raise RecordTooLong(
            f"Line: unterminated record of {pending} octets exceeds MaxLength ({self._max_length})"
        )

    @property
    def deferred_error(self) -> Exception | None:
        """The overlong-line error ``get`` holds back behind records it returned, or None.

        ReadWrite asks again at once when this is set, so the error is reported without
        waiting for the peer's next read.
        """
        for item in self._ready:
            if isinstance(item, RecordTooLong):
                return item
        return None

    def get_pending(self) -> list[bytes] | None:
        """Return ``[unparsed octets]`` or ``None`` (POE::Filter::Line::get_pending).

        Records ``get`` already parsed but holds back behind a pending :class:`RecordTooLong`
        are not included.
        """
        if self._pos < len(self._buf):
            return [bytes(self._buf[self._pos :])]
        return None

    # -- output ----------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Append the output terminator (CRLF by default) to each record.

        Port of POE::Filter::Line::put: existing newlines are neither stripped nor translated.
        Records may be ``str`` (encoded with ``Encoding``) or bytes-like.
        """
        output = self._output
        codec = self._text_codec
        return [
            (record.encode(codec, "surrogateescape") if isinstance(record, str) else bytes(record))
            + output
            for record in records
        ]
