"""ClientHTTP's spawn parameters: POE::Component::Client::HTTP's, the connection pool's
(POE::Component::Client::Keepalive's), and kernelish's own.  CamelCase or snake_case,
checked at ``spawn``."""

from __future__ import annotations

import os
import ssl
from typing import Any

from pydantic import Field, field_validator

from kernelish._params_model import Params

__all__ = ["DEFAULT_MAX_SIZE", "ClientHTTPParams", "proxies_of"]

#: The largest body held in memory when ``MaxSize`` is not given and not streaming.
DEFAULT_MAX_SIZE = 64 * 1024 * 1024


def proxies_of(value: Any) -> list[tuple[str, int]]:
    """POE's proxy forms as ``[(host, port), ...]``: ``(host, port)``, or a string of
    comma-separated ``http://host:port/`` (the scheme and slashes optional, the port not).
    Raises ``ValueError`` naming what is wrong."""
    if isinstance(value, list | tuple) and len(value) == 2 and isinstance(value[1], int):
        return [(str(value[0]), int(value[1]))]
    if not isinstance(value, str):
        raise ValueError(f"must be 'http://host:port' or (host, port) (got {value!r})")
    proxies = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if item.startswith("http://"):
            item = item[len("http://") :]
        elif "://" in item:
            raise ValueError(f"only http:// proxies are supported (got {item!r})")
        item = item.rstrip("/")
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"a proxy must give host:port (got {item!r})")
        proxies.append((host.strip("[]"), int(port)))
    return proxies


def _environment_proxy() -> str | None:
    """HTTP_PROXY / http_proxy, as POE reads them -- but never under CGI, where
    HTTP_PROXY is the request's ``Proxy`` header (httpoxy, CVE-2016-5385)."""
    if "REQUEST_METHOD" in os.environ:
        return os.environ.get("http_proxy") or None
    return os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or None


class ClientHTTPParams(Params):
    """Parameters of :meth:`~kernelish.components.client_http.ClientHTTP.spawn`."""

    alias: str = "weeble"
    agent: str | list[str] | None = None
    from_: str | None = Field(None, alias="From")
    protocol: str = "HTTP/1.1"
    timeout: float = Field(180.0, gt=0, allow_inf_nan=False)
    max_size: int | None = Field(DEFAULT_MAX_SIZE, gt=0)
    streaming: int = Field(0, ge=0)
    follow_redirects: int = Field(0, ge=0)
    proxy: Any = None
    no_proxy: str | list[str] | None = None
    bind_addr: str | None = None
    # -- the connection pool (POE::Component::Client::Keepalive's parameters) --
    keep_alive: float = Field(15.0, ge=0, allow_inf_nan=False)
    max_per_host: int = Field(4, gt=0)
    max_open: int = Field(128, gt=0)
    # -- kernelish: not in POE --
    connect_timeout: float | None = Field(None, gt=0, allow_inf_nan=False)
    ssl_context: ssl.SSLContext | None = Field(None, alias="SSLContext")
    max_header_size: int = Field(64 * 1024, gt=0)
    max_fields: int = Field(100, gt=0)
    max_resolvers: int = Field(8, gt=0)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if value not in ("HTTP/1.1", "HTTP/1.0"):
            raise ValueError(f"must be 'HTTP/1.1' or 'HTTP/1.0' (got {value!r})")
        return value

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("must not be an empty list")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: Any) -> Any:
        if value is not None:
            proxies_of(value)  # refused here, at spawn, if malformed
        return value

    def proxy_list(self) -> list[tuple[str, int]]:
        """The proxies to use: ``Proxy``, else HTTP_PROXY from the environment."""
        value = self.proxy if "proxy" in self.model_fields_set else _environment_proxy()
        return [] if value is None else proxies_of(value)

    def no_proxy_list(self) -> list[str]:
        """Host suffixes never proxied: ``NoProxy``, else NO_PROXY from the environment."""
        value = self.no_proxy
        if "no_proxy" not in self.model_fields_set:
            value = os.environ.get("NO_PROXY") or os.environ.get("no_proxy")
        if value is None:
            return []
        items = value.split(",") if isinstance(value, str) else value
        return [item.strip().lower() for item in items if item.strip()]

    def body_limit(self) -> int | None:
        """The most body octets a response may have: ``MaxSize`` if given (None: no
        limit); else 64 MiB, or no limit when streaming (nothing is held)."""
        if "max_size" in self.model_fields_set:
            return self.max_size
        return None if self.streaming else DEFAULT_MAX_SIZE
