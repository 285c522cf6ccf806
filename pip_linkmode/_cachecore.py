"""What every user of the cache needs, without what unpacking needs.

The cache's location, its error type and its entry locks (``flock``
straight from the OS; filelock's ``FileLock`` on Windows). Kept apart from
``cache`` so that replaying a recorded plan imports neither zipfile nor
filelock.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._platform.posix import O_BINARY

__all__ = [
    "ENV_CACHE_DIR",
    "CacheError",
    "CacheNotWritable",
    "DIR_FDS",
    "DIR_MODE",
    "ENV_SHARED_CACHE",
    "EXEC_MODE",
    "EntryLock",
    "FILE_MODE",
    "O_NOFOLLOW",
    "UnsafeCachePath",
    "cache_root_of",
    "check_path",
    "check_no_links",
    "check_tree",
    "check_writable",
    "dir_mode",
    "make_dirs",
    "open_dir",
    "open_lock_file",
    "ownership",
    "register_root",
    "rename",
    "shared_cache",
    "touch",
    "write_file",
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
        fd = open_lock_file(self.path)
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
            fd, self._fd, self._owner = self._fd, None, None
            try:
                if sys.platform != "win32":
                    # unlocked before it is closed: a process forked while it
                    # was held (a compiling pool's worker) shares the lock,
                    # and the close alone would leave it held until that
                    # process ends
                    import fcntl

                    with contextlib.suppress(OSError):  # (the close below releases it here anyway)
                        fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                # (an interrupt in the unlock still closes and lets the threads in)
                try:
                    os.close(fd)  # (closing releases msvcrt's lock)
                finally:
                    self._threads.release()


class CacheError(Exception):
    """The cache cannot be used (location, permissions, a damaged entry)."""


class UnsafeCachePath(CacheError, OSError):
    """A symbolic link (or junction) inside the cache, where the cache keeps
    a directory or a file of its own: never followed, never written through.

    An ``OSError`` as well, so that every front end reports it in one line
    (pip reports an OSError from an install in one line, a CacheError with
    a traceback).
    """

    def __init__(self, path: str, climbs: bool = False) -> None:
        self.path = path
        self.climbs = climbs
        super().__init__(
            f"refusing to use {path}: a path inside the cache never names '..', which would "
            "skip the check of what it climbs out of (someone may have tampered with the cache)"
            if climbs else
            f"refusing to use {path}: it is a symbolic link inside the cache, which the cache "
            "never follows; remove it (someone may have tampered with the cache)"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # (raised in a worker process, re-raised here)
        return (type(self), (self.path, self.climbs))


class CacheNotWritable(CacheError, OSError):
    """A cache that this user must not write (or not use at all): one line
    naming its owner and the fix; an ``OSError`` too (see UnsafeCachePath)."""


# -- never through a link: what the cache creates, writes and removes ----------
#
# A path inside the cache is handled one component at a time below the
# cache's root (the root itself, and what leads to it, are the user's
# choice and may be links). On POSIX each directory is opened by descriptor
# with O_NOFOLLOW and files are made, renamed and removed relative to it, so
# a directory swapped for a link after it was checked changes nothing; on
# Windows (no O_NOFOLLOW, no descriptor-relative calls) each component is
# checked with lstat first, links and junctions alike.

#: ``os.open`` flag refusing a final symbolic link (0 on Windows)
O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
#: directories opened by descriptor, files handled relative to them
DIR_FDS: bool = bool(O_NOFOLLOW and _O_DIRECTORY) and {
    os.open, os.mkdir, os.rename, os.unlink, os.stat, os.utime, os.chmod
} <= os.supports_dir_fd
_NEW: int = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_BINARY | _O_CLOEXEC
#: IO_REPARSE_TAG_MOUNT_POINT (a junction), IO_REPARSE_TAG_SYMLINK
_LINK_TAGS = (0xA0000003, 0xA000000C)

#: Mode bits of what the cache creates (the umask may remove more, never
#: fewer): never group- or world-writable, whatever the umask, since in
#: hardlink mode a cache file's inode is every environment's file.
FILE_MODE = 0o644
EXEC_MODE = 0o755
DIR_MODE = 0o755

ENV_SHARED_CACHE = "PIP_LINKMODE_SHARED_CACHE"


def shared_cache() -> bool:
    """Has the user chosen to share the cache with other users
    (``PIP_LINKMODE_SHARED_CACHE=1``)? Then a cache owned by someone else
    is written too, and its directories and lock files take the umask's
    group and world bits (its files never do)."""
    return os.environ.get(ENV_SHARED_CACHE, "").strip().lower() in ("1", "true", "yes", "on")


def dir_mode() -> int:
    """The bits a new cache directory is made with (less the umask)."""
    return 0o777 if shared_cache() else DIR_MODE


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


#: (root, euid, shared) -> what ``ownership`` found, once per process
_ownership: dict[tuple[str, int, bool], tuple[bool, str] | None] = {}


def ownership(root: str | os.PathLike[str]) -> tuple[bool, str] | None:
    """May this process use the cache at ``root``, which may belong to
    someone else? None: read and write it (its own, one it will create, or
    one shared deliberately). ``(True, why)``: only read it (owned by root,
    not writable by group or others: linking from it is safe). ``(False,
    why)``: not at all, as pip disables such a cache (owned by another
    user: ``sudo`` without ``-H`` keeping HOME, a shared directory). POSIX
    only: on Windows the ACLs decide."""
    if not hasattr(os, "geteuid"):
        return None
    root = os.fspath(root)
    me, shared = os.geteuid(), shared_cache()
    memo = (root, me, shared)
    if memo in _ownership:
        return _ownership[memo]
    found: tuple[bool, str] | None = None
    path = root
    while not shared:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
            continue
        except OSError:
            break  # its first use says what is wrong
        if st.st_uid == me or (path != root and me != 0):
            break  # ours, or made by us (under sudo: made in someone's home)
        owner, user = _user(st.st_uid), _user(me)
        fix = (
            f"set --cache-dir or {ENV_CACHE_DIR} to a directory of your own, or "
            f"{ENV_SHARED_CACHE}=1 to share this cache deliberately"
        )
        if st.st_uid == 0 and path == root and not st.st_mode & 0o022:
            found = (True, f"the cache {root} is owned by root, not by {user}: it is only read, never written; {fix}")
        else:
            why = " (sudo without -H keeps HOME)" if me == 0 else ""
            found = (False, f"the cache directory {path} is owned by {owner}, not by {user}{why}: not using it; run as {owner}, or {fix}")
        break
    _ownership[memo] = found
    return found


#: the roots of the caches this process opened (``WheelCache``): what
#: ``linker.write_beside`` writes and ``cache.remove_tree`` removes below
#: one of them is held to the rules of the cache's own writes
_roots: set[str] = set()


def register_root(root: str | os.PathLike[str]) -> None:
    """Note the root of a cache this process uses (see ``cache_root_of``)."""
    _roots.add(os.path.abspath(root))


def cache_root_of(path: str | os.PathLike[str]) -> str | None:
    """The root of a cache this process uses that ``path`` is inside, or None."""
    if not _roots:
        return None
    # (by prefix, not by walking up: a path in an environment, never in a
    # cache, cost a dirname per component, per file an install writes)
    head = os.path.dirname(os.path.abspath(path))
    found = None
    for root in tuple(_roots):  # (another thread may register a root meanwhile)
        if head == root or head.startswith(root if root.endswith(os.sep) else root + os.sep):
            if found is None or len(root) > len(found):
                found = root  # (the innermost, as walking up would find first)
    return found


def check_writable(root: str | os.PathLike[str]) -> None:
    """CacheNotWritable where this process must not write in the cache."""
    found = ownership(root)
    if found is not None:
        raise CacheNotWritable(found[1])


def _is_link(st: os.stat_result) -> bool:
    return stat.S_ISLNK(st.st_mode) or getattr(st, "st_reparse_tag", 0) in _LINK_TAGS


def _parts(root: str, path: str) -> list[str]:
    # relpath folds "a/link/../b" into "a/b": the link would go unchecked,
    # and the system would still resolve the path through it
    if os.pardir in path.replace(os.altsep or os.sep, os.sep).split(os.sep):
        raise UnsafeCachePath(path, climbs=True)
    rel = os.path.relpath(path, root)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if not parts or parts[0] == os.pardir:
        raise ValueError(f"{path} is not inside the cache {root}")
    return parts


def check_path(root: str | os.PathLike[str], path: str | os.PathLike[str], *, final: bool = True) -> None:
    """UnsafeCachePath for the first component of ``path`` below ``root``
    that is a link or a junction (``final`` False: the last component is
    not looked at); the check stops at one that does not exist."""
    here = os.fspath(root)
    parts = _parts(here, os.fspath(path))
    for part in parts if final else parts[:-1]:
        here = os.path.join(here, part)
        try:
            st = os.lstat(here)
        except (FileNotFoundError, NotADirectoryError):
            return
        if _is_link(st):
            raise UnsafeCachePath(here)


def check_tree(root: str | os.PathLike[str], tree: str | os.PathLike[str]) -> None:
    """Before writing into a directory tree of the cache (compiling
    bytecode next to an entry's files): it may be written by this process,
    and neither it nor anything in it is a link (an entry never holds one)."""
    check_writable(root)
    check_no_links(root, tree)


def check_no_links(root: str | os.PathLike[str], tree: str | os.PathLike[str]) -> None:
    """UnsafeCachePath for a link or junction at or below the cache
    directory ``tree`` (an entry never holds one), or on the way to it."""
    check_path(root, tree)
    stack = [os.fspath(tree)]
    while stack:
        with os.scandir(stack.pop()) as found:
            for item in found:
                if item.is_symlink() or (os.name == "nt" and _is_link(item.stat(follow_symlinks=False))):
                    raise UnsafeCachePath(item.path)
                if item.is_dir(follow_symlinks=False):
                    stack.append(item.path)


def _refuse_link(name: str, dir_fd: int | None, path: str) -> None:
    """UnsafeCachePath if ``name`` (in ``dir_fd``; None: ``path`` itself) is a link."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if dir_fd is not None else os.lstat(path)
    except OSError:
        return
    if _is_link(st):
        raise UnsafeCachePath(path) from None


def _open_dir(root: str, parts: Sequence[str], mode: int | None) -> int:
    """POSIX: a descriptor of ``root``/``parts``, each part opened without
    following a link (``mode`` not None: made with these bits if missing)."""
    flags = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
    if mode is not None:
        os.makedirs(root, mode, exist_ok=True)
    fd = os.open(root, flags)
    here = root
    try:
        for part in parts:
            here = os.path.join(here, part)
            if mode is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, mode, dir_fd=fd)
            try:
                sub = os.open(part, flags | O_NOFOLLOW, dir_fd=fd)
            except OSError:
                _refuse_link(part, fd, here)
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def _dirs_by_path(root: str, parts: Sequence[str], mode: int | None) -> None:
    """Without descriptors (Windows): ``parts`` below ``root`` checked one
    by one with lstat (``mode`` not None: made if missing)."""
    if mode is not None:
        os.makedirs(root, mode, exist_ok=True)
    here = root
    for part in parts:
        here = os.path.join(here, part)
        if mode is not None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(here, mode)
        st = os.lstat(here)
        if _is_link(st):
            raise UnsafeCachePath(here)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", here)


def make_dirs(root: str | os.PathLike[str], path: str | os.PathLike[str], mode: int | None = None) -> None:
    """Make the directory ``path`` of the cache and its missing parents,
    below ``root``, none of them through a link (``mode``: the bits of
    those made, less the umask; None: ``dir_mode()``)."""
    root_s = os.fspath(root)
    check_writable(root_s)
    parts = _parts(root_s, os.fspath(path))
    bits = dir_mode() if mode is None else mode
    if DIR_FDS:
        os.close(_open_dir(root_s, parts, bits))
    else:
        _dirs_by_path(root_s, parts, bits)


def open_dir(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> int | None:
    """A descriptor of the cache directory ``path``, reached below ``root``
    without following a link (the caller closes it); None where there are
    no descriptor-relative calls (Windows: ``path`` checked with lstat)."""
    root_s = os.fspath(root)
    parts = _parts(root_s, os.fspath(path))
    if DIR_FDS:
        return _open_dir(root_s, parts, None)
    _dirs_by_path(root_s, parts, None)
    return None


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _write_in(dir_fd: int | None, name: str, path: str, data: bytes, mode: int, exclusive: bool) -> bool:
    """``write_file``'s work in an open directory (None: by path)."""
    at = name if dir_fd is not None else path
    if exclusive:
        try:
            fd = os.open(at, _NEW, mode, dir_fd=dir_fd)
        except FileExistsError:
            _refuse_link(name, dir_fd, path)
            return False
        try:
            _write_all(fd, data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(at, dir_fd=dir_fd)
            raise
        return True
    _refuse_link(name, dir_fd, path)
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    if dir_fd is None:
        tmp = os.path.join(os.path.dirname(path), tmp)
    fd = os.open(tmp, _NEW, mode, dir_fd=dir_fd)
    try:
        _write_all(fd, data)
        os.replace(tmp, at, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return True


def write_file(
    root: str | os.PathLike[str],
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = FILE_MODE,
    exclusive: bool = False,
    makedirs: bool = False,
) -> bool:
    """Write a whole file of the cache at ``root``, never through a link.

    It is written to a new temp name beside ``path`` (``O_EXCL``, no
    following) and renamed over ``path``, which must not be a link; with
    ``exclusive``, created at ``path`` only if nothing is there (returns
    False when a file already is). ``makedirs``: missing parents are made.
    Refused (CacheNotWritable) in a cache this process must not write.
    """
    root_s, path_s = os.fspath(root), os.fspath(path)
    check_writable(root_s)
    parts = _parts(root_s, path_s)
    dmode = dir_mode() if makedirs else None
    if not DIR_FDS:
        _dirs_by_path(root_s, parts[:-1], dmode)
        return _write_in(None, parts[-1], path_s, data, mode, exclusive)
    dir_fd = _open_dir(root_s, parts[:-1], dmode)
    try:
        return _write_in(dir_fd, parts[-1], path_s, data, mode, exclusive)
    finally:
        os.close(dir_fd)


def touch(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Set the mtime of the cache file ``path`` to now (made empty when
    missing), never through a link."""
    root_s, path_s = os.fspath(root), os.fspath(path)
    check_writable(root_s)
    parts = _parts(root_s, path_s)
    dir_fd = _open_dir(root_s, parts[:-1], None) if DIR_FDS else None
    try:
        if dir_fd is None:
            _dirs_by_path(root_s, parts[:-1], None)
        name = parts[-1]
        at = name if dir_fd is not None else path_s
        try:
            st = os.stat(at, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            _write_in(dir_fd, name, path_s, b"", FILE_MODE, True)
            return
        if _is_link(st):
            raise UnsafeCachePath(path_s)
        if dir_fd is not None:
            os.utime(name, dir_fd=dir_fd, follow_symlinks=False)
        else:
            os.utime(path_s)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)


def rename(root: str | os.PathLike[str], src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Rename ``src`` to ``dst`` (both in the cache at ``root``; ``dst``
    must not exist as a non-empty directory): their parents are reached
    without following a link; ``src`` itself is moved, link or not."""
    root_s = os.fspath(root)
    check_writable(root_s)
    sparts, dparts = _parts(root_s, os.fspath(src)), _parts(root_s, os.fspath(dst))
    if not DIR_FDS:
        _dirs_by_path(root_s, sparts[:-1], None)
        _dirs_by_path(root_s, dparts[:-1], None)
        os.rename(src, dst)
        return
    sfd = _open_dir(root_s, sparts[:-1], None)
    try:
        dfd = _open_dir(root_s, dparts[:-1], None)
        try:
            os.rename(sparts[-1], dparts[-1], src_dir_fd=sfd, dst_dir_fd=dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def open_lock_file(path: str) -> int:
    """The descriptor of a lock file ``<root>/locks/<name>`` (made when
    missing), never through a link: neither it nor ``locks`` may be one.
    One this user may not write (a cache owned by root that it reads) is
    opened for reading: flock takes that as well."""
    head, name = os.path.split(path)
    mode = 0o666 if shared_cache() else FILE_MODE
    flags = os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_BINARY | _O_CLOEXEC
    if not DIR_FDS:
        _refuse_link(head, None, head)
        _refuse_link(name, None, path)
        return os.open(path, flags, mode)
    try:
        dir_fd = os.open(head, os.O_RDONLY | _O_DIRECTORY | O_NOFOLLOW | _O_CLOEXEC)
    except OSError:
        _refuse_link(head, None, head)
        raise
    try:
        try:
            return os.open(name, flags, mode, dir_fd=dir_fd)
        except PermissionError:
            return os.open(name, os.O_RDONLY | O_NOFOLLOW | _O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        _refuse_link(name, dir_fd, path)
        raise
    finally:
        os.close(dir_fd)


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
        except CacheError:
            raise  # a link where the lock file or its directory should be
        except OSError as exc:
            # (a cache only read by this user, owned by root: a lock file
            # that is not there yet cannot be made, and is not needed)
            read_only = exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM) and (
                ownership(os.path.dirname(os.path.dirname(self.path))) or (False,)
            )[0]
            if exc.errno != errno.EROFS and not read_only:
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

    @property
    def held(self) -> bool:
        """Does the last ``acquire`` hold the file lock? (A read-only cache's
        is taken without one.)"""
        return bool(self._held and self._held[-1])

    def release(self) -> None:
        """Release one ``acquire``."""
        if self._held.pop():
            if isinstance(self.inner, OsFileLock):
                self.inner.__exit__(None, None, None)
            else:
                self.inner.release()


def is_safe_relpath(path: object) -> bool:
    """Is ``path``, read back from the cache (a manifest, a layout, a
    plan), a relative path in normal form that cannot leave the directory
    it is joined to? The rules archive members are held to, without
    normalising: a cache that wrote it knew it already in normal form, so
    anything else was written by someone else."""
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        return False
    if path[0] == "/" or path[1:2] == ":":
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


#: what installer's csv writer quotes in a RECORD field (a path with one is
#: quoted; a hash or a size never holds one)
RECORD_SPECIALS = frozenset(',"\r\n')


def plain_record_fields(fields: Iterable[str]) -> bool:
    """Whether none of ``fields`` holds a character RECORD quotes (a TypeError
    if one is not a string): a hash read back from the cache is written into
    RECORD as it is, so one holding a line break would add a line."""
    joined = "\x00".join(fields)
    # (a substring search per character: a set's isdisjoint walks the text
    # a character at a time, hashing each: a tenth of reading a layout)
    return not any(char in joined for char in RECORD_SPECIALS)


def all_safe_relpaths(paths: Sequence[str]) -> bool:
    """``is_safe_relpath`` of each of ``paths``, in a few passes over them
    joined (a layout's thousands); a TypeError if one is not a string.
    True for none (an entry with nothing to compile records no rows)."""
    if not paths:
        return True
    joined = "/" + "/\n/".join(paths) + "/"  # each path between "/"s
    if "//" in joined or "/./" in joined or "/../" in joined or "\\" in joined or "\x00" in joined:
        return False
    return ":" not in joined or not any(p[1:2] == ":" for p in paths)
