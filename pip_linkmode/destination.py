"""``LinkingDestination``: installer's SchemeDictionaryDestination, placing by links."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import installer
from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.utils import SCHEME_NAMES, Scheme, parse_entrypoints, parse_metadata_file

from .bytecode import CachedPyc, ensure_bytecode, pyc_path
from .cache import CachedFile, record_digest
from .linker import Linker, LinkJob, LinkReport, write_beside
from .modes import LinkMode, parse_link_mode
from .source import CachedFileStream, CachedWheelSource

__all__ = ["LinkingDestination"]

_CHUNK = 1024 * 1024


@dataclass
class LinkingDestination(SchemeDictionaryDestination):
    """A drop-in for ``SchemeDictionaryDestination`` that links cached files.

    Files that come from a ``CachedWheelSource`` are queued in ``write_file``
    and placed by the ``Linker`` in ``finalize_installation``; their RECORD
    rows reuse the hashes of the wheel's verified RECORD. Everything else
    (RECORD, INSTALLER, REQUESTED, direct_url.json, entry-point scripts,
    scripts whose ``#!python`` shebang is rewritten, and any stream that
    does not come from the cache) is written fresh, to a temporary name
    beside the target and renamed over it, so an existing file, which may
    be a hardlink into the cache, is never opened for writing.
    """

    link_mode: LinkMode | str = LinkMode.AUTO
    linker: Linker | None = None
    #: link .pyc files compiled into the cache by the running interpreter:
    #: None decides by the interpreter's path (the running one's, resolved);
    #: True where the caller knows the target runs the same Python (a venv
    #: whose interpreter is a copy of the running one)
    cached_bytecode: bool | None = None
    report: LinkReport = field(init=False)
    _jobs: list[LinkJob] = field(init=False, repr=False)
    #: (scheme, path) of linked .py files -> (their source, archive path)
    _sources: dict[tuple[str, str], tuple[CachedWheelSource, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.link_mode = parse_link_mode(self.link_mode)
        if self.linker is None:
            self.linker = Linker(self.link_mode, overwrite=self.overwrite_existing)
        self.report = LinkReport(requested=self.link_mode)
        self._jobs = []
        self._sources = {}
        self._handled: set[tuple[str, str]] = set()
        self._roots: dict[str, str] = {}
        self._whole_trees = self.linker.platform.clones_directories

    def write_file(
        self,
        scheme: Scheme,
        path: str | os.PathLike[str],
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        if not isinstance(stream, CachedFileStream):
            return super().write_file(scheme, path, stream, is_executable)
        cached = stream.cached
        if scheme == "scripts" and cached.python_shebang:
            return super().write_file(scheme, path, stream, is_executable)
        return self._queue(scheme, os.fspath(path), cached, stream.cache_path, stream.source)

    def _queue(
        self,
        scheme: Scheme,
        path: str,
        cached: CachedFile,
        cache_path: str,
        source: CachedWheelSource | None,
    ) -> RecordEntry:
        """Queue one cached file's link; its RECORD row reuses the wheel's hash."""
        target = self._cached_target(scheme, path)
        if source is not None and scheme in ("purelib", "platlib") and path.endswith(".py"):
            self._sources[(scheme, path)] = (source, cached.path)
        tree = None
        if self._whole_trees:  # only platforms that clone a directory in one call use it
            top, sep, _ = path.partition("/")
            if sep and cached.path == path:  # a package directory at the scheme's root
                cut = len(path) - len(top)
                tree = (cache_path[: len(cache_path) - cut], target[: len(target) - cut])
        self._jobs.append(LinkJob(cache_path, target, cached.size, tree))
        algorithm, _, value = cached.hash.partition("=")
        return RecordEntry(path, Hash(algorithm, value), cached.size)

    def install_cached(self, source: CachedWheelSource, additional_metadata: Mapping[str, bytes]) -> None:
        """``installer.install(source, self, additional_metadata)``, specialised.

        The same calls in the same order with the same results, minus the
        per-file work a cache entry has already done: no stream per file, no
        RECORD row parsing, no path arithmetic beyond one prefix test. A wheel
        this does not cover (a ``__pycache__`` member, a ``.data`` file outside
        a known scheme) goes through ``installer.install`` unchanged, so its
        warnings and errors are installer's own.
        """
        plan = _plan(source)
        if plan is None:
            installer.install(source, self, dict(additional_metadata))
            return
        root_scheme, files = plan
        records: list[tuple[Scheme, RecordEntry]] = []
        if "entry_points.txt" in source.dist_info_filenames:
            text = source.read_dist_info("entry_points.txt")
            for name, module, attr, section in parse_entrypoints(text):
                records.append((Scheme("scripts"), self.write_script(name, module, attr, section)))
        tree = str(source.entry.tree)
        for scheme, path, cached in files:
            cache_path = f"{tree}/{cached.path}"
            if scheme == "scripts" and cached.python_shebang:
                with CachedFileStream(cache_path, cached, source) as stream:
                    record = self.write_file(scheme, path, cast(BinaryIO, stream), cached.executable)
            else:
                record = self._queue(scheme, path, cached, cache_path, source)
            records.append((scheme, record))
        dist_info = source.dist_info_dir
        for filename, contents in additional_metadata.items():
            with io.BytesIO(contents) as other:
                record = self.write_file(root_scheme, f"{dist_info}/{filename}", other, False)
            records.append((root_scheme, record))
        record_path = f"{dist_info}/RECORD"
        records.append((root_scheme, RecordEntry(record_path, None, None)))
        self.finalize_installation(root_scheme, record_path, records)

    def write_to_fs(
        self,
        scheme: Scheme,
        path: str,
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        """Write a generated file: temp name beside the target, then rename."""
        target = self._path_with_destdir(scheme, path)
        existed = os.path.lexists(target)
        if not self.overwrite_existing and existed:
            raise FileExistsError(f"File already exists: {target!s}")
        assert self.linker is not None
        self.linker._make_dir(os.fspath(target.parent))
        self.linker.sweep_temps(os.fspath(target.parent))
        hasher = hashlib.new(self.hash_algorithm)
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        mode = None
        if is_executable:
            umask = os.umask(0)
            os.umask(umask)
            mode = (0o777 & ~umask) | 0o111
        write_beside(os.fspath(target), chunks(), mode, self.linker.platform.replace)
        if not existed:
            self.linker.created.append(os.fspath(target))
        self.report.written += 1
        digest = Hash(self.hash_algorithm, record_digest(hasher.digest()))
        return RecordEntry(path, digest, size)

    def link_pending(self) -> None:
        """Place every queued file now (``finalize_installation`` calls this)."""
        jobs, self._jobs = self._jobs, []
        assert self.linker is not None
        self.report.merge(self.linker.run(jobs))

    def finalize_installation(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        records = list(records)
        if self.bytecode_optimization_levels and self._sources:
            records.extend(self._queue_cached_bytecode())
        # installer compiles the .py files whose pyc is not from the cache,
        # reading them where they land: those must be in place first.
        self.link_pending()
        super().finalize_installation(scheme, record_file_path, records)

    def _queue_cached_bytecode(self) -> list[tuple[Scheme, RecordEntry]]:
        """Link pycs compiled once into the cache, listed in RECORD as pip lists them.

        The cache holds bytecode of the running interpreter, so this applies
        when it is the target's; otherwise installer compiles as usual.
        """
        same = self.cached_bytecode
        if same is None:
            same = os.path.realpath(self.interpreter) == os.path.realpath(sys.executable)
        if not same:
            return []
        levels = tuple(self.bytecode_optimization_levels)
        rows: list[tuple[Scheme, RecordEntry]] = []
        compiled: dict[int, dict[tuple[str, int], CachedPyc]] = {}
        for (scheme, path), (source, rel) in self._sources.items():
            pycs = compiled.get(id(source))
            if pycs is None:
                pycs = compiled[id(source)] = ensure_bytecode(source.cache, source.entry, levels)
            target = self._cached_target(Scheme(scheme), path)
            for level in levels:
                cached = pycs.get((rel, level))
                if cached is None:
                    continue  # does not compile: skipped, as pip does
                self._jobs.append(LinkJob(cached.path, pyc_path(target, level), cached.size))
                pyc_rel = pyc_path(path, level)
                rows.append((Scheme(scheme), RecordEntry(pyc_rel.replace(os.sep, "/"), None, None)))
            self._handled.add((scheme, path))
        return rows

    def _compile_bytecode(self, scheme: Scheme, record: RecordEntry) -> None:
        if not record.path.endswith(".py") or (scheme, record.path) in self._handled:
            return  # nothing to compile, or its pyc came from the cache
        super()._compile_bytecode(scheme, record)

    def _cached_target(self, scheme: Scheme, path: str) -> str:
        """``_target`` of a cache entry's path, which the cache admitted only
        in normal form, relative and without ``..``: on POSIX a plain
        concatenation (the hottest line of an install)."""
        root = self._roots.get(scheme)
        if root is None or self.destdir is not None or os.sep != "/" or root == "/":
            return self._target(scheme, path)
        return f"{root}/{path}"

    def _target(self, scheme: Scheme, path: str) -> str:
        """``_path_with_destdir`` without pathlib, for the per-file hot path."""
        if self.destdir is not None:
            return os.fspath(self._path_with_destdir(scheme, path))
        root = self._roots.get(scheme)
        if root is None:
            root = self._roots[scheme] = os.path.abspath(self.scheme_dict[scheme])
        full = os.path.normpath(os.path.join(root, path))
        if not full.startswith(root + os.sep) and full != root:
            raise ValueError(f"Attempting to write {path} outside of the target directory")
        return full




def _plan(source: CachedWheelSource) -> tuple[Scheme, list[tuple[Scheme, str, CachedFile]]] | None:
    """(root scheme, [(scheme, path in scheme, file)]) as installer would
    route the entry's files, or None where installer must do it itself."""
    wheel = parse_metadata_file(source.read_dist_info("WHEEL"))
    version = wheel["Wheel-Version"]
    if not (version and version.startswith("1.")):
        return None  # installer raises its own error
    root = Scheme("purelib" if wheel["Root-Is-Purelib"] == "true" else "platlib")
    data = f"{source.data_dir}/"
    record_path = f"{source.dist_info_dir}/RECORD"
    files: list[tuple[Scheme, str, CachedFile]] = []
    for cached in source.entry.files:
        path = cached.path
        if path == record_path:
            continue
        if "__pycache__/" in path:
            return None  # installer skips these, with a warning
        if path.startswith(data):
            scheme, _, rest = path[len(data):].partition("/")
            if scheme not in SCHEME_NAMES or not rest:
                return None  # installer's error
            files.append((Scheme(scheme), rest, cached))
        else:
            files.append((root, path, cached))
    return root, files
