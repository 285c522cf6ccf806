"""The shared wheel cache: each wheel unpacked once, verified, published atomically.

Layout under the cache root::

    entries/<key>/entry.json   what the wheel holds (files, RECORD rows, flags)
    entries/<key>/tree/        the unpacked files, linked into environments
    entries/<key>/layout.json  derived: the files by scheme and directory, with
                               their RECORD lines (``placement.load_layout``)
    entries/<key>/bytecode-*.json  derived: the pycs compiled into tree/
    index/<hash of path>.json  a wheel file's stamp -> its entry's key and names
    locks/<key>.lock           per-entry file locks
    tmp/<key>-<pid>-<rand>/    unpacks in progress (removed by the next run)

The key is derived from the wheel's content without reading the whole wheel:
its name and size, the zip central directory (every member's name, CRC-32
and sizes) and the bytes of its RECORD. A changed wheel with the same file
name changes at least one of these.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from . import _log, _platform
from ._cachecore import (
    DIR_FDS,
    ENV_CACHE_DIR,
    CacheError,
    CacheNotWritable,
    EntryLock,
    OsFileLock,
    UnsafeCachePath,
    all_safe_relpaths,
    cache_root_of,
    check_path,
    check_writable,
    default_cache_dir,
    dir_mode,
    filelock_class,
    is_safe_relpath,
    lock_path,
    make_dirs,
    open_dir,
    ownership,
    plain_record_fields,
    register_root,
    rename,
    resolve_root,
    shared_cache,
    touch,
    write_file,
)

if TYPE_CHECKING:
    import zipfile

    from .source import CachedWheelSource

__all__ = [
    "CacheError",
    "CachedFile",
    "CachedWheel",
    "InvalidWheel",
    "WheelCache",
    "default_cache_dir",
    "ENV_CACHE_DIR",
]

LAYOUT_VERSION = 1
#: what the index keeps of an entry besides its key
_INDEXED_NAMES = ("filename", "name", "version", "dist_info")
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")


class InvalidWheel(CacheError):
    """A wheel was refused; the message names the wheel and the member."""

    def __init__(self, wheel: str | os.PathLike[str], member: str | None, reason: str):
        self.wheel = os.fspath(wheel)
        self.member = member
        self.reason = reason
        where = f", member {member!r}" if member else ""
        super().__init__(f"invalid wheel {os.path.basename(self.wheel)}{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # (raised in a worker process, re-raised here)
        return (type(self), (self.wheel, self.member, self.reason))


class CachedFile(NamedTuple):
    """One file of a cached wheel, as the wheel's verified RECORD lists it
    (a tuple: an entry makes one per file each time it is read)."""

    path: str  # archive path, '/'-separated
    hash: str  # RECORD hash field, e.g. "sha256=..."
    size: int
    executable: bool
    python_shebang: bool  # starts with b"#!python": rewritten per environment


class CachedWheel:
    """A published, verified cache entry.

    ``files`` is built from the entry's manifest on first use: an install
    from the entry's layout never needs it.
    """

    __slots__ = ("key", "root", "filename", "name", "version", "dist_info", "_files", "_file_rows", "_files_checked")

    def __init__(
        self,
        key: str,
        root: Path,
        filename: str,
        name: str,
        version: str,
        dist_info: str,
        files: list[list[Any]] | None = None,
    ) -> None:
        self.key = key
        self.root = root  # entries/<key>
        self.filename = filename
        self.name = name
        self.version = version
        self.dist_info = dist_info
        # [path, hash, size, executable, python_shebang] per file, as in
        # entry.json; None until first needed (then read from there)
        self._file_rows = files
        self._files_checked = False
        self._files: tuple[CachedFile, ...] | None = None

    def unloaded(self) -> CachedWheel:
        """This entry without its manifest in memory (read again when
        needed)."""
        return CachedWheel(self.key, self.root, self.filename, self.name, self.version, self.dist_info)

    def _manifest(self) -> list[list[Any]]:
        rows = self._file_rows
        if rows is None or not self._files_checked:
            try:
                if rows is None:
                    rows = json.loads((self.root / "entry.json").read_bytes())["files"]
                # a path that could leave the tree is never used (checked in
                # bulk; the first bad row is named)
                paths = [row[0] for row in rows]
                if (
                    not all_safe_relpaths(paths)
                    or not all(len(row) == 5 and type(row[2]) is int and row[2] >= 0 for row in rows)
                    or not plain_record_fields([row[1] for row in rows])  # (written into RECORD)
                ):
                    for path, _, size, _, _ in rows:
                        if not is_safe_relpath(path) or type(size) is not int or size < 0:
                            raise ValueError(f"unsafe file row {path!r}")
                    raise ValueError("malformed file rows")
            except (OSError, ValueError, LookupError, TypeError) as exc:  # (LookupError: a row too short)
                raise CacheError(
                    f"damaged or removed cache entry {self.root}: {exc}; "
                    "run `pip-linkmode cache clean` if it persists"
                ) from exc
            self._file_rows, self._files_checked = rows, True
        return rows

    def __repr__(self) -> str:
        return f"<CachedWheel {self.filename} {self.key}>"

    def _identity(self) -> tuple[Any, ...]:
        return (self.key, self.root, self.filename, self.name, self.version, self.dist_info, self._manifest())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CachedWheel):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((self.key, self.root))

    @property
    def files(self) -> tuple[CachedFile, ...]:
        files = self._files
        if files is None:
            files = self._files = tuple(
                CachedFile(p, h, s, bool(x), bool(sb)) for p, h, s, x, sb in self._manifest()
            )
        return files

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def data_dir(self) -> str:
        """The entry's ``.data`` directory, named as installer's ``WheelSource``
        names it (distribution and version from the .dist-info name)."""
        distribution, _, version = self.dist_info[: -len(".dist-info")].rpartition("-")
        return f"{distribution}-{version}.data"

    def path_of(self, member: str) -> Path:
        return self.tree / member

    @property
    def size(self) -> int:
        return sum(row[2] for row in self._manifest())


def record_digest(digest: bytes) -> str:
    """A digest spelled as RECORD spells it (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")




def _file_stamp(path: str | os.PathLike[str], st: os.stat_result) -> list[int]:
    """What must match for a wheel file to be the one indexed: device, inode,
    size, mtime and the time of its last change (ctime on POSIX; on Windows,
    where ``st_ctime`` is the creation time, NTFS's ChangeTime, or -1 when
    it cannot be read, which then never matches)."""
    if sys.platform == "win32":
        from ._platform.windows import change_time

        changed = change_time(os.fspath(path))
        return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, -1 if changed is None else changed]
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


class WheelCache:
    """A directory of unpacked, verified wheels shared by environments."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_root(root)
        self.entries_dir = self.root / "entries"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self.index_dir = self.root / "index"
        self.unpacked: list[str] = []  # keys this object unpacked (for reports)
        #: why this process only reads the cache (owned by root), or None
        self.read_only: str | None = None
        self._ready = False
        register_root(self.root)
        self._locks: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"WheelCache({str(self.root)!r})"

    # -- layout -----------------------------------------------------------
    def _ensure_dirs(self) -> None:
        if self._ready:
            return
        # Someone else's cache is not written (and, unless owned by root
        # and writable by no one else, not used); nothing in the cache is
        # followed if it is a link.
        found = ownership(self.root)
        if found is not None and not found[0]:
            raise CacheNotWritable(found[1])
        self.read_only = found[1] if found is not None else None
        try:
            for d in (self.entries_dir, self.locks_dir, self.tmp_dir):
                if self.read_only:
                    check_path(self.root, d)
                else:
                    make_dirs(self.root, d)
            if not self.read_only:
                write_file(
                    self.root,
                    self.root / "CACHEDIR.TAG",
                    b"Signature: 8a477f597d28d172789f06886806bc55\n"
                    b"# This directory is a pip-linkmode wheel cache.\n",
                    exclusive=True,
                )
                self._tighten_modes()
        except CacheError:
            raise
        except OSError as exc:
            raise CacheError(
                f"cannot use cache directory {self.root}: {exc.strerror or exc}; "
                f"set --cache-dir or {ENV_CACHE_DIR} to a writable directory"
            ) from exc
        self._ready = True

    def _tighten_modes(self) -> None:
        """This user's cache is writable by no one else (see FILE_MODE): the
        group and world write bits a looser umask once gave the cache's
        own directories are taken away (a shared cache keeps them; so does
        a sticky root, a scratch directory like /tmp given as the cache)."""
        if shared_cache() or os.name == "nt":
            return
        for d in (self.root, self.entries_dir, self.locks_dir, self.tmp_dir):
            with contextlib.suppress(OSError):
                st = os.lstat(d)
                if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode) and not st.st_mode & stat.S_ISVTX:
                    os.chmod(d, stat.S_IMODE(st.st_mode) & ~0o022)

    def lock(self, key: str) -> EntryLock:
        """The file lock guarding one entry (re-entrant within this object).

        Unpacking, compiling bytecode, installing from an entry and removing
        it all hold it, so none of them sees another half-done.
        """
        self._ensure_dirs()
        lock = self._locks.get(key)
        if lock is None:
            path = lock_path(self.root, key)
            # POSIX: flock straight from the OS. filelock's FileLock takes the
            # same flock (each excludes the other), but costs about 150 us of
            # CPU per lock and release against 6, and 26 ms to import: a
            # tenth of a 111-wheel hardlink install.
            file_lock = filelock_class() if sys.platform == "win32" else None
            if file_lock is not None:  # (OsFileLock checks for itself)
                check_path(self.root, path)
            lock = EntryLock(file_lock(path) if file_lock is not None else OsFileLock(path), path)
            self._locks[key] = lock
        return lock

    # -- keys -------------------------------------------------------------
    @staticmethod
    def _read_key(wheel: Path, zf: zipfile.ZipFile, size: int, record: bytes) -> str:
        h = hashlib.sha256()
        h.update(f"v{LAYOUT_VERSION}\0{wheel.name}\0{size}\0".encode())
        for info in zf.infolist():
            h.update(
                f"{info.filename}\0{info.CRC}\0{info.file_size}\0{info.compress_size}\0"
                f"{info.external_attr}\0".encode("utf-8", "surrogateescape")
            )
        h.update(record)
        return h.hexdigest()[:40]

    def key_for(self, wheel_path: str | os.PathLike[str]) -> str:
        """The content-derived key of a wheel file (reads only its index and RECORD)."""
        from . import archive

        wheel = Path(wheel_path)
        with archive.open_zip(wheel) as zf:
            dist_info = archive.find_dist_info(wheel, zf)
            record = archive.read_member(wheel, zf, f"{dist_info}/RECORD")
            return self._read_key(wheel, zf, wheel.stat().st_size, record)

    # -- lookup / population ----------------------------------------------
    def entry_dir(self, key: str) -> Path:
        return self.entries_dir / key

    def lookup(self, key: str) -> CachedWheel | None:
        """The published entry for ``key``, or None."""
        meta = self.entry_dir(key) / "entry.json"
        try:
            data = json.loads(meta.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CacheError(f"damaged cache entry {self.entry_dir(key)}: {exc}; run `pip-linkmode cache clean`") from exc
        return _entry_from_json(self.entry_dir(key), data)

    def get(self, wheel_path: str | os.PathLike[str]) -> CachedWheel:
        """The verified entry for a wheel, unpacking it first on a miss."""
        entry = self._get(wheel_path, wait=True)
        assert entry is not None
        return entry

    def get_nowait(self, wheel_path: str | os.PathLike[str]) -> CachedWheel | None:
        """As ``get``, but None at once where another process holds the
        entry's lock (it is unpacking it, compiling or removing it)."""
        return self._get(wheel_path, wait=False)

    def answered(self, wheel_path: str | os.PathLike[str], entry: CachedWheel) -> CachedWheel:
        """``entry`` is the wheel's, got for this cache by another process
        (an unpacking worker): returned as it is. A progress display watches
        this as it watches ``get`` (``pip_plugin._ColdProgress``)."""
        return entry

    def get_indexed(self, wheel_path: str | os.PathLike[str]) -> CachedWheel | None:
        """The entry of a wheel file seen before and unchanged since, from the
        index alone (no zip read, no lock); None when ``get`` has work to do."""
        wheel = os.path.abspath(wheel_path)
        try:
            stamp = _file_stamp(wheel, os.stat(wheel))
        except OSError:
            return None
        entry = self._indexed(self._index_path(wheel), stamp)
        if entry is not None:
            self._touch(entry)
        return entry

    def _index_path(self, wheel: str | os.PathLike[str]) -> Path:
        return self.index_dir / f"{hashlib.sha256(os.fsencode(wheel)).hexdigest()[:40]}.json"

    def _get(self, wheel_path: str | os.PathLike[str], wait: bool) -> CachedWheel | None:
        wheel = Path(os.path.abspath(wheel_path))
        self._ensure_dirs()
        try:
            st = wheel.stat()
        except OSError as exc:
            raise CacheError(f"cannot read wheel {wheel}: {exc.strerror or exc}") from exc
        stamp = _file_stamp(wheel, st)
        index = self._index_path(wheel)
        entry = self._indexed(index, stamp)
        if entry is None:
            from . import archive  # (not on a warm install: see the module)

            with archive.open_zip(wheel) as zf:
                dist_info = archive.find_dist_info(wheel, zf)
                record = archive.read_member(wheel, zf, f"{dist_info}/RECORD")
                key = self._read_key(wheel, zf, st.st_size, record)
                entry = self.lookup(key)
                if entry is None:
                    lock = self.lock(key)
                    if not lock.acquire(blocking=wait):
                        return None
                    try:
                        entry = self.lookup(key)
                        if entry is None:
                            entry = self._populate(wheel, zf, key, dist_info, record)
                    finally:
                        lock.__exit__(None, None, None)
            self._remember(index, stamp, entry)
        self._touch(entry)
        return entry

    # A wheel file seen before, unchanged since (same inode, size, mtime and
    # change time, which no tool can set back), has the key computed then: a warm
    # install then reads neither the zip index nor RECORD. Best effort both
    # ways: an unreadable or stale index just means computing the key.
    # The index also holds the entry's names, so that a warm install reads
    # no manifest unless it needs the file list (the layout has what an
    # install needs); the entry must still be there.
    def _indexed(self, index: Path, stamp: list[int]) -> CachedWheel | None:
        try:
            data = json.loads(index.read_bytes())
            if data["stamp"] != stamp or stamp[-1] == -1:  # (-1: no change time to trust)
                return None
            key = str(data["key"])
            names = data.get("entry")
            if names is None:  # written by an older version: add the names
                entry = self.lookup(key)
                if entry is not None:
                    self._remember(index, stamp, entry)
                return entry
            root = self.entry_dir(key)
            if not (root / "entry.json").is_file():
                return None
            filename, name, version, dist_info = (str(names[k]) for k in _INDEXED_NAMES)
            return CachedWheel(key, root, filename, name, version, dist_info)
        except (OSError, ValueError, KeyError, TypeError, CacheError):
            return None

    def _remember(self, index: Path, stamp: list[int], entry: CachedWheel) -> None:
        if self.read_only:
            return
        names = {k: getattr(entry, k) for k in _INDEXED_NAMES}
        data = json.dumps({"stamp": stamp, "key": entry.key, "entry": names}).encode("utf-8")
        try:
            write_file(self.root, index, data, makedirs=True)
        except UnsafeCachePath:
            raise
        except OSError:
            pass  # best effort: the key is computed again next time

    @contextlib.contextmanager
    def open(self, wheel_path: str | os.PathLike[str]) -> Iterator[CachedWheelSource]:
        """Context manager yielding an ``installer`` WheelSource for the wheel
        (the cached stand-in for ``WheelFile.open``). A wheel refused for
        what ``WheelFile`` itself refuses (its file name, its .dist-info
        directory) raises installer's exception for it."""
        from .source import CachedWheelSource, raise_as_installer_would

        try:
            entry = self.get(wheel_path)
        except InvalidWheel:
            raise_as_installer_would(wheel_path)  # (returns if installer would open it)
            raise
        yield CachedWheelSource(entry, self)

    def _touch(self, entry: CachedWheel) -> None:
        if self.read_only:
            return
        used = entry.root / "last-used"
        try:
            st = os.lstat(used)  # (a link: refused by touch)
            if time.time() - st.st_mtime <= 3600 and not stat.S_ISLNK(st.st_mode):
                return
        except OSError:
            pass
        try:
            touch(self.root, used)
        except UnsafeCachePath:
            raise
        except OSError:
            pass

    def _populate(
        self, wheel: Path, zf: zipfile.ZipFile, key: str, dist_info: str, record: bytes
    ) -> CachedWheel:
        from . import archive

        if self.read_only:
            raise CacheNotWritable(f"{self.read_only} ({wheel.name} is not in it)")
        # We hold this entry's lock: leftovers of killed unpacks of it are
        # dead. One this user may not remove (another user's, in a shared
        # cache) is left for its owner or `cache prune`: this unpack's own
        # directory has a name of its own.
        check_path(self.root, self.tmp_dir)
        for stale in self.tmp_dir.glob(f"{key}-*"):
            try:
                remove_tree(stale, inside=self.root)
            except PermissionError as exc:
                _log.debug("leaving %s in the cache: %s (%s)", stale, exc.strerror, exc.filename)
        tmp = self.tmp_dir / f"{key}-{os.getpid()}-{os.urandom(4).hex()}"
        tree = tmp / "tree"
        umask = _platform.umask()
        try:
            # private while it is filled: no other user can reach into it
            make_dirs(self.root, tmp, 0o700)
            make_dirs(self.root, tree)
            infos = archive.checked_infos(wheel, zf, dist_info)
            rows = archive.parse_record(wheel, record.decode("utf-8"))
            total = archive.check_sizes(wheel, infos, rows)
            archive.check_wheel_version(wheel, zf, dist_info)
            with archive.space_reserved(wheel, total, self.root):
                files = archive.Unpacker(wheel, zf, infos, dist_info).run(tree, rows, self.root)
            from packaging.utils import parse_wheel_filename

            parsed = parse_wheel_filename(wheel.name)
            data = {
                "layout": LAYOUT_VERSION,
                "key": key,
                "filename": wheel.name,
                "source": str(wheel),
                "name": str(parsed[0]),
                "version": str(parsed[1]),
                "dist_info": dist_info,
                "created": time.time(),
                "files": [
                    [f.path, f.hash, f.size, int(f.executable), int(f.python_shebang)]
                    for f in files
                ],
                "record": list(rows.values()),
            }
            write_file(self.root, tmp / "entry.json", json.dumps(data).encode("utf-8"), exclusive=True)
            from .cache_admin import record_produced_file

            record_produced_file(tmp / "entry.json")  # its hash, for `cache verify`
            write_file(self.root, tmp / "last-used", b"", exclusive=True)
            fd = open_dir(self.root, tmp)
            if fd is not None:  # (no longer private: readable as the umask allows)
                try:
                    os.fchmod(fd, dir_mode() & ~umask)
                finally:
                    os.close(fd)
            rename(self.root, tmp, self.entry_dir(key))
        except UnsafeCachePath:
            remove_tree(tmp, inside=self.root)
            raise
        except OSError as exc:
            remove_tree(tmp, inside=self.root)
            if exc.errno == 28:  # ENOSPC
                raise CacheError(
                    f"no space left on the cache's filesystem ({self.root}) while "
                    f"unpacking {wheel.name}; free space or set --cache-dir"
                ) from exc
            raise CacheError(
                f"cannot unpack {wheel.name} into the cache {self.root}: "
                f"{exc.strerror or exc} ({exc.filename or ''})"
            ) from exc
        except BaseException:
            remove_tree(tmp, inside=self.root)
            raise
        self.unpacked.append(key)
        return _entry_from_json(self.entry_dir(key), data)

    def iter_entries(self) -> Iterator[CachedWheel]:
        """Every published entry."""
        check_path(self.root, self.entries_dir)
        if not self.entries_dir.is_dir():
            return
        for d in sorted(self.entries_dir.iterdir()):
            entry = self.lookup(d.name)
            if entry is not None:
                yield entry


def _entry_from_json(root: Path, data: dict[str, Any]) -> CachedWheel:
    return CachedWheel(
        key=data["key"],
        root=root,
        filename=data["filename"],
        name=data["name"],
        version=data["version"],
        dist_info=data["dist_info"],
        files=data["files"],
    )


#: trees are removed relative to directory descriptors (``_remove_tree_at``)
_RMTREE_AT = DIR_FDS and os.scandir in os.supports_fd
#: a directory in a tree being removed: never through a link (ELOOP), never
#: anything else (ENOTDIR: a FIFO is not opened, so not waited on)
_SUBDIR = (
    os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_NOT_A_DIR = tuple(
    code for code in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK, getattr(errno, "EFTYPE", None)) if code is not None
)  # (a link with O_NOFOLLOW: ELOOP on Linux and macOS, EMLINK on FreeBSD, EFTYPE on NetBSD)


def _make_writable(dir_fd: int) -> bool:
    """Give the owner write and search on an open directory that lacks them
    (its other bits kept); whether that was needed and done."""
    try:
        mode = os.fstat(dir_fd).st_mode
        if mode & (stat.S_IWUSR | stat.S_IXUSR) == stat.S_IWUSR | stat.S_IXUSR:
            return False
        os.fchmod(dir_fd, stat.S_IMODE(mode) | stat.S_IRWXU)
    except OSError:
        return False
    return True


_T = TypeVar("_T")


def _writable_retry(dir_fd: int, fix: bool, call: Callable[[], _T]) -> _T:
    """``call()``; where the directory ``dir_fd`` denies it, made writable
    and searchable once (with ``fix``: a read-only part of the cache's
    own), then ``call()`` again."""
    try:
        return call()
    except PermissionError:
        if not fix or not _make_writable(dir_fd):
            raise
        return call()


def _remove_at(dir_fd: int, name: str, remove: Callable[..., None], *, fix: bool = True) -> None:
    """``remove(name, dir_fd=dir_fd)`` (unlink or rmdir), through
    ``_writable_retry``; something already gone is no error."""
    with contextlib.suppress(FileNotFoundError):
        _writable_retry(dir_fd, fix, lambda: remove(name, dir_fd=dir_fd))


def _opened_dir(name: str, dir_fd: int, fix: bool) -> tuple[int, list[str]] | None:
    """``name`` in the open directory ``dir_fd``, opened as a directory (never
    through a link, never waiting on a FIFO; ``_writable_retry`` where
    ``dir_fd`` may be listed but not entered), with the names in it; None
    where it is gone, or was no directory and has been removed (a link
    goes, not what it names)."""
    try:
        fd = _writable_retry(dir_fd, fix, lambda: os.open(name, _SUBDIR, dir_fd=dir_fd))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in _NOT_A_DIR:
            raise
        _remove_at(dir_fd, name, os.unlink, fix=fix)
        return None
    try:
        with os.scandir(fd) as entries:
            return fd, [entry.name for entry in entries]
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            exc.filename = name  # (readdir's errors name the descriptor, an int)
        raise


def _rmtree_at(name: str, dir_fd: int, path: str, *, fix_parent: bool = True) -> None:
    """Remove ``name`` in the open directory ``dir_fd`` and all below it.

    Each directory is opened relative to its parent's descriptor with
    ``O_NOFOLLOW | O_DIRECTORY | O_NONBLOCK``: a link is removed, never
    followed nor opened (so a link planted in a shared cache to a directory
    the remover cannot read, or a swapped one to a FIFO, changes nothing);
    names are removed at their directory's descriptor, the deepest first;
    whatever another remover took first is skipped. Errors name the path
    (``path``: ``name`` as the caller knows it). ``fix_parent`` False:
    ``dir_fd`` is never made writable (a directory the user named)."""
    stack: list[tuple[int, str, list[str]]] = []  # (descriptor, name in its parent, names left)
    try:
        opened = _opened_dir(name, dir_fd, fix_parent)
        if opened is None:
            return
        stack.append((opened[0], name, opened[1]))
        while stack:
            fd, here, names = stack[-1]
            if names:
                child = names.pop()
                opened = _opened_dir(child, fd, True)
                if opened is not None:
                    stack.append((opened[0], child, opened[1]))
                continue
            stack.pop()
            os.close(fd)
            _remove_at(stack[-1][0] if stack else dir_fd, here, os.rmdir, fix=bool(stack) or fix_parent)
    except OSError as exc:
        if isinstance(exc.filename, (str, bytes)) and not os.path.isabs(os.fsdecode(exc.filename)):
            exc.filename = "/".join([path, *(e[1] for e in stack[1:]), os.fsdecode(exc.filename)]) if stack else path
        raise
    finally:
        for fd, *_ in stack:
            os.close(fd)


def _remove_tree_at(root: str, path: str) -> None:
    """``remove_tree`` of a cache path on POSIX: its parent opened once below
    ``root`` without following a link, and the tree removed relative to
    that descriptor (``_rmtree_at``), so a parent swapped for a link after
    the check changes nothing. Read-only parts are made writable through
    descriptors, never by path; the parent only if it denies the removal
    (and then only for its owner: a shared ``tmp/`` stays shared)."""
    parent = os.path.dirname(path)
    at_root = os.path.normcase(parent) == os.path.normcase(root)
    try:
        if at_root:  # (the root: the user's to name, a link or not)
            flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
            parent_fd: int | None = os.open(root, flags)
        else:
            parent_fd = open_dir(root, parent)
    except (FileNotFoundError, NotADirectoryError):
        return  # (nothing there to remove)
    assert parent_fd is not None
    try:
        # (the root the user named is never made writable: only the cache's own directories)
        _rmtree_at(os.path.basename(path), parent_fd, path, fix_parent=not at_root)
    finally:
        os.close(parent_fd)


def remove_tree(path: Path, *, inside: Path | None = None) -> None:
    """Remove a directory tree without following links; cope with read-only parts.

    A path in a cache (``inside``: that cache's root; else one this process
    opened) must be reached through no link (a link at ``path`` itself is
    removed, not followed) in a cache this process may write.
    """
    root = os.fspath(inside) if inside is not None else cache_root_of(path)
    if root is not None:
        check_writable(root)
        check_path(root, path, final=False)
        if _RMTREE_AT:
            _remove_tree_at(root, os.fspath(path))
            return

    def onerror(func: Any, p: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        try:
            parent = os.path.dirname(p)
            os.chmod(parent, stat.S_IRWXU)
            if not os.path.islink(p) and os.path.isdir(p):
                os.chmod(p, stat.S_IRWXU)
            func(p)
        except FileNotFoundError:
            pass

    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    import shutil  # (Windows, or no descriptor-relative calls: not on a warm install)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onerror)
    else:
        shutil.rmtree(path, onerror=lambda f, p, ei: onerror(f, p, ei[1]))
