"""Block framing filter (POE::Filter::Block)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import LazyParams
from kernelish.filters._base import Filter, FilterError, RecordTooLong
from kernelish.filters._framing import Framer
from kernelish.filters._line import DEFAULT_MAX_BUFFER

if TYPE_CHECKING:
    from kernelish.filters._models import BlockParams

__all__ = ["DEFAULT_BLOCK_MAX_LENGTH", "Block", "Decoder", "Encoder"]

DEFAULT_BLOCK_MAX_LENGTH = 16 * 1024 * 1024
"""Default ``MaxLength`` of a length-prefixed block: 16 MiB (POE: 64 MiB)."""

Encoder = Callable[[bytes], bytes]
Decoder = Callable[[bytearray], int | None]


#: Block's parameters (the model: :mod:`._models`); ``Block()`` skips pydantic.
_PARAMS = LazyParams(
    "Block",
    "kernelish.filters._models:BlockParams",
    {
        "block_size": None,
        "length_codec": None,
        "max_length": DEFAULT_BLOCK_MAX_LENGTH,
        "max_buffer": DEFAULT_MAX_BUFFER,
    },
)


class Block(Filter[bytes]):
    """Frame octets into blocks: fixed-size, or length-prefixed.

    Port of POE::Filter::Block.  With ``BlockSize`` each record is exactly that many octets
    (the rest stays pending) and ``put`` just joins its records -- a short block is not padded,
    as in POE.  Without it each block travels as ``<decimal length>\\0<octets>`` (``3\\0abc``,
    Reference's frame), or as ``LengthCodec`` says: an ``(encoder, decoder)`` pair where
    ``encoder(block) -> bytes`` returns the framed block and ``decoder(buffer) -> int | None``
    removes a length header from the front of the ``bytearray`` it is given and returns the
    length, or returns None (removing nothing, or only garbage) until a whole header arrived
    -- POE's in-place string codecs, in Python::

        def encode(block: bytes) -> bytes:
            return struct.pack("!I", len(block)) + block

        def decode(buffer: bytearray) -> int | None:
            if len(buffer) < 4:
                return None
            (length,) = struct.unpack_from("!I", buffer)
            del buffer[:4]
            return length

    Limits: ``MaxLength`` (default 16 MiB; POE 64 MiB) bounds a length-prefixed block and
    ``MaxBuffer`` (default 64 MiB; POE 512 MiB) the octets held.  A longer length is refused
    with :class:`RecordTooLong` before its block is buffered; a length prefix that is not
    digits raises :class:`FilterError` (POE drops such octets with a warning and reads on).
    Records are ``bytes``; ``put`` takes bytes-like records and ``str`` (UTF-8).
    """

    __slots__ = ("_buffer", "_decoder", "_encoder", "_expected", "_framer", "_params")

    def __init__(self, **params: Any) -> None:
        self._configure(_PARAMS.parse(params))

    def _configure(self, params: BlockParams) -> None:
        self._params = params
        codec = params.length_codec
        self._encoder: Encoder | None = codec[0] if codec else None
        self._decoder: Decoder | None = codec[1] if codec else None
        # LengthCodec: its decoder edits this buffer in place, as POE's edits the string.
        self._buffer = bytearray()
        self._expected: int | None = None
        self._framer = Framer(
            "Block",
            max_buffer=params.max_buffer,
            max_frame=params.max_length,
            block=params.block_size,
        )

    def clone(self) -> Self:
        """Return a filter with the same parameters and an empty buffer."""
        new = type(self).__new__(type(self))
        new._configure(self._params)
        return new

    # -- input ---------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` (POE::Filter::Block::get_one_start); :class:`RecordTooLong`,
        discarding the buffer, past ``MaxBuffer``."""
        if self._decoder is None:
            self._framer.feed(chunks)
            return
        buffer = self._buffer
        for chunk in chunks:
            if len(buffer) + len(chunk) > self._params.max_buffer:
                size = len(buffer) + len(chunk)
                self._reset()
                raise RecordTooLong(
                    f"Block: framing buffer exceeds MaxBuffer "
                    f"({size} > {self._params.max_buffer} octets)"
                )
            buffer += chunk

    def get_one(self) -> list[bytes]:
        """Return ``[block]`` for the next complete block, or ``[]``."""
        self._raise_deferred()
        if self._decoder is None:
            block = self._framer.next()
            return [] if block is None else [block]
        return self._decode_one()

    def get(self, chunks: Iterable[bytes]) -> list[bytes]:
        """Parse ``chunks`` and return every complete block (POE::Filter::get).

        Parses each chunk as it is buffered, so only one partial block is ever held.
        """
        return self._get_chunkwise(chunks)

    def _decode_one(self) -> list[bytes]:
        buffer = self._buffer
        expected = self._expected
        if expected is None:
            assert self._decoder is not None
            try:
                length = self._decoder(buffer)
            except FilterError:
                self._reset()
                raise
            except Exception as exc:
                self._reset()
                raise FilterError(
                    f"Block: LengthCodec decoder failed ({type(exc).__name__}: {exc})"
                ) from exc
            if length is None:
                return []
            if type(length) is not int or length < 0:
                self._reset()
                raise FilterError(f"Block: LengthCodec decoder returned {length!r}, not a length")
            if length > self._params.max_length:
                self._reset()
                raise RecordTooLong(
                    f"Block: block of {length} octets exceeds MaxLength ({self._params.max_length})"
                )
            expected = self._expected = length
        if len(buffer) < expected:
            return []
        block = bytes(buffer[:expected])
        # bytearray drops a prefix in O(1) by moving its start.
        del buffer[:expected]
        self._expected = None
        return [block]

    def _reset(self) -> None:
        self._buffer.clear()
        self._expected = None

    def get_pending(self) -> list[bytes] | None:
        """Return ``[unparsed octets]`` or ``None`` (POE::Filter::Block::get_pending).

        With ``LengthCodec``, a header the decoder already consumed is not included (as POE).
        """
        data = self._framer.pending() if self._decoder is None else bytes(self._buffer)
        return [data] if data else None

    # -- output ----------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Frame ``records`` (POE::Filter::Block::put): with ``BlockSize`` one chunk of the
        records joined, unpadded; else one length-prefixed chunk per record."""
        blocks = [
            record.encode("utf-8") if isinstance(record, str) else bytes(record)
            for record in records
        ]
        if self._params.block_size is not None:
            joined = b"".join(blocks)
            return [joined] if joined else []
        encoder = self._encoder
        if encoder is None:
            return [b"%d\0%b" % (len(block), block) for block in blocks]
        framed = []
        for block in blocks:
            frame = encoder(block)
            if not isinstance(frame, bytes | bytearray | memoryview):
                raise TypeError(f"Block: LengthCodec encoder returned {type(frame).__name__}")
            framed.append(bytes(frame))
        return framed
