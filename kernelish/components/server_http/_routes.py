"""What answers a request: POEx::HTTP::Server's ``handlers``.

A route is a regular expression searched (not anchored: ``'^/static'`` for
a prefix, POEx's rule) in the request's path, still percent-encoded; the
first that matches, in the order given, answers.  ``''`` matches every
path.  A handler is

* a callable: a handler (``_[ARG0]`` the request, ``_[ARG1]`` the
  response) run in the connection's session, so ``_[HEAP]`` is the
  connection's heap (``remote_ip``...) and ``_[KERNEL].yield_`` reaches
  the connection's ``InlineStates``;
* ``'poe:SESSION/EVENT'`` (POEx::URI) or ``(session, 'event')``: a
  ``call()`` to that session's event with the request and the response --
  POEx's own way; ``'poe:SESSION/EVENT?a=1'`` puts ``{'a': '1'}`` before
  them, as POEx does.

The special names of POEx are handlers too: ``on_connect`` /
``on_disconnect`` (ARG0: the :class:`~._response.Connection`),
``pre_request`` (the request), ``post_request`` (the request and its
response), ``on_error`` (the error response about to be sent, which it may
change), ``stream_request`` (the request and its response: a streamed
response's output drained, send more).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from kernelish import KERNEL, HandlerArgs
from kernelish._params import ParameterError

from .._shared import with_args

__all__ = ["SPECIALS", "Routes", "Target"]

#: POEx::HTTP::Server's special handlers.
SPECIALS = frozenset(
    {"on_connect", "on_disconnect", "pre_request", "post_request", "on_error", "stream_request"}
)

_OWNER = "ServerHTTP"
_POE_URI = re.compile(r"poe:(?://)?([^/?]+)/([^/?]+)(?:\?(.*))?\Z")


class Target:
    """One handler: a callable run here, or an event of another session."""

    __slots__ = ("args", "event", "func", "session")

    def __init__(
        self,
        func: Callable[[HandlerArgs], Any] | None,
        session: Any = None,
        event: str | None = None,
        args: dict[str, str] | None = None,
    ) -> None:
        self.func = func
        self.session = session
        self.event = event
        self.args = args

    def invoke(self, _: HandlerArgs, *args: Any) -> Any:
        """Run the handler with ``args`` as its ARG0...; its return value."""
        if self.args is not None:
            args = (self.args, *args)
        if self.func is not None:
            return self.func(with_args(_, args))
        return _[KERNEL].call(self.session, self.event, *args)

    def __repr__(self) -> str:
        if self.func is not None:
            return f"<Target {getattr(self.func, '__qualname__', self.func)!r}>"
        return f"<Target poe:{self.session}/{self.event}>"


def target(name: str, spec: Any) -> Target:
    """A handler from one of its forms; a wrong one is refused, naming it."""
    if callable(spec):
        return Target(spec)
    if isinstance(spec, str):
        match = _POE_URI.match(spec)
        if match is not None:
            session, event, query = match.groups()
            args = dict(parse_qsl(query, keep_blank_values=True)) if query is not None else None
            return Target(None, session, event, args)
    if (
        isinstance(spec, tuple)
        and len(spec) == 2
        and isinstance(spec[1], str)
        and isinstance(spec[0], str | int)
    ):
        return Target(None, spec[0], spec[1])
    raise ParameterError(
        f"{_OWNER}: Handlers: the handler for {name!r} must be a callable, 'poe:SESSION/EVENT' "
        f"or (session, 'event') (got {spec!r})",
        owner=_OWNER,
        params=("Handlers",),
    )


class Routes:
    """The routes in order, the special handlers, and the lookup."""

    def __init__(self, handlers: Any, handler: Any) -> None:
        pairs = _pairs(handlers if handlers is not None else {"": handler})
        self.specials: dict[str, Target] = {}
        self.routes: list[tuple[re.Pattern[str] | None, Target]] = []
        for key, spec in pairs:
            name = key.pattern if isinstance(key, re.Pattern) else key
            if not isinstance(name, str):
                raise ParameterError(
                    f"{_OWNER}: Handlers: a route is a regular expression "
                    f"(str or re.Pattern), not {key!r}",
                    owner=_OWNER,
                    params=("Handlers",),
                )
            if isinstance(key, str) and key in SPECIALS:
                self.specials[key] = target(key, spec)
                continue
            try:
                pattern = key if isinstance(key, re.Pattern) else re.compile(key) if key else None
            except re.error as exc:
                raise ParameterError(
                    f"{_OWNER}: Handlers: route {key!r} is not a regular expression ({exc})",
                    owner=_OWNER,
                    params=("Handlers",),
                ) from None
            self.routes.append((pattern, target(name, spec)))
        # The common case, one handler for every path, costs no search.
        self.only: Target | None = None
        if len(self.routes) == 1 and self.routes[0][0] is None:
            self.only = self.routes[0][1]

    def find(self, path: str) -> Target | None:
        """The handler of ``path``: the first route whose pattern is found in it."""
        if self.only is not None:
            return self.only
        for pattern, found in self.routes:
            if pattern is None or pattern.search(path) is not None:
                return found
        return None

    def add_first(self, path: str, found: Target) -> None:
        """A route for exactly ``path`` before every other (the status pages)."""
        self.routes.insert(0, (re.compile(re.escape(path) + r"\Z"), found))
        self.only = None


def _pairs(handlers: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(handlers, Mapping):
        return list(handlers.items())
    if isinstance(handlers, list | tuple):
        if all(isinstance(item, tuple | list) and len(item) == 2 for item in handlers):
            return [tuple(item) for item in handlers]
        if len(handlers) % 2 == 0:  # Perl's flat list: pattern => handler, ...
            return list(zip(handlers[::2], handlers[1::2], strict=True))
    if callable(handlers) or isinstance(handlers, str):
        return [("", handlers)]
    raise ParameterError(
        f"{_OWNER}: Handlers must be a dict, a list of (pattern, handler) pairs, or a "
        f"handler (got {handlers!r})",
        owner=_OWNER,
        params=("Handlers",),
    )
