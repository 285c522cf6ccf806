"""Reading a wheel archive: the checks made before a byte is written, and
the unpacker that fills a cache entry's tree (``WheelCache._populate``).

Only a wheel the cache has not seen needs this module, so a warm install
never imports it, nor ``zipfile``, ``csv``, ``shutil`` or the inflater.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import posixpath
import shutil
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import _platform
from ._cachecore import DIR_MODE, EXEC_MODE, FILE_MODE, O_NOFOLLOW, CacheError, open_dir
from .cache import _SIGNATURES, CachedFile, InvalidWheel, record_digest
from .linker import write_fd

_CHUNK = 1024 * 1024
#: members up to this compressed size are read and inflated whole (most are)
_WHOLE = 256 * 1024
_ALLOWED_HASHES = {"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b"}
#: what reading a member raises when it cannot be read: bad CRC or header,
#: truncation, encryption, an unknown compression
_UNREADABLE = (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError)
#: zip flag bits of members zipfile reads itself: encrypted (0x01), compressed
#: patch data (0x20), strong encryption (0x40)
_ZIPFILE_ONLY_FLAGS = 0x61

# The inflater: zlib-ng's where it is installed (``pip-linkmode[fast]``),
# about 1.8 times as fast as the system zlib's on the benchmark corpus; the
# stdlib's otherwise. Both produce the same bytes,
# which are held to the member's CRC-32 and to RECORD's hash either way.
_inflater: Any = zlib
with contextlib.suppress(ImportError):  # (pip-linkmode[fast] not installed)
    from zlib_ng import zlib_ng

    _inflater = zlib_ng
#: what reading a member ourselves raises when it cannot be read
_READ_ERRORS: tuple[type[Exception], ...] = (*_UNREADABLE, *{zlib.error, _inflater.error})


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


def parse_record(wheel: Path, text: str) -> dict[str, tuple[str, str, str]]:
    rows: dict[str, tuple[str, str, str]] = {}
    # csv over the text itself: only \n, \r\n (and \r) end a row, where
    # str.splitlines would also split at U+2028 or \x1c-\x1e, which are
    # valid in a member's name
    if "\x00" in text:  # (Python 3.10's csv cannot read one; no wheel's RECORD holds one)
        raise InvalidWheel(wheel, "RECORD", "NUL byte in RECORD")
    for row in csv.reader(io.StringIO(text, newline="")):
        if not row:
            continue
        if len(row) != 3:
            raise InvalidWheel(wheel, "RECORD", f"malformed row {row!r}")
        path, hash_, size = row
        if path in rows:
            raise InvalidWheel(wheel, path, "listed twice in RECORD")
        rows[path] = (path, hash_, size)
    return rows


class Unpacker:
    """Unpacks one wheel into a temp tree, verifying against RECORD."""

    def __init__(self, wheel: Path, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dist_info: str):
        self.wheel = wheel
        self.zf = zf
        self.infos = infos
        self.dist_info = dist_info
        self.umask = _platform.umask()
        self._fd: int | None = None
        #: the tree being filled: its descriptor (POSIX), or None and its path
        self._dir: int | None = None
        self._root = ""

    def run(self, dest: Path, record: dict[str, tuple[str, str, str]], cache_root: Path) -> list[CachedFile]:
        """Unpack into ``dest`` (a new directory of the cache at ``cache_root``),
        creating every file and directory relative to ``dest``'s descriptor."""
        self._root = os.fspath(dest)
        self._dir = open_dir(cache_root, dest)
        try:
            return self._run(dest, record)
        finally:
            if self._fd is not None and self._fd >= 0 and _platform.private_reads:
                os.close(self._fd)
            self._fd = None
            if self._dir is not None:
                os.close(self._dir)
                self._dir = None

    def _at(self, rel: str) -> str:
        """Where ``rel`` (a checked member path) is, for a call given ``dir_fd=self._dir``."""
        return rel if self._dir is not None else f"{self._root}/{rel}"

    def _makedirs(self, rel: str) -> None:
        """A member's directory and its missing parents, as DIR_MODE allows."""
        try:
            os.mkdir(self._at(rel), DIR_MODE, dir_fd=self._dir)
        except FileExistsError:
            pass
        except FileNotFoundError:
            parent = posixpath.dirname(rel)
            if not parent:
                raise
            self._makedirs(parent)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self._at(rel), DIR_MODE, dir_fd=self._dir)

    def _open(self, rel: str) -> int:
        """A new member file (never an existing one, never through a link)."""
        return os.open(self._at(rel), _platform.NEW_FILE | O_NOFOLLOW, FILE_MODE, dir_fd=self._dir)

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
                self._makedirs(rel)
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
        start = self._data_start(info, limit)
        if start is None:
            written, head = self._stream(info, target, hasher, limit)
        elif info.compress_size <= _WHOLE:
            whole = self._read_whole(info, start)
            written, head = len(whole), whole[:8]
            if hasher:
                hasher.update(whole)
            write_fd(self._open(name), target, whole, None)
        else:
            written, head = self._inflate_into(info, start, target, hasher)
        if expected_size is not None and written != expected_size:
            raise InvalidWheel(
                self.wheel, name, f"size {written} contradicts RECORD's {expected_size}"
            )
        if hasher and expected_hash and record_digest(hasher.digest()) != expected_hash[1]:
            raise InvalidWheel(self.wheel, name, "hash contradicts RECORD")
        if executable:  # (never group- or world-writable: see FILE_MODE)
            os.chmod(self._at(name), (EXEC_MODE & ~self.umask) | 0o111, dir_fd=self._dir)
        return head.startswith(b"#!python")

    def _unreadable(self, info: zipfile.ZipInfo, exc: BaseException) -> InvalidWheel:
        return InvalidWheel(self.wheel, info.filename, f"cannot be read: {exc}")

    def _data_start(self, info: zipfile.ZipInfo, limit: int) -> int | None:
        """Where a member's data starts in the wheel, after zipfile's checks
        of its local header (magic, the header's name, no overlap); None
        where zipfile must read it (encrypted, another compression, no
        descriptor to read at an offset). Members this unpacker reads
        itself cost one inflate call each when small (zipfile's reader
        costs more per member than a small member's bytes do) and go
        through the faster inflater when large."""
        if info.flag_bits & _ZIPFILE_ONLY_FLAGS or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            return None
        fileno = self._reader()
        if fileno < 0:
            return None
        if info.file_size > limit:  # (zipfile stops at the declared size too)
            raise InvalidWheel(self.wheel, info.filename, f"larger than the {limit} bytes RECORD declares")
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
        except (*_UNREADABLE, UnicodeDecodeError) as exc:
            raise self._unreadable(info, exc) from None
        return start

    def _read_whole(self, info: zipfile.ZipInfo, start: int) -> bytes:
        """A small member's content: one read, one inflate, its CRC-32 checked."""
        want = info.file_size  # as zipfile: this many bytes, no more, no fewer
        try:
            raw = _platform.read_at(self._reader(), info.compress_size, start)
            if len(raw) != info.compress_size:
                raise EOFError("member data cut short")
            if info.compress_type == zipfile.ZIP_STORED:
                data = raw[:want]
            else:
                data = _inflater.decompressobj(-15).decompress(raw, want) if want else b""
            if len(data) < want:
                raise EOFError("compressed data ended before the declared size")
            if _inflater.crc32(data) != info.CRC:
                raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")
        except _READ_ERRORS as exc:
            raise self._unreadable(info, exc) from None
        return data

    def _inflate_into(self, info: zipfile.ZipInfo, start: int, target: str, hasher: Any) -> tuple[int, bytes]:
        """A large member, read and inflated a chunk at a time into its new
        file: (size, first bytes). At most the declared size is taken (as
        zipfile), then its CRC-32 is checked."""
        want = info.file_size
        next_chunk = self._chunks(info, start)
        written, crc, head = 0, 0, b""

        def chunks() -> Iterator[bytes]:
            nonlocal written, crc, head
            while written < want:
                chunk = next_chunk(min(_CHUNK, want - written))
                if not chunk:
                    return
                written += len(chunk)
                crc = _inflater.crc32(chunk, crc)
                if len(head) < 8:  # (a first chunk may be shorter)
                    head = (head + chunk)[:8]
                if hasher:
                    hasher.update(chunk)
                yield chunk

        write_fd(self._open(info.filename), target, chunks(), None)
        if written < want:
            raise self._unreadable(info, EOFError("compressed data ended before the declared size"))
        if crc != info.CRC:
            raise self._unreadable(info, zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}"))
        return written, head

    def _chunks(self, info: zipfile.ZipInfo, start: int) -> Callable[[int], bytes]:
        """A function giving a member's next bytes (at most ``most``; empty
        at the end of its data)."""
        fileno, read_at = self._reader(), _platform.read_at
        pos, end = start, start + info.compress_size
        inflater = _inflater.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        pending = b""

        def next_chunk(most: int) -> bytes:
            nonlocal pos, pending
            try:
                while True:
                    if not pending and pos < end:
                        pending = read_at(fileno, min(_CHUNK, end - pos), pos)
                        if not pending:
                            raise EOFError("member data cut short")
                        pos += len(pending)
                    if inflater is None:
                        out, pending = pending[:most], pending[most:]
                        return out
                    if inflater.eof:
                        return b""
                    out = inflater.decompress(pending, most)
                    pending = inflater.unconsumed_tail
                    if out or (not pending and pos >= end):
                        return out  # (nothing out and nothing left to read: the data ended)
            except _READ_ERRORS as exc:
                raise self._unreadable(info, exc) from None

        return next_chunk

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
        """A member zipfile must read (see ``_data_start``), chunk by chunk:
        (size, first bytes)."""
        name = info.filename
        written = 0
        head = b""
        try:
            src_file = self.zf.open(info)
        except _UNREADABLE as exc:
            raise self._unreadable(info, exc) from None
        fd = self._open(name)
        with open(fd, "wb") as out, src_file as src:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except _UNREADABLE as exc:
                    raise self._unreadable(info, exc) from None
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
@contextlib.contextmanager
def open_zip(wheel: Path) -> Iterator[zipfile.ZipFile]:
    try:
        zf = zipfile.ZipFile(wheel)
    except FileNotFoundError as exc:
        raise CacheError(f"wheel not found: {wheel}") from exc
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidWheel(wheel, None, f"not a readable zip archive ({exc})") from exc
    with zf:
        yield zf


def find_dist_info(wheel: Path, zf: zipfile.ZipFile) -> str:
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


def check_wheel_version(wheel: Path, zf: zipfile.ZipFile, dist_info: str) -> None:
    """Only Wheel-Version 1.x is understood (as pip and installer require)."""
    text = read_member(wheel, zf, f"{dist_info}/WHEEL").decode("utf-8", "replace")
    version = next(
        (line.partition(":")[2].strip() for line in text.splitlines() if line.lower().startswith("wheel-version:")),
        "",
    )
    if not version.startswith("1."):
        raise InvalidWheel(wheel, f"{dist_info}/WHEEL", f"Wheel-Version {version or '(none)'} is not 1.x")


def read_member(wheel: Path, zf: zipfile.ZipFile, name: str) -> bytes:
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


def checked_infos(wheel: Path, zf: zipfile.ZipFile, dist_info: str) -> list[zipfile.ZipInfo]:
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


def check_sizes(wheel: Path, infos: list[zipfile.ZipInfo], record: dict[str, tuple[str, str, str]]) -> int:
    """Refuse before writing a byte a member whose zip header contradicts
    RECORD's size; the bytes the wheel unpacks to."""
    total = 0
    for info in infos:
        row = record.get(info.filename)
        if row is not None and row[2].isdigit() and int(row[2]) != info.file_size:
            raise InvalidWheel(
                wheel, info.filename, f"zip declares {info.file_size} bytes, RECORD {row[2]}"
            )
        total += info.file_size
    return total


#: bytes promised to unpacks in flight in this process, per cache root:
#: two wheels unpacked at once must both fit, not each alone
_reserved: dict[str, int] = {}
_reserved_lock = threading.Lock()


@contextlib.contextmanager
def space_reserved(wheel: Path, total: int, where: Path) -> Iterator[None]:
    """Hold ``total`` bytes of the cache's free space for one unpack, or
    refuse before a byte is written when what is free, less what other
    unpacks of this process hold, is not enough."""
    key = os.fspath(where)
    with _reserved_lock:
        held = _reserved.get(key, 0)
        room = shutil.disk_usage(where).free - held
        if total > room:
            others = f" ({held} held by other unpacks running)" if held else ""
            raise CacheError(
                f"no space left on the cache's filesystem ({where}) for {wheel.name}: it unpacks "
                f"to {total} bytes and {max(room, 0)} are free{others}; free space or set --cache-dir"
            )
        _reserved[key] = held + total
    try:
        yield
    finally:
        with _reserved_lock:
            _reserved[key] -= total
