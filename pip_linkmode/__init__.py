"""pip-linkmode: install wheels from a shared, verified cache by clone, hardlink, symlink or copy."""

from __future__ import annotations

import importlib

# (not typing's: a helper process placing clones imports this package, and
# typing alone would be most of its start)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .batch import LinkBatch
    from .cache import CacheError, InvalidWheel, WheelCache
    from .destination import LinkingDestination
    from .install import InstallReport, Target, install_wheel, install_wheels
    from .linker import LinkError, LinkReport
    from .modes import LinkMode
    from .source import CachedWheelSource

__version__ = "0.1.0"

# Public names and the module defining each, imported on first use: the
# command line's fast paths (``pip-linkmode venv``) do not pay for installer.
_EXPORTS = {
    "LinkBatch": "batch",
    "CacheError": "cache",
    "InvalidWheel": "cache",
    "WheelCache": "cache",
    "LinkingDestination": "destination",
    "InstallReport": "install",
    "Target": "install",
    "install_wheel": "install",
    "install_wheels": "install",
    "LinkError": "linker",
    "LinkReport": "linker",
    "LinkMode": "modes",
    "CachedWheelSource": "source",
}

__all__ = [
    "CacheError",
    "CachedWheelSource",
    "InstallReport",
    "InvalidWheel",
    "LinkBatch",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
