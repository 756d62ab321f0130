"""Serialized-object filter (POE::Filter::Reference).

Discussion
----------
POE's Reference filter freezes Perl data with Storable (or a serializer you name) and frames
each frozen string as ``<decimal length>\\0<bytes>``.  The frame is kept octet for octet, so a
Python process and a Perl one speak to each other whenever they share a serializer (JSON: see
the filters page).  What plays Storable's part is ``pickle``: fast, and able to carry any
Python object -- which is exactly why it must only ever be used between processes that trust
each other, a daemon and the workers it forked.  ``pickle.loads`` of a frame from anyone else
runs whatever code the sender chose.  Give such peers ``Serializer=json``.

Where POE trusts its peer, this does not (POE-SEMANTICS 9): the default ``MaxBuffer`` is
64 MiB, not 512; a length prefix that is not digits, or is larger than the limit, fails at
once instead of buffering the stream up to the limit; a compressed frame is inflated at most
to ``MaxBuffer`` octets (a 64 MiB frame of zeros must not become gigabytes).  ``NoFatals``
turns every one of these errors, as well as a serializer's, into a record (a
:class:`FilterError`) where POE returns the text of ``$@``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Self

from kernelish._params import LazyParams
from kernelish.filters._base import Filter, FilterError, RecordTooLong
from kernelish.filters._framing import Framer

if TYPE_CHECKING:
    from kernelish.filters._models import ReferenceParams

# pickle, json and zlib are imported by the first Reference that needs them:
# a server that never uses this filter does not carry them into its children.

__all__ = ["Dumps", "Loads", "Reference", "resolve_serializer"]

Dumps = Callable[[Any], bytes | str]
Loads = Callable[[bytes], Any]


def _methods(obj: Any) -> tuple[Dumps, Loads] | None:
    """``obj``'s (dumps, loads), else its (nfreeze or freeze, thaw) as POE looks them up."""
    for dump_names, load_name in ((("dumps",), "loads"), (("nfreeze", "freeze"), "thaw")):
        load = getattr(obj, load_name, None)
        dump = next(
            (d for d in (getattr(obj, name, None) for name in dump_names) if callable(d)), None
        )
        if dump is not None and callable(load):
            return dump, load
    return None


def _json_dumps(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def _json_loads(data: bytes) -> Any:
    # JSON between systems is UTF-8 (RFC 8259); json.loads(bytes) would first guess among
    # UTF-8, -16 and -32 in Python code, a third of its time for a small message.
    import json

    return json.loads(data.decode())


def resolve_serializer(value: Any) -> tuple[Dumps, Loads]:
    """Turn ``Serializer`` into a (dumps, loads) pair, or raise ValueError saying why not."""
    if value is None:
        import pickle

        return pickle.dumps, pickle.loads
    # (the json module given as the Serializer is already imported)
    if value is sys.modules.get("json") or (isinstance(value, str) and value == "json"):
        return _json_dumps, _json_loads
    if isinstance(value, str):
        # POE takes a package name ('Storable', 'YAML'); here a module name ('json').
        try:
            module = importlib.import_module(value)
        except ImportError as exc:
            raise ValueError(f"names no importable module ({value!r}: {exc})") from None
        methods = _methods(module)
        if methods is None:
            raise ValueError(f"module {value!r} has no dumps() and loads()")
        return methods
    if isinstance(value, tuple | list) and len(value) == 2:
        dump, load = value
        if not (callable(dump) and callable(load)):
            raise ValueError("as a pair must be two callables (dumps, loads)")
        return dump, load
    methods = _methods(value)
    if methods is None:
        raise ValueError(
            "must have dumps() and loads() (or freeze() and thaw()), like the pickle and "
            f"json modules (got {value!r})"
        )
    return methods


#: Reference's parameters (the model: :mod:`._models`): its Serializer is
#: resolved by pydantic, so each Reference() is validated there.
_PARAMS = LazyParams("Reference", "kernelish.filters._models:ReferenceParams")


class Reference(Filter[Any]):
    """Serialize objects into ``<decimal length>\\0<bytes>`` frames and back.

    Port of POE::Filter::Reference.  Parameters (CamelCase as in POE, or snake_case; POE's
    positional form ``Reference(serializer, compression, no_fatals)`` works too):

    * ``Serializer``: anything with ``dumps`` and ``loads`` -- the ``pickle`` module (the
      default, Storable's part), the ``json`` module, an instance of your own --, the name of
      such a module (``'json'``), a ``(dumps, loads)`` pair, or an object with POE's
      ``nfreeze``/``freeze`` and ``thaw``.  ``dumps`` may return ``str`` (sent as UTF-8);
      ``loads`` is given ``bytes`` (the ``json`` module: the text, decoded from UTF-8).
    * ``Compression``: zlib-compress each frame's payload (POE's Compress::Zlib ``compress``,
      the same octets).
    * ``NoFatals``: a frame that cannot be read becomes a record -- the :class:`FilterError`
      that would have been raised (POE: the text of ``$@``) -- instead of an exception.
    * ``MaxBuffer``: unparsed octets the filter may hold, so the largest frame; default
      64 MiB (POE: 512 MiB).  A length over it is refused before its payload arrives.

    Danger:
        The default serializer, pickle, runs code of the sender's choosing when it reads a
        frame.  Use it only between processes that trust each other (a daemon and its
        workers); give every other peer ``Serializer=json`` (or another data-only format).

    Errors: a bogus length prefix (not ASCII digits and a NUL), a truncated or corrupt
    compressed payload and a serializer's exception raise :class:`FilterError`; a length or
    buffer over ``MaxBuffer`` raises :class:`RecordTooLong`.  A framing error discards the
    buffer (the stream cannot be resynchronised); a serializer's error consumes only its
    frame.  Records parsed before the error are returned first, as :class:`Filter` explains.
    """

    __slots__ = (
        "_compress",
        "_digits",
        "_dumps",
        "_framer",
        "_held",
        "_loads",
        "_max_buffer",
        "_max_frame",
        "_no_fatals",
        "_params",
        "_plain",
        "_text",
    )

    def __init__(self, *args: Any, **params: Any) -> None:
        if args:
            params = _positional(args, params)
        self._configure(_PARAMS.parse(params))

    def _configure(self, params: ReferenceParams) -> None:
        self._params = params
        self._dumps, self._loads = params.serializer
        self._compress = params.compression
        self._no_fatals = params.no_fatals
        self._max_buffer = params.max_buffer
        # NoFatals errors met while buffering, returned as the next records.
        self._held: list[FilterError] = []
        # True once the serializer's dumps returned str (json): put() encodes it.
        self._text = False
        # The header counts against MaxBuffer too: a frame is at most MaxBuffer octets.
        max_frame = max(0, params.max_buffer - len(str(params.max_buffer)) - 1)
        self._framer = Framer("Reference", max_buffer=params.max_buffer, max_frame=max_frame)
        # For get()'s fast path: no compression, and where to look for a header's NUL.
        self._plain = not params.compression
        self._max_frame = max_frame
        self._digits = self._framer.digits + 1

    def clone(self) -> Self:
        """Return a filter with the same serializer and limits and an empty buffer."""
        new = type(self).__new__(type(self))
        new._configure(self._params)
        return new

    # -- input ---------------------------------------------------------------------------

    def get_one_start(self, chunks: Iterable[bytes]) -> None:
        """Buffer ``chunks`` (POE::Filter::Reference::get_one_start).

        Raises :class:`RecordTooLong` past ``MaxBuffer``, discarding the buffer; with
        ``NoFatals`` the error is the next record instead.
        """
        try:
            self._framer.feed(chunks)
        except FilterError as exc:
            if not self._no_fatals:
                raise
            self._held.append(exc)

    def get_one(self) -> list[Any]:
        """Return ``[object]`` for the next complete frame, or ``[]``."""
        self._raise_deferred()
        if self._held:
            return [self._held.pop(0)]
        try:
            payload = self._framer.next()
        except FilterError as exc:
            if self._no_fatals:
                return [exc]
            raise
        if payload is None:
            return []
        return [self._thaw(payload)]

    def get(self, chunks: Iterable[bytes]) -> list[Any]:
        """Parse ``chunks`` and return every object they complete (POE::Filter::get).

        Parses each chunk as it is buffered, so only one partial frame is ever held.
        """
        if self._plain and type(chunks) is list and len(chunks) == 1:
            # The common case, one read at a time (a wheel reading a worker's replies):
            # parse it in place, after the partial frame the last read left, if any.
            data = chunks[0]
            framer = self._framer
            if type(data) is bytes and self._error is None and not self._held:
                if not framer.size:
                    if len(data) <= self._max_buffer:
                        return self._get_frames(data)
                else:
                    total = framer.size + len(data)
                    if total <= self._max_buffer:
                        if total < framer.want:
                            # Still inside a large frame: buffer it, never rejoin it.
                            framer.feed(chunks)
                            return []
                        return self._get_frames(framer.take() + data)
        return self._get_chunkwise(chunks)

    def _get_frames(self, data: bytes) -> list[Any]:
        """Thaw the complete frames at the start of ``data``; the rest takes the general path
        (which reports whatever stopped this loop)."""
        loads = self._loads
        limit = self._digits
        # One whole frame (a reply per read): four C calls find and check it.
        head, sep, payload = data.partition(b"\0")
        if (
            sep
            and len(head) < limit
            and head.isdigit()
            and int(head) == len(payload) <= self._max_frame
        ):
            try:
                return [loads(payload)]
            except Exception as exc:
                error = self._thaw_error(exc, payload)
                if self._no_fatals:
                    return [error]
                raise error from exc
        find = data.find
        size = len(data)
        records: list[Any] = []
        pos = 0
        while pos < size:
            nul = find(b"\0", pos, pos + limit)
            if nul < 0:
                break
            head = data[pos:nul]
            if not head.isdigit():
                break
            length = int(head)
            end = nul + 1 + length
            if end > size or length > self._max_frame:
                break
            payload = data[nul + 1 : end]
            pos = end
            try:
                records.append(loads(payload))
            except Exception as exc:
                error = self._thaw_error(exc, payload)
                if self._no_fatals:
                    records.append(error)
                    continue
                self._framer.feed((data[pos:],))  # cannot overflow: data fits in MaxBuffer
                if not records:
                    raise error from exc
                self._error = error
                return records
        if pos == size:
            return records
        try:
            rest = self._get_chunkwise((data[pos:],))
        except Exception as exc:
            if not records:
                raise
            self._error = exc
            return records
        return records + rest if records else rest

    def _thaw(self, payload: bytes) -> Any:
        try:
            if self._compress:
                payload = self._inflate(payload)
            return self._loads(payload)
        except FilterError as exc:
            if self._no_fatals:
                return exc
            raise
        except Exception as exc:
            error = self._thaw_error(exc, payload)
            if self._no_fatals:
                return error
            raise error from exc

    @staticmethod
    def _thaw_error(exc: Exception, payload: bytes) -> FilterError:
        error = FilterError(
            f"Reference: cannot thaw a frame of {len(payload)} octets ({type(exc).__name__}: {exc})"
        )
        error.__cause__ = exc
        return error

    def _inflate(self, payload: bytes) -> bytes:
        """zlib-decompress ``payload``, to at most ``MaxBuffer`` octets."""
        import zlib

        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(payload, self._max_buffer + 1)
        except zlib.error as exc:
            raise FilterError(f"Reference: corrupt compressed frame ({exc})") from None
        if len(data) > self._max_buffer:
            raise RecordTooLong(
                f"Reference: compressed frame inflates past MaxBuffer ({self._max_buffer} octets)"
            )
        if not inflater.eof:
            raise FilterError("Reference: truncated compressed frame")
        return data

    def get_pending(self) -> list[bytes] | None:
        """Return ``[unparsed octets]`` or ``None`` (POE::Filter::Reference::get_pending)."""
        data = self._framer.pending()
        return [data] if data else None

    # -- output ----------------------------------------------------------------------------

    def put(self, records: Iterable[Any]) -> list[bytes]:
        """Serialize each record into one frame (POE::Filter::Reference::put).

        Any object the serializer takes is a record (POE requires references); a serializer
        error (an unpicklable object, a set given to json) propagates unchanged.
        """
        if type(records) is not tuple and type(records) is not list:
            records = list(records)
        if self._plain and not self._text:
            dumps = self._dumps
            try:
                # %b refuses str: a serializer returning text takes the loop below.
                if len(records) == 1:
                    payload = dumps(records[0])
                    return [b"%d\0%b" % (len(payload), payload)]
                return [b"%d\0%b" % (len(p), p) for p in map(dumps, records)]
            except TypeError:
                pass
        frames = []
        for record in records:
            payload = self._dumps(record)
            if type(payload) is not bytes:
                if isinstance(payload, str):
                    self._text = True
                    payload = payload.encode()
                else:
                    payload = bytes(payload)
            if self._compress:
                import zlib

                payload = zlib.compress(payload)
            frames.append(b"%d\0%b" % (len(payload), payload))
        return frames


_POSITIONAL = ("Serializer", "Compression", "NoFatals")


def _positional(args: tuple[Any, ...], params: dict[str, Any]) -> dict[str, Any]:
    """POE's old calling form, ``new($serializer, $compression, $no_fatals)``."""
    if len(args) > len(_POSITIONAL):
        raise TypeError(f"Reference takes at most 3 positional arguments ({len(args)} given)")
    named = dict(zip(_POSITIONAL, args, strict=False))
    clash = [name for name in named if name in params or _snake(name) in params]
    if clash:
        raise TypeError(f"Reference: {clash[0]} given both by position and by name")
    return {**named, **params}


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
