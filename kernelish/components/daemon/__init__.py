"""The Daemon component: a port of POE::Component::Daemon.

``from kernelish.components.daemon import DaemonComponent, Daemon`` reads like
``use POE::Component::Daemon;``.

:class:`DaemonConfig`, the pydantic model of the parameters, is imported on
first use (``from kernelish.components.daemon import DaemonConfig`` does it):
the Daemon itself validates the common parameters without pydantic (see
:mod:`kernelish.components.daemon._config`).
"""

from typing import TYPE_CHECKING, Any

from ._component import DaemonComponent as DaemonComponent
from ._config import default_min_max as default_min_max
from ._errors import DaemonConfigError as DaemonConfigError
from ._facade import Daemon as Daemon
from ._mode import pool_mode as pool_mode
from ._pidfile import Pidfile as Pidfile
from ._pidfile import PidfileError as PidfileError
from ._process import LogfileError as LogfileError
from ._process import PrivilegeError as PrivilegeError
from ._scoreboard import Scoreboard as Scoreboard
from ._scoreboard import SlotInfo as SlotInfo
from ._scoreboard import SlotState as SlotState

if TYPE_CHECKING:
    from ._config_model import DaemonConfig as DaemonConfig

__all__ = [
    "Daemon",
    "DaemonComponent",
    "DaemonConfig",
    "DaemonConfigError",
    "LogfileError",
    "Pidfile",
    "PidfileError",
    "PrivilegeError",
    "Scoreboard",
    "SlotInfo",
    "SlotState",
    "default_min_max",
    "pool_mode",
]


def __getattr__(name: str) -> Any:
    """``DaemonConfig``, imported (with pydantic) on first use."""
    if name == "DaemonConfig":
        from ._config_model import DaemonConfig

        globals()["DaemonConfig"] = DaemonConfig
        return DaemonConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
