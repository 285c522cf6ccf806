"""The small platform interface every file placement goes through.

``current()`` returns the implementation for this operating system. Tests
swap in the macOS or Windows implementation with their system calls
injected (see ``darwin.DarwinCalls`` and ``windows.WindowsCalls``).
"""

from __future__ import annotations

import sys

from .posix import Cause, Platform, PosixPlatform

__all__ = ["Cause", "Platform", "PosixPlatform", "current", "set_current"]

_current: Platform | None = None


def _detect() -> Platform:
    if sys.platform.startswith("linux"):
        from .linux import LinuxPlatform

        return LinuxPlatform()
    if sys.platform == "darwin":
        from .darwin import DarwinPlatform

        return DarwinPlatform()
    if sys.platform == "win32":
        from .windows import WindowsPlatform

        return WindowsPlatform()
    return PosixPlatform()


def current() -> Platform:
    """The platform implementation in use by this process."""
    global _current
    if _current is None:
        _current = _detect()
    return _current


def set_current(platform: Platform | None) -> Platform | None:
    """Install ``platform`` (None: detect again); returns the previous one."""
    global _current
    previous = _current
    _current = platform
    return previous
