"""ClientTCP: a TCP client in a few lines (POE::Component::Client::TCP).

``from kernelish.components.client_tcp import ClientTCP`` reads like
``use POE qw(Component::Client::TCP);``.  ``ClientTCPParams``, the pydantic
model of its parameters, is imported on first use: a client whose
parameters have the common shape never imports pydantic.
"""

from typing import TYPE_CHECKING, Any

from ._client import ClientTCP as ClientTCP

if TYPE_CHECKING:
    from ._params import ClientTCPParams as ClientTCPParams

__all__ = ["ClientTCP", "ClientTCPParams"]


def __getattr__(name: str) -> Any:
    if name == "ClientTCPParams":
        from ._params import ClientTCPParams

        globals()["ClientTCPParams"] = ClientTCPParams
        return ClientTCPParams
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
