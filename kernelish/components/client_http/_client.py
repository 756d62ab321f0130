"""ClientHTTP.spawn: an HTTP user agent in a session of its own
(POE::Component::Client::HTTP->spawn)."""

from __future__ import annotations

from typing import Any

from kernelish import Session, current_kernel
from kernelish._params import ParameterError, parse_params

from .._shared import SessionID
from ._agent import UserAgent
from ._params import ClientHTTPParams

__all__ = ["ClientHTTP"]

_OWNER = "ClientHTTP"


class ClientHTTP(SessionID):
    """An HTTP/1.1 user agent on the kernel (port of POE::Component::Client::HTTP).

    ``ClientHTTP.spawn(Alias='ua', Timeout=60, FollowRedirects=2, ...)`` creates the
    component's session; requests are posted to its alias::

        kernel.post('ua', 'request', 'response', Request('GET', url), tag)

    and answered with ``response`` in the posting session: ``_[ARG0]`` is
    ``[request, tag]``, ``_[ARG1]`` is ``[response]`` (with ``Streaming``:
    ``[response, chunk]``, and ``[response, None]`` at the end).  ``cancel`` (the
    request), ``shutdown`` and ``pending_requests_count`` (with ``call``) are POE's.
    Every parameter of POE's in CamelCase or snake_case, the connection pool's
    (``KeepAlive``, ``MaxPerHost``, ``MaxOpen``) and kernelish's own (``SSLContext``,
    ``ConnectTimeout``, ``MaxHeaderSize``, ``MaxFields``, ``MaxResolvers``): see
    ``docs/toolbox/client_http.md``.
    """

    @classmethod
    def spawn(cls, **params: Any) -> ClientHTTP:
        """Create the component's session (POE's ``spawn``); returns its ID, an ``int``.

        Raises :class:`~kernelish._params.ParameterError` naming a wrong parameter, a
        malformed ``HTTP_PROXY``, or an ``Alias`` another session holds.
        """
        p = parse_params(ClientHTTPParams, _OWNER, params)
        try:
            p.proxy_list()
        except ValueError as exc:
            raise ParameterError(
                f"{_OWNER}: Proxy (from HTTP_PROXY) {exc}", owner=_OWNER, params=("Proxy",)
            ) from None
        if current_kernel().alias_resolve(p.alias) is not None:
            raise ParameterError(
                f"{_OWNER}: Alias {p.alias!r} is another session's", owner=_OWNER, params=("Alias",)
            )
        agent = UserAgent(p)
        session = Session.create(inline_states=agent.states())
        if session is None:  # pragma: no cover - Session.create refused
            raise RuntimeError("ClientHTTP: the session was not created")
        return cls(session.ID)
