"""The small platform interface every file placement goes through.

``current()`` returns the implementation for this operating system. Tests
swap in the macOS or Windows implementation with their system calls
injected (see ``darwin.DarwinCalls`` and ``windows.WindowsCalls``).
"""

from __future__ import annotations

import os
import sys

from .posix import NEW_FILE, O_BINARY, Cause, Platform, PosixPlatform, private_reads, read_at

__all__ = [
    "Cause", "NEW_FILE", "O_BINARY", "Platform", "PosixPlatform", "current", "private_reads",
    "read_at", "set_current", "umask",
]

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


def umask() -> int:
    """The process's file mode creation mask.

    ``os.umask`` can only be read by setting it, and for that moment files
    that other threads create (unpacking, cloning) would get other mode
    bits. Linux shows the mask in /proc/self/status; elsewhere it is read
    the only way there is, once, on first use (from the main thread before
    any placement starts).
    """
    global _umask
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if _umask is None:
        _umask = os.umask(0o022)
        os.umask(_umask)
    return _umask


_umask: int | None = None
