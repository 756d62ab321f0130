"""Where a request goes: its URL taken apart, a redirect's ``Location`` resolved, and
whether a host is proxied (HTTP::Request's URI, as Client::HTTP reads it)."""

from __future__ import annotations

import base64
import functools
import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

__all__ = ["Target", "is_literal", "no_proxy_matches", "parse_target", "resolve_location"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Target:
    """An ``http``/``https`` URL taken apart.  ``url`` is it again without userinfo or
    fragment and with a default port left out: what goes in the request line (in absolute
    form) and whose authority becomes ``Host``."""

    scheme: str
    host: str
    port: int
    url: str
    authorization: str | None


@functools.lru_cache(maxsize=512)
def parse_target(url: str) -> Target | None:
    """The URL's parts, or None for anything but an absolute http or https URL with a
    host and a valid port (POE answers those 400, "Unsupported URI scheme").  The last
    512 URLs' parts are remembered: a daemon asks for the same few again and again."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    default = _DEFAULT_PORTS[scheme]
    if port is None:
        port = default
    shown = f"[{host}]" if ":" in host else host
    authority = shown if port == default else f"{shown}:{port}"
    path = parts.path or "/"
    query = f"?{parts.query}" if parts.query else ""
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    return Target(scheme, host, port, f"{scheme}://{authority}{path}{query}", authorization)


def resolve_location(base: str, location: str) -> Target | None:
    """A redirect's ``Location`` resolved against the URL it answers (RFC 9110 10.2.2),
    or None if it is not an http or https URL."""
    return parse_target(urljoin(base, location.strip()))


def is_literal(host: str) -> bool:
    """Whether ``host`` is an IPv4 or IPv6 address (no name to look up)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def no_proxy_matches(host: str, suffixes: list[str]) -> bool:
    """Whether ``host`` is one of, or under one of, the NoProxy entries (``*`` is all)."""
    host = host.lower()
    for suffix in suffixes:
        if suffix == "*":
            return True
        bare = suffix.lstrip(".")
        if host == bare or host.endswith("." + bare):
            return True
    return False
