"""SysRW's constructor parameters: the pydantic model, imported on first use
(see :mod:`kernelish._params`)."""

from __future__ import annotations

from pydantic import Field

from kernelish._params_model import Params
from kernelish.drivers._sysrw import DEFAULT_BLOCK_SIZE

__all__ = ["SysRWParams"]


class SysRWParams(Params):
    """Constructor parameters of :class:`~kernelish.drivers.SysRW` (POE::Driver::SysRW::new)."""

    block_size: int = Field(DEFAULT_BLOCK_SIZE, gt=0, strict=True)
