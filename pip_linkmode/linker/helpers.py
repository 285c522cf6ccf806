"""Helper processes that place files beside the installing process (``_platform.placer``)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import _log
from .jobs import LinkError, Task
from .tasks import Promise

if TYPE_CHECKING:
    import subprocess

    from .executor import Linker

__all__ = [
    "Helpers", "forget_failed_starts", "join_starts", "prestart_shared", "running_shared", "shared_helpers",
    "stop_idle_helpers",
]

#: seconds a helper process has to say it is ready (it takes about 0.01):
#: one that has not is ended, and threads place its files, so an
#: interpreter that hangs at start does not hang the install
HELPER_START_TIMEOUT = 30.0
#: bytes a helper's input pipe holds where the system lets it be set (Linux)
_PIPE_SIZE = 1 << 18


class Helpers:
    """Helper processes placing files for ``run_dirs`` (``_platform.placer``).

    In one process a placing thread needs the GIL again after each system
    call, and the thread preparing the next wheel holds it for long
    stretches: while that thread works, the placing threads all but stop
    (measured: 300 of 28,000 links in 0.15 s of JSON decoding beside them).
    Each helper has its own interpreter. It makes its task's directories,
    then places its files. A thread per helper reads its answers and
    settles the task's future: the directories and files it made become
    the linker's (for ``rollback``), and a file whose call failed is
    recovered or raised as in a worker thread; a task whose directory the
    helper could not make is placed by that thread, which then reports the
    error itself. Tasks sent to a helper that never got ready (it could not
    start) are placed by that thread instead, and no more go to it; a
    helper that dies after that fails its tasks, and what it placed stays,
    as after a killed install.

    A linker owns its helpers (``start``, ended by ``Linker.close``), or
    uses the process's shared ones (``shared_helpers``): each task carries
    its own linker, so linkers one after another (a tool's destination per
    wheel) pay the helpers' start once.
    """

    def __init__(self, procs: list[subprocess.Popen[bytes]], *, shared: bool = False) -> None:
        self._procs = procs
        #: kept for the process (``shared_helpers``), not ended with a linker
        self.shared = shared
        #: ended (``close``): no task is taken any more
        self.closed = False
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._next = 0
        #: task id -> (its linker, future, task, directories to make first,
        #: helper index, files)
        self._pending: dict[int, tuple[weakref.ref[Linker], Promise[None], Task, Sequence[str], int, int]] = {}
        self._load = [0] * len(procs)
        self._live = [True] * len(procs)
        #: helpers that said they were ready (one that never did could not
        #: start here: a set of those is not started again)
        self._ready = [False] * len(procs)
        #: held while a task is taken and its frame written, and by
        #: ``close`` while it ends the helpers' input
        self._writing = threading.Lock()
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
        _every_set.add(self)

    @classmethod
    def start(cls, linker: Linker, count: int, *, shared: bool = False) -> Helpers | None:
        """``count`` helpers with ``linker``'s platform; None where none can start."""
        kind = linker.platform.helper_class()
        if kind is None or not sys.executable or getattr(sys, "frozen", False):
            return None  # (a frozen app's executable is not a Python to run -c with)
        from .._platform import placer

        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(placer.__file__))))
        code = f"import sys; sys.path.append({package_parent!r}); from {placer.__name__} import main; main()"
        import subprocess  # (only an install this large needs it)

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
            _log.debug("no helper processes (%s): placing files with threads", exc)
            _stop(procs)
            return None
        for proc in procs:
            # room for a few tasks, so handing one over seldom waits for a
            # helper to read the one before (the default holds 64 KB)
            if proc.stdin is not None:
                linker.platform.widen_pipe(proc.stdin.fileno(), _PIPE_SIZE)
        return cls(procs, shared=shared)

    def usable(self) -> bool:
        """Every helper still runs, for this process (not a forked child)."""
        return self._pid == os.getpid() and not self.closed and all(self._live)

    def never_ready(self) -> bool:
        """A helper has ended and none ever said it was ready: helpers
        cannot start here (a placer of another version, say)."""
        with self._lock:
            return not all(self._live) and not any(self._ready)

    def close_if_idle(self) -> bool:
        """``close`` unless a task is in hand (a linker may be handing one
        over now: it is answered, then this closes on a later call)."""
        with self._lock:
            if self._pending:
                return False
            self.closed = True  # (from now on ``submit`` takes none)
        self.close()
        return True

    def submit(
        self,
        linker: Linker,
        task: Task,
        source_mtimes: bool,
        track: Callable[[Promise[None], Task], None],
        dirs: Sequence[str] = (),
    ) -> bool:
        """Send ``task`` to the least busy helper, which makes ``dirs`` (in
        order) first, ``track``-ing its future first; False if no helper
        is left."""
        from .._platform.placer import write_frame

        future: Promise[None] = Promise()
        files = sum(len(group[3]) for group in task)
        groups = [(mode.value, sp, dp, list(names), perm) for mode, sp, dp, names, perm in task]
        # taken and written under one hold of ``_writing``: ``close`` ends
        # the helpers' input only between frames, and a set closed before
        # takes no task (its helpers would never see it)
        with self._writing:
            with self._lock:
                live = [i for i, ok in enumerate(self._live) if ok]
                if not live or self.closed:
                    return False
                index = min(live, key=self._load.__getitem__)
                self._next += 1
                task_id = self._next
                self._load[index] += files
                self._pending[task_id] = (weakref.ref(linker), future, task, dirs, index, files)
            track(future, task)
            stdin = self._procs[index].stdin
            assert stdin is not None
            try:
                write_frame(stdin, (task_id, source_mtimes, groups, list(dirs)))
            except (OSError, ValueError):  # it is gone: its reader settles the task
                with contextlib.suppress(OSError):
                    stdin.close()  # (what is left in its buffer is not to be written again)
            except BaseException:
                # interrupted mid-frame (Ctrl-C): end its input there; the helper
                # answers every whole task before it, then its reader fails the rest
                with contextlib.suppress(Exception):
                    stdin.close()
                raise
        return True

    def _read(self, index: int) -> None:
        from .._platform.placer import READY, read_frame

        proc = self._procs[index]
        assert proc.stdout is not None
        timer = threading.Timer(HELPER_START_TIMEOUT, proc.kill)
        timer.daemon = True
        timer.start()
        try:
            ready = read_frame(proc.stdout) == READY
        except ValueError:  # not a frame at all
            ready = False
        finally:
            timer.cancel()
        if ready:
            with self._lock:
                self._ready[index] = True
        else:
            with contextlib.suppress(OSError):
                proc.kill()  # (one that said something else may wait for frames)
        while ready:
            frame = read_frame(proc.stdout)
            if frame is None:
                break
            task_id, failures, made, unmade = frame
            with self._lock:
                owner, future, task, dirs, _, files = self._pending.pop(task_id)
                self._load[index] -= files
                self.answered += 1
            linker = owner()
            if linker is not None:
                for path in made:
                    linker.journal.made_dir(path)
            linker = None
            self._settle(owner, future, task, None if unmade else failures, dirs)
        code = proc.wait()
        with self._lock:
            self._live[index] = False
            lost = [tid for tid, (_, _, _, _, i, _) in self._pending.items() if i == index]
            tasks = [self._pending.pop(tid)[:4] for tid in lost]
        for owner, future, task, dirs in tasks:
            if not ready:  # it placed nothing: place its tasks here
                _log.debug("a helper process could not start (status %s): placing its files here", code)
                self._settle(owner, future, task, None, dirs)
            else:
                self._claim(owner, task, dirs)
                future.set_exception(LinkError(f"a helper process placing files exited with status {code}"))

    def _claim(self, owner: weakref.ref[Linker], task: Task, dirs: Sequence[str]) -> None:
        """Make what a helper that died mid-task may have placed the
        linker's, for ``rollback``: the directories left to tasks that are
        there now (none was before: ``Linker._later_dir`` looked), and
        whatever is at its paths in directories this install created
        (nothing was there before it). In directories that existed, a file
        there may be an earlier install's, and stays."""
        linker = owner()
        if linker is None:
            return
        # every directory left to a task was missing when looked at: one
        # there now is this install's (a helper makes missing parents too,
        # perhaps another task's directory, and may die before saying so)
        for path in [*dirs, *list(linker._unmade)]:
            if os.path.isdir(linker.platform.fspath(path)):
                linker.journal.made_dir(path)
        made = set(linker.journal.created_dirs)
        for _, _, dp, names, _ in task:
            if dp[:-1] in made:
                linker.journal.created.extend([dp + n for n in names if os.path.lexists(dp + n)])

    def _settle(
        self,
        owner: weakref.ref[Linker],
        future: Promise[None],
        task: Task,
        failures: Sequence[tuple[int, int, int, str]] | None,
        dirs: Sequence[str],
    ) -> None:
        """Settle a task placed by a helper but for ``failures`` (None: by no
        one yet: its directories and files are made and placed here)."""
        linker = owner()
        error: BaseException | None = None
        try:
            if linker is None:
                raise LinkError("the install was abandoned")
            if failures is None:
                linker._place_names(task, dirs)
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
        """End every helper (after ``finish``: no task is left; any sent
        is placed and answered first)."""
        if self.finalizer is not None:
            self.finalizer.detach()
        if self._pid != os.getpid():
            return  # (a forked child's copy: ``_forget_in_child`` let go of it)
        with self._lock:
            self.closed = True
        with self._writing:  # (a frame being written is written whole first)
            _stop(self._procs)
        for reader in self._readers:
            if reader is not threading.current_thread():
                reader.join()
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()

    def _let_go(self) -> None:
        """In a forked child: this process's copies of the pipes to the
        parent's helpers become /dev/null (a helper ends when its input
        reaches its end, which it never would while a child held a copy;
        the stream objects stay valid, so nothing of theirs can reach a
        helper or close a descriptor reused since), waiting for none."""
        null = os.open(os.devnull, os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
        try:
            for proc in self._procs:
                for stream in (proc.stdin, proc.stdout):
                    with contextlib.suppress(OSError, ValueError):
                        if stream is not None:
                            os.dup2(null, stream.fileno(), inheritable=False)
                proc.returncode = 0  # (not this process's child: never waited for here)
        finally:
            os.close(null)

#: every set of helpers of this process, its own or a linker's (a forked
#: child lets go of each one's pipes)
_every_set: weakref.WeakSet[Helpers] = weakref.WeakSet()
#: the helpers kept for the whole process, by (platform kind, count)
_shared: dict[tuple[str, int], Helpers] = {}
#: (platform kind, count) of shared helpers that could not start here
_cannot_start: set[tuple[str, int]] = set()
#: shared helpers being started, and the thread starting them (``prestart_shared``)
_starting: dict[tuple[str, int], threading.Thread] = {}
_shared_lock = threading.Lock()
_exit_registered = False


def running_shared(linker: Linker, count: int) -> Helpers | None:
    """The process's shared helpers for ``linker``'s platform, if running."""
    helpers = _shared.get((str(linker.platform.helper_class()), count))
    return helpers if helpers is not None and helpers.usable() else None


def shared_helpers(linker: Linker, count: int) -> Helpers | None:
    """The process's shared helpers for ``linker``'s platform, started now
    if need be (one of them ended: a new set); None where none can start.
    They end when the interpreter does, or at ``stop_idle_helpers``."""
    global _exit_registered
    key = (str(linker.platform.helper_class()), count)
    with _shared_lock:
        if key in _cannot_start:
            return None
        helpers = _shared.get(key)
        if helpers is not None and helpers.usable():
            return helpers
        stale = helpers
        if helpers is not None and helpers.never_ready():
            _cannot_start.add(key)  # (none ever said it was ready: threads from now on)
            _shared.pop(key, None)
            helpers = None
        else:
            helpers = Helpers.start(linker, count, shared=True)
        if helpers is None:
            _shared.pop(key, None)
        else:
            _shared[key] = helpers
            if not _exit_registered:
                import atexit

                atexit.register(stop_idle_helpers, force=True)
                _exit_registered = True
    if stale is not None:
        stale.close()  # (what it was sent is answered first)
    return helpers


def prestart_shared(linker: Linker, count: int, gave_up: Callable[[], None] | None = None) -> bool:
    """Start the process's shared helpers for ``linker``'s platform on a
    thread of its own, unless they run or are being started: the linker
    that asks goes on handing files to threads meanwhile, and to the
    helpers once ``running_shared`` finds them (starting them holds the
    starting thread for 5-20 ms, mostly waiting for each new process to
    run). False where they cannot start in this process. ``gave_up`` is
    called (on that thread) if this start fails: the asking linker then
    places with threads, and a later linker tries again (helpers that
    never got ready are not tried again: ``shared_helpers``)."""
    key = (str(linker.platform.helper_class()), count)

    def start() -> None:
        started = None
        try:
            started = shared_helpers(linker, count)
        except Exception as exc:
            _log.debug("no shared helper processes: %s", exc)
        finally:
            with _shared_lock:
                _starting.pop(key, None)
            if started is None and gave_up is not None:
                gave_up()

    # (never waiting: ``shared_helpers`` holds the lock while it starts them)
    if not _shared_lock.acquire(blocking=False):
        return True  # being started or looked at: threads meanwhile
    try:
        if key in _cannot_start:
            return False
        helpers = _shared.get(key)
        if key in _starting or (helpers is not None and helpers.usable()):
            return True
        thread = _starting[key] = threading.Thread(target=start, name="pip-linkmode-helper-start", daemon=True)
    finally:
        _shared_lock.release()
    try:
        thread.start()
    except RuntimeError:  # (no thread can start now)
        with _shared_lock:
            _starting.pop(key, None)
        return False
    return True


def join_starts(timeout: float | None = None) -> None:
    """Wait until the shared helpers being started (``prestart_shared``)
    run or are known not to start."""
    with _shared_lock:
        threads = list(_starting.values())
    for thread in threads:
        thread.join(timeout)


def forget_failed_starts() -> None:
    """Try shared helpers again where they could not start before."""
    with _shared_lock:
        _cannot_start.clear()


def stop_idle_helpers(*, force: bool = False) -> None:
    """End the process's shared helpers that have no task (every one with
    ``force``, at exit): before a fork, so that no child holds their pipes."""
    with _shared_lock:
        for key, helpers in list(_shared.items()):
            if force:
                helpers.close()
            elif not helpers.close_if_idle():
                continue
            del _shared[key]


def _forget_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()  # (another thread may have held it at the fork)
    for helpers in list(_every_set):
        helpers._let_go()
    _shared.clear()
    _cannot_start.clear()
    _starting.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """End of input ends a helper: close all, then wait for each."""
    for proc in procs:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
    for proc in procs:
        proc.wait()
