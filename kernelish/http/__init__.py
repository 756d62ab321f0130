"""HTTP messages: what the HTTPD filter hands over and takes (HTTP::Request, HTTP::Response).

``Request`` and ``Response`` with their ``Headers``, the framing and keep-alive decisions
a server makes (``Response.prepare``), and the WSGI environ of a request.  Nothing here
imports a parser: a daemon that serves no HTTP pays for this module only if it imports it.
"""

from kernelish.http._headers import Headers
from kernelish.http._message import Request, Response, http_date, reason_phrase
from kernelish.http._wsgi import wsgi_environ

__all__ = ["Headers", "Request", "Response", "http_date", "reason_phrase", "wsgi_environ"]
