"""ServerHTTP: an HTTP/1.1 server on ServerTCP and the Daemon's pools
(POEx::HTTP::Server, POE::Component::Server::SimpleHTTP).

``from kernelish.components.server_http import ServerHTTP`` reads like
``use POEx::HTTP::Server;``.
"""

from ._component import ServerHTTP as ServerHTTP
from ._params import ServerHTTPParams as ServerHTTPParams
from ._response import Connection as Connection
from ._response import ServerResponse as ServerResponse
from ._status import daemon_figures as daemon_figures
from ._status import prometheus_text as prometheus_text

__all__ = [
    "Connection",
    "ServerHTTP",
    "ServerHTTPParams",
    "ServerResponse",
    "daemon_figures",
    "prometheus_text",
]
