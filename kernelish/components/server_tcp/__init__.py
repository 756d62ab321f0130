"""ServerTCP: a TCP server in a few lines (POE::Component::Server::TCP).

``from kernelish.components.server_tcp import ServerTCP`` reads like
``use POE qw(Component::Server::TCP);``.
"""

from ._listener import ServerTCP as ServerTCP
from ._params import ServerTCPParams as ServerTCPParams

__all__ = ["ServerTCP", "ServerTCPParams"]
