"""Drivers: move octets between handles and filters (POE::Driver::*)."""

from kernelish.drivers._sysrw import Driver, SysRW

__all__ = ["Driver", "SysRW"]
