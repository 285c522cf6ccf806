"""macOS: APFS ``clonefile``, for single files and for whole directories.

The system call sits behind ``DarwinCalls`` so that tests on other systems
can inject it and exercise the same code paths.
"""

from __future__ import annotations

import ctypes
import errno
import os

from .posix import PosixPlatform

__all__ = ["DarwinCalls", "DarwinPlatform"]

#: clonefile(2) flag: do not follow a symlink at the source.
CLONE_NOFOLLOW = 0x0001


class DarwinCalls:
    """The real macOS system calls (loaded lazily from libc)."""

    def __init__(self) -> None:
        self._clonefile: object | None = None

    def clonefile(self, src: str, dst: str) -> None:
        if self._clonefile is None:
            libc = ctypes.CDLL(None, use_errno=True)
            func = getattr(libc, "clonefile", None)
            if func is None:
                raise OSError(errno.ENOTSUP, "clonefile is not available", src)
            func.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint32)
            func.restype = ctypes.c_int
            self._clonefile = func
        func = self._clonefile
        result = func(os.fsencode(src), os.fsencode(dst), CLONE_NOFOLLOW)  # type: ignore[operator]
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), src, None, dst)


class DarwinPlatform(PosixPlatform):
    name = "darwin"
    clones_directories = True

    def __init__(self, calls: DarwinCalls | None = None) -> None:
        self.calls = calls or DarwinCalls()

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        # clonefile keeps the cache file's mode bits and timestamps itself, at no extra cost.
        self.calls.clonefile(src, dst)

    def clone_tree(self, src: str, dst: str) -> None:
        # One call clones a whole directory, as long as dst does not exist.
        self.calls.clonefile(src, dst)

    def touch_dir(self, path: str) -> None:
        """Bump a directory's mtime so import caches notice new entries."""
        os.utime(path)
