"""ServerHTTP: an HTTP/1.1 server on ServerTCP and the Daemon's pools
(POEx::HTTP::Server, POE::Component::Server::SimpleHTTP).

``from kernelish.components.server_http import ServerHTTP`` reads like
``use POEx::HTTP::Server;``.
"""

from ._accesslog import AccessLog as AccessLog
from ._blocking import BlockingResponse as BlockingResponse
from ._component import ServerHTTP as ServerHTTP
from ._head import plain_head as plain_head
from ._helpers import close_iterable as close_iterable
from ._helpers import log_raised as log_raised
from ._params import ServerHTTPParams as ServerHTTPParams
from ._response import Connection as Connection
from ._response import ServerResponse as ServerResponse
from ._status import daemon_figures as daemon_figures
from ._status import prometheus_text as prometheus_text

__all__ = [
    "AccessLog",
    "BlockingResponse",
    "Connection",
    "ServerHTTP",
    "ServerHTTPParams",
    "ServerResponse",
    "close_iterable",
    "daemon_figures",
    "log_raised",
    "plain_head",
    "prometheus_text",
]
