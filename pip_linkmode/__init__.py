"""pip-linkmode: install wheels from a shared, verified cache by clone, hardlink, symlink or copy."""

from __future__ import annotations

from .cache import CacheError, InvalidWheel, WheelCache
from .destination import LinkingDestination
from .install import InstallReport, Target, install_wheel, install_wheels
from .linker import LinkError, LinkReport
from .modes import LinkMode
from .source import CachedWheelSource

__version__ = "0.1.0"

__all__ = [
    "CacheError",
    "CachedWheelSource",
    "InstallReport",
    "InvalidWheel",
    "LinkError",
    "LinkMode",
    "LinkReport",
    "LinkingDestination",
    "Target",
    "WheelCache",
    "__version__",
    "install_wheel",
    "install_wheels",
]
