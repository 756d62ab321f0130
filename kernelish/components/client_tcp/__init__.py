"""ClientTCP: a TCP client in a few lines (POE::Component::Client::TCP).

``from kernelish.components.client_tcp import ClientTCP`` reads like
``use POE qw(Component::Client::TCP);``.
"""

from ._client import ClientTCP as ClientTCP
from ._params import ClientTCPParams as ClientTCPParams

__all__ = ["ClientTCP", "ClientTCPParams"]
