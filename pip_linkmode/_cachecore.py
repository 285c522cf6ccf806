"""What every user of the cache needs, without what unpacking needs.

The cache's location, its error type and its entry locks (``flock``
straight from the OS; filelock's ``FileLock`` on Windows). Kept apart from
``cache`` so that replaying a recorded plan imports neither zipfile nor
filelock.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ._platform.posix import O_BINARY

__all__ = [
    "ENV_CACHE_DIR",
    "CacheError",
    "EntryLock",
    "OsFileLock",
    "default_cache_dir",
    "filelock_class",
    "lock_path",
    "resolve_root",
]

ENV_CACHE_DIR = "PIP_LINKMODE_CACHE_DIR"


def default_cache_dir() -> Path:
    """The cache root: ``PIP_LINKMODE_CACHE_DIR`` or the user cache directory."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        return Path(base) / "pip-linkmode" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pip-linkmode"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "pip-linkmode"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The absolute cache root for ``root`` (None: ``default_cache_dir()``)."""
    path = Path(root).expanduser() if root is not None else default_cache_dir()
    return Path(os.path.abspath(path))


def lock_path(root: str | os.PathLike[str], key: str) -> str:
    """The file whose lock guards entry ``key`` of the cache at ``root``."""
    return os.path.join(root, "locks", f"{key}.lock")


def filelock_class() -> Any:
    """filelock's FileLock (the cache's entry locks on Windows), imported on
    first use, or None where it cannot be imported by this interpreter."""
    try:
        from filelock import FileLock
    except (ImportError, TypeError, SyntaxError):  # pragma: no cover - see OsFileLock
        return None
    return FileLock



class OsFileLock:
    """An exclusive lock on a file, straight from the OS.

    It excludes filelock's ``FileLock`` on the same file (both take
    ``flock`` on POSIX and ``msvcrt.locking`` of byte 0 on Windows). The
    cache's entry lock on POSIX, where filelock's costs 25 times the CPU
    per use; on Windows where filelock cannot be imported by this
    interpreter (``pip-linkmode install --python`` running our code in an
    older interpreter than the one whose packages it borrows); and for a
    replayed plan, which imports no filelock.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._depth = 0
        #: the thread holding it: re-entrant for that thread only; other
        #: threads of this process wait on ``_threads`` (as filelock's
        #: thread-local FileLock makes them), then on the OS lock
        self._owner: int | None = None
        self._threads = threading.Lock()

    def __enter__(self) -> OsFileLock:
        self.acquire(blocking=True)
        return self

    def acquire(self, blocking: bool) -> bool:
        """Take the lock; without ``blocking``, False when another process
        or thread holds it."""
        me = threading.get_ident()
        if self._depth and self._owner == me:
            self._depth += 1
            return True
        if not self._threads.acquire(blocking):
            return False
        try:
            taken = self._lock_file(blocking)
        except BaseException:
            self._threads.release()
            raise
        if not taken:
            self._threads.release()
            return False
        self._owner = me
        return True

    def _lock_file(self, blocking: bool) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | O_BINARY, 0o666)
        try:
            if sys.platform == "win32":  # pragma: no cover - Windows
                import msvcrt

                while True:
                    try:
                        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                        break
                    except OSError:
                        if not blocking:
                            os.close(fd)
                            return False
                        time.sleep(0.05)
            else:
                import fcntl

                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._depth = 1
        return True

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
            self._owner = None
            self._threads.release()


class CacheError(Exception):
    """The cache cannot be used (location, permissions, a damaged entry)."""


class EntryLock:
    """An entry's file lock, which a read-only cache does without.

    Nothing can change or remove an entry on a read-only filesystem, so
    reading from it needs no lock (and could not create one); any other
    failure to lock is a clear CacheError naming the lock file.
    """

    def __init__(self, inner: Any, path: str) -> None:
        self.inner = inner
        self.path = path
        self._held: list[bool] = []

    def __enter__(self) -> EntryLock:
        self.acquire(blocking=True)
        return self

    def acquire(self, blocking: bool) -> bool:
        """Take the lock (release it with ``__exit__``); without ``blocking``,
        False at once when another process holds it."""
        try:
            if isinstance(self.inner, OsFileLock):
                if not self.inner.acquire(blocking):
                    return False
            elif blocking:
                self.inner.acquire()
            else:
                try:
                    self.inner.acquire(timeout=0)
                except TimeoutError:  # filelock's Timeout is a TimeoutError
                    return False
        except OSError as exc:
            if exc.errno != errno.EROFS:
                raise CacheError(
                    f"cannot lock {self.path}: {exc.strerror or exc}; check that the cache "
                    "directory is writable, or set --cache-dir"
                ) from exc
            self._held.append(False)
        else:
            self._held.append(True)
        return True

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        """Release one ``acquire``."""
        if self._held.pop():
            if isinstance(self.inner, OsFileLock):
                self.inner.__exit__(None, None, None)
            else:
                self.inner.release()
