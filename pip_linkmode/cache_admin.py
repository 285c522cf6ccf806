"""Inspecting and maintaining a WheelCache: info, list, verify, clean, prune.

Removal takes each entry's lock (installs hold it while they link from an
entry, so neither sees the other half-done), renames the entry out of
``entries/`` first, never follows a symlink or junction, and copes with
read-only files. Entries that a still-existing symlink-mode environment
uses are kept unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import glob
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _cachecore
from ._platform import O_BINARY
from .cache import (
    _SIGNATURES,
    ENV_CACHE_DIR,
    CachedWheel,
    CacheError,
    WheelCache,
    record_digest,
    remove_tree,
)
from .linker import write_beside

__all__ = [
    "CacheInfo",
    "Problem",
    "clean",
    "info",
    "list_entries",
    "prune",
    "record_produced",
    "record_user",
    "repair",
    "users_of",
    "verify",
]


@dataclass
class CacheInfo:
    root: Path
    entries: int = 0
    files: int = 0
    size_on_disk: int = 0
    shared_by_hardlinks: int = 0  # bytes environments hold through extra hard links

    def render(self) -> str:
        return "\n".join(
            [
                f"Location: {self.root}",
                f"Entries: {self.entries}",
                f"Files: {self.files}",
                f"Size on disk: {_human(self.size_on_disk)}",
                f"Shared with environments by hardlinks: {_human(self.shared_by_hardlinks)} "
                "(clones share blocks invisibly; symlinks point here)",
            ]
        )


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def info(cache: WheelCache) -> CacheInfo:
    result = CacheInfo(cache.root)
    seen: set[tuple[int, int]] = set()
    for entry in cache.iter_entries():
        result.entries += 1
        for dirpath, _dirs, files in os.walk(entry.root):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                result.files += 1
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                result.size_on_disk += getattr(st, "st_blocks", 0) * 512 or st.st_size
                if st.st_nlink > 1:
                    result.shared_by_hardlinks += (st.st_nlink - 1) * st.st_size
    return result


def _bytecode_tags(entry: CachedWheel) -> list[str]:
    found = (_MARKER.fullmatch(name) for name in _listdir(entry.root))
    return sorted({m["tag"] for m in found if m is not None})


def list_entries(cache: WheelCache, projects: Iterable[str] = ()) -> list[str]:
    """One line per entry: project, version, tags, size, bytecode tags, last used."""
    wanted = {_norm(p) for p in projects}
    lines = []
    for entry in cache.iter_entries():
        if wanted and _norm(entry.name) not in wanted:
            continue
        tags = "-".join(entry.filename[:-4].split("-")[-3:])
        used = _last_used(entry)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used)) if used else "never"
        pyc = ",".join(_bytecode_tags(entry)) or "-"
        lines.append(f"{entry.name} {entry.version} {tags} {_human(entry.size)} bytecode:{pyc} last-used:{when} {entry.key[:12]}")
    return lines


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _last_used(entry: CachedWheel) -> float | None:
    try:
        return (entry.root / "last-used").stat().st_mtime
    except OSError:
        return None


@dataclass
class Problem:
    """A file that does not match what the cache recorded of it."""

    entry: CachedWheel | None
    path: str
    #: "modified", "missing", "unrecorded" (no recorded hash), "unexpected"
    #: (a file nothing recorded), "damaged (...)" (not a regular file),
    #: "unreadable (...)"
    what: str
    #: what ``repair`` does: "entry" re-creates the entry from its wheel (or
    #: removes it); "layout" rebuilds layout.json; "bytecode" recompiles the
    #: bytecode listed by ``marker`` (or removes it); "remove" removes the
    #: file (a stray file, a plan or index record, recorded again when needed)
    fix: str = "entry"
    key: str = ""  # the entry's, also where its manifest cannot be read
    marker: str = ""  # fix "bytecode": the record listing the file
    about: str = ""  # what holds the file, where it is no entry

    def __post_init__(self) -> None:
        if not self.key and self.entry is not None:
            self.key = self.entry.key

    def render(self) -> str:
        if self.entry is not None:
            about = f"entry {self.entry.name} {self.entry.version}, {self.entry.key[:12]}"
        else:
            about = self.about or f"entry {self.key[:12]}"
        return f"{self.what}: {self.path} ({about})"


# -- recorded hashes of what the cache produces ---------------------------------

#: beside every file the cache produces (an entry's manifest ``entry.json``,
#: ``layout.json``, bytecode records, plans): ``<name>.sha256``, its hash,
#: written before the file itself (so a file found without one was written
#: by an older version, or by someone else)
HASH_SUFFIX = ".sha256"

_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
#: a FIFO opened for reading without it waits for a writer for ever
_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
_READ = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | O_BINARY


class NotRegular(OSError):
    """A path in the cache that is not a regular file (never opened)."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str | os.PathLike[str]) -> int:
    """A descriptor reading the regular file at ``path``; ``NotRegular`` for
    anything else, which is never opened (a FIFO would block, a device be
    read). The final component is never followed, and the file opened must
    be the one looked at."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(errno.EINVAL, f"{_kind(st.st_mode)} where a file should be", os.fspath(path))
    fd = os.open(path, _READ)
    try:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (
            os.name != "nt" and (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
        ):
            raise NotRegular(errno.EINVAL, "replaced while being opened", os.fspath(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The content of the regular file at ``path`` (see ``open_regular``)."""
    return _read_and_close(open_regular(path))


def _read_and_close(fd: int) -> bytes:
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class HeldDir:
    """A directory of the cache held open while the files in it are read
    and removed (``users/<key>``, ``index``, ``plans``): on POSIX one
    descriptor, reached below the cache root without following a link, and
    every name inside used relative to it, so a directory swapped for a
    link after the check (by another user of a shared cache) changes
    nothing; on Windows the path, checked for links and junctions first.
    FileNotFoundError where it does not exist."""

    def __init__(self, root: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = _cachecore.open_dir(root, path)

    def __enter__(self) -> HeldDir:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd if self.fd is not None else self.path))

    def read(self, name: str) -> bytes:
        """A regular file's content (``read_regular``: a link, FIFO or device is
        never opened, or read)."""
        if self.fd is None:
            return read_regular(os.path.join(self.path, name))
        where = os.path.join(self.path, name)
        st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.EINVAL, f"{_kind(st.st_mode)} where a file should be", where)
        fd = os.open(name, _READ | getattr(os, "O_CLOEXEC", 0), dir_fd=self.fd)
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            raise NotRegular(errno.EINVAL, "replaced while being opened", where)
        return _read_and_close(fd)

    def lstat(self, name: str) -> os.stat_result:
        if self.fd is None:
            return os.lstat(os.path.join(self.path, name))
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> None:
        if self.fd is None:
            os.unlink(os.path.join(self.path, name))
        else:
            os.unlink(name, dir_fd=self.fd)


def hash_regular(path: str | os.PathLike[str], algo: str = "sha256") -> tuple[str, os.stat_result]:
    """(digest as RECORD spells it, the file's stat) of the regular file at
    ``path`` (see ``open_regular``)."""
    h = hashlib.new(algo)
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return record_digest(h.digest()), st


def produced_hash(data: bytes) -> str:
    """How the hash of a produced file is recorded: ``sha256=<digest>``."""
    return "sha256=" + record_digest(hashlib.sha256(data).digest())


def record_produced(path: str | os.PathLike[str], data: bytes) -> None:
    """Record the hash of ``data``, about to be written at ``path`` by the
    cache, in ``<path>.sha256`` (by a rename, never written through).
    Recorded first: a file that exists has its record."""
    write_beside(os.fspath(path) + HASH_SUFFIX, (produced_hash(data) + "\n").encode("ascii"))


def record_produced_file(path: str | os.PathLike[str]) -> None:
    """``record_produced`` for the file just written at ``path`` (in a temp
    tree not yet published)."""
    record_produced(path, read_regular(path))


def _damage(exc: OSError) -> str:
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return "missing"
    if isinstance(exc, NotRegular):
        return f"damaged ({exc.strerror})"
    if exc.errno == errno.ELOOP:
        return "damaged (a symbolic link where a file should be)"
    return f"unreadable ({exc.strerror or exc})"


def _check_produced(path: str) -> tuple[str | None, bytes]:
    """(what is wrong or None, content) of a file the cache produced."""
    try:
        data = read_regular(path)
    except OSError as exc:
        return _damage(exc), b""
    try:
        recorded = read_regular(path + HASH_SUFFIX).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return "unrecorded", data
    return (None if recorded == produced_hash(data) else "modified"), data


def _examine(path: str, algo: str, size: int | None, expected: str) -> str | None:
    """What is wrong with a file whose hash is recorded, or None."""
    try:
        digest, st = hash_regular(path, algo)
    except OSError as exc:
        return _damage(exc)
    except ValueError:  # an unknown algorithm
        return f"damaged (unknown hash {algo!r} recorded)"
    return None if digest == expected and size in (None, st.st_size) else "modified"


_MARKER = re.compile(r"bytecode-(?P<tag>.+)-o(?P<levels>\d*)-(?P<mode>[a-z_]+)\.json")


def require_cache(cache: WheelCache) -> None:
    """A CacheError unless ``cache.root`` is a cache this user can read."""
    root = cache.root
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise CacheError(f"no cache at {root} (set --cache-dir or {ENV_CACHE_DIR} to it)") from None
    except NotADirectoryError:
        raise CacheError(f"no cache at {root}: part of that path is a file") from None
    except PermissionError as exc:
        raise CacheError(_unreadable(cache, exc)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(f"{root} is a file, not a cache directory")
    try:
        known = os.path.lexists(cache.entries_dir) or os.path.lexists(root / "CACHEDIR.TAG")
        os.listdir(root)
    except PermissionError as exc:
        raise CacheError(_unreadable(cache, exc)) from None
    if not known:
        raise CacheError(f"{root} is not a pip-linkmode cache (it has no CACHEDIR.TAG and no entries/)")


def _unreadable(cache: WheelCache, exc: OSError) -> str:
    owner = ""
    if hasattr(os, "geteuid"):  # (POSIX: on Windows the ACLs say)
        with contextlib.suppress(OSError):
            owner = f" (owned by {_cachecore._user(os.stat(cache.root).st_uid)})"
    where = f" ({exc.filename})" if exc.filename and os.fspath(exc.filename) != os.fspath(cache.root) else ""
    return (
        f"cannot read the cache {cache.root}{owner}: {exc.strerror or 'permission denied'}{where}; "
        "run as its owner, or set --cache-dir to a cache you can read"
    )


def verify(cache: WheelCache) -> list[Problem]:
    """Check every file the cache holds or produced against its recorded hash.

    An entry's files against the wheel's verified RECORD (through the
    entry's manifest), its RECORD against the manifest, every file the
    cache produced (manifests, layouts, bytecode records, plans) against
    the hash recorded when it was produced, every compiled ``.pyc`` against
    the hash its bytecode record holds; and any other file in an entry's
    tree is unexpected. Nothing that is not a regular file is opened. A
    cache that does not exist holds nothing to check; one that cannot be
    read is a CacheError.
    """
    if not os.path.lexists(cache.root):
        return []
    problems: list[Problem] = []
    try:
        if not os.path.isdir(cache.root):
            raise CacheError(f"{cache.root} is a file, not a cache directory")
        for name in _listdir(cache.entries_dir):
            problems += _verify_entry(cache, name)
        plans = os.path.join(cache.root, "plans")
        for name in _listdir(plans):
            if name.endswith(".json"):
                path = os.path.join(plans, name)
                what, _ = _check_produced(path)
                if what is not None:
                    problems.append(Problem(None, path, what, "remove", about="recorded plan"))
        problems += _verify_index(cache)
    except PermissionError as exc:
        raise CacheError(_unreadable(cache, exc)) from None
    return problems


def _listdir(path: str | os.PathLike[str]) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _verify_entry(cache: WheelCache, key: str) -> list[Problem]:
    from .bytecode import pyc_name

    root = os.path.join(cache.entries_dir, key)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        return [Problem(None, root, f"damaged ({_kind(st.st_mode)} where an entry should be)", key=key)]
    manifest = os.path.join(root, "entry.json")
    what, raw = _check_produced(manifest)
    if what is not None:
        return [Problem(None, manifest, what, key=key)]
    try:
        data = json.loads(raw)
        entry = cache.lookup(key)
        record = [list(row) for row in data["record"]]
        if entry is not None:
            entry.files  # noqa: B018 (read and checked now)
    except (ValueError, KeyError, TypeError, CacheError):
        entry = None
    if entry is None:
        return [Problem(None, manifest, "damaged (not a manifest)", key=key)]
    tree = os.fspath(entry.tree)
    st = os.lstat(tree)
    if not stat.S_ISDIR(st.st_mode):
        return [Problem(entry, tree, f"damaged ({_kind(st.st_mode)} where the unpacked tree should be)")]
    problems: list[Problem] = []
    expected = {f.path for f in entry.files}
    for f in entry.files:
        algo, _, digest = f.hash.partition("=")
        path = str(entry.path_of(f.path))
        what = _examine(path, algo, f.size, digest)
        if what is not None:
            problems.append(Problem(entry, path, what, key=key))
    rel = f"{entry.dist_info}/RECORD"
    expected.add(rel)
    expected.update(f"{entry.dist_info}/{name}" for name in _SIGNATURES)  # (held as the wheel had them)
    path = str(entry.path_of(rel))
    try:
        text = read_regular(path).decode("utf-8")
        same = [row for row in csv.reader(text.splitlines()) if row] == record
        what = None if same else "modified"
    except OSError as exc:
        what = _damage(exc)
    except (UnicodeDecodeError, csv.Error):
        what = "modified"
    if what is not None:
        problems.append(Problem(entry, path, what, key=key))
    layout = os.path.join(root, "layout.json")
    if os.path.lexists(layout):
        what, _ = _check_produced(layout)
        if what is not None:
            problems.append(Problem(entry, layout, what, "layout", key=key))
    for name in _listdir(root):
        found = _MARKER.fullmatch(name)
        if found is None:
            continue
        marker = os.path.join(root, name)
        what, raw = _check_produced(marker)
        rows: list[Any] = []
        if what is None:
            try:
                rows = json.loads(raw)
                if not all(isinstance(row, list) and len(row) == 5 for row in rows):
                    what = "unrecorded"  # compiled by an older version: no hashes
                elif not all(_cachecore.is_safe_relpath(row[0]) for row in rows):
                    what = "damaged (a source path that climbs out of the entry)"
            except ValueError:
                what = "damaged (not a bytecode record)"
        if what is not None:
            problems.append(Problem(entry, marker, what, "bytecode", key=key, marker=marker))
            continue
        for source, level, size, _mtime, digest in rows:
            head, _, stem = str(source).rpartition("/")
            pyc = f"{head}/__pycache__/" if head else "__pycache__/"
            pyc += pyc_name(stem[:-3], int(level), found["tag"])
            expected.add(pyc)
            path = str(entry.path_of(pyc))
            what = _examine(path, "sha256", int(size), str(digest).partition("=")[2])
            if what is not None:
                problems.append(Problem(entry, path, what, "bytecode", key=key, marker=marker))
    problems += _strays(entry, tree, expected)
    return problems


def _strays(entry: CachedWheel, tree: str, expected: set[str]) -> list[Problem]:
    """Files in an entry's tree that nothing recorded, and directories replaced by links."""
    problems: list[Problem] = []

    def unreadable(exc: OSError) -> None:
        problems.append(Problem(entry, str(exc.filename), _damage(exc), key=entry.key))

    for dirpath, dirnames, filenames in os.walk(tree, onerror=unreadable):
        rel = os.path.relpath(dirpath, tree).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                what = "damaged (a symbolic link where a directory should be)"
                problems.append(Problem(entry, path, what, key=entry.key))
        for name in filenames:
            if prefix + name not in expected:
                problems.append(Problem(entry, os.path.join(dirpath, name), "unexpected", "remove", key=entry.key))
    return problems


def _verify_index(cache: WheelCache) -> list[Problem]:
    """Index records that name an entry other than the one they point to."""
    problems = []
    for name in _listdir(cache.index_dir):
        if not name.endswith(".json"):
            continue
        path = os.path.join(cache.index_dir, name)
        try:
            data = json.loads(read_regular(path))
            key, names = str(data["key"]), data.get("entry")
        except OSError as exc:
            problems.append(Problem(None, path, _damage(exc), "remove", about="wheel index"))
            continue
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append(Problem(None, path, "damaged (not an index record)", "remove", about="wheel index"))
            continue
        try:
            entry = cache.lookup(key) if os.sep not in key and "/" not in key else None
        except CacheError:
            continue  # reported with the entry
        if names is not None and entry is not None and any(
            str(names.get(k)) != getattr(entry, k) for k in ("filename", "name", "version", "dist_info")
        ):
            problems.append(Problem(None, path, "modified", "remove", about="wheel index"))
    return problems


def repair(cache: WheelCache, problems: list[Problem]) -> list[str]:
    """Mend what ``verify`` found, and say how:

    - an entry's own files (or its manifest): the entry is re-created from
      its wheel when that wheel is still there with the same content, else
      removed (the next install unpacks it again);
    - ``layout.json``: removed and built again at once;
    - bytecode: the damaged files and their record removed, and compiled
      again at once for this interpreter; another interpreter's compiles
      again when it next installs from the entry;
    - a stray file in a tree, a plan, an index record: removed (a plan is
      recorded again by the next such environment, an index record by the
      next install of that wheel).
    """
    done: list[str] = []
    recreate = sorted({p.key for p in problems if p.fix == "entry"})
    for key in recreate:
        done.append(_recreate(cache, key, next(p.entry for p in problems if p.key == key)))
    rest = [p for p in problems if p.fix != "entry" and (not p.key or p.key not in recreate)]
    layouts: dict[str, CachedWheel] = {}
    markers: dict[str, list[Problem]] = {}
    for p in rest:
        if p.fix == "layout" and p.entry is not None:
            layouts[p.entry.key] = p.entry
        elif p.fix == "bytecode" and p.entry is not None:
            markers.setdefault(p.marker, []).append(p)
        else:
            lock = cache.lock(p.key) if p.key else contextlib.nullcontext()
            with lock:
                _cachecore.check_path(cache.root, p.path, final=False)  # never removed through a link
                remove_tree(Path(p.path))
                remove_tree(Path(p.path + HASH_SUFFIX))
            done.append(f"removed {p.path} ({p.what}; {p.about or 'not in any record'})")
    for entry in layouts.values():
        done.append(_rebuild_layout(cache, entry))
    for marker, found in markers.items():
        done.append(_recompile(cache, marker, found))
    return done


def _recreate(cache: WheelCache, key: str, entry: CachedWheel | None) -> str:
    root = cache.entry_dir(key)
    label = f"{entry.name} {entry.version}" if entry is not None else f"entry {key[:12]}"
    source = _source_of(root)
    same = False
    if source and os.path.isfile(source):
        with contextlib.suppress(CacheError, OSError):
            same = cache.key_for(source) == key  # the wheel it came from, unchanged
    _remove_key(cache, key, forget_users=False)  # a symlink-mode user is one again once it is back
    if same and source:
        entry = cache.get(source)
        return f"re-created {entry.name} {entry.version} from {source}"
    why = "its wheel is gone" if not source or not os.path.isfile(source) else f"its wheel {source} has changed"
    return f"removed {label} ({why}; the next install unpacks it again)"


def _rebuild_layout(cache: WheelCache, entry: CachedWheel) -> str:
    from .placement import load_layout
    from .source import CachedWheelSource

    layout = entry.root / "layout.json"
    with cache.lock(entry.key):
        _cachecore.check_path(cache.root, layout, final=False)  # never removed through a link
        remove_tree(layout)
        remove_tree(Path(os.fspath(layout) + HASH_SUFFIX))
    try:
        load_layout(CachedWheelSource(entry, cache))
    except (OSError, CacheError) as exc:
        return f"removed {layout} (rebuilt by the next install: {exc})"
    return f"rebuilt {layout} ({entry.name} {entry.version})"


def _recompile(cache: WheelCache, marker: str, found: list[Problem]) -> str:
    import py_compile

    from .bytecode import compiled_rows

    entry = found[0].entry
    assert entry is not None
    parts = _MARKER.fullmatch(os.path.basename(marker))
    with cache.lock(entry.key):
        for p in found:
            if p.path != marker:
                _cachecore.check_path(cache.root, p.path, final=False)  # never removed through a link
                remove_tree(Path(p.path))
        remove_tree(Path(marker))
        remove_tree(Path(marker + HASH_SUFFIX))
    label = f"bytecode of {entry.name} {entry.version} ({os.path.basename(marker)})"
    if parts is None or parts["tag"] != sys.implementation.cache_tag:
        return f"removed {label}: compiled again when its interpreter next installs from the entry"
    try:
        mode = py_compile.PycInvalidationMode[parts["mode"].upper()]
        compiled_rows(cache, entry, [int(c) for c in parts["levels"]], mode)
    except (KeyError, ValueError):
        return f"removed {label}: compiled again by the next install that wants it"
    return f"recompiled {label}"


def _source_of(root: Path) -> str | None:
    try:
        return str(json.loads(read_regular(root / "entry.json")).get("source") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


# -- users: symlink-mode environments depend on the cache ----------------------
#
# A symlink-mode environment breaks when its entry goes, so ``clean`` and
# ``prune`` keep entries with a user. A user is recorded in
# ``users/<key>/<hash of its real path>`` as its real path, device and
# inode, and, where the cache and the environment share a filesystem, by
# ``<same name>.link``: a hard link to one of the environment's symlinks
# into the entry (its ``.dist-info/METADATA``): the symlink's own inode,
# not the file it points to, so nothing of the environment's is a cache
# file or ever written through. What decides is what is there when it is
# checked:
#
# - the environment at its recorded path has a symlink whose resolved
#   target is in the entry (compared by real path, and by device and inode
#   for another spelling of the cache: an alias, a bind mount);
# - else a directory with its device and inode beside its old place (the
#   environment renamed in place) that does;
# - else the hard link's count: above one, that symlink still exists
#   wherever the environment was moved to (a reinstall in another mode or
#   an uninstall removes it). An environment moved to another filesystem
#   (a copy), or on another filesystem than the cache, or on Windows (no
#   hard links to symlinks there), is found by the first two alone.
#
# Nothing else is recordable that would find a moved directory: no path
# survives a move, and searching the disk for an inode is not an option.


def record_user(cache: WheelCache, key: str, env_dir: str) -> None:
    """Remember that a symlink-mode environment links into entry ``key``."""
    real = os.path.realpath(env_dir)
    users = os.path.join(cache.root, "users", key)
    _cachecore.make_dirs(cache.root, users)  # (through no link)
    name = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    try:
        st = os.stat(real)
    except OSError:
        return  # nothing there to record
    token = os.path.join(users, f"{name}.link")
    linked = _link_token(cache, key, real, token)
    record = {"path": real, "dev": st.st_dev, "ino": st.st_ino, "link": linked}
    write_beside(os.path.join(users, name), json.dumps(record).encode("utf-8"))


def _link_token(cache: WheelCache, key: str, env: str, token: str) -> bool:
    """Hard-link at ``token`` the environment's symlink to entry ``key``'s
    ``.dist-info/METADATA`` (the symlink itself, never what it points to)."""
    if os.name == "nt" or os.link not in os.supports_follow_symlinks:
        return False
    try:
        entry = cache.lookup(key)
    except CacheError:
        return False
    if entry is None:
        return False
    inside = os.path.realpath(entry.root) + os.sep
    for pattern in ("lib/*/site-packages", "lib64/*/site-packages", "."):
        for found in glob.glob(os.path.join(glob.escape(env), pattern, glob.escape(entry.dist_info), "METADATA")):
            if not os.path.islink(found) or not os.path.realpath(found).startswith(inside):
                continue
            tmp = f"{token}.{os.urandom(4).hex()}.tmp"
            try:
                os.link(found, tmp, follow_symlinks=False)
                os.replace(tmp, token)
            except OSError:  # another filesystem, or links not allowed: path and inode only
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                return False
            if os.path.islink(token):
                return True
            with contextlib.suppress(OSError):  # (a system that followed it made a file: not a token)
                os.unlink(token)
            return False
    return False


def _read_user(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
        if isinstance(record, dict) and isinstance(record.get("path"), str):
            return record
    except ValueError:
        pass
    text = raw.decode("utf-8", "replace").strip()  # an older version's: the path alone
    return {"path": text} if text and "\n" not in text else None


def users_of(cache: WheelCache, key: str) -> list[str]:
    """Environments recorded for ``key`` that still link into it (where one
    was moved, what is known of where); records of the others are removed
    (through the directory held open: ``HeldDir``)."""
    entry_root = os.fspath(cache.entry_dir(key))
    alive = []
    try:
        held = HeldDir(cache.root, os.path.join(cache.root, "users", key))
    except (FileNotFoundError, NotADirectoryError):
        return []
    with held:
        for name in held.names():
            if name.startswith(".") or name.endswith((".link", ".tmp")):
                continue
            try:
                record = _read_user(held.read(name))
            except OSError:
                record = None
            found = _find_user(record, entry_root, held, name + ".link") if record is not None else None
            if found is not None:
                alive.append(found)
                continue
            for doomed in (name, name + ".link"):
                with contextlib.suppress(OSError):
                    held.unlink(doomed)
    return sorted(alive)


def _find_user(record: dict[str, Any], entry_root: str, held: HeldDir, token: str) -> str | None:
    env = str(record["path"])
    if _links_into(env, entry_root):
        return env
    dev, ino = record.get("dev"), record.get("ino")
    if isinstance(dev, int) and isinstance(ino, int):
        moved = _renamed(env, dev, ino)
        if moved is not None and _links_into(moved, entry_root):
            return f"{moved} (moved from {env})"
    try:
        st = held.lstat(token)
        if stat.S_ISLNK(st.st_mode) and st.st_nlink > 1:
            return f"{env} (moved; its symlinks into this entry still exist wherever it is now)"
    except OSError:
        pass
    return None


def _renamed(old: str, dev: int, ino: int) -> str | None:
    """The directory with this device and inode beside ``old``'s place, if
    ``old`` is not it any more."""
    with contextlib.suppress(OSError):
        st = os.stat(old)
        if (st.st_dev, st.st_ino) == (dev, ino):
            return None
    try:
        with os.scandir(os.path.dirname(old)) as it:
            for item in it:
                if item.is_dir(follow_symlinks=False):
                    st = item.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) == (dev, ino):
                        return item.path
    except OSError:
        pass
    return None


def _links_into(env: str, entry_root: str) -> bool:
    """Whether a symlink under ``env`` resolves into ``entry_root``: by real
    path, or, for another spelling of the cache (an alias the real path
    cannot see through, a bind mount), by the device and inode of the
    ``entries/<key>`` directory its target names."""
    if not os.path.isdir(env):
        return False
    real = os.path.realpath(entry_root) + os.sep
    try:
        root_st: os.stat_result | None = os.stat(entry_root)
    except OSError:
        root_st = None
    part = f"{os.sep}entries{os.sep}{os.path.basename(entry_root)}{os.sep}"
    seen: dict[str, bool] = {}
    for dirpath, dirnames, filenames in os.walk(env):
        for name in (*filenames, *dirnames):
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                continue
            target = os.path.realpath(p)
            if target.startswith(real):
                return True
            cut = target.find(part)
            if cut < 0 or root_st is None:
                continue
            prefix = target[: cut + len(part) - 1]
            if prefix not in seen:
                try:
                    seen[prefix] = os.path.samestat(os.stat(prefix), root_st)
                except OSError:
                    seen[prefix] = False
            if seen[prefix]:
                return True
    return False


# -- removal -----------------------------------------------------------------

def _remove_entry(cache: WheelCache, entry: CachedWheel) -> None:
    _remove_key(cache, entry.key)


def _remove_key(cache: WheelCache, key: str, forget_users: bool = True) -> None:
    root = cache.entry_dir(key)
    with cache.lock(key):
        if not os.path.lexists(root):
            return
        doomed = cache.tmp_dir / f"removing-{key}-{os.urandom(4).hex()}"
        _cachecore.rename(cache.root, root, doomed)  # gone from entries/ at once (through no link)
    remove_tree(doomed)
    if forget_users:
        remove_tree(cache.root / "users" / key)


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # why each kept entry was kept


def _remove(cache: WheelCache, entries: Iterable[CachedWheel], force: bool) -> Removal:
    out = Removal()
    for entry in entries:
        users = users_of(cache, entry.key)
        if users and not force:
            out.kept.append(
                f"{entry.name} {entry.version}: used by symlink-mode environment(s) {', '.join(users)} "
                "(they would break; use --force to remove anyway)"
            )
            continue
        _remove_entry(cache, entry)
        out.removed.append(f"{entry.name} {entry.version}")
    return out


def clean(cache: WheelCache, projects: Iterable[str] = (), force: bool = False) -> Removal:
    """Remove all entries, or those of the named projects."""
    wanted = {_norm(p) for p in projects}
    entries = [e for e in cache.iter_entries() if not wanted or _norm(e.name) in wanted]
    out = _remove(cache, entries, force)
    _prune_index(cache)
    return out


def prune(cache: WheelCache, older_than_days: float | None = None, force: bool = False) -> Removal:
    """Remove leftovers of interrupted runs, and entries unused for N days."""
    if older_than_days is not None and not older_than_days >= 0:  # (NaN too)
        raise CacheError(f"--older-than takes a number of days, zero or more (not {older_than_days:g})")
    out = Removal()
    _cachecore.check_path(cache.root, cache.tmp_dir)  # nothing is removed through a link
    if cache.tmp_dir.is_dir():
        for leftover in sorted(cache.tmp_dir.iterdir()):
            key = leftover.name.split("-")[0] if not leftover.name.startswith("removing-") else None
            try:
                if key:
                    lock = cache.lock(key)
                    with lock:  # nobody is unpacking this entry right now
                        remove_tree(leftover)
                else:
                    remove_tree(leftover)
            except PermissionError as exc:  # (another user's, in a shared cache)
                out.kept.append(
                    f"leftover {leftover.name}: {exc.strerror} ({exc.filename}); its owner or root can remove it"
                )
                continue
            out.removed.append(f"leftover {leftover.name}")
    for stray in cache.entries_dir.glob("*/tree/**/.*.plm-inode") if cache.entries_dir.is_dir() else []:
        _cachecore.check_path(cache.root, stray, final=False)
        stray.unlink()
    if older_than_days is not None:
        limit = time.time() - older_than_days * 86400
        old = [e for e in cache.iter_entries() if (_last_used(e) or 0) < limit]
        sub = _remove(cache, old, force)
        out.removed += sub.removed
        out.kept += sub.kept
    _prune_index(cache)
    return out


def _prune_index(cache: WheelCache) -> None:
    """Forget wheel files whose entry is gone (the index is only a shortcut),
    and recorded plans that link from a removed entry (see ``plan``); each
    directory held open while its files are read and removed (``HeldDir``)."""
    for where, suffix in ((cache.root / "plans", ".json"), (cache.index_dir, "")):
        try:
            held = HeldDir(cache.root, where)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with held:
            for name in held.names():
                if not name.endswith(suffix) or name.endswith(HASH_SUFFIX):
                    continue
                try:
                    data = json.loads(held.read(name))
                    keys = [str(k) for k in data["entries"]] if suffix else [str(data["key"])]
                except (OSError, ValueError, KeyError, TypeError):
                    keys = [""]
                if not all(k and (cache.entry_dir(k) / "entry.json").is_file() for k in keys):
                    for doomed in (name, name + HASH_SUFFIX):
                        with contextlib.suppress(OSError):
                            held.unlink(doomed)
