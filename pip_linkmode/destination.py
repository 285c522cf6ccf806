"""``LinkingDestination``: installer's SchemeDictionaryDestination, placing by links."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.util import cache_from_source
from typing import BinaryIO

from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.utils import Scheme

from .bytecode import ensure_bytecode
from .cache import record_digest
from .linker import Linker, LinkJob, LinkReport
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
        path_ = os.fspath(path)
        target = self._target(scheme, path_)
        if stream.source is not None and scheme in ("purelib", "platlib") and path_.endswith(".py"):
            self._sources[(scheme, path_)] = (stream.source, cached.path)
        tree = None
        top, sep, _ = path_.partition("/")
        if sep and cached.path == path_:  # a package directory at the scheme's root
            cut = len(path_) - len(top)
            tree = (stream.cache_path[: len(stream.cache_path) - cut], target[: len(target) - cut])
        self._jobs.append(LinkJob(stream.cache_path, target, cached.size, tree))
        return RecordEntry(path_, Hash.parse(cached.hash), cached.size)

    def write_to_fs(
        self,
        scheme: Scheme,
        path: str,
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        """Write a generated file: temp name beside the target, then rename."""
        target = self._path_with_destdir(scheme, path)
        if not self.overwrite_existing and os.path.lexists(target):
            raise FileExistsError(f"File already exists: {target!s}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.plm-tmp")
        hasher = hashlib.new(self.hash_algorithm)
        size = 0
        try:
            with open(tmp, "xb") as out:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if is_executable:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, (0o777 & ~umask) | 0o111)
            assert self.linker is not None
            self.linker.platform.replace(os.fspath(tmp), os.fspath(target))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
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
        self.link_pending()
        super().finalize_installation(scheme, record_file_path, records)

    def _queue_cached_bytecode(self) -> list[tuple[Scheme, RecordEntry]]:
        """Link pycs compiled once into the cache, listed in RECORD as pip lists them.

        The cache holds bytecode of the running interpreter, so this applies
        when it is the target's; otherwise installer compiles as usual.
        """
        if os.path.realpath(self.interpreter) != os.path.realpath(sys.executable):
            return []
        levels = tuple(self.bytecode_optimization_levels)
        rows: list[tuple[Scheme, RecordEntry]] = []
        compiled: dict[int, dict[tuple[str, int], str]] = {}
        for (scheme, path), (source, rel) in self._sources.items():
            pycs = compiled.get(id(source))
            if pycs is None:
                pycs = compiled[id(source)] = ensure_bytecode(source.cache, source.entry, levels)
            target = self._target(Scheme(scheme), path)
            for level in levels:
                cached = pycs.get((rel, level))
                if cached is None:
                    continue  # does not compile: skipped, as pip does
                dst = cache_from_source(target, optimization="" if level == 0 else level)
                self._jobs.append(LinkJob(cached, dst, os.path.getsize(cached)))
                pyc_rel = cache_from_source(path, optimization="" if level == 0 else level)
                rows.append((Scheme(scheme), RecordEntry(pyc_rel.replace(os.sep, "/"), None, None)))
            self._handled.add((scheme, path))
        return rows

    def _compile_bytecode(self, scheme: Scheme, record: RecordEntry) -> None:
        if not record.path.endswith(".py") or (scheme, record.path) in self._handled:
            return  # nothing to compile, or its pyc came from the cache
        super()._compile_bytecode(scheme, record)

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


