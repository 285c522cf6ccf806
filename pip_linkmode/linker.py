"""Placing cached files into environments: the fallback state machine.

For each (cache device, target device) pair the first file probes the
requested mode; the outcome is remembered for the process. ``auto`` tries
clone, then hardlink, then copy and says what it picked; an explicit mode
that cannot work falls back to copy with one warning per process naming
the cause and the remedy. After a mode has worked, a failure is an error
naming the file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from . import _platform
from ._cachecore import FILE_MODE, cache_root_of, write_file
from ._platform import NEW_FILE, Cause, Platform
from .modes import LinkMode, parse_link_mode

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["DirJob", "LinkError", "LinkJob", "LinkReport", "Linker", "reset_process_state", "write_beside", "write_fd"]

logger = logging.getLogger("pip_linkmode")

_CHAINS = {
    LinkMode.AUTO: (LinkMode.CLONE, LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.CLONE: (LinkMode.CLONE, LinkMode.COPY),
    LinkMode.HARDLINK: (LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.SYMLINK: (LinkMode.SYMLINK, LinkMode.COPY),
    LinkMode.COPY: (LinkMode.COPY,),
}
_BATCH = 256
#: threads placing links and clones for ``run_dirs``: the system calls
#: release the GIL, and with no per-file Python work left between them two
#: threads nearly halve a link or clone install (measured on 2 CPUs)
_LINKERS = 4
#: clones a linker hands to threads before it starts helper processes for
#: them (see ``_Helpers``): an install this small does not pay their start
_HELP_AFTER = 1024
#: seconds a helper process has to say it is ready (it takes about 0.01):
#: one that has not is ended, and threads place its clones, so an
#: interpreter that hangs at start does not hang the install
_HELPER_START_TIMEOUT = 30.0
#: the suffix of the temp names files are written to before the rename over their target
TEMP_SUFFIX = ".plm-tmp"
#: what ``sweep_temps`` removes: temp names, and names moved aside (Windows)
_LEFTOVER_SUFFIXES = (TEMP_SUFFIX, ".plm-old")


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """On the main thread, hold Ctrl-C until the block ends, then raise it.

    Python runs a signal handler between any two bytecodes: a
    KeyboardInterrupt arriving after a file is made and before it is
    recorded in ``created`` would leave a file no rollback knows about. A
    batch of placements is short (tenths of a second), so the user waits
    for at most that. Elsewhere (worker threads) there is nothing to hold:
    signals reach only the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored, or the system's default: nothing runs in Python
        yield
        return
    held: list[object] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            previous(signal.SIGINT, held[0])  # type: ignore[arg-type]



class LinkError(OSError):
    """Placing a file failed; the message names the file, the operation and the remedy."""

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


class LinkJob(NamedTuple):
    src: str  # file in the cache
    dst: str  # path in the environment
    size: int
    #: (cache dir, target dir) of the top-level directory holding this file,
    #: so platforms that clone whole directories can do it in one call
    tree: tuple[str, str] | None = None
    #: a clone's permission bits (None: the cache file's, less the umask)
    perm: int | None = None


#: (cache directory, target directory, file names, their sizes, whether the
#: wheel marks them executable): files of one directory, for ``Linker.run_dirs``
DirJob = tuple[str, str, Sequence[str], Sequence[int], bool]
#: what a worker thread places: (mode, cache dir + "/", target dir + "/",
#: names, the permission bits a clone gets: None, the cache file's)
_Task = Sequence[tuple[LinkMode, str, str, Sequence[str], int | None]]


class _Resolution(NamedTuple):
    mode: LinkMode
    note: str | None  # why this mode, when it is not the one asked for


# Process-wide memory: (requested mode, cache dev, target dev) -> resolution.
_resolved: dict[tuple[LinkMode, int, int], _Resolution] = {}
_warned: set[tuple[LinkMode, Cause]] = set()
_state_lock = threading.Lock()


def reset_process_state() -> None:
    """Forget probed modes and issued warnings (for tests and long-lived hosts)."""
    with _state_lock:
        _resolved.clear()
        _warned.clear()


class LinkReport:
    """What an install did: files per mode, bytes not written, notes."""

    def __init__(self, requested: LinkMode = LinkMode.AUTO) -> None:
        self.requested = requested
        self.counts: Counter[LinkMode] = Counter()
        self.bytes_shared = 0
        self.bytes_copied = 0
        self.written = 0  # files generated per environment (RECORD, scripts, ...)
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"<LinkReport {self.summary()!r}>"

    def merge(self, other: LinkReport) -> None:
        self.counts.update(other.counts)
        self.bytes_shared += other.bytes_shared
        self.bytes_copied += other.bytes_copied
        self.written += other.written
        for note in other.notes:
            if note not in self.notes:
                self.notes.append(note)

    @property
    def modes_used(self) -> list[LinkMode]:
        return [m for m in _CHAINS[LinkMode.AUTO] + (LinkMode.SYMLINK,) if self.counts[m]]

    def summary(self) -> str:
        """One line: files per mode, mode used and why, bytes saved."""
        parts = [f"{self.counts[m]} {m.verb}" for m in self.modes_used]
        if self.written:
            parts.append(f"{self.written} written")
        used = ", ".join(str(m) for m in self.modes_used) or "none"
        why = f"; {'; '.join(self.notes)}" if self.notes else ""
        return (
            f"pip-linkmode: files {', '.join(parts) or 'none'} "
            f"(link mode {used}, requested {self.requested}{why}); "
            f"{_human(self.bytes_shared)} not written thanks to links"
        )


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _posix_parent(path: str) -> str:
    """``os.path.dirname`` of an absolute POSIX path, without its generality."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else path[: cut + 1]


#: the per-file hot path's dirname (Windows paths have two separators)
_parent = os.path.dirname if os.altsep else _posix_parent


def _count_files(path: str) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def _same_inode(a: str, b: str) -> bool:
    try:
        return os.path.samestat(os.stat(a), os.lstat(b))
    except OSError:
        return False


class Linker:
    """Runs link jobs with one requested mode and its fallbacks."""

    def __init__(
        self,
        mode: LinkMode | str = LinkMode.AUTO,
        platform: Platform | None = None,
        *,
        overwrite: bool = True,
        max_workers: int | None = None,
    ) -> None:
        self.mode = parse_link_mode(mode)
        self.platform = platform or _platform.current()
        self.overwrite = overwrite
        #: threads placing files; None: for ``run_dirs``, one per CPU (up to
        #: 4: the link and clone calls run without the GIL, and the files
        #: come with no per-file Python work between them); for ``run``, one
        #: for links and clones (its per-file jobs keep the GIL busy between
        #: calls) and one per CPU (up to 8) for copies
        self.max_workers = max_workers
        self._ops: dict[LinkMode, Callable[[str, str], None]] = {
            LinkMode.CLONE: self.platform.clone_file,
            LinkMode.HARDLINK: self.platform.hardlink,
            LinkMode.SYMLINK: self.platform.symlink,
            LinkMode.COPY: self._copy_file,
        }
        self._source_mtimes = True
        #: the process's umask, read once before any thread creates files
        self.umask = _platform.umask()
        #: a clone's permission bits by whether the wheel marks the file
        #: executable: pip's (a new file's, with every execute bit added)
        self._perms = {False: 0o666 & ~self.umask, True: (0o777 & ~self.umask) | 0o111}
        self._inode_lock = threading.Lock()
        self._dir_devs: dict[str, int] = {}
        self._dir_modes: dict[tuple[str, str], LinkMode] = {}
        self._swept: set[str] = set()
        #: what this linker created where nothing was (for ``rollback``)
        self.created: list[str] = []
        self.created_dirs: list[str] = []
        #: when a list: every job ``run`` is given, (cache path, target path, size)
        self.journal: list[tuple[str, str, int]] | None = None
        # run_dirs's worker threads, their tasks, and per target directory
        # (with its "/") the tasks in flight there with their file names
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future[None]] = []
        self._inflight: dict[str, list[tuple[Future[None], Sequence[str]]]] = {}
        self._queued: list[tuple[LinkMode, str, str, list[str], None]] = []  # by link_one(later=True)
        self._n_queued = 0
        #: clones handed to threads before helper processes take them over
        #: (None: never); only where a helper can build the same platform
        #: for itself (not a test's platform with injected calls)
        self.help_after: int | None = _HELP_AFTER if self.platform.helper_class() else None
        self._cloned = 0
        self._helpers: _Helpers | None = None

    # -- public -----------------------------------------------------------
    def run(self, jobs: Sequence[LinkJob]) -> LinkReport:
        report = LinkReport(requested=self.mode)
        if not jobs:
            return report
        if self.journal is not None:
            self.journal.extend((job.src, job.dst, job.size) for job in jobs)
        if self.platform.clones_directories and self.mode in (LinkMode.AUTO, LinkMode.CLONE):
            jobs = self._clone_trees(list(jobs), report)
        groups = self._group_by_devices(jobs)
        batches: list[tuple[LinkMode, Sequence[LinkJob]]] = []
        for (sdev, ddev), group in groups.items():
            resolution, done = self._resolve(sdev, ddev, group[0], report)
            rest = group[1:] if done else group
            batches.extend(
                (resolution.mode, rest[i : i + _BATCH]) for i in range(0, len(rest), _BATCH)
            )
        workers = self.max_workers
        if workers is None:
            copies = any(mode is LinkMode.COPY for mode, _ in batches)
            workers = min(8, os.cpu_count() or 1) if copies else 1
        if len(batches) <= 1 or workers <= 1:
            for mode, batch in batches:
                with _interrupts_held():
                    report.merge(self._run_batch(mode, batch))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                for sub in pool.map(lambda b: self._run_batch(*b), batches):
                    report.merge(sub)
        return report

    def run_dirs(
        self, groups: Iterable[DirJob], *, wait: bool = True, source_root: str | None = None
    ) -> LinkReport:
        """Place files given directory by directory (POSIX paths).

        This thread creates each group's target directory (its parent must
        come in an earlier group or exist) and resolves the mode once per
        group; a clone gets pip's permission bits for what the wheel marks
        executable or not (a link is the cache file); worker threads place
        the files, a file costing its system
        call and nothing else (no per-file job object or device lookup).
        The system calls release the GIL, so links and clones in different
        directories proceed in parallel. With ``wait`` False this returns
        once every file is handed over, and the caller goes on (with the
        next wheel, say) until ``finish``; a file is never placed before an
        earlier call's file of the same path. Files a mode resolves to copy
        are copied (by ``run``'s threads) after every link. ``source_root``:
        every cache directory is inside it and on its filesystem (a cache
        entry's tree), so its device is read once.
        """
        report = LinkReport(requested=self.mode)
        sdevs: dict[str, int] = {}
        root_dev = self._stat_dev(source_root, "read cache directory") if source_root else None
        copies: list[LinkJob] = []
        journal = self.journal
        task: list[tuple[LinkMode, str, str, Sequence[str], int | None]] = []
        pending = 0
        perms = self._perms
        for sdir, ddir, names, sizes, executable in groups:
            ddev = self.ensure_dir(ddir)
            if not names:
                continue
            sp, dp = sdir + "/", ddir + "/"
            if journal is not None:
                journal.extend(zip([sp + n for n in names], [dp + n for n in names], sizes, strict=True))
            sdev = root_dev if root_dev is not None else sdevs.get(sdir)
            if sdev is None:
                sdev = sdevs[sdir] = self._stat_dev(sdir, "read cache directory")
            first = names[0]
            self.settle(dp + first)
            perm = perms[executable]
            probe = LinkJob(sp + first, dp + first, sizes[0], None, perm)
            resolution, done = self._resolve(sdev, ddev, probe, report)
            mode = resolution.mode
            rest = names[1:] if done else names
            if mode is LinkMode.COPY:
                skip = 1 if done else 0
                copies.extend(
                    LinkJob(sp + n, dp + n, s) for n, s in zip(rest, sizes[skip:], strict=True)
                )
                continue
            report.counts[mode] += len(rest)
            report.bytes_shared += sum(sizes) - (sizes[0] if done else 0)
            task.append((mode, sp, dp, rest, perm))
            pending += len(rest)
            if pending >= _BATCH:
                self._dispatch(task)
                task, pending = [], 0
        if task:
            self._dispatch(task)
        if wait or copies:
            self.finish()
        if copies:
            journal, self.journal = self.journal, None  # already written down
            try:
                report.merge(self.run(copies))
            finally:
                self.journal = journal
        return report

    def _dispatch(self, task: _Task) -> None:
        """Hand a task to a worker thread or a helper process (or do it
        here, with one CPU), after any earlier task that places a file of
        the same path."""
        workers = self.max_workers or min(_LINKERS, os.cpu_count() or 1)
        if workers <= 1:
            with _interrupts_held():
                self._place_names(task)
            return
        for _, _, dp, names, _ in task:
            self._settle_dir(dp, names)
        if self.help_after is not None and any(group[0] is LinkMode.CLONE for group in task):
            if self._to_helpers(task, workers):
                return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="pip-linkmode")
        self._track(self._pool.submit(self._place_names, task), task)

    def _track(self, future: Future[None], task: _Task) -> None:
        """Remember a task handed over (before it can start: an interrupt
        after that still leaves it known to ``finish``)."""
        self._futures.append(future)
        for _, _, dp, names, _ in task:
            self._inflight.setdefault(dp, []).append((future, names))

    def _settle_dir(self, dp: str, names: Sequence[str]) -> None:
        """Wait for tasks in flight that place any of ``names`` in ``dp``."""
        inflight = self._inflight.get(dp)
        if not inflight:
            return
        wanted = None
        for future, theirs in inflight:
            if future.done():
                continue
            if wanted is None:
                wanted = set(names)
            if not wanted.isdisjoint(theirs):
                future.result()
        inflight[:] = [(f, n) for f, n in inflight if not f.done()]

    def settle(self, path: str) -> None:
        """Wait until no task in flight will place ``path`` (before writing it)."""
        if self._queued:
            self._flush()
        if self._inflight:
            head, _, name = path.rpartition("/")
            self._settle_dir(head + "/", (name,))

    def finish(self) -> None:
        """Wait for every file handed over by ``run_dirs``; raise the first
        failure (naming its file)."""
        self._flush()
        futures = self._futures
        first: Exception | None = None
        try:
            # after a failure, threads start no more tasks, and what helper
            # processes have been sent is waited for: a rollback after this
            # finds every file placed for it
            for future in futures:
                try:
                    future.result()
                except Exception as exc:
                    if first is None:
                        first = exc
                        if self._pool is not None:
                            self._pool.shutdown(wait=False, cancel_futures=True)
        finally:
            # interrupted (Ctrl-C): the tasks still running stay known, and
            # the rollback's own finish waits for them
            self._futures = [f for f in futures if not f.done()]
            if not self._futures:
                self._inflight.clear()
                pool, self._pool = self._pool, None
                if pool is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
        if first is not None:
            raise first

    @property
    def source_mtimes(self) -> bool:
        """Whether cloned Python sources keep the cache file's mtime.

        True (the default) where cached ``.pyc`` files are linked beside
        them, which are checked against it. An install that links no cached
        bytecode turns it off: the environment's Python compiles its own
        ``.pyc`` against whatever mtime the source has, and on XFS the extra
        call costs a tenth of a clone install. Hardlinks and symlinks are
        the cache file itself; copies always keep it.
        """
        return self._source_mtimes

    @source_mtimes.setter
    def source_mtimes(self, keep: bool) -> None:
        self._source_mtimes = keep
        clone = self.platform.clone_file
        self._ops[LinkMode.CLONE] = clone if keep else functools.partial(clone, source_mtime=False)

    def _to_helpers(self, task: _Task, workers: int) -> bool:
        """Clones go to helper processes once this linker has handed
        ``help_after`` of them to threads; False: to a thread."""
        helpers = self._helpers
        if helpers is None:
            assert self.help_after is not None
            if self._cloned < self.help_after:
                self._cloned += sum(len(group[3]) for group in task)
                return False
            helpers = self._helpers = _Helpers.start(self, workers)
            if helpers is None:
                self.help_after = None  # none can start here: threads, as before
                return False
            helpers.finalizer = weakref.finalize(self, helpers.close)  # for callers that never close
        return helpers.submit(task, self._source_mtimes, self._track)

    def _place_names(self, task: _Task) -> None:
        """Place ``(mode, cache dir/, target dir/, names, perm)`` files (``run_dirs``)."""
        created = self.created
        for mode, sp, dp, names, perm in task:
            if mode is LinkMode.CLONE:
                # each new file is in ``created`` once placed (an interrupt
                # mid-call leaves nothing unknown to a rollback)
                failed = self.platform.clone_files(
                    sp, dp, names, source_mtime=self._source_mtimes, perm=perm, placed=created
                )
                for i, exc in failed:
                    self._failed(mode, sp + names[i], dp + names[i], exc, perm)
                continue
            op = self._ops[mode]
            for name in names:
                dst = dp + name
                try:
                    op(sp + name, dst)
                except OSError as exc:
                    self._failed(mode, sp + name, dst, exc)
                    continue
                created.append(dst)  # new here: a rollback removes it

    def _failed(self, mode: LinkMode, src: str, dst: str, exc: OSError, perm: int | None = None) -> None:
        """A file's first attempt raised: recover (an existing target is
        replaced) or raise the error naming the file."""
        job = LinkJob(src, dst, 0, None, perm)
        try:
            self._recover(mode, job, exc)
        except OSError as exc2:
            raise self._error(exc2, mode.value, dst, src) from exc2

    def _helped(self, task: _Task, failures: Sequence[tuple[int, int, OSError]]) -> None:
        """``task`` was placed (by a helper process, or a platform's batch
        call) but for ``failures``: (group index, name index, error). The
        files placed become this linker's; the failed ones are recovered
        (an existing target is replaced) or the first error is raised."""
        created = self.created
        if not failures:
            for _, _, dp, names, _ in task:
                created.extend([dp + n for n in names])
            return
        failed = {(gi, ni): exc for gi, ni, exc in failures}
        first: LinkError | None = None
        for gi, (mode, sp, dp, names, perm) in enumerate(task):
            for ni, name in enumerate(names):
                why = failed.get((gi, ni))
                if why is None:
                    created.append(dp + name)
                elif first is None:
                    try:
                        self._failed(mode, sp + name, dp + name, why, perm)
                    except LinkError as exc:
                        first = exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Wait for every file handed over, then stop any helper processes."""
        try:
            self.finish()
        finally:
            self._end_helpers()

    def _end_helpers(self) -> None:
        """Stop the helper processes, once every answer of theirs is read."""
        helpers, self._helpers = self._helpers, None
        if helpers is not None:
            helpers.close()

    def link_one(self, job: LinkJob, report: LinkReport, *, later: bool = False) -> None:
        """Place a single file (for callers that hand over files one by one).

        The mode is resolved once per (cache dir, target dir) pair; after
        that a file costs its link call and nothing else. ``later``: hand
        the file to a worker thread (see ``run_dirs``), so the caller goes
        on at once; ``settle`` or ``finish`` waits for it.
        """
        sdir, ddir = os.path.dirname(job.src), os.path.dirname(job.dst)
        mode = self._dir_modes.get((sdir, ddir))
        if mode is None:
            ddev = self.ensure_dir(ddir)
            sdev = self._dir_devs.get(sdir)
            if sdev is None:
                sdev = self._dir_devs[sdir] = self._stat_dev(sdir, "read cache directory")
            self.settle(job.dst)
            resolution, done = self._resolve(sdev, ddev, job, report)
            self._dir_modes[(sdir, ddir)] = resolution.mode
            if done:
                return
            mode = resolution.mode
        report.counts[mode] += 1
        if mode is LinkMode.COPY:
            report.bytes_copied += job.size
        else:
            report.bytes_shared += job.size
        # Copies are placed at once: a copy is where a disk fills up, and the
        # caller must stop at that file, not go on (tasks in flight are also
        # keyed by POSIX paths).
        if not later or mode is LinkMode.COPY or os.sep != "/":
            self.settle(job.dst)
            self._place_file(self._ops[mode], mode, job)
            return
        queued = self._queued
        sp, dp = sdir + os.sep, ddir + os.sep
        name = job.dst[len(dp):]
        last = queued[-1] if queued else None
        if last is not None and last[0] is mode and last[1] == sp and last[2] == dp:
            last[3].append(name)
        else:
            queued.append((mode, sp, dp, [name], None))
        self._n_queued += 1
        if self._n_queued >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Hand the files ``link_one(later=True)`` queued to the workers."""
        if self._queued:
            task, self._queued, self._n_queued = self._queued, [], 0
            self._dispatch(task)

    # -- planning ---------------------------------------------------------
    def _group_by_devices(self, jobs: Sequence[LinkJob]) -> dict[tuple[int, int], list[LinkJob]]:
        """Create target directories and sort jobs by (cache dev, target dev)."""
        ddevs: dict[str, int] = {}
        sdevs: dict[str, int] = {}
        groups: dict[tuple[int, int], list[LinkJob]] = {}
        parent = _parent
        for job in jobs:
            ddir = parent(job.dst)
            ddev = ddevs.get(ddir)
            if ddev is None:
                ddev = ddevs[ddir] = self._make_dir(ddir, ddevs)
            sdir = parent(job.src)
            sdev = sdevs.get(sdir)
            if sdev is None:
                sdev = sdevs[sdir] = self._stat_dev(sdir, "read cache directory")
            groups.setdefault((sdev, ddev), []).append(job)
        return groups

    def _clone_trees(self, jobs: list[LinkJob], report: LinkReport) -> list[LinkJob]:
        """Clone whole directories whose target does not exist yet, one call each.

        Returns the jobs still to do file by file: those outside such trees,
        and those of trees the filesystem refused to clone whole.
        """
        by_tree: dict[tuple[str, str], list[LinkJob]] = {}
        rest: list[LinkJob] = []
        for job in jobs:
            (by_tree.setdefault(job.tree, []) if job.tree else rest).append(job)
        for (src, dst), members in by_tree.items():
            fdst = self.platform.fspath(dst)
            if len(members) < 2 or os.path.lexists(fdst) or _count_files(src) != len(members):
                rest.extend(members)
                continue
            try:
                os.makedirs(self.platform.fspath(os.path.dirname(dst)), exist_ok=True)
                self.platform.clone_tree(src, dst)
                # A whole-directory clone keeps the cache's directory mtime;
                # give the new directory and its parent a fresh one, so an
                # interpreter that cached a listing of either sees the change.
                os.utime(fdst)
                os.utime(self.platform.fspath(os.path.dirname(dst)))
            except OSError as exc:
                note = f"cloned {os.path.basename(dst)} file by file: the directory could not be cloned whole ({exc.strerror or exc})"
                if note not in report.notes:
                    report.notes.append(note)
                rest.extend(members)
                continue
            report.counts[LinkMode.CLONE] += len(members)
            report.bytes_shared += sum(m.size for m in members)
        return rest

    def _make_dir(self, path: str, known: dict[str, int] | None = None) -> int:
        """Create ``path`` (and missing parents) if need be; its device.

        ``known`` maps directories already made or seen to their device: a
        directory created in one of them is on its device (a new directory
        is no mount point), so it costs one ``mkdir`` and nothing more.
        """
        fs = self.platform.fspath(path)
        parent_dev = known.get(os.path.dirname(path)) if known else None
        if parent_dev is not None:
            try:
                os.mkdir(fs)
                self.created_dirs.append(path)
                self._swept.add(path)  # new: no temp files of a killed install in it
                return parent_dev
            except FileExistsError:
                pass
            except OSError as exc:
                raise self._error(exc, "create directory", path) from exc
        try:
            return os.stat(fs).st_dev
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(exc, "create directory", path) from exc
        missing = [path]  # record what we create, outermost first
        parent = os.path.dirname(path)
        while parent != missing[-1] and not os.path.isdir(self.platform.fspath(parent)):
            missing.append(parent)
            parent = os.path.dirname(parent)
        try:
            os.makedirs(fs, exist_ok=True)
            self.created_dirs.extend(reversed(missing))
            self._swept.update(missing)
            return os.stat(fs).st_dev
        except OSError as exc:
            raise self._error(exc, "create directory", path) from exc

    def ensure_dir(self, path: str) -> int:
        """``_make_dir`` of a directory this linker may know already; its device."""
        dev = self._dir_devs.get(path)
        if dev is None:
            dev = self._dir_devs[path] = self._make_dir(path, self._dir_devs)
        return dev

    def sweep_temps(self, directory: str) -> None:
        """Remove temp files (``.NAME.HEX.plm-tmp``) that a killed install left
        in a directory we are about to write in, and files Windows moved aside
        because they were in use (``.NAME.HEX.plm-old``: one still in use
        stays); once per directory."""
        if directory in self._swept:
            return
        self._swept.add(directory)
        try:
            names = os.listdir(self.platform.fspath(directory))
        except OSError:
            return
        for name in names:
            if name.startswith(".") and name.endswith(_LEFTOVER_SUFFIXES):
                try:
                    os.unlink(self.platform.fspath(os.path.join(directory, name)))
                except OSError:
                    pass

    def rollback(self) -> None:
        """Remove what this linker created (files placed where nothing was,
        then the directories it made, deepest first, if empty), so a failed
        install leaves the environment as it found it. Files it replaced keep
        their new content. Never follows links; never touches the cache."""
        with contextlib.suppress(Exception):  # the failure is being handled already
            self.finish()
        self._end_helpers()  # every answer read: nothing they placed is left out
        self.undo_since((0, 0))

    def mark(self) -> tuple[int, int]:
        """How much this linker has created so far, for ``undo_since``."""
        return len(self.created), len(self.created_dirs)

    def undo_since(self, mark: tuple[int, int]) -> None:
        """Remove the files and directories (if empty, deepest first) created
        since ``mark``: one failed wheel of several. Call after ``finish``.
        Directories are looked at afresh afterwards."""
        files, dirs = mark
        created, self.created[files:] = self.created[files:], []
        made, self.created_dirs[dirs:] = self.created_dirs[dirs:], []
        for path in reversed(created):
            try:
                os.unlink(self.platform.fspath(path))
            except OSError:
                pass
        for path in sorted(set(made), key=len, reverse=True):
            try:
                os.rmdir(self.platform.fspath(path))
            except OSError:
                pass
        self._dir_devs.clear()

    def _stat_dev(self, path: str, what: str) -> int:
        try:
            return os.stat(self.platform.fspath(path)).st_dev
        except OSError as exc:
            raise self._error(exc, what, path) from exc

    def _resolve(
        self, sdev: int, ddev: int, first: LinkJob, report: LinkReport
    ) -> tuple[_Resolution, bool]:
        """The mode for a device pair; probes with ``first`` if unknown.

        Returns the resolution and whether ``first`` has been placed.
        """
        key = (self.mode, sdev, ddev)
        with _state_lock:
            known = _resolved.get(key)
        if known is not None:
            if known.note and known.note not in report.notes:
                report.notes.append(known.note)
            return known, False
        chain = _CHAINS[self.mode]
        failures: list[str] = []
        for candidate in chain:
            try:
                placed = self._place(candidate, first)
            except OSError as exc:
                cause = self.platform.classify(exc)
                if cause is None or candidate is chain[-1]:
                    raise self._error(exc, candidate.value, first.dst, first.src) from exc
                failures.append(f"{candidate} not possible ({cause.value})")
                if self.mode is not LinkMode.AUTO:
                    self._warn_once(candidate, cause, exc, first)
                continue
            note = None
            if self.mode is LinkMode.AUTO:
                note = f"auto chose {candidate}" + (f": {'; '.join(failures)}" if failures else "")
            elif failures:
                note = f"fell back to {candidate}: {'; '.join(failures)}"
            resolution = _Resolution(candidate, note)
            with _state_lock:
                _resolved[key] = resolution
            if note and note not in report.notes:
                report.notes.append(note)
            report.merge(placed)
            return resolution, True
        raise AssertionError("unreachable: the last mode in a chain raises")

    def _warn_once(self, mode: LinkMode, cause: Cause, exc: OSError, job: LinkJob) -> None:
        with _state_lock:
            if (mode, cause) in _warned:
                return
            _warned.add((mode, cause))
        hint = ""
        if cause is Cause.PRIVILEGE:
            hint = " " + self.platform.remedy(exc, mode.value) + "."
        elif cause is Cause.CROSS_DEVICE:
            hint = " Put the cache on the target's filesystem (--cache-dir) to link."
        logger.warning(
            "%s is not possible from the cache %s to %s: %s; falling back to copy.%s "
            "To silence this, use --link-mode=copy (or PIP_LINK_MODE=copy).",
            mode,
            os.path.normpath(os.path.dirname(job.src)),  # (one kind of separator on Windows)
            os.path.normpath(os.path.dirname(job.dst)),
            cause.value,
            hint,
        )

    # -- doing ------------------------------------------------------------
    def _run_batch(self, mode: LinkMode, batch: Sequence[LinkJob]) -> LinkReport:
        report = LinkReport(requested=self.mode)
        op = self._ops[mode]
        n = 0
        size = 0
        place = self._place_file
        for job in batch:
            place(op, mode, job)
            n += 1
            size += job.size
        report.counts[mode] += n
        if mode is LinkMode.COPY:
            report.bytes_copied += size
        else:
            report.bytes_shared += size
        return report

    def _place(self, mode: LinkMode, job: LinkJob) -> LinkReport:
        """Place one file (used for probing); raises the raw OSError."""
        try:
            with _interrupts_held():
                self._op(mode, job.perm)(job.src, job.dst)
                self.created.append(job.dst)
        except OSError as exc:
            self._recover(mode, job, exc)
        report = LinkReport(requested=self.mode)
        report.counts[mode] += 1
        if mode is LinkMode.COPY:
            report.bytes_copied += job.size
        else:
            report.bytes_shared += job.size
        return report

    def _copy_file(self, src: str, dst: str) -> None:
        """A copy, with the mode bits pip gives a new file (executable if
        the cache file is): a copy is the environment's own, and the cache
        file's bits are never group- or world-writable, whatever the umask."""
        self.platform.copy_file(src, dst)
        if os.name != "nt" and self.platform.name != "windows":
            path = self.platform.fspath(dst)
            os.chmod(path, self._perms[bool(os.stat(path).st_mode & 0o100)])

    def _op(self, mode: LinkMode, perm: int | None) -> Callable[[str, str], None]:
        """The call placing a file in ``mode`` (a clone with ``perm``'s bits)."""
        if perm is None or mode is not LinkMode.CLONE:
            return self._ops[mode]
        return functools.partial(self.platform.clone_file, source_mtime=self._source_mtimes, perm=perm)

    def _place_file(self, op: Callable[[str, str], None], mode: LinkMode, job: LinkJob) -> None:
        try:
            op(job.src, job.dst)
            self.created.append(job.dst)  # new here: a rollback removes it
        except OSError as exc:
            try:
                self._recover(mode, job, exc)
            except OSError as exc2:
                raise self._error(exc2, mode.value, job.dst, job.src) from exc2

    def _recover(self, mode: LinkMode, job: LinkJob, exc: OSError) -> None:
        """Handle what a first attempt can meet: an existing target, the link limit."""
        if isinstance(exc, FileExistsError):
            self._replace(mode, job)
        elif mode is LinkMode.HARDLINK and self.platform.classify(exc) is Cause.LINK_LIMIT:
            self._link_fresh_inode(job)
        else:
            raise exc

    def _replace(self, mode: LinkMode, job: LinkJob) -> None:
        """Replace an existing target: place beside it, then rename over it."""
        if not self.overwrite:
            raise FileExistsError(f"File already exists: {job.dst}")
        if os.path.isdir(self.platform.fspath(job.dst)) and not os.path.islink(
            self.platform.fspath(job.dst)
        ):
            raise LinkError(
                f"cannot place {job.dst}: a directory is in the way; remove it and retry"
            )
        if mode is LinkMode.HARDLINK and _same_inode(self.platform.fspath(job.src), self.platform.fspath(job.dst)):
            return  # already that very file
        self.sweep_temps(os.path.dirname(job.dst))
        tmp = _beside(job.dst, TEMP_SUFFIX)
        self._op(mode, job.perm)(job.src, tmp)
        try:
            self.platform.replace(tmp, job.dst)
        finally:
            # rename() of one hardlink over another of the same inode does
            # nothing at all (POSIX), leaving the temp name behind.
            try:
                os.unlink(self.platform.fspath(tmp))
            except OSError:
                pass

    def _link_fresh_inode(self, job: LinkJob) -> None:
        """The cache file has too many links: give it a fresh inode, link to that.

        Environments that link the old inode keep it; the content is the same.
        """
        with self._inode_lock:
            try:
                self.platform.hardlink(job.src, job.dst)
                return
            except FileExistsError:
                self._replace(LinkMode.HARDLINK, job)
                return
            except OSError as exc:
                if self.platform.classify(exc) is not Cause.LINK_LIMIT:
                    raise
            fresh = _beside(job.src, ".plm-inode")
            self.platform.copy_file(job.src, fresh)
            self.platform.replace(fresh, job.src)
            try:
                self.platform.hardlink(job.src, job.dst)
            except FileExistsError:
                self._replace(LinkMode.HARDLINK, job)
            logger.debug("gave %s a fresh inode: it reached the link limit", job.src)

    def _error(self, exc: OSError, op: str, path: str, src: str | None = None) -> LinkError:
        what = exc.strerror or str(exc)
        frm = f" from {os.path.normpath(src)}" if src else ""
        err = LinkError(
            exc.errno,
            f"{op} failed for {os.path.normpath(path)}{frm}: {what}; {self.platform.remedy(exc, self.mode.value)}",
        )
        err.filename = path
        return err


class _Helpers:
    """Helper processes placing clones for ``run_dirs`` (``_platform.placer``).

    In one process a clone's system calls wait for the GIL between them,
    held by the thread preparing the next wheel; each helper has its own.
    A thread per helper reads its answers and settles the task's future:
    the files it placed become the linker's (for ``rollback``), and a file
    whose call failed is recovered or raised as in a worker thread. Tasks
    sent to a helper that never got ready (it could not start) are placed
    by that thread instead, and no more go to it; a helper that dies after
    that fails its tasks, and what it placed stays, as after a killed
    install.
    """

    def __init__(self, linker: Linker, procs: list[subprocess.Popen[bytes]]) -> None:
        self._linker = weakref.ref(linker)
        self._procs = procs
        self._lock = threading.Lock()
        self._next = 0
        #: task id -> (future, task, helper index, files)
        self._pending: dict[int, tuple[Future[None], _Task, int, int]] = {}
        self._load = [0] * len(procs)
        self._live = [True] * len(procs)
        #: tasks the helpers answered (a test's evidence that they did the work)
        self.answered = 0
        #: ends them if the linker is dropped without ``close``
        self.finalizer: weakref.finalize[..., Linker] | None = None
        self._readers = [
            threading.Thread(target=self._read, args=(i,), name=f"pip-linkmode-helper-{i}", daemon=True)
            for i in range(len(procs))
        ]
        for reader in self._readers:
            reader.start()

    @classmethod
    def start(cls, linker: Linker, count: int) -> _Helpers | None:
        """``count`` helpers with ``linker``'s platform; None where none can start."""
        kind = linker.platform.helper_class()
        if kind is None or not sys.executable or getattr(sys, "frozen", False):
            return None  # (a frozen app's executable is not a Python to run -c with)
        from ._platform import placer

        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(placer.__file__))))
        code = f"import sys; sys.path.append({package_parent!r}); from {placer.__name__} import main; main()"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(count):
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-I", "-S", "-c", code, kind],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        # a terminal's Ctrl-C is the parent's to handle, also
                        # before a helper has set its signals up
                        start_new_session=True,
                    )
                )
        except OSError as exc:
            logger.debug("no helper processes (%s): placing clones with threads", exc)
            _stop(procs)
            return None
        return cls(linker, procs)

    def submit(self, task: _Task, source_mtimes: bool, track: Callable[[Future[None], _Task], None]) -> bool:
        """Send ``task`` to the least busy helper, ``track``-ing its future
        first; False if no helper is left."""
        from concurrent.futures import Future

        from ._platform.placer import write_frame

        future: Future[None] = Future()
        files = sum(len(group[3]) for group in task)
        groups = [(mode.value, sp, dp, list(names), perm) for mode, sp, dp, names, perm in task]
        with self._lock:
            live = [i for i, ok in enumerate(self._live) if ok]
            if not live:
                return False
            index = min(live, key=self._load.__getitem__)
            self._next += 1
            task_id = self._next
            self._load[index] += files
            self._pending[task_id] = (future, task, index, files)
        track(future, task)
        stdin = self._procs[index].stdin
        assert stdin is not None
        try:
            write_frame(stdin, (task_id, source_mtimes, groups))
        except (OSError, ValueError):
            pass  # it is gone: its reader settles the task
        except BaseException:
            # interrupted mid-frame (Ctrl-C): end its input there; the helper
            # answers every whole task before it, then its reader fails the rest
            with contextlib.suppress(Exception):
                stdin.close()
            raise
        return True

    def _read(self, index: int) -> None:
        from ._platform.placer import read_frame

        proc = self._procs[index]
        assert proc.stdout is not None
        timer = threading.Timer(_HELPER_START_TIMEOUT, proc.kill)
        timer.daemon = True
        timer.start()
        try:
            ready = read_frame(proc.stdout) == "ready"
        finally:
            timer.cancel()
        while ready:
            frame = read_frame(proc.stdout)
            if frame is None:
                break
            task_id, failures = frame
            with self._lock:
                future, task, _, files = self._pending.pop(task_id)
                self._load[index] -= files
                self.answered += 1
            self._settle(future, task, failures)
        code = proc.wait()
        with self._lock:
            self._live[index] = False
            lost = [tid for tid, (_, _, i, _) in self._pending.items() if i == index]
            tasks = [self._pending.pop(tid)[:2] for tid in lost]
        for future, task in tasks:
            if not ready:  # it placed nothing: place its tasks here
                logger.debug("a helper process could not start (status %s): placing its clones here", code)
                self._settle(future, task, None)
            else:
                self._claim(task)
                future.set_exception(LinkError(f"a helper process placing files exited with status {code}"))

    def _claim(self, task: _Task) -> None:
        """Make what a helper that died mid-task may have placed the
        linker's, for ``rollback``: whatever is at its paths in directories
        this install created (nothing was there before it). In directories
        that existed, a file there may be an earlier install's, and stays."""
        linker = self._linker()
        if linker is None:
            return
        made = set(linker.created_dirs)
        for _, _, dp, names, _ in task:
            if dp[:-1] in made:
                linker.created.extend([dp + n for n in names if os.path.lexists(dp + n)])

    def _settle(self, future: Future[None], task: _Task, failures: Sequence[tuple[int, int, int, str]] | None) -> None:
        """Settle a task placed by a helper but for ``failures`` (None: by no one yet)."""
        linker = self._linker()
        error: BaseException | None = None
        try:
            if linker is None:
                raise LinkError("the install was abandoned")
            if failures is None:
                linker._place_names(task)
            else:
                linker._helped(task, [(gi, ni, OSError(err, msg)) for gi, ni, err, msg in failures])
        except BaseException as exc:
            error = exc
        linker = None  # dropped before the caller wakes: its finalizer is not this thread's to run
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(None)

    def close(self) -> None:
        """End every helper (after ``finish``: no task is left)."""
        if self.finalizer is not None:
            self.finalizer.detach()
        _stop(self._procs)
        for reader in self._readers:
            if reader is not threading.current_thread():
                reader.join()
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """End of input ends a helper: close all, then wait for each."""
    for proc in procs:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
    for proc in procs:
        proc.wait()


def _beside(path: str, suffix: str) -> str:
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
    tmp = _beside(path, TEMP_SUFFIX)
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
