"""ClientHTTP: an HTTP user agent on the kernel (POE::Component::Client::HTTP).

``from kernelish.components.client_http import ClientHTTP`` reads like
``use POE qw(Component::Client::HTTP);``.
"""

from ._client import ClientHTTP as ClientHTTP
from ._params import ClientHTTPParams as ClientHTTPParams

__all__ = ["ClientHTTP", "ClientHTTPParams"]
