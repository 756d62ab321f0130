"""The WSGI environ of a request (PEP 3333)."""

from __future__ import annotations

import io
import sys
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from kernelish.http._message import Request

__all__ = ["wsgi_environ"]


def wsgi_environ(
    request: Request,
    *,
    server_name: str,
    server_port: int | str,
    remote_addr: str = "",
    remote_port: int | str = "",
    url_scheme: str = "http",
    script_name: str = "",
    input: IO[bytes] | None = None,
    errors: IO[str] | None = None,
    multiprocess: bool = True,
) -> dict[str, Any]:
    """The WSGI environ for ``request`` (PEP 3333), as gunicorn builds it.

    ``PATH_INFO`` is the target's path percent-decoded and then decoded as ISO-8859-1 (PEP
    3333's "bytes in a str"), without ``script_name`` when it starts with it;
    ``QUERY_STRING`` is the query as sent.  ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` come
    from their fields; a chunked body the filter already holds gets its decoded length.
    Every other field becomes ``HTTP_<NAME>`` (repeated fields joined with ``,``), except
    names holding ``_``: ``X_Forwarded_For`` would land on the same key as
    ``X-Forwarded-For``, so they are dropped, as gunicorn does by default.  ``wsgi.input``
    is ``input`` (a stream the server feeds, in the filter's streaming mode) or a
    ``BytesIO`` over the body; ``wsgi.input_terminated`` is set, since the server frames
    the body.  ``SERVER_NAME``/``SERVER_PORT`` are the listening address (a WSGI
    application builds URLs from ``HTTP_HOST`` first).
    """
    path = request.path
    if path != "*":
        path = unquote_to_bytes(path).decode("latin-1")
    if script_name and (path == script_name or path.startswith(script_name.rstrip("/") + "/")):
        path = path[len(script_name.rstrip("/")) :]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": script_name.rstrip("/"),
        "PATH_INFO": path,
        "QUERY_STRING": request.query,
        "RAW_URI": request.target,
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": request.protocol,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": str(remote_port),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.input": input if input is not None else io.BytesIO(request.body),
        "wsgi.errors": errors if errors is not None else sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, value in request.headers:
        if "_" in name:
            continue
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = value
            continue
        key = "HTTP_" + key
        environ[key] = environ[key] + "," + value if key in environ else value
    if "CONTENT_LENGTH" not in environ and input is None and request.body:
        environ["CONTENT_LENGTH"] = str(len(request.body))
    host = request.host
    if host is not None:
        environ["HTTP_HOST"] = host
    return environ
