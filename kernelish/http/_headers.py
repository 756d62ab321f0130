"""Header fields: an ordered multi-dict with case-insensitive lookup (HTTP::Headers)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

__all__ = ["Headers"]


class Headers:
    """The header fields of a message, in the order they came, names' case kept.

    Port of HTTP::Headers (what POE's HTTPD hands over inside HTTP::Request).  Lookup is
    case-insensitive.  A field may occur more than once: ``get``/``[]`` return the values
    joined with ``", "`` (RFC 9110 5.3, and HTTP::Headers' ``header`` in scalar context),
    :meth:`get_all` returns them one by one (for ``Set-Cookie``, which must not be joined).
    Iteration yields ``(name, value)`` pairs, the shape WSGI's ``start_response`` takes.

    Names and values are ``str``: octets decoded as ISO-8859-1, so every octet survives (PEP
    3333 does the same).  Nothing is checked on the way in; the HTTPD filter refuses a name or
    value that would break the message (CR, LF, NUL) when it writes it out.
    """

    __slots__ = ("_items",)

    def __init__(
        self,
        items: Headers | Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        if items is None:
            self._items: list[tuple[str, str]] = []
        elif isinstance(items, Headers):
            self._items = list(items._items)
        elif isinstance(items, Mapping):
            self._items = [(str(k), str(v)) for k, v in items.items()]
        else:
            self._items = [(str(k), str(v)) for k, v in items]

    @classmethod
    def adopt(cls, pairs: list[tuple[str, str]]) -> Headers:
        """Headers over ``pairs`` itself, neither copied nor checked: for a parser that
        built the list and lets it go."""
        headers = cls.__new__(cls)
        headers._items = pairs
        return headers

    # -- lookup ------------------------------------------------------------------------------

    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name``, in order (HTTP::Headers ``header`` in list context)."""
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The values of ``name`` joined with ``", "``, or ``default`` if it is absent."""
        values = self.get_all(name)
        if not values:
            return default
        return values[0] if len(values) == 1 else ", ".join(values)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(n.lower() == key for n, _ in self._items)

    def count(self, name: str) -> int:
        """How many field lines named ``name`` there are."""
        key = name.lower()
        return sum(1 for n, _ in self._items if n.lower() == key)

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of ``name``'s values, lowercased and stripped
        (``Connection: keep-alive, Upgrade`` -> ``['keep-alive', 'upgrade']``)."""
        return [
            token
            for value in self.get_all(name)
            for token in (part.strip().lower() for part in value.split(","))
            if token
        ]

    # -- changes ------------------------------------------------------------------------------

    def add(self, name: str, value: str | int) -> None:
        """Append a field line, keeping those of the same name (``push_header``)."""
        self._items.append((name, str(value)))

    push_header = add

    def __setitem__(self, name: str, value: str | int) -> None:
        """Replace every ``name`` field with one (HTTP::Headers ``header(name => value)``);
        the new line takes the place of the first one it replaces."""
        key = name.lower()
        items = self._items
        for index, (n, _) in enumerate(items):
            if n.lower() == key:
                items[index] = (name, str(value))
                self._items = [
                    item for i, item in enumerate(items) if i <= index or item[0].lower() != key
                ]
                return
        items.append((name, str(value)))

    def setdefault(self, name: str, value: str | int) -> str:
        """Add ``name: value`` unless a ``name`` field is there; return the field's value."""
        current = self.get(name)
        if current is None:
            self._items.append((name, str(value)))
            return str(value)
        return current

    def __delitem__(self, name: str) -> None:
        """Remove every ``name`` field (HTTP::Headers ``remove_header``); absent is no error."""
        key = name.lower()
        self._items = [item for item in self._items if item[0].lower() != key]

    remove_header = __delitem__

    # -- the whole ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def items(self) -> list[tuple[str, str]]:
        """The ``(name, value)`` pairs, in order (a copy)."""
        return list(self._items)

    def header_field_names(self) -> list[str]:
        """Each distinct field name once, in order of first appearance (HTTP::Headers)."""
        seen: dict[str, str] = {}
        for name, _ in self._items:
            seen.setdefault(name.lower(), name)
        return list(seen.values())

    def scan(self, callback: Callable[[str, str], object]) -> None:
        """Call ``callback(name, value)`` for each field line (HTTP::Headers ``scan``)."""
        for name, value in self._items:
            callback(name, value)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"
