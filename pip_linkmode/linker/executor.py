"""The executor: places files from the cache, in threads and helper processes.

A ``Linker`` takes files one by one (``run``, ``link_one``) or directory by
directory (``run_dirs``, what a ``Placement`` hands it), asks its
``ModePolicy`` which mode each (cache device, target device) pair uses,
and places them: worker threads for links and clones, helper processes
for the clones of large installs (and their links, for a caller that
prepares the next wheel meanwhile), copies last. A file is never placed before
an earlier file of the same path; a target that exists is replaced by a
rename, never written through. What it creates goes into its ``Journal``,
which ``rollback`` undoes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence

from .. import _log, _platform
from .._platform import Cause, Platform
from .._platform.placer import DirNotMade, make_dir
from ..modes import LinkMode, parse_link_mode
from .files import TEMP_SUFFIX, beside, write_beside
from .helpers import Helpers, join_starts, prestart_shared, running_shared, stop_idle_helpers
from .jobs import DirJob, LinkError, LinkJob, LinkReport, Task
from .journal import Journal
from .policy import ModePolicy
from .tasks import Promise, Workers

__all__ = ["Linker"]

_BATCH = 256
#: threads placing links and clones for ``run_dirs``: the system calls
#: release the GIL, and with no per-file Python work left between them two
#: threads nearly halve a link or clone install (measured on 2 CPUs)
_LINKERS = 4
#: files a linker hands to threads before it starts helper processes for
#: them (see ``Helpers``): an install this small does not pay their start
_HELP_AFTER = 1024


@functools.cache
def _cpus() -> int:
    """``os.cpu_count()``, read once (glibc reads a /sys file per call, and
    every task handed over asked)."""
    return os.cpu_count() or 1


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




def _posix_parent(path: str) -> str:
    """``os.path.dirname`` of an absolute POSIX path, without its generality."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else path[: cut + 1]


#: the per-file hot path's dirname (Windows paths have two separators)
_parent = os.path.dirname if os.altsep else _posix_parent


_pools: dict[int, tuple[int, Workers]] = {}
_pools_lock = threading.Lock()
#: linkers with tasks in the shared pools now
_pool_users = 0


def _shared_pool(workers: int) -> Workers:
    """The process's pool of ``workers`` placing threads, kept between
    linkers: a tool that installs wheel after wheel, each with its own
    destination and linker, starts its threads once (a thread start waits
    about a millisecond for a busy interpreter). Idle threads end with the
    interpreter; a forked child makes its own."""
    global _pool_users
    with _pools_lock:
        known = _pools.get(workers)
        if known is None or known[0] != os.getpid():
            known = _pools[workers] = (os.getpid(), Workers(workers))
        _pool_users += 1
        return known[1]


def _release_pool() -> None:
    global _pool_users
    with _pools_lock:
        _pool_users -= 1


def stop_idle_threads() -> bool:
    """End the shared placing threads if no linker has tasks in them, and
    the shared helper processes with no task: a process about to fork (a
    pool of compiling processes) then has no threads of ours (Python 3.12+
    warns that forking a threaded process may deadlock the child). False
    where a linker still has tasks in them (a ``LinkBatch`` placing an
    earlier install's files): that process must not fork."""
    join_starts()  # (a helper being started holds pipes a fork would copy)
    stop_idle_helpers()
    with _pools_lock:
        if _pool_users:
            return False
        pools = [pool for pid, pool in _pools.values() if pid == os.getpid()]
        _pools.clear()
    for pool in pools:
        pool.shutdown()
    return True


def _key(path: str) -> str:
    """A path in one spelling for the tasks-in-flight table (Windows paths
    come with both separators)."""
    return path.replace(os.sep, "/") if os.altsep else path


def _count_files(path: str) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def _same_inode(a: str, b: str) -> bool:
    try:
        return os.path.samestat(os.stat(a), os.lstat(b))
    except OSError:
        return False



def _copy_file(platform: Platform, perms: dict[bool, int], src: str, dst: str) -> None:
    """A copy, with the mode bits pip gives a new file (``perms``, by whether
    the cache file is executable): a copy is the environment's own, and the
    cache file's bits are never group- or world-writable, whatever the umask."""
    platform.copy_file(src, dst)
    if os.name != "nt" and platform.name != "windows":
        path = platform.fspath(dst)
        os.chmod(path, perms[bool(os.stat(path).st_mode & 0o100)])


class Linker:
    """Runs link jobs with one requested mode and its fallbacks."""

    def __init__(
        self,
        mode: LinkMode | str = LinkMode.AUTO,
        platform: Platform | None = None,
        *,
        overwrite: bool = True,
        max_workers: int | None = None,
        help_links: bool = False,
        share_helpers: bool = False,
    ) -> None:
        self.mode = parse_link_mode(mode)
        self.platform = platform or _platform.current()
        self.policy = ModePolicy(self.mode, self.platform)
        #: what this linker created where nothing was (for ``rollback``)
        self.journal = Journal(self.platform.fspath)
        self.overwrite = overwrite
        #: threads placing files; None: for ``run_dirs``, one per CPU (up to
        #: 4: the link and clone calls run without the GIL, and the files
        #: come with no per-file Python work between them); for ``run``, one
        #: for links and clones (its per-file jobs keep the GIL busy between
        #: calls) and one per CPU (up to 8) for copies
        self.max_workers = max_workers
        #: the process's umask, read once before any thread creates files
        self.umask = _platform.umask()
        #: a clone's permission bits by whether the wheel marks the file
        #: executable: pip's (a new file's, with every execute bit added)
        self._perms = {False: 0o666 & ~self.umask, True: (0o777 & ~self.umask) | 0o111}
        # (no bound method of this linker in it: a linker in a reference cycle
        # would keep its journal, a path per file placed, until the next full
        # collection of garbage, or the interpreter's exit)
        self._ops: dict[LinkMode, Callable[[str, str], None]] = {
            LinkMode.CLONE: self.platform.clone_file,
            LinkMode.HARDLINK: self.platform.hardlink,
            LinkMode.SYMLINK: self.platform.symlink,
            LinkMode.COPY: functools.partial(_copy_file, self.platform, self._perms),
        }
        self._source_mtimes = True
        self._inode_lock = threading.Lock()
        self._dir_devs: dict[str, int] = {}
        #: directories in ``_dir_devs`` whose creation went to a worker with
        #: the files placed in them (see ``run_dirs``); ``ensure_dir`` makes
        #: one itself if this thread needs it
        self._unmade: set[str] = set()
        self._dir_modes: dict[tuple[str, str], LinkMode] = {}
        #: when a list: every file placed from the cache, (cache path,
        #: target path, size), for ``plan.record``
        self.placed_log: list[tuple[str, str, int]] | None = None
        # run_dirs's worker threads, their tasks, and per target directory
        # (with its "/") the tasks in flight there with their file names
        self._pool: Workers | None = None
        self._pooled: list[Promise[None]] = []  # tasks given to the pool (not helpers)
        self._futures: list[Promise[None]] = []
        self._inflight: dict[str, list[tuple[Promise[None], Sequence[str]]]] = {}
        self._queued: list[tuple[LinkMode, str, str, list[str], None]] = []  # by link_one(later=True)
        self._n_queued = 0
        #: files handed to threads before helper processes take them over
        #: (None: never); only where a helper can build the same platform
        #: for itself (not a test's platform with injected calls)
        self.help_after: int | None = _HELP_AFTER if self.platform.helper_class() else None
        #: links and symlinks go to helper processes too, not only clones:
        #: for a caller that goes on preparing the next wheel while files are
        #: placed (``install_wheels``, pip's install loop), whose work would
        #: otherwise starve the placing threads of the GIL (see ``Helpers``).
        #: A caller that waits for each wheel's files (installer's door)
        #: leaves the GIL to them while it waits, but not while it prepares
        #: the wheel: it uses the process's shared helpers
        #: (``share_helpers``), started once for all its linkers.
        self.help_links = help_links
        #: the helpers are the process's (``helpers.shared_helpers``): used
        #: from the first file once running, and not ended by ``close``
        self.share_helpers = share_helpers
        self._threaded = 0
        self._helpers: Helpers | None = None

    # -- public -----------------------------------------------------------
    def run(self, jobs: Sequence[LinkJob]) -> LinkReport:
        report = LinkReport(requested=self.mode)
        if not jobs:
            return report
        if self.placed_log is not None:
            self.placed_log.extend((job.src, job.dst, job.size) for job in jobs)
        if self.platform.clones_directories and self.mode in (LinkMode.AUTO, LinkMode.CLONE):
            jobs = self._clone_trees(list(jobs), report)
        groups = self._group_by_devices(jobs)
        batches: list[tuple[LinkMode, Sequence[LinkJob]]] = []
        for (sdev, ddev), group in groups.items():
            resolution, done = self.policy.resolve(sdev, ddev, group[0], report, self._place)
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
            with Workers(workers) as pool:
                for sub in pool.map(lambda batch: self._run_batch(*batch), batches):
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
        placed_log = self.placed_log
        task: list[tuple[LinkMode, str, str, Sequence[str], int | None]] = []
        pending = 0
        perms = self._perms
        dirs: list[str] = []  # new directories the next task creates first
        unmade = self._unmade
        for sdir, ddir, names, sizes, executable in groups:
            sdev = root_dev if root_dev is not None else sdevs.get(sdir)
            if sdev is None:
                sdev = sdevs[sdir] = self._stat_dev(sdir, "read cache directory")
            ddev = self._dir_devs.get(ddir)
            if ddev is None:
                ddev = self._later_dir(ddir, sdev)
            if ddev is None:
                ddev = self.ensure_dir(ddir)
            elif ddir in unmade:
                dirs.append(ddir)
            if not names:
                continue
            sp, dp = sdir + "/", ddir + "/"
            if placed_log is not None:
                placed_log.extend(zip([sp + n for n in names], [dp + n for n in names], sizes, strict=True))
            first = names[0]
            self.settle(dp + first)
            perm = perms[executable]
            probe = LinkJob(sp + first, dp + first, sizes[0], None, perm)
            resolution, done = self.policy.resolve(sdev, ddev, probe, report, self._place)
            mode = resolution.mode
            rest = names[1:] if done else names
            if mode is LinkMode.COPY:
                self.ensure_dir(ddir)
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
                self._dispatch(task, dirs)
                task, pending, dirs = [], 0, []
        if task or dirs:
            self._dispatch(task, dirs)
        if wait or copies:
            self.finish()
        if copies:
            placed_log, self.placed_log = self.placed_log, None  # already written down
            try:
                report.merge(self.run(copies))
            finally:
                self.placed_log = placed_log
        return report

    def _later_dir(self, ddir: str, sdev: int) -> int | None:
        """For ``run_dirs``: if ``ddir``'s parent is known and files from
        ``sdev`` go there by a mode already resolved that is not copy, leave
        ``ddir``'s creation to the worker that places its files (a
        ``mkdir`` costs about 0.1 ms on an aged ext4, twenty links' worth:
        done here they serialise the install); its device, the parent's (a
        new directory is no mount point). None: create it now. A directory
        whose parent is itself left to a worker was missing when that parent
        was looked at, and is not looked at again (a look waits for the
        parent's lock while a worker links there)."""
        parent = _parent(ddir)
        pdev = self._dir_devs.get(parent)
        if pdev is None:
            return None
        known = self.policy.known(sdev, pdev)
        if known is None or known.mode is LinkMode.COPY:
            return None
        if parent not in self._unmade:
            try:
                os.lstat(self.platform.fspath(ddir))
                return None  # there already (perhaps a mount point): looked at now
            except FileNotFoundError:
                pass
            except OSError:
                return None
        self._dir_devs[ddir] = pdev
        self._unmade.add(ddir)
        return pdev

    def _create_dir(self, path: str) -> None:
        """Make ``path`` unless it exists, its missing parents first (any
        thread: whichever makes a directory writes it in the journal)."""
        made: list[str] = []
        try:
            make_dir(self.platform, path, made)
        except DirNotMade as exc:
            raise self.policy.error(exc.error, "create directory", exc.path) from exc.error
        finally:
            for made_path in made:
                self.journal.made_dir(made_path)

    def _dispatch(self, task: Task, dirs: Sequence[str] = ()) -> None:
        """Hand a task to a worker thread or a helper process (or do it
        here, with one CPU), after any earlier task that places a file of
        the same path. ``dirs``: directories to make first (in order)."""
        workers = self.max_workers or min(_LINKERS, _cpus())
        if workers <= 1:
            with _interrupts_held():
                self._place_names(task, dirs)
            return
        for _, _, dp, names, _ in task:
            self._settle_dir(dp, names)
        if self.help_after is not None and (
            self.help_links or any(group[0] is LinkMode.CLONE for group in task)
        ):
            if self._to_helpers(task, workers, dirs):
                return
        if self._pool is None:
            self._pool = _shared_pool(workers)
        future = self._pool.submit(self._place_names, task, dirs)
        self._pooled.append(future)
        self._track(future, task)

    def _track(self, future: Promise[None], task: Task) -> None:
        """Remember a task handed over (before it can start: an interrupt
        after that still leaves it known to ``finish``)."""
        self._futures.append(future)
        for _, _, dp, names, _ in task:
            self._inflight.setdefault(_key(dp), []).append((future, names))

    def _settle_dir(self, dp: str, names: Sequence[str]) -> None:
        """Wait for tasks in flight that place any of ``names`` in ``dp``."""
        inflight = self._inflight.get(_key(dp))
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
            head, _, name = _key(path).rpartition("/")
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
                        for pending in self._pooled:  # (those not started)
                            pending.cancel()
        finally:
            # interrupted (Ctrl-C): the tasks still running stay known, and
            # the rollback's own finish waits for them
            self._futures = [f for f in futures if not f.done()]
            if not self._futures:
                self._inflight.clear()
                if first is None:
                    self._unmade.clear()  # every task made its directories
                self._pooled.clear()
                if self._pool is not None:
                    self._pool = None
                    _release_pool()
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

    def _to_helpers(self, task: Task, workers: int, dirs: Sequence[str]) -> bool:
        """Tasks go to helper processes (which make their ``dirs`` first)
        once this linker has handed ``help_after`` files to threads, or at
        once to shared helpers already running; False: to a thread."""
        helpers = self._helpers
        if helpers is not None and helpers.shared and not helpers.usable():
            helpers = self._helpers = None  # ended (before a fork, or one died): the process's next set
        if helpers is None:
            help_after = self.help_after  # (a failed start of shared helpers sets it to None: ``_no_helpers``)
            if help_after is None:
                return False
            if self.share_helpers:
                helpers = running_shared(self, workers)
            if helpers is None:
                if self._threaded < help_after:
                    self._threaded += sum(len(group[3]) for group in task)
                    return False
                if self.share_helpers:
                    # started on a thread of their own: this one goes on
                    # handing tasks to threads until they are running
                    if not prestart_shared(self, workers, self._no_helpers):
                        self.help_after = None  # none can start here: threads, as before
                    return False
                helpers = Helpers.start(self, workers)
                if helpers is None:
                    self.help_after = None  # none can start here: threads, as before
                    return False
                if not helpers.shared:
                    helpers.finalizer = weakref.finalize(self, helpers.close)  # for callers that never close
            self._helpers = helpers
        return helpers.submit(self, task, self._source_mtimes, self._track, dirs)

    def _no_helpers(self) -> None:
        """No helper processes for this linker: threads place every file."""
        self.help_after = None

    def _place_names(self, task: Task, dirs: Sequence[str] = ()) -> None:
        """Make ``dirs``, then place ``(mode, cache dir/, target dir/,
        names, perm)`` files (``run_dirs``)."""
        for path in dirs:
            self._create_dir(path)
        created = self.journal.created
        for mode, sp, dp, names, perm in task:  # (a task holds links: copies go to ``run``)
            # each new file is in ``created`` once placed (an interrupt
            # mid-call leaves nothing unknown to a rollback)
            failed = self.platform.place_files(
                mode.value, sp, dp, names, source_mtime=self._source_mtimes, perm=perm, placed=created
            )
            for i, exc in failed:
                self._failed(mode, sp + names[i], dp + names[i], exc, perm)

    def _failed(self, mode: LinkMode, src: str, dst: str, exc: OSError, perm: int | None = None) -> None:
        """A file's first attempt raised: recover (an existing target is
        replaced) or raise the error naming the file."""
        job = LinkJob(src, dst, 0, None, perm)
        try:
            self._recover(mode, job, exc)
        except OSError as exc2:
            raise self.policy.error(exc2, mode.value, dst, src) from exc2

    def _helped(self, task: Task, failures: Sequence[tuple[int, int, OSError]]) -> None:
        """``task`` was placed (by a helper process, or a platform's batch
        call) but for ``failures``: (group index, name index, error). The
        files placed become this linker's; the failed ones are recovered
        (an existing target is replaced) or the first error is raised."""
        created = self.journal.created
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
        """Stop this linker's own helper processes, once every answer of
        theirs is read (shared ones stay, for the next linker: ``finish``
        has read the answers to this one's tasks)."""
        helpers, self._helpers = self._helpers, None
        if helpers is not None and not helpers.shared:
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
            resolution, done = self.policy.resolve(sdev, ddev, job, report, self._place)
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
                self.journal.made_dir(path)  # new: no temp files of a killed install in it
                return parent_dev
            except (FileExistsError, FileNotFoundError):
                pass  # (not found: a parent a worker has yet to make; made below)
            except OSError as exc:
                raise self.policy.error(exc, "create directory", path) from exc
        try:
            return os.stat(fs).st_dev
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self.policy.error(exc, "create directory", path) from exc
        missing = [path]  # record what we create, outermost first
        parent = os.path.dirname(path)
        while parent != missing[-1] and not os.path.isdir(self.platform.fspath(parent)):
            missing.append(parent)
            parent = os.path.dirname(parent)
        try:
            os.makedirs(fs, exist_ok=True)
            self.journal.made_dirs(list(reversed(missing)))
            return os.stat(fs).st_dev
        except OSError as exc:
            raise self.policy.error(exc, "create directory", path) from exc

    def ensure_dir(self, path: str) -> int:
        """``_make_dir`` of a directory this linker may know already; its device."""
        dev = self._dir_devs.get(path)
        if dev is None:
            dev = self._dir_devs[path] = self._make_dir(path, self._dir_devs)
        elif path in self._unmade:
            self._create_dir(path)  # (a worker may be about to: either may)
            self._unmade.discard(path)
        return dev

    def write(
        self,
        target: str,
        data: bytes | Iterable[bytes],
        *,
        executable: bool,
        exclusive: bool,
        algorithm: str = "sha256",
    ) -> tuple[bytes, int]:
        """Write a file an install generates (a script, RECORD, INSTALLER):
        where nothing is, straight to its name (created exclusively, and
        journalled); over an existing file, to a temp name beside it that is
        renamed over it. ``executable``: every execute bit, the rest by the
        umask; ``exclusive``: FileExistsError if ``target`` exists. Returns
        the content's digest (by ``algorithm``) and size."""
        self.settle(target)  # a file of this path still being placed
        existed = os.path.lexists(target)
        if exclusive and existed:
            raise FileExistsError(f"File already exists: {target!s}")
        parent = os.path.dirname(target)
        self.ensure_dir(parent)
        self.sweep_temps(parent)
        from hashlib import new  # (a replayed plan writes nothing: imports none)

        hasher = new(algorithm)
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            for chunk in (data,) if isinstance(data, bytes) else data:
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        mode = (0o777 & ~self.umask) | 0o111 if executable else None
        write_beside(target, chunks(), mode, self.platform.replace, fresh=not existed)
        if not existed:
            self.journal.created.append(target)
        return hasher.digest(), size

    def sweep_temps(self, directory: str) -> None:
        """``Journal.sweep_temps``: leftovers of a killed install in ``directory``."""
        self.journal.sweep_temps(directory)

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
        return self.journal.mark()

    def undo_since(self, mark: tuple[int, int]) -> None:
        """Remove the files and directories (if empty, deepest first) created
        since ``mark``: one failed wheel of several. Call after ``finish``.
        Directories are looked at afresh afterwards."""
        self.journal.undo_since(mark)
        self._dir_devs.clear()
        self._unmade.clear()

    @property
    def created(self) -> list[str]:
        """Files this linker placed where nothing was (the journal's list)."""
        return self.journal.created

    @property
    def created_dirs(self) -> list[str]:
        """Directories this linker made, outermost first (the journal's list)."""
        return self.journal.created_dirs

    def _stat_dev(self, path: str, what: str) -> int:
        try:
            return os.stat(self.platform.fspath(path)).st_dev
        except OSError as exc:
            raise self.policy.error(exc, what, path) from exc

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
                self.journal.created.append(job.dst)
        except OSError as exc:
            self._recover(mode, job, exc)
        report = LinkReport(requested=self.mode)
        report.counts[mode] += 1
        if mode is LinkMode.COPY:
            report.bytes_copied += job.size
        else:
            report.bytes_shared += job.size
        return report

    def _op(self, mode: LinkMode, perm: int | None) -> Callable[[str, str], None]:
        """The call placing a file in ``mode`` (a clone with ``perm``'s bits)."""
        if perm is None or mode is not LinkMode.CLONE:
            return self._ops[mode]
        return functools.partial(self.platform.clone_file, source_mtime=self._source_mtimes, perm=perm)

    def _place_file(self, op: Callable[[str, str], None], mode: LinkMode, job: LinkJob) -> None:
        try:
            op(job.src, job.dst)
            self.journal.created.append(job.dst)  # new here: a rollback removes it
        except OSError as exc:
            try:
                self._recover(mode, job, exc)
            except OSError as exc2:
                raise self.policy.error(exc2, mode.value, job.dst, job.src) from exc2

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
        tmp = beside(job.dst, TEMP_SUFFIX)
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
            fresh = beside(job.src, ".plm-inode")
            self.platform.copy_file(job.src, fresh)
            self.platform.replace(fresh, job.src)
            try:
                self.platform.hardlink(job.src, job.dst)
            except FileExistsError:
                self._replace(LinkMode.HARDLINK, job)
            _log.debug("gave %s a fresh inode: it reached the link limit", job.src)
