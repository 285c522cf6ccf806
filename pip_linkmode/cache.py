"""The shared wheel cache: each wheel unpacked once, verified, published atomically.

Layout under the cache root::

    entries/<key>/entry.json   what the wheel holds (files, RECORD rows, flags)
    entries/<key>/tree/        the unpacked files, linked into environments
    entries/<key>/layout.json  derived: the files by scheme and directory, with
                               their RECORD lines (``destination.load_layout``)
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
import csv
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import stat
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _platform
from ._cachecore import (
    ENV_CACHE_DIR,
    CacheError,
    EntryLock,
    OsFileLock,
    default_cache_dir,
    filelock_class,
    lock_path,
    resolve_root,
)
from .linker import write_fd

if TYPE_CHECKING:
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
_CHUNK = 1024 * 1024
#: members up to this compressed size are read and inflated whole (most are)
_WHOLE = 256 * 1024
_ALLOWED_HASHES = {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b"}
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
#: what reading a member raises when it cannot be read: bad CRC or header,
#: truncation, encryption, an unknown compression
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError)
#: zip flag bits of members zipfile reads itself: encrypted (0x01), compressed
#: patch data (0x20), strong encryption (0x40)
_ZIPFILE_ONLY_FLAGS = 0x61


class InvalidWheel(CacheError):
    """A wheel was refused; the message names the wheel and the member."""

    def __init__(self, wheel: str | os.PathLike[str], member: str | None, reason: str):
        self.wheel = os.fspath(wheel)
        self.member = member
        self.reason = reason
        where = f", member {member!r}" if member else ""
        super().__init__(f"invalid wheel {os.path.basename(self.wheel)}{where}: {reason}")


@dataclass(frozen=True)
class CachedFile:
    """One file of a cached wheel, as the wheel's verified RECORD lists it."""

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

    __slots__ = ("key", "root", "filename", "name", "version", "dist_info", "_files", "_file_rows")

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
        self._files: tuple[CachedFile, ...] | None = None

    def _manifest(self) -> list[list[Any]]:
        if self._file_rows is None:
            meta = self.root / "entry.json"
            try:
                self._file_rows = json.loads(meta.read_bytes())["files"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CacheError(
                    f"damaged or removed cache entry {self.root}: {exc}; "
                    "run `pip-linkmode cache clean` if it persists"
                ) from exc
        return self._file_rows

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

    def path_of(self, member: str) -> Path:
        return self.tree / member

    @property
    def size(self) -> int:
        return sum(row[2] for row in self._manifest())


def record_digest(digest: bytes) -> str:
    """A digest spelled as RECORD spells it (urlsafe base64, no padding)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_member_name(wheel: Path, name: str) -> str:
    """The normalised archive path, or InvalidWheel for anything unsafe."""
    if not name or "\x00" in name:
        raise InvalidWheel(wheel, name, "empty name or NUL byte in name")
    if "\\" in name:
        raise InvalidWheel(wheel, name, "backslash in member name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise InvalidWheel(wheel, name, "absolute path")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise InvalidWheel(wheel, name, "'..' in member name")
    norm = posixpath.normpath(name)
    if norm.startswith(("../", "/")) or norm in ("..", "."):
        raise InvalidWheel(wheel, name, "path escapes the wheel's root")
    return norm


def _parse_record(wheel: Path, text: str) -> dict[str, tuple[str, str, str]]:
    rows: dict[str, tuple[str, str, str]] = {}
    for row in csv.reader(text.splitlines()):
        if not row:
            continue
        if len(row) != 3:
            raise InvalidWheel(wheel, "RECORD", f"malformed row {row!r}")
        path, hash_, size = row
        if path in rows:
            raise InvalidWheel(wheel, path, "listed twice in RECORD")
        rows[path] = (path, hash_, size)
    return rows


class _Unpacker:
    """Unpacks one wheel into a temp tree, verifying against RECORD."""

    def __init__(self, wheel: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dist_info: str):
        self.wheel = wheel
        self.zf = zf
        self.infos = infos
        self.dist_info = dist_info
        self.umask = _platform.umask()
        self._fd: int | None = None

    def run(self, dest: Path, record: dict[str, tuple[str, str, str]]) -> list[CachedFile]:
        try:
            return self._run(dest, record)
        finally:
            if self._fd is not None and self._fd >= 0 and _platform.private_reads:
                os.close(self._fd)
            self._fd = None

    def _run(self, dest: Path, record: dict[str, tuple[str, str, str]]) -> list[CachedFile]:
        record_path = f"{self.dist_info}/RECORD"
        root = os.fspath(dest)  # strings, not Paths: this loop runs once per file
        files: list[CachedFile] = []
        made: set[str] = set()
        for info in self.infos:
            name = info.filename
            if name.endswith("/"):
                continue
            rel = os.path.dirname(name)
            if rel and rel not in made:
                os.makedirs(f"{root}/{rel}", exist_ok=True)
                made.add(rel)
            row = record.get(name)
            is_sig = posixpath.dirname(name) == self.dist_info and posixpath.basename(name) in _SIGNATURES
            if name == record_path:
                self._write(info, f"{root}/{name}", None, None, False)
                continue
            if row is None:
                if is_sig:
                    self._write(info, f"{root}/{name}", None, None, False)
                    continue
                raise InvalidWheel(self.wheel, name, "not listed in RECORD")
            _, hash_field, size_field = row
            if not hash_field or not size_field:
                raise InvalidWheel(self.wheel, name, "RECORD gives no hash or size")
            algo, _, expected = hash_field.partition("=")
            if algo not in _ALLOWED_HASHES or not expected:
                raise InvalidWheel(self.wheel, name, f"unsupported hash {hash_field!r} in RECORD")
            try:
                size = int(size_field)
            except ValueError:
                raise InvalidWheel(self.wheel, name, f"bad size {size_field!r} in RECORD") from None
            mode = info.external_attr >> 16
            # Links and devices are stored as plain files, never created as such.
            regular = not mode or stat.S_ISREG(mode)
            executable = bool(regular and mode & 0o111)
            shebang = self._write(info, f"{root}/{name}", (algo, expected), size, executable)
            files.append(CachedFile(name, hash_field, size, executable, shebang))
        return files

    def _write(
        self,
        info: zipfile.ZipInfo,
        target: str,
        expected_hash: tuple[str, str] | None,
        expected_size: int | None,
        executable: bool,
    ) -> bool:
        name = info.filename
        hasher = hashlib.new(expected_hash[0]) if expected_hash else None
        limit = expected_size if expected_size is not None else 64 * 1024 * 1024
        whole = self._read_whole(info, limit) if info.compress_size <= _WHOLE else None
        if whole is not None:
            written, head = len(whole), whole[:8]
            if hasher:
                hasher.update(whole)
            write_fd(os.open(target, _platform.NEW_FILE, 0o666), target, whole, None)
        else:
            written, head = self._stream(info, target, hasher, limit)
        if expected_size is not None and written != expected_size:
            raise InvalidWheel(
                self.wheel, name, f"size {written} contradicts RECORD's {expected_size}"
            )
        if hasher and expected_hash and record_digest(hasher.digest()) != expected_hash[1]:
            raise InvalidWheel(self.wheel, name, "hash contradicts RECORD")
        if executable:
            os.chmod(target, (0o777 & ~self.umask) | 0o111)
        return head.startswith(b"#!python")

    def _read_whole(self, info: zipfile.ZipInfo, limit: int) -> bytes | None:
        """A small member's content in one read and one inflate (zipfile's
        reader costs more per member than a small member's bytes do), with
        zipfile's checks: header magic, the header's name, CRC-32. None where
        zipfile must read it (encrypted, another compression, no file)."""
        if info.flag_bits & _ZIPFILE_ONLY_FLAGS or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return None
        fileno = self._reader()
        if fileno < 0:
            return None
        name = info.filename
        read_at = _platform.read_at
        try:
            header = read_at(fileno, 30, info.header_offset)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile("Bad magic number for file header")
            flags = int.from_bytes(header[6:8], "little")
            name_len = int.from_bytes(header[26:28], "little")
            extra_len = int.from_bytes(header[28:30], "little")
            raw_name = read_at(fileno, name_len, info.header_offset + 30)
            local = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            if local != info.orig_filename:
                raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and header {local!r} differ.")
            start = info.header_offset + 30 + name_len + extra_len
            end = getattr(info, "_end_offset", None)  # zipfile's overlapped-entries check (3.11.8+)
            if end is not None and start + info.compress_size > end:
                raise zipfile.BadZipFile("Overlapped entries")
            want = info.file_size  # as zipfile: this many bytes, no more, no fewer
            if want > limit:
                raise InvalidWheel(self.wheel, name, f"larger than the {limit} bytes RECORD declares")
            raw = read_at(fileno, info.compress_size, start)
            if len(raw) != info.compress_size:
                raise EOFError("member data cut short")
            if info.compress_type == zipfile.ZIP_STORED:
                data = raw[:want]
            else:
                data = zlib.decompressobj(-15).decompress(raw, want) if want else b""
            if len(data) < want:
                raise EOFError("compressed data ended before the declared size")
            if zlib.crc32(data) != info.CRC:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
        except (*_UNREADABLE, UnicodeDecodeError, zlib.error) as exc:
            raise InvalidWheel(self.wheel, name, f"cannot be read: {exc}") from None
        return data

    def _reader(self) -> int:
        """A descriptor of the wheel for ``read_at``, or -1: zipfile's own
        where reads at an offset leave it alone (``os.pread``), else one of
        this unpacker's (closed by ``run``)."""
        if self._fd is not None:
            return self._fd
        fileno = -1
        if not _platform.private_reads:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                fileno = self.zf.fp.fileno() if self.zf.fp is not None else -1
        else:
            with contextlib.suppress(OSError):
                fileno = os.open(self.wheel, os.O_RDONLY | _platform.O_BINARY)
        self._fd = fileno
        return fileno

    def _stream(self, info: zipfile.ZipInfo, target: str, hasher: Any, limit: int) -> tuple[int, bytes]:
        """A member of any size through zipfile, chunk by chunk: (size, first bytes)."""
        name = info.filename
        written = 0
        head = b""
        try:
            src_file = self.zf.open(info)
        except _UNREADABLE as exc:
            raise InvalidWheel(self.wheel, name, f"cannot be read: {exc}") from None
        fd = os.open(target, _platform.NEW_FILE, 0o666)
        with open(fd, "wb") as out, src_file as src:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except _UNREADABLE as exc:
                    raise InvalidWheel(self.wheel, name, f"cannot be read: {exc}") from None
                if not chunk:
                    break
                written += len(chunk)
                if written > limit:
                    raise InvalidWheel(
                        self.wheel, name, f"larger than the {limit} bytes RECORD declares"
                    )
                if not head:
                    head = chunk[:8]
                if hasher:
                    hasher.update(chunk)
                out.write(chunk)
        return written, head


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
        self._ready = False
        self._locks: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"WheelCache({str(self.root)!r})"

    # -- layout -----------------------------------------------------------
    def _ensure_dirs(self) -> None:
        if self._ready:
            return
        try:
            for d in (self.entries_dir, self.locks_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
            marker = self.root / "CACHEDIR.TAG"
            if not marker.exists():
                marker.write_text(
                    "Signature: 8a477f597d28d172789f06886806bc55\n"
                    "# This directory is a pip-linkmode wheel cache.\n"
                )
        except OSError as exc:
            raise CacheError(
                f"cannot use cache directory {self.root}: {exc.strerror or exc}; "
                f"set --cache-dir or {ENV_CACHE_DIR} to a writable directory"
            ) from exc
        self._ready = True

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
        wheel = Path(wheel_path)
        with _open_zip(wheel) as zf:
            dist_info = _find_dist_info(wheel, zf)
            record = _read_member(wheel, zf, f"{dist_info}/RECORD")
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
            with _open_zip(wheel) as zf:
                dist_info = _find_dist_info(wheel, zf)
                record = _read_member(wheel, zf, f"{dist_info}/RECORD")
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
        tmp = index.with_name(f"{index.name}.{os.getpid()}.{secrets.token_hex(4)}")
        names = {k: getattr(entry, k) for k in _INDEXED_NAMES}
        try:
            self.index_dir.mkdir(exist_ok=True)
            tmp.write_text(json.dumps({"stamp": stamp, "key": entry.key, "entry": names}), "utf-8")
            os.replace(tmp, index)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    @contextlib.contextmanager
    def open(self, wheel_path: str | os.PathLike[str]) -> Iterator[CachedWheelSource]:
        """Context manager yielding an ``installer`` WheelSource for the wheel."""
        from .source import CachedWheelSource

        yield CachedWheelSource(self.get(wheel_path), self)

    def _touch(self, entry: CachedWheel) -> None:
        used = entry.root / "last-used"
        try:
            now = time.time()
            if now - used.stat().st_mtime > 3600:
                os.utime(used)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                used.touch()
        except OSError:
            pass

    def _populate(
        self, wheel: Path, zf: zipfile.ZipFile, key: str, dist_info: str, record: bytes
    ) -> CachedWheel:
        # We hold this entry's lock: leftovers of killed unpacks of it are dead.
        for stale in self.tmp_dir.glob(f"{key}-*"):
            remove_tree(stale)
        tmp = self.tmp_dir / f"{key}-{os.getpid()}-{secrets.token_hex(4)}"
        tree = tmp / "tree"
        try:
            tree.mkdir(parents=True)
            infos = _checked_infos(wheel, zf, dist_info)
            rows = _parse_record(wheel, record.decode("utf-8"))
            _check_sizes(wheel, infos, rows, self.root)
            _check_wheel_version(wheel, zf, dist_info)
            files = _Unpacker(wheel, zf, infos, dist_info).run(tree, rows)
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
            (tmp / "entry.json").write_text(json.dumps(data), "utf-8")
            (tmp / "last-used").touch()
            os.rename(tmp, self.entry_dir(key))
        except OSError as exc:
            remove_tree(tmp)
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
            remove_tree(tmp)
            raise
        self.unpacked.append(key)
        return _entry_from_json(self.entry_dir(key), data)

    def iter_entries(self) -> Iterator[CachedWheel]:
        """Every published entry."""
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


@contextlib.contextmanager
def _open_zip(wheel: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(wheel)
    except FileNotFoundError as exc:
        raise CacheError(f"wheel not found: {wheel}") from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidWheel(wheel, None, f"not a readable zip archive ({exc})") from exc
    with zf:
        yield zf


def _find_dist_info(wheel: Path, zf: zipfile.ZipFile) -> str:
    from packaging.utils import canonicalize_name, parse_wheel_filename  # only on a miss

    try:
        parsed = parse_wheel_filename(wheel.name)
    except Exception as exc:
        raise InvalidWheel(wheel, None, f"not a wheel file name ({exc})") from exc
    tops = {n.split("/", 1)[0] for n in zf.namelist()}
    dist_infos = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(dist_infos) != 1:
        raise InvalidWheel(wheel, None, f"expected exactly one .dist-info directory, found {dist_infos}")
    (dist_info,) = dist_infos
    if canonicalize_name(dist_info[: -len(".dist-info")].rsplit("-", 1)[0]) != parsed[0]:
        raise InvalidWheel(wheel, dist_info, f"does not match the wheel's project name {parsed[0]}")
    return dist_info


def _check_wheel_version(wheel: Path, zf: zipfile.ZipFile, dist_info: str) -> None:
    """Only Wheel-Version 1.x is understood (as pip and installer require)."""
    text = _read_member(wheel, zf, f"{dist_info}/WHEEL").decode("utf-8", "replace")
    version = next(
        (line.partition(":")[2].strip() for line in text.splitlines() if line.lower().startswith("wheel-version:")),
        "",
    )
    if not version.startswith("1."):
        raise InvalidWheel(wheel, f"{dist_info}/WHEEL", f"Wheel-Version {version or '(none)'} is not 1.x")


def _read_member(wheel: Path, zf: zipfile.ZipFile, name: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise InvalidWheel(wheel, name, "missing") from None
    if info.file_size > 64 * 1024 * 1024:
        raise InvalidWheel(wheel, name, "implausibly large")
    try:
        return zf.read(info)
    except _UNREADABLE as exc:
        raise InvalidWheel(wheel, name, f"cannot be read: {exc}") from None


_DATA_SCHEMES = ("purelib", "platlib", "headers", "scripts", "data")


def _checked_infos(wheel: Path, zf: zipfile.ZipFile, dist_info: str) -> list[zipfile.ZipInfo]:
    """The file members, each checked before anything is written: a safe,
    normal, unique name; under ``.data/`` a known scheme; a declared size."""
    data = dist_info[: -len(".dist-info")] + ".data/"
    seen: set[str] = set()
    infos = []
    for info in zf.infolist():
        if "\\" in info.orig_filename:  # (zipfile on Windows turns them into "/")
            raise InvalidWheel(wheel, info.orig_filename, "backslash in member name")
        norm = _check_member_name(wheel, info.filename)
        if info.filename.endswith("/"):
            continue
        if norm != info.filename:
            raise InvalidWheel(wheel, info.filename, "name is not in normal form")
        if norm in seen:
            raise InvalidWheel(wheel, info.filename, "duplicate member")
        if norm.startswith(data):
            scheme, sep, rest = norm[len(data):].partition("/")
            if scheme not in _DATA_SCHEMES or not sep or not rest:
                raise InvalidWheel(
                    wheel, info.filename, f"not under a known .data scheme ({', '.join(_DATA_SCHEMES)})"
                )
        seen.add(norm)
        infos.append(info)
    return infos


def _check_sizes(
    wheel: Path, infos: list[zipfile.ZipInfo], record: dict[str, tuple[str, str, str]], where: Path
) -> None:
    """Refuse before writing a byte: a member whose zip header contradicts
    RECORD's size, or a wheel that cannot fit in the cache's free space."""
    total = 0
    for info in infos:
        row = record.get(info.filename)
        if row is not None and row[2].isdigit() and int(row[2]) != info.file_size:
            raise InvalidWheel(
                wheel, info.filename, f"zip declares {info.file_size} bytes, RECORD {row[2]}"
            )
        total += info.file_size
    room = shutil.disk_usage(where).free
    if total > room:
        raise CacheError(
            f"no space left on the cache's filesystem ({where}) for {wheel.name}: it unpacks "
            f"to {total} bytes and {room} are free; free space or set --cache-dir"
        )


def remove_tree(path: Path) -> None:
    """Remove a directory tree without following links; cope with read-only parts."""

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
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onerror)
    else:
        shutil.rmtree(path, onerror=lambda f, p, ei: onerror(f, p, ei[1]))
