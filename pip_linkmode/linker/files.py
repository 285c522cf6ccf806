"""Writing a per-environment file: beside its target, then renamed over it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable

from .._cachecore import FILE_MODE, cache_root_of, write_file
from .._platform import NEW_FILE

__all__ = ["LEFTOVER_SUFFIXES", "TEMP_SUFFIX", "beside", "write_beside", "write_fd"]

#: the suffix of the temp names files are written to before the rename over their target
TEMP_SUFFIX = ".plm-tmp"
#: what ``Journal.sweep_temps`` removes: temp names, and names moved aside (Windows)
LEFTOVER_SUFFIXES = (TEMP_SUFFIX, ".plm-old")


def beside(path: str, suffix: str) -> str:
    """A fresh hidden name in ``path``'s directory: ``.NAME.HEX<suffix>``."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.{os.urandom(4).hex()}{suffix}")


def write_beside(
    path: str,
    data: bytes | Iterable[bytes],
    mode: int | None = None,
    replace: Callable[[str, str], None] = os.replace,
    *,
    fresh: bool = False,
) -> None:
    """Write a per-environment file: to a temp name beside ``path``, then rename over it.

    An existing ``path`` (perhaps a hardlink into the cache) is replaced,
    never opened for writing. ``data`` is the content or its chunks; ``mode``
    None keeps the default permissions; ``replace`` does the rename (the
    platform's, which knows Windows' rename-aside). ``fresh``: nothing is
    expected at ``path``, so it is created there directly, exclusively (the
    temp name is used after all if something is there).

    A file inside a cache this process uses (a layout, a plan, a record) is
    the cache's own: ``_cachecore.write_file`` writes it, through no link,
    never group- or world-writable.
    """
    root = cache_root_of(path)
    if root is not None:
        whole = data if isinstance(data, bytes) else b"".join(data)
        write_file(root, path, whole, mode=FILE_MODE if mode is None else mode & ~0o022)
        return
    flags = NEW_FILE
    perms = 0o666 if mode is None else mode
    if fresh:
        try:
            fd = os.open(path, flags, perms)
        except FileExistsError:
            pass
        else:
            try:
                write_fd(fd, path, data, mode)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            return
    tmp = beside(path, TEMP_SUFFIX)
    try:
        write_fd(os.open(tmp, flags, perms), tmp, data, mode)
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_fd(fd: int, path: str, data: bytes | Iterable[bytes], mode: int | None) -> None:
    """Write ``data`` to a new file's descriptor, give it ``mode`` exactly, close it."""
    try:
        for chunk in (data,) if isinstance(data, bytes) else data:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        if mode is not None and os.chmod in os.supports_fd:
            os.fchmod(fd, mode)  # exactly these bits, whatever the umask
    finally:
        os.close(fd)
    if mode is not None and os.chmod not in os.supports_fd:
        os.chmod(path, mode)
