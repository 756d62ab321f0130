"""Octet framing shared by Reference and Block.

Discussion
----------
POE::Filter::Reference and POE::Filter::Block (without ``BlockSize``) frame records the same
way: ``<decimal length>\\0<payload>``; Block with ``BlockSize`` cuts fixed-size blocks.  POE
appends every read to one string and cuts from its front, which is fine in Perl and quadratic
in Python for a large frame arriving in 64 KiB reads.  :class:`Framer` keeps the parsed-from
buffer (``_data`` from ``_pos``) and the reads that came after it (``_more``) apart, and joins
them only when the frame at ``_pos`` is known to be complete (its length is known and enough
octets arrived) or its header straddles the join: every octet is copied a bounded number of
times, however the frame is split.

Where POE waits forever, this fails at once (POE-SEMANTICS 9): a length prefix that is not
ASCII digits is a :class:`FilterError` as soon as its first wrong octet arrives (POE's
Reference would buffer the rest of the stream up to MaxBuffer, its Block drops the octets with
a warning and then reads a length out of the middle of a payload); a prefix with more digits
than the largest allowed length, or a length over the limit, is :class:`RecordTooLong` before
any of the payload is buffered.  Either error discards the buffer: the stream cannot be
resynchronised.
"""

from __future__ import annotations

from collections.abc import Iterable

from kernelish.filters._base import FilterError, RecordTooLong

__all__ = ["Framer"]


class Framer:
    """Cuts ``<decimal length>\\0<payload>`` frames (or fixed ``block`` octets) from chunks.

    ``max_frame`` bounds a payload's length, ``max_buffer`` the unparsed octets held.
    """

    __slots__ = (
        "_block",
        "_data",
        "_head",
        "_max_buffer",
        "_more",
        "_owner",
        "_pos",
        "digits",
        "max_frame",
        "size",
        "want",
    )

    def __init__(
        self, owner: str, *, max_buffer: int, max_frame: int, block: int | None = None
    ) -> None:
        self._owner = owner
        self._max_buffer = max_buffer
        self.max_frame = max_frame
        self._block = block
        # A length of more digits than this is over max_frame (or padded with zeros).
        self.digits = len(str(max_frame))
        self._data = b""
        self._pos = 0
        self._more: list[bytes] = []
        # Read-only outside: the unparsed octets (len(_data) - _pos + the octets in _more).
        self.size = 0
        self._head = 0  # header octets of the frame at _pos, once its header is parsed
        # Read-only outside: header + payload octets of that frame; 0 while unknown.
        self.want = 0

    def reset(self) -> None:
        """Discard everything buffered."""
        self._data = b""
        self._pos = self.size = self._head = self.want = 0
        self._more = []

    def feed(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks``; :class:`RecordTooLong` (buffer discarded) past ``max_buffer``."""
        for chunk in chunks:
            if not chunk:
                continue
            if type(chunk) is not bytes:
                chunk = bytes(chunk)
            size = self.size + len(chunk)
            if size > self._max_buffer:
                self.reset()
                raise RecordTooLong(
                    f"{self._owner}: framing buffer exceeds MaxBuffer "
                    f"({size} > {self._max_buffer} octets)"
                )
            self._more.append(chunk)
            self.size = size

    def take(self) -> bytes:
        """Return the unparsed octets and empty the buffer."""
        data = self.pending()
        self.reset()
        return data

    def pending(self) -> bytes:
        """The unparsed octets (a partial frame's header included)."""
        rest = self._data[self._pos :]
        return rest + b"".join(self._more) if self._more else rest

    def next(self) -> bytes | None:
        """The next complete payload, or None until more octets arrive."""
        while True:
            data = self._data
            pos = self._pos
            avail = len(data) - pos
            want = self.want
            if not want:
                if not avail:
                    if not self._more:
                        return None
                    self._join()
                    continue
                if self._block is not None:
                    self._head = 0
                    want = self.want = self._block
                else:
                    want = self._parse_header(data, pos)
                    if not want:
                        if not self._more:
                            return None
                        self._join()
                        continue
            if avail >= want:
                end = pos + want
                payload = data[pos + self._head : end]
                self.size -= want
                self.want = 0
                if end == len(data):
                    self._data = b""
                    self._pos = 0
                else:
                    self._pos = end
                return payload
            if self.size < want:
                return None
            self._join()

    def _join(self) -> None:
        """Make ``_data`` all the unparsed octets, from offset 0."""
        rest = self._data[self._pos :] if self._pos else self._data
        more = self._more
        if rest:
            more.insert(0, rest)
        self._data = more[0] if len(more) == 1 else b"".join(more)
        self._more = []
        self._pos = 0

    def _parse_header(self, data: bytes, pos: int) -> int:
        """Parse the length header at ``pos``; return header + payload octets, or 0 if the
        header is not complete in ``data`` yet.  Raises on a malformed or too large length."""
        digits = self.digits
        nul = data.find(b"\0", pos, pos + digits + 1)
        if nul < 0:
            head = data[pos : pos + digits + 1]
            if not head.isdigit():
                self._bogus(head)
            if len(head) > digits:
                self.reset()
                raise RecordTooLong(
                    f"{self._owner}: length prefix of more than {digits} digits "
                    f"({head.decode()}...) exceeds the limit of {self.max_frame} octets"
                )
            return 0
        head = data[pos:nul]
        if not head.isdigit():
            self._bogus(head)
        length = int(head)
        if length > self.max_frame:
            self.reset()
            raise RecordTooLong(
                f"{self._owner}: frame of {length} octets exceeds the limit "
                f"of {self.max_frame} octets"
            )
        self._head = nul + 1 - pos
        self.want = self._head + length
        return self.want

    def _bogus(self, head: bytes) -> None:
        self.reset()
        raise FilterError(
            f"{self._owner}: bogus length prefix {head[:24]!r}: a frame must start with "
            "ASCII digits and a NUL"
        )
