"""``LinkingDestination``: installer's SchemeDictionaryDestination, placing by links."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

import installer
from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.utils import Scheme, parse_entrypoints

from .bytecode import CachedPyc, ensure_bytecode, pyc_path
from .cache import CachedFile, record_digest
from .laidout import LayoutTarget, inside, install_layout, line_speller, may_exist
from .linker import Linker, LinkError, LinkJob, LinkReport
from .linker.files import TEMP_SUFFIX, beside
from .modes import LinkMode, link_mode_from_env, parse_link_mode
from .placement import (
    Layout,
    Placement,
    execute,
    kept_positions,
    link_groups,
    load_layout,
    pyc_dirs,
    register_symlink_users,
    route,
)
from .source import CachedFileStream, CachedWheelSource, Handover

if TYPE_CHECKING:
    from .batch import LinkBatch
    from .cache import WheelCache

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

    The one deliberate difference from ``SchemeDictionaryDestination``: with
    ``overwrite_existing=True`` installer rewrites an existing file in
    place (opens it for writing); this replaces it by a rename. Writing in
    place through a hardlink would change the cache and every environment
    sharing the file, and a reader of the old file never sees a half-written
    one. Everything else is installer's contract: the same files, RECORD and
    scripts; FileExistsError from ``write_file`` for an existing target
    without ``overwrite_existing``, before anything is placed; a subclass's
    ``write_to_fs`` applies to every file. A failure during an install
    removes what that install created.
    """

    #: None: ``PIP_LINK_MODE``, else auto (as ``install_wheels`` and the doors)
    link_mode: LinkMode | str | None = None
    linker: Linker | None = None
    #: link .pyc files compiled into the cache by the running interpreter:
    #: None decides by the interpreter's path (the running one's, resolved);
    #: True where the caller knows the target runs the same Python (a venv
    #: whose interpreter is a copy of the running one)
    cached_bytecode: bool | None = None
    #: False: the files of a cache entry may still be in placement when
    #: ``install_cached`` returns; the caller (``install_wheels``) then calls
    #: ``linker.finish()`` before it reports the install done
    wait_for_links: bool = True
    #: a ``LinkBatch`` (entered) this destination's installs belong to: its
    #: files may still be in placement when ``installer.install`` returns,
    #: and are in place at the end of the batch's ``with`` block (see
    #: ``batch``); the batch's linker, link mode and ``overwrite_existing``
    batch: LinkBatch | None = field(default=None, repr=False)
    report: LinkReport = field(init=False)
    #: with ``wait_for_links`` False: (cache, entry key, environment) to
    #: register as symlink-mode users once the links are placed (the caller
    #: calls ``placement.register_symlink_users(report, pending_users)``)
    pending_users: list[tuple[WheelCache | str, str, str]] = field(init=False, repr=False)
    _jobs: list[LinkJob] = field(init=False, repr=False)
    #: (scheme, path) of linked .py files -> (their source, archive path)
    _sources: dict[tuple[str, str], tuple[CachedWheelSource, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.batch is not None:
            if self.linker is not None:
                raise ValueError("give a LinkingDestination a linker or a batch, not both")
            if self.link_mode is None:
                self.link_mode = self.batch.link_mode
        self.link_mode = link_mode_from_env() if self.link_mode is None else parse_link_mode(self.link_mode)
        cls = type(self)
        #: a subclass writes files its own way: every file, linked or not,
        #: goes through its ``write_to_fs`` / ``write_file`` (see ``write_to_fs``)
        self._custom_writes = (
            cls.write_to_fs is not LinkingDestination.write_to_fs
            or cls.write_file is not LinkingDestination.write_file
        )
        if self.batch is not None:
            self.linker = self.batch.join(self)
            self.wait_for_links = False
        elif self.linker is None:
            # installer's loop prepares each wheel while its files are
            # placed, then waits for them: large wheels are placed by the
            # process's helpers, started once for every destination
            self.linker = Linker(self.link_mode, overwrite=self.overwrite_existing, help_links=True, share_helpers=True)
            self.linker.source_mtimes = bool(self.bytecode_optimization_levels)
        self.report = LinkReport(requested=self.link_mode)
        self._jobs = []
        self.pending_users = []
        #: (cache, entry key, environment) of the cache entries files were queued from
        self._users: list[tuple[WheelCache | str, str, str]] = []
        self._sources = {}
        self._handled: set[tuple[str, str]] = set()
        self._roots: dict[str, str] = {}
        self._whole_trees = self.linker.platform.clones_directories
        #: files a subclass wrote itself that become links (``_through_subclass``)
        self._relinks: list[LinkJob] = []
        self._queued_by_base = False
        #: the source whose entry was placed whole at its first file (see
        #: ``_whole_entry``), or False where that does not apply to it
        self._whole: _WholeEntry | None | bool = None
        #: target directory -> whether it existed when first looked at
        self._dirs_there: dict[str, bool] = {}
        #: the linker's mark when this install began (None: between installs)
        self._mark: tuple[int, int] | None = None
        #: scripts this install wrote (installer lists them before the files)
        self._script_rows = 0

    @property
    def _levels(self) -> tuple[int, ...]:
        """The optimisation levels of the bytecode asked for; -1 is the
        running interpreter's own (as ``compileall`` reads it)."""
        return tuple(dict.fromkeys(sys.flags.optimize if lv == -1 else lv for lv in self.bytecode_optimization_levels))

    def writes_its_own_way(self) -> bool:
        """Whether this destination's class writes files (``write_to_fs``,
        ``write_file``) or compiles them (``_compile_bytecode``) its own way."""
        return self._custom_writes or type(self)._compile_bytecode is not LinkingDestination._compile_bytecode

    def _begin(self) -> None:
        """Note where this install's creations start in the linker's journal."""
        if self._mark is None:
            if self.batch is not None:
                self.batch.check()  # (not after its end, nor after a failure of it)
            assert self.linker is not None
            self._mark = self.linker.mark()
            self._dirs_there.clear()  # (an earlier install may have made them)
            self._script_rows = 0

    def _abandon(self) -> None:
        """This install failed: drop what was queued and remove what it
        created (files placed or written where nothing was, directories
        made), so the environment is as it was. Files it replaced keep
        their new content."""
        assert self.linker is not None
        self._jobs.clear()
        self._relinks.clear()
        self._users.clear()
        self._sources.clear()
        self._handled.clear()
        self._whole = None
        mark, self._mark = self._mark, None
        if mark is None:
            return  # undone already (by a call nested in this one)
        if self.batch is not None:
            # Earlier installs' links may still be landing in the journal
            # after this one's mark: the batch is undone as a whole.
            self.batch.fail(sys.exc_info()[1] or LinkError("an install of the batch failed"))
            return
        with contextlib.suppress(Exception):  # (the failure is being raised already)
            self.linker.finish()
        self.linker.undo_since(mark)

    def write_file(
        self,
        scheme: Scheme,
        path: str | os.PathLike[str],
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        """installer's ``write_file``: a file from the cache is queued to be
        linked (a subclass's ``write_to_fs`` sees it first), anything else
        written. A failure undoes what this install created so far."""
        self._begin()
        try:
            if not isinstance(stream, CachedFileStream):
                return super().write_file(scheme, path, stream, is_executable)
            cached = stream.cached
            if self._custom_writes:
                return self._through_subclass(scheme, os.fspath(path), stream, is_executable)
            if scheme == "scripts" and cached.python_shebang:
                return super().write_file(scheme, path, stream, is_executable)
            source = stream.source
            if source is not None:
                whole = self._whole
                if whole is None or (whole is not False and whole.source is not source):  # type: ignore[union-attr]
                    whole = self._whole = self._whole_entry(source, stream.handover)
                if whole:
                    return whole.answer(scheme, os.fspath(path), cached, self._handled)  # type: ignore[union-attr]
            return self._queue(scheme, os.fspath(path), cached, stream.cache_path, source)
        except BaseException:
            self._abandon()
            raise

    def _whole_entry(self, source: CachedWheelSource, handover: Handover | None = None) -> _WholeEntry | bool:
        """At the first file ``installer.install`` hands over from a cache
        entry, place the whole entry from its layout (as ``install_cached``
        does), so the links are made while installer goes through the rest;
        its later files are answered with their RECORD entry alone. False
        where the layout does not apply (see ``_fast_path_applies``): the
        entry's files are then queued one by one."""
        assert self.linker is not None
        if not self._fast_path_applies():
            return False
        layout = load_layout(source)
        if layout is None:
            return False
        tree = str(source.entry.tree)
        place = self._layout_target()
        placement = Placement(link_groups(layout, tree, place.dir_of), source_root=tree)
        pyc_rows: list[tuple[Scheme, RecordEntry]] = []
        if place.levels:
            for pycs in pyc_dirs(source.cache, source.entry, place.levels, layout.root, place.dir_of):
                placement.groups.append(pycs.group)
                pyc_rows.extend(
                    (Scheme(pycs.scheme), RecordEntry(f"{pycs.rel_dir}/{pyc}", None, None)) for pyc in pycs.group[2]
                )
        if not self.overwrite_existing:
            try:
                place.refuse_existing(placement.groups)
            except FileExistsError:
                return False  # one by one: raised at that file's call, as installer does
        report = execute(placement, self.linker, wait=False)
        self._users.append((source.cache, source.entry.key, self._env_dir()))
        whole = _WholeEntry(source, layout, placement, report, pyc_rows)
        if handover is not None and handover.destination is self and "write_file" not in vars(self):
            # installer walks the source for this very destination: it is
            # not handed the files placed any more (``_WholeEntry.rows``)
            handover.keep = whole.kept()
            whole.handover = handover
        return whole

    def _may_exist(self, target: str) -> bool:
        """``laidout.may_exist`` with this destination's view of its directories."""
        return may_exist(self._dirs_there, target)

    def _through_subclass(self, scheme: Scheme, path: str, stream: CachedFileStream, is_executable: bool) -> RecordEntry:
        """A cached file, for a subclass that writes files its own way.

        Its ``write_to_fs`` sees the file first. If it passes it on to ours,
        ours queues the link (under whatever path it chose). If it writes the
        file itself, it writes over no link into the cache (a link at the
        target becomes a private copy first, so a subclass that refuses an
        existing file still sees one), and afterwards the file it wrote, if
        it holds exactly the cached bytes (its RECORD hash and size are the
        cache's), is replaced by a link to the cache file: the subclass's
        choices of path and of what to do with an existing file stand, and
        the environment still shares the cache's files.
        """
        self._unshare(self._target(scheme, path))
        self._queued_by_base = False
        record = super().write_file(scheme, path, cast(BinaryIO, stream), is_executable)
        cached = stream.cached
        if (
            not self._queued_by_base
            and self.link_mode is not LinkMode.COPY
            and record.hash_ is not None
            and f"{record.hash_.name}={record.hash_.value}" == cached.hash
            and record.size == cached.size
        ):
            target = self._target(scheme, record.path)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(target).st_mode):  # (not a link the subclass made itself)
                    self._relinks.append(LinkJob(stream.cache_path, target, cached.size))
                    if stream.source is not None:
                        self._users.append((stream.source.cache, stream.source.entry.key, self._env_dir()))
        return record

    def _layout_target(self) -> LayoutTarget:
        assert self.linker is not None
        return LayoutTarget(
            self.scheme_dict, self.interpreter, self.linker, overwrite=self.overwrite_existing,
            levels=self._levels, hash_algorithm=self.hash_algorithm, dirs_there=self._dirs_there,
        )

    def _unshare(self, target: str) -> None:
        """Make ``target`` a private copy if it is a link (into the cache,
        perhaps): a subclass's own ``write_to_fs`` that opens it for writing
        then writes a file of its own; writing through a hardlink would
        change the cache. A dangling link is removed."""
        assert self.linker is not None
        self.linker.settle(target)
        platform = self.linker.platform
        fs = platform.fspath(target)
        try:
            st = os.lstat(fs)
        except OSError:
            return
        if not (stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1)):
            return
        tmp = beside(target, TEMP_SUFFIX)
        try:
            platform.copy_file(target, tmp)
        except FileNotFoundError:  # a link to nothing
            os.unlink(fs)
            return
        platform.replace(tmp, target)

    def write_script(self, name: str, module: str, attr: str, section: Any) -> RecordEntry:
        """installer's ``write_script``; a failure undoes what this install created so far."""
        self._begin()
        try:
            record = super().write_script(name, module, attr, section)
        except BaseException:
            self._abandon()
            raise
        self._script_rows += 1
        return record

    def _queue(
        self,
        scheme: Scheme,
        path: str,
        cached: CachedFile,
        cache_path: str,
        source: CachedWheelSource | None,
    ) -> RecordEntry:
        """Queue one cached file's link; its RECORD row reuses the wheel's hash.

        An existing target without ``overwrite_existing`` raises
        FileExistsError here, before anything is placed, as installer's
        ``write_to_fs`` does."""
        target = self._cached_target(scheme, path)
        if not self.overwrite_existing and self._may_exist(target):
            raise FileExistsError(f"File already exists: {target!s}")
        if source is not None:
            if scheme in ("purelib", "platlib") and path.endswith(".py"):
                self._sources[(scheme, path)] = (source, cached.path)
            if not self._users or self._users[-1][1] != source.entry.key:
                self._users.append((source.cache, source.entry.key, self._env_dir()))
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
        warnings and errors are installer's own. A failure undoes what this
        install created.
        """
        self._begin()
        try:
            self._install_cached(source, additional_metadata)
        except BaseException:
            self._abandon()
            raise
        self._mark = None

    def _install_cached(self, source: CachedWheelSource, additional_metadata: Mapping[str, bytes]) -> None:
        if self._custom_writes:  # every file through the subclass's own writes
            installer.install(source, self, dict(additional_metadata))
            return
        if self._fast_path_applies():
            layout = load_layout(source)
            if layout is not None:
                self._install_laid_out(source, layout, additional_metadata)
                return
        routed = route(source)
        if routed is None:
            installer.install(source, self, dict(additional_metadata))
            return
        root_scheme, files = routed
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

    def _fast_path_applies(self) -> bool:
        """Whether ``_install_laid_out`` gives what the general path gives:
        no destdir, files placed one by one, and bytecode either not wanted
        or linked from the cache (no per-environment compiling)."""
        assert self.linker is not None
        if self.destdir is not None or self._whole_trees:
            return False
        if self.bytecode_optimization_levels:
            return sys.pycache_prefix is None and sys.implementation.cache_tag is not None and (
                self._same_interpreter()
            )
        return True

    def _same_interpreter(self) -> bool:
        if self.cached_bytecode is not None:
            return self.cached_bytecode
        return os.path.realpath(self.interpreter) == os.path.realpath(sys.executable)

    def _install_laid_out(
        self, source: CachedWheelSource, layout: Layout, additional_metadata: Mapping[str, bytes]
    ) -> None:
        """``install_cached`` from the entry's precomputed layout
        (``laidout.install_layout``). Entry-point scripts come from the
        layout for POSIX, through ``write_script`` (installer's, or a
        subclass's) otherwise."""
        scripts = None
        if self.script_kind != "posix" or layout.scripts is None or (
            type(self).write_script is not LinkingDestination.write_script
        ):

            def scripts() -> list[tuple[str, str, str]]:
                text = source.read_dist_info("entry_points.txt")
                written = []
                for name, module, attr, section in parse_entrypoints(text):
                    record = self.write_script(name, module, attr, section)
                    size = "" if record.size is None else str(record.size)
                    written.append((record.path, str(record.hash_ or ""), size))
                return written

        users = install_layout(
            source.entry, source.cache, layout, self._layout_target(), additional_metadata,
            report=self.report, wait=self.wait_for_links, scripts=scripts,
        )
        self.pending_users.extend(users)

    def _env_dir(self) -> str:
        """Where the environment is on disk (its data scheme), for registering users."""
        data = os.path.abspath(self.scheme_dict["data"])
        if self.destdir is None:
            return data
        return os.path.join(self.destdir, os.path.splitdrive(data)[1].lstrip("\\/"))

    def write_to_fs(
        self,
        scheme: Scheme,
        path: str,
        stream: BinaryIO,
        is_executable: bool,
    ) -> RecordEntry:
        """Write a generated file: where nothing is, straight to its name
        (created exclusively); over an existing file, to a temp name beside
        it that is then renamed over it.

        A subclass that overrides this (or ``write_file``) gets every file,
        those from the cache too, as a ``CachedFileStream``: passed on to
        this method (under any path it chooses), such a file is linked, not
        written. A subclass that writes it itself gets a target that is no
        link into the cache: an existing link there is removed first, so
        writing through it cannot change the cache.
        """
        assert self.linker is not None
        if isinstance(stream, CachedFileStream) and stream.tell() == 0:
            cached = stream.cached
            if not (scheme == "scripts" and cached.python_shebang):
                self._queued_by_base = True
                return self._queue(scheme, path, cached, stream.cache_path, stream.source)
        target = self._target(scheme, path)
        chunks = iter(functools.partial(stream.read, _CHUNK), b"")
        digest, size = self.linker.write(
            target, chunks, executable=is_executable, exclusive=not self.overwrite_existing,
            algorithm=self.hash_algorithm,
        )
        self.report.written += 1
        return RecordEntry(path, Hash(self.hash_algorithm, record_digest(digest)), size)

    def link_pending(self) -> None:
        """Place every queued file now (``finalize_installation`` calls this)."""
        self._begin()
        jobs, self._jobs = self._jobs, []
        assert self.linker is not None
        users, self._users = self._users, []
        whole, self._whole = self._whole, None
        report = execute(Placement(files=jobs), self.linker, wait=False)
        if isinstance(whole, _WholeEntry):
            report.merge(whole.report)
            whole.check(self.linker)
        if self.wait_for_links:
            self.linker.finish()
            register_symlink_users(report, users)
        else:
            self.pending_users.extend(users)
        self.report.merge(report)
        relinks, self._relinks = self._relinks, []
        if relinks:  # files a subclass wrote itself, with the cache's bytes: replaced by links
            relinker = Linker(self.report.requested, self.linker.platform, overwrite=True)
            self.report.merge(relinker.run(relinks))

    def finalize_installation(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        self._begin()
        try:
            self._finalize(scheme, record_file_path, records)
        except BaseException:
            self._abandon()
            raise
        self._mark = None
        self._handled.clear()  # (this install's: a later one on this destination starts afresh)
        self._sources.clear()

    def _finalize(
        self,
        scheme: Scheme,
        record_file_path: str,
        records: Iterable[tuple[Scheme, RecordEntry]],
    ) -> None:
        records = list(records)
        whole = self._whole
        spell = line_speller(self.scheme_dict, scheme)
        #: RECORD's rows, as (path, line), where the files placed whole are
        #: listed from their layout's lines
        rows = None
        extra: list[tuple[Scheme, RecordEntry]] = []
        if isinstance(whole, _WholeEntry):
            if self._skipped_need_no_compiling(whole):
                rows = whole.lines(records, self._script_rows, spell)
            if rows is None:
                records = whole.merge(records, scheme, self._handled, self._script_rows)
            extra.extend(whole.pyc_rows)
        if self.bytecode_optimization_levels and self._sources:
            extra.extend(self._queue_cached_bytecode())
        records.extend(extra)
        if rows is None:
            rows = [_row(spell, item) for item in records]
        else:
            rows.extend(_row(spell, item) for item in extra)
        # A whole entry's new RECORD is written while the threads still link
        # (a failure of theirs removes it with the rest); otherwise after, as
        # installer does: a subclass's write_to_fs may look at the files, and
        # an existing RECORD must stay as it was if a link fails.
        early = (
            isinstance(whole, _WholeEntry)
            and not self._jobs
            and not os.path.lexists(self._target(scheme, record_file_path))
        )
        if early:
            self._write_record(scheme, record_file_path, rows)
        # installer compiles the .py files whose pyc is not from the cache,
        # reading them where they land: those must be in place first.
        self.link_pending()
        if not early:
            self._write_record(scheme, record_file_path, rows)
        if self.bytecode_optimization_levels or type(self)._compile_bytecode is not LinkingDestination._compile_bytecode:
            for file_scheme, record in records:  # (installer's own compiles nothing without levels)
                self._compile_bytecode(file_scheme, record)

    def _skipped_need_no_compiling(self, whole: _WholeEntry) -> bool:
        """Whether the files installer was not handed (``_WholeEntry.lines``)
        need no ``_compile_bytecode`` call: no subclass's own, and either no
        bytecode asked for or the entry's linked from the cache."""
        if type(self)._compile_bytecode is not LinkingDestination._compile_bytecode:
            return False
        return not self.bytecode_optimization_levels or bool(whole.pyc_rows)

    def _write_record(self, scheme: Scheme, record_file_path: str, rows: list[tuple[str, str]]) -> None:
        """What installer's ``finalize_installation`` writes, byte for byte:
        ``rows`` (path in its scheme, line) sorted by path, stably (installer
        sorts its records by path), without a csv writer per row: RECORD
        lists every file, and this is an install's longest loop after placing."""
        rows.sort(key=_first)
        with io.BytesIO("".join([line for _, line in rows]).encode("utf-8")) as stream:
            self.write_to_fs(scheme, record_file_path, stream, is_executable=False)

    def _queue_cached_bytecode(self) -> list[tuple[Scheme, RecordEntry]]:
        """Link pycs compiled once into the cache, listed in RECORD as pip lists them.

        The cache holds bytecode of the running interpreter, so this applies
        when it is the target's; otherwise installer compiles as usual.
        """
        if not self._same_interpreter():
            return []
        levels = self._levels
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
        if self.batch is None or scheme not in ("purelib", "platlib") or not self.bytecode_optimization_levels:
            super()._compile_bytecode(scheme, record)
            return
        # In a batch: installer reads the file where it lands (wait for it,
        # if it is still being placed), and the .pyc it writes is journalled,
        # so that a later failure of the batch removes it with the rest.
        assert self.linker is not None
        target = self._target(scheme, record.path)
        self.linker.settle(target)
        from importlib.util import cache_from_source

        pycs = [cache_from_source(target, optimization=level if level >= 1 else "") for level in self._levels]
        pycache = os.path.join(os.path.dirname(target), "__pycache__")
        pycs = [p for p in pycs if os.path.dirname(p) == pycache]  # (not under a sys.pycache_prefix)
        new_dir = not os.path.isdir(pycache)
        fresh = [p for p in pycs if not os.path.lexists(p)]
        try:
            super()._compile_bytecode(scheme, record)
        finally:
            journal = self.linker.journal
            if new_dir and os.path.isdir(pycache):
                journal.made_dir(pycache)
            journal.created.extend(p for p in fresh if os.path.lexists(p))

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
        return inside(root, path)


_T = TypeVar("_T")


def _row(spell: Callable[[str, str, str, str], str], item: tuple[Scheme, RecordEntry]) -> tuple[str, str]:
    """One record as RECORD's (path, line) row."""
    scheme, record = item
    size = "" if record.size is None else str(record.size)
    return record.path, spell(scheme, record.path, str(record.hash_ or ""), size)


def _first(row: tuple[str, str]) -> str:
    return row[0]


class _WholeEntry:
    """A cache entry ``LinkingDestination.write_file`` placed whole at its
    first file: installer's calls for its files are answered from the cache's
    hashes, and at the end every linked file must have been asked for."""

    def __init__(
        self,
        source: CachedWheelSource,
        layout: Layout,
        placement: Placement,
        report: LinkReport,
        pyc_rows: list[tuple[Scheme, RecordEntry]],
    ) -> None:
        self.source = source
        self.layout = layout
        self.placement = placement
        #: the layout's own groups (the pycs' follow)
        self.own = placement.groups[: len(layout.groups)]
        self.linked = sum(len(group[2]) for group in self.own)
        self.report = report
        self.pyc_rows = pyc_rows
        self.asked: set[str] = set()  # archive paths of the files asked for
        #: positions of the files installer was handed, once ``rows`` ran
        #: (those it was not are listed by the destination: asked for too)
        self.handed: set[int] | None = None
        #: installer's walk of the source, when it skips the files placed here
        self.handover: Handover | None = None

    def answer(self, scheme: str, path: str, cached: CachedFile, handled: set[tuple[str, str]]) -> RecordEntry:
        """The RECORD entry of a file already placed (its pyc, if any,
        comes from the cache: installer is not to compile it)."""
        self.asked.add(cached.path)
        return self._entry(scheme, path, cached, handled)

    def _entry(self, scheme: str, path: str, cached: CachedFile, handled: set[tuple[str, str]]) -> RecordEntry:
        if path.endswith(".py") and scheme in ("purelib", "platlib") and self.pyc_rows:
            handled.add((scheme, path))
        algorithm, _, value = cached.hash.partition("=")
        return RecordEntry(path, Hash(algorithm, value), cached.size)

    def _own_dirs(self) -> Iterator[tuple[str, str, Sequence[str]]]:
        """The layout's own groups as (archive directory, '' at the root;
        target directory; file names)."""
        tree = self.placement.source_root
        assert tree is not None
        for sdir, ddir, names, _, _ in self.own:
            yield sdir[len(tree) + 1 :], ddir, names

    def kept(self) -> frozenset[int]:
        """The positions (``Handover.keep``) of the files ``installer.install``
        is still to be handed (``placement.kept_positions``). The layout's
        other files are all placed here (a wheel with a ``__pycache__``
        directory or a ``.data`` directory installer does not know has no
        layout)."""
        return frozenset(kept_positions(self.layout, self.source.data_dir))

    def rows(
        self,
        records: list[tuple[Scheme, RecordEntry]],
        scripts: int,
        handed_row: Callable[[tuple[Scheme, RecordEntry]], _T],
        skipped_rows: Callable[[set[int]], list[_T]],
    ) -> list[_T] | None:
        """installer's ``records`` (``scripts`` rows first, then one per file
        handed over, in order), with a row for each file it was not handed,
        by its position, where installer would have listed it: among the
        files in the wheel's order (rows of one path in two schemes keep
        installer's order in RECORD's stable sort). ``skipped_rows(handed)``:
        a row per position, in a list of its own, where those ``handed`` may
        hold anything (each is replaced). None where installer was handed
        every file: ``records`` are whole."""
        handover = self.handover
        if handover is None or handover.keep is None:
            return None
        handed, handover.handed, handover.keep = handover.handed, [], None
        self.handed = done = set(handed)
        rows = skipped_rows(done)
        end = scripts + len(handed)
        if end > len(records):  # (not installer's usual calls: the order is RECORD's sort alone)
            return [*map(handed_row, records), *(row for i, row in enumerate(rows) if i not in done)]
        for index, item in zip(handed, records[scripts:end], strict=True):
            rows[index] = handed_row(item)
        return [*map(handed_row, records[:scripts]), *rows, *map(handed_row, records[end:])]

    def merge(
        self, records: list[tuple[Scheme, RecordEntry]], root_scheme: Scheme, handled: set[tuple[str, str]], scripts: int
    ) -> list[tuple[Scheme, RecordEntry]]:
        """``rows`` as installer's records, each file not handed answered
        (``answer``) from the entry's files: for a destination whose
        ``_compile_bytecode`` is to see them."""
        files = self.source.positioned_files()
        data = self.source.data_dir + "/"

        def skipped(handed: set[int]) -> list[tuple[Scheme, RecordEntry] | None]:
            rows: list[tuple[Scheme, RecordEntry] | None] = []
            for index in range(len(self.layout.keys)):  # (a position each, as ``lines``)
                if index in handed:
                    rows.append(None)
                    continue
                cached = files[index]
                path = cached.path
                if path.startswith(data):  # (a scheme installer knows: see ``kept``)
                    scheme, _, rel = path[len(data) :].partition("/")
                else:
                    scheme, rel = root_scheme, path
                rows.append((Scheme(scheme), self._entry(scheme, rel, cached, handled)))
            return rows

        def handed(item: tuple[Scheme, RecordEntry]) -> tuple[Scheme, RecordEntry] | None:
            return item

        merged = self.rows(records, scripts, handed, skipped)
        # (no None is left: ``rows`` replaces or drops every handed position)
        return records if merged is None else cast("list[tuple[Scheme, RecordEntry]]", merged)

    def lines(
        self, records: list[tuple[Scheme, RecordEntry]], scripts: int, spell: Callable[[str, str, str, str], str]
    ) -> list[tuple[str, str]] | None:
        """``rows`` as RECORD's (path, line) rows: a file not handed gets its
        line from the layout (computed once per entry), in one pass over the
        layout's keys and lines, no RecordEntry made and spelled again per
        file; ``spell`` spells a line of ``records``."""
        layout = self.layout

        def skipped(handed: set[int]) -> list[tuple[str, str]]:
            rows = list(zip(layout.keys, layout.lines, strict=True))
            for index, _, scheme, path, hash_, size in layout.special:  # (lines "": ``_checked_layout``)
                if index not in handed:  # linked into a scheme other than the root one
                    rows[index] = (rows[index][0], spell(scheme, path, hash_, str(size)))
            return rows

        return self.rows(records, scripts, functools.partial(_row, spell), skipped)

    def check(self, linker: Linker) -> None:
        """installer asks for every file of a wheel; a caller that skipped
        some gets them removed again (placed here where nothing was)."""
        asked, handed = self.asked, self.handed
        not_handed = 0 if handed is None else len(self.layout.keys) - len(handed)
        if len(asked) + not_handed == self.linked:  # (a file not handed is one placed here)
            return
        if handed is not None:  # those count as asked
            files = self.source.positioned_files()
            asked = asked | {f.path for i, f in enumerate(files) if i not in handed}
        linker.finish()
        created = set(linker.created)
        emptied: set[str] = set()
        for rel, ddir, names in self._own_dirs():
            for name in names:
                target = f"{ddir}/{name}"
                if (f"{rel}/{name}" if rel else name) not in asked and target in created:
                    with contextlib.suppress(OSError):
                        os.unlink(linker.platform.fspath(target))
                        emptied.add(ddir)
        made = set(linker.created_dirs)
        for path in sorted(made, key=len, reverse=True):  # deepest first, if this left them empty
            if any(d == path or d.startswith(path + "/") for d in emptied):
                with contextlib.suppress(OSError):
                    os.rmdir(linker.platform.fspath(path))
