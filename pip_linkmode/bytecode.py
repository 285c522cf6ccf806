"""Bytecode compiled once into the cache, per interpreter tag, then linked.

Environments get their ``.pyc`` files by the same links as every other file:
a linked ``.py`` keeps the cache file's mtime and size, so a timestamp pyc
compiled next to it in the cache is valid in every environment, and the
import system rewrites ``co_filename`` to the environment's path when it
loads the pyc (so tracebacks show the environment's path).

Each entry records what it holds in ``bytecode-<tag>-o<levels>-<mode>.json``
beside ``entry.json``: each .pyc's size, mtime and hash (and that record's
own hash beside it, for ``cache verify``); compiling happens under the
entry's lock, so concurrent installs compile once. Before an install links
them, the .pyc files are checked against the record's sizes and mtimes (a
stat each): one changed since is compiled again, never linked.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ._cachecore import all_safe_relpaths, check_path, check_tree, make_dirs
from .cache import CachedWheel, WheelCache, remove_tree
from .linker import write_beside

if TYPE_CHECKING:
    import py_compile
    from concurrent.futures import Future, ProcessPoolExecutor

__all__ = [
    "CachedPyc",
    "PycGroup",
    "compiled_rows",
    "compiles",
    "ensure_bytecode",
    "invalidation_mode",
    "prepare",
    "pyc_groups",
    "pyc_name",
    "pyc_path",
]


class CachedPyc(NamedTuple):
    """A .pyc compiled into the cache: where it is, and its size."""

    path: str
    size: int


class PycGroup(NamedTuple):
    """The cached .pyc files of one source directory, to link as a group."""

    scheme: str  # where the sources are installed: the root scheme, or a .data one
    src_dir: str  # the cache entry's __pycache__ directory
    ddir: str  # the sources' directory in that scheme ('' for its root)
    names: list[str]  # .pyc file names
    sizes: list[int]


def pyc_path(source: str, level: int) -> str:
    """``importlib.util.cache_from_source`` for a ``.py`` path, by string
    operations when no ``sys.pycache_prefix`` is set (the per-file hot path)."""
    tag = sys.implementation.cache_tag
    if sys.pycache_prefix is not None or tag is None or not source.endswith(".py"):
        from importlib.util import cache_from_source

        return cache_from_source(source, optimization="" if level == 0 else level)
    cut = max(source.rfind("/"), source.rfind(os.sep))
    head = f"{source[:cut]}{os.sep}" if cut >= 0 else ""  # (as importlib joins: the system's separator)
    return f"{head}__pycache__{os.sep}{pyc_name(source[cut + 1 : -3], level, tag)}"


def pyc_name(stem: str, level: int, tag: str) -> str:
    """The name in ``__pycache__`` of the .pyc of module ``stem`` (``a`` for ``a.py``)."""
    return f"{stem}.{tag}.pyc" if level == 0 else f"{stem}.{tag}.opt-{level}.pyc"

#: a bytecode record's row: (archive path of the .py, level, size, mtime
#: in ns and hash of its .pyc)
_Row = tuple[str, int, int, int, str]

#: below this many sources, compiling in-process beats starting workers
_PARALLEL_THRESHOLD = 200


def invalidation_mode() -> py_compile.PycInvalidationMode:
    """What ``compileall`` would use: honours SOURCE_DATE_EPOCH."""
    import py_compile  # (with its traceback and importlib.util: not for an install that compiles nothing)

    return py_compile._get_default_invalidation_mode()  # type: ignore[attr-defined]


def _marker(entry: CachedWheel, levels: Sequence[int], mode: py_compile.PycInvalidationMode) -> Path:
    tag = sys.implementation.cache_tag
    lv = "".join(str(level) for level in levels)
    return entry.root / f"bytecode-{tag}-o{lv}-{mode.name.lower()}.json"


def compiles(entry: CachedWheel, path: str) -> bool:
    """Whether the entry's bytecode covers this archive path: a ``.py`` at
    the wheel's root or under ``.data/purelib`` or ``.data/platlib`` (what
    pip compiles in the lib dirs; elsewhere pip compiles where it installs)."""
    if not path.endswith(".py"):
        return False
    data = entry.dist_info[: -len(".dist-info")] + ".data/"
    return not path.startswith(data) or path.startswith((data + "purelib/", data + "platlib/"))


def _sources(entry: CachedWheel) -> list[str]:
    """Archive paths of the .py files that pip would compile (lib dirs only)."""
    return [f.path for f in entry.files if compiles(entry, f.path)]


def _compile_many(args: tuple[list[str], tuple[int, ...], str]) -> list[tuple[str, int]]:
    import py_compile

    paths, levels, mode_name = args
    mode = py_compile.PycInvalidationMode[mode_name]
    ok = []
    for path in paths:
        for level in levels:
            try:
                py_compile.compile(path, optimize=level, invalidation_mode=mode, doraise=True)
            except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeError, OSError):
                continue  # as pip: files that do not compile are skipped silently
            ok.append((path, level))
    return ok


def ensure_bytecode(
    cache: WheelCache,
    entry: CachedWheel,
    levels: Iterable[int] = (0,),
    mode: py_compile.PycInvalidationMode | None = None,
) -> dict[tuple[str, int], CachedPyc]:
    """Compile the entry's sources for the running interpreter, once.

    Returns {(archive path of .py, optimisation level): the cached .pyc} for
    every source that compiled.
    """
    tree = str(entry.tree)
    return {
        (rel, level): CachedPyc(pyc_path(f"{tree}/{rel}", level), size)
        for rel, level, size in compiled_rows(cache, entry, levels, mode)
    }


def pyc_groups(
    cache: WheelCache,
    entry: CachedWheel,
    levels: Iterable[int],
    root_scheme: str,
    mode: py_compile.PycInvalidationMode | None = None,
) -> list[PycGroup]:
    """``ensure_bytecode``'s work grouped by directory, for ``Linker.run_dirs``:
    a source at the wheel's root is installed in ``root_scheme``, one under
    ``.data/<scheme>/`` in that scheme."""
    tree = str(entry.tree)
    tag = sys.implementation.cache_tag
    assert tag is not None
    data = entry.dist_info[: -len(".dist-info")] + ".data/"
    #: by (scheme, target directory, archive directory): one target
    #: directory may take sources from two (``pkg/`` and ``.data/purelib/pkg/``)
    groups: dict[tuple[str, str, str], PycGroup] = {}
    for rel, level, size in compiled_rows(cache, entry, levels, mode):
        if rel.startswith(data):
            scheme, _, path = rel[len(data) :].partition("/")
        else:
            scheme, path = root_scheme, rel
        sdir, _, name = rel.rpartition("/")
        ddir = path.rpartition("/")[0]
        group = groups.get((scheme, ddir, sdir))
        if group is None:
            src = f"{tree}/{sdir}/__pycache__" if sdir else f"{tree}/__pycache__"
            group = groups[(scheme, ddir, sdir)] = PycGroup(scheme, src, ddir, [], [])
        group.names.append(pyc_name(name[:-3], level, tag))
        group.sizes.append(size)
    return list(groups.values())


def compiled_rows(
    cache: WheelCache,
    entry: CachedWheel,
    levels: Iterable[int] = (0,),
    mode: py_compile.PycInvalidationMode | None = None,
) -> list[tuple[str, int, int]]:
    """``ensure_bytecode``'s work, as (archive path of the .py, level, size
    of its .pyc) for every source that compiled."""
    lv = tuple(sorted(set(levels)))
    mode = mode or invalidation_mode()
    marker = _marker(entry, lv, mode)
    tree = str(entry.tree)
    compiled = _read_marker(marker)
    if compiled is None or _changed(tree, compiled):
        with cache.lock(entry.key):
            compiled = _read_marker(marker)
            changed = _changed(tree, compiled) if compiled is not None else []
            if compiled is None or changed:
                for path in changed:  # whatever is there now, never compiled over
                    check_path(cache.root, path, final=False)  # (nor removed through a link)
                    remove_tree(Path(path))
                compiled = _compile_entry(entry, lv, mode)
                _write_marker(marker, compiled)
    return [(rel, level, size) for rel, level, size, _, _ in compiled]


def _changed(tree: str, rows: list[_Row]) -> list[str]:
    """The cheap self-check before linking: the .pyc files whose size or
    mtime differs from the record's, or that are no longer regular files
    (an lstat each; ``cache verify`` compares their hashes)."""
    changed = []
    for rel, level, size, mtime_ns, _ in rows:
        path = pyc_path(f"{tree}/{rel}", level)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            changed.append(path)
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns or not stat.S_ISREG(st.st_mode):
            changed.append(path)
    return changed


def _write_marker(marker: Path, compiled: list[_Row]) -> None:
    data = json.dumps(compiled).encode("utf-8")
    from .cache_admin import record_produced

    record_produced(marker, data)  # its hash first, for `cache verify`
    write_beside(os.fspath(marker), data)


#: sources per task sent to a compiling worker: small enough to keep every
#: worker busy to the end, large enough that the hand-over costs little
_CHUNK = 32


def prepare(
    cache: WheelCache,
    wheels: Sequence[str | os.PathLike[str]],
    levels: Iterable[int] = (),
    mode: py_compile.PycInvalidationMode | None = None,
) -> list[CachedWheel]:
    """Every wheel's cache entry, unpacked on a miss, and with ``levels``
    its bytecode compiled: one pool of worker processes compiles the
    entries already unpacked while this thread unpacks the next ones.

    Locks are only ever tried while others are held: an entry another
    process is unpacking or compiling is left to the end, when this call
    holds no lock and can wait for it (so no two installs wait on each
    other in a cycle).
    """
    lv = tuple(sorted(set(levels)))
    if not lv:
        return _unpack_all(cache, wheels)
    mode = mode or invalidation_mode()
    entries: list[CachedWheel | None] = []
    later: list[int] = []
    compiling: set[str] = set()
    jobs: list[tuple[CachedWheel, Path, list[Future[list[tuple[str, int]]]]]] = []
    with contextlib.ExitStack() as held, contextlib.ExitStack() as pools:
        pool: ProcessPoolExecutor | _StreamPool | None = None
        for i, wheel in enumerate(wheels):
            entry = cache.get_nowait(wheel)
            entries.append(entry)
            if entry is None:
                later.append(i)
                continue
            marker = _marker(entry, lv, mode)
            if entry.key in compiling or _read_marker(marker) is not None:
                continue
            lock = cache.lock(entry.key)
            if not lock.acquire(blocking=False):
                later.append(i)
                continue
            held.push(lock)
            if _read_marker(marker) is not None:
                continue
            tree = str(entry.tree)
            paths = [os.path.join(tree, rel) for rel in _sources(entry)]
            _ready_tree(entry, paths)
            if pool is None:
                pool = pools.enter_context(_compiling_pool())
            futures = [
                pool.submit(_compile_many, (paths[k : k + _CHUNK], lv, mode.name))
                for k in range(0, len(paths), _CHUNK)
            ]
            jobs.append((entry, marker, futures))
            compiling.add(entry.key)
        for entry, marker, futures in jobs:
            done = [item for future in futures for item in future.result()]
            _write_marker(marker, _compiled_rows(str(entry.tree), done))
    # What others held: wait for it now, one entry at a time.
    for i in later:
        entry = entries[i] = cache.get(wheels[i])
        ensure_bytecode(cache, entry, lv, mode)
    return [e for e in entries if e is not None]


#: threads unpacking wheels at once when nothing compiles: inflating,
#: hashing and the file system calls release the GIL, the rest queues for it
#: (more threads than CPUs only add switches: measured on 2 CPUs, 2 threads
#: unpack the corpus in 2.7 s, 4 in 3.0 s)
_UNPACKERS = 4
#: missing wheels weighing at least this many bytes (compressed) are
#: unpacked by worker processes instead, where ``fork`` is cheap and safe
#: (Linux): each has a GIL of its own, so the Python work of every member
#: runs on every CPU (the corpus: 2.0 s against 2.4 s with threads)
_PROCESSES_FROM = 8 * 1024 * 1024


def _unpack_all(cache: WheelCache, wheels: Sequence[str | os.PathLike[str]]) -> list[CachedWheel]:
    """``prepare`` without bytecode: wheels unpacked by a few threads, or
    processes for a large first install."""
    unique = list(dict.fromkeys(os.path.abspath(w) for w in wheels))
    # Entries the index knows need only their manifest read: that is work
    # for one thread (threads would queue for the GIL). The rest unpack.
    found: dict[str, CachedWheel | None] = {w: cache.get_indexed(w) for w in unique}
    missing = [w for w, entry in found.items() if entry is None]
    if len(missing) == 1:
        found[missing[0]] = cache.get(missing[0])
    elif missing:
        workers = min(_UNPACKERS, os.cpu_count() or 1, len(missing))
        if workers > 1 and _by_processes(missing):
            found.update(_unpack_in_processes(cache, missing, workers))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max(workers, 2)) as threads:
                found.update(zip(missing, threads.map(cache.get_nowait, missing), strict=True))
    for wheel, entry in found.items():  # held by another process: wait now, holding nothing
        if entry is None:
            found[wheel] = cache.get(wheel)
    return [e for e in (found[os.path.abspath(w)] for w in wheels) if e is not None]


def _by_processes(wheels: Sequence[str]) -> bool:
    if not sys.platform.startswith("linux"):
        return False  # (spawning costs more than it saves; macOS's fork is unsafe)
    total = 0
    for wheel in wheels:
        with contextlib.suppress(OSError):
            total += os.stat(wheel).st_size
    return total >= _PROCESSES_FROM


def _unpack_in_processes(cache: WheelCache, wheels: list[str], workers: int) -> dict[str, CachedWheel | None]:
    """Each wheel unpacked by a forked worker process (``_unpack_here``):
    its entry, or None where another process holds it. A worker that dies
    leaves its wheels to this process. (Each worker checks the free space
    for its own wheel, as separate installs do: the bytes promised to
    unpacks in flight are counted per process. Two workers can then fill a
    disk together; that ends as any full disk does, the unpack refused and
    its temporary tree removed.)"""
    from concurrent.futures.process import BrokenProcessPool

    found: dict[str, CachedWheel | None] = {}
    root = os.fspath(cache.root)
    pool = _unpacking_pool(workers)
    try:
        futures = [(wheel, pool.submit(_unpack_here, root, wheel)) for wheel in wheels]
        for wheel, future in futures:
            try:
                result = future.result()
            except BrokenProcessPool:
                result = cache.get(wheel), False
            found[wheel] = _received(cache, wheel, *result)
    finally:  # (on an error or Ctrl-C, what has not started never does)
        pool.shutdown(wait=True, cancel_futures=True)
    return found


class EarlyUnpack:
    """Wheels handed over one at a time as they become known (the pip door:
    as pip finds or downloads each, while it resolves the rest), unpacked by
    worker processes meanwhile, once enough bytes wait to be worth them
    (``_PROCESSES_FROM``). Where workers are not used (not Linux, one CPU, a
    cache this user cannot write) ``add`` keeps nothing. A failure is left
    for the install to meet again: it unpacks whatever is still missing,
    and reports a refused wheel itself.
    """

    def __init__(self, cache: WheelCache) -> None:
        self.cache = cache
        self._seen: set[str] = set()
        self._waiting: list[str] = []
        self._bytes = 0
        self._pool: ProcessPoolExecutor | None = None
        self._futures: list[tuple[str, Future[tuple[CachedWheel | None, bool]]]] = []
        self._off = not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2

    def add(self, wheel: str) -> None:
        if self._off:
            return
        wheel = os.path.abspath(wheel)
        if wheel in self._seen or self.cache.get_indexed(wheel) is not None:
            return
        self._seen.add(wheel)
        self._waiting.append(wheel)
        with contextlib.suppress(OSError):
            self._bytes += os.stat(wheel).st_size
        if self._pool is None:
            if self._bytes < _PROCESSES_FROM or len(self._waiting) < 2:
                return
            if self.cache.read_only:  # (known once the cache has looked at itself)
                self._off = True
                return
            self._pool = _unpacking_pool(min(_UNPACKERS, os.cpu_count() or 1))
        root = os.fspath(self.cache.root)
        self._futures.extend((w, self._pool.submit(_unpack_here, root, w)) for w in self._waiting)
        self._waiting.clear()

    def settle(self) -> None:
        """Wait for every unpack handed over (failures are the install's to
        meet), then end the workers: nothing more comes once pip installs,
        and no thread of theirs is left for bytecode's pool to fork."""
        try:
            for wheel, future in self._futures:
                with contextlib.suppress(Exception):
                    _received(self.cache, wheel, *future.result())
        finally:
            self._futures.clear()
            self.close()
            self._off = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _unpacking_pool(workers: int) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from . import archive  # noqa: F401  (the workers unpack: imported once, before they fork)
    from .linker.executor import stop_idle_threads

    stop_idle_threads()  # (no thread of ours is forked mid-task)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start)


def _worker_start() -> None:
    """A worker leaves Ctrl-C to the installing process, which cancels
    what has not started and waits for what has (each unpack cleans up
    after itself): no traceback per worker on the terminal."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _received(cache: WheelCache, wheel: str, entry: CachedWheel | None, fresh: bool) -> CachedWheel | None:
    """A worker's answer for ``wheel`` (``_unpack_here``), told to ``cache``:
    an entry it unpacked counts among the cache's fresh ones."""
    if entry is not None:
        if fresh:
            cache.unpacked.append(entry.key)
        cache.answered(wheel, entry)
    return entry


def _unpack_here(root: str, wheel: str) -> tuple[CachedWheel | None, bool]:
    """In a worker process: a wheel's entry (None where another process
    holds its lock), and whether this call unpacked it.

    An entry it unpacked also gets its layout computed and kept here, from
    the manifest still in memory, on a CPU of the pool's: the installing
    process then reads the layout back (checked as always) instead of
    decoding the manifest and routing every file itself, one wheel after
    another. A layout that cannot be made here is left for the install,
    which makes it again and meets whatever stopped it."""
    cache = WheelCache(root)
    entry = cache.get_nowait(wheel)
    fresh = bool(cache.unpacked)
    if fresh and entry is not None:
        from .placement import load_layout
        from .source import CachedWheelSource

        with contextlib.suppress(Exception):
            load_layout(CachedWheelSource(entry, cache))
        entry = entry.unloaded()  # (the manifest is not sent back: the installer reads the layout)
    return entry, fresh


class _StreamPool:
    """Worker processes compiling sources, each fed over its standard input
    and answering on its standard output, one line of JSON per task; the
    ``submit``/``shutdown`` of an executor.

    Windows uses it instead of ``ProcessPoolExecutor``, and so does a
    process whose placing threads are busy (a fork beside them could
    deadlock the child). On Windows ``ProcessPoolExecutor``'s spawned
    workers re-run a calling script's ``__main__`` that lacks the
    ``if __name__ == "__main__"`` guard, and whose named-pipe reads lose
    data under Wine (a worker waits in ``recv_bytes`` for a task the feeder
    thread has sent, for ever). Anonymous pipes and a blocking read per
    task have neither problem.
    """

    def __init__(self, workers: int) -> None:
        import queue
        import threading

        self._tasks: queue.SimpleQueue[tuple[Future[list[tuple[str, int]]], object] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: object, args: tuple[list[str], tuple[int, ...], str]) -> Future[list[tuple[str, int]]]:
        """Run ``_compile_many(args)`` in a worker (``fn`` is always it)."""
        from concurrent.futures import Future

        future: Future[list[tuple[str, int]]] = Future()
        self._tasks.put((future, args))
        return future

    def _serve(self) -> None:
        import subprocess

        proc: subprocess.Popen[bytes] | None = None
        try:
            while (item := self._tasks.get()) is not None:
                future, args = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if proc is None:
                        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                        code = f"import sys; sys.path.insert(0, {package_parent!r}); " \
                               "from pip_linkmode.bytecode import _serve_compiles; _serve_compiles()"
                        proc = subprocess.Popen([sys.executable, "-I", "-c", code],
                                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                    assert proc.stdin is not None and proc.stdout is not None
                    try:
                        proc.stdin.write(json.dumps(args).encode() + b"\n")
                        proc.stdin.flush()
                        line = proc.stdout.readline()
                    except OSError:
                        line = b""
                    if not line:
                        raise OSError(f"a compiling worker process ended (exit status {proc.wait()})")
                    future.set_result([(path, level) for path, level in json.loads(line)])
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()  # type: ignore[union-attr]
                proc.wait()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            import queue

            while True:
                try:
                    item = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


def _serve_compiles() -> None:
    """A ``_StreamPool`` worker: each line in is ``_compile_many``'s argument,
    each line out its result."""
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        paths, levels, mode_name = json.loads(line)
        out.write(json.dumps(_compile_many((paths, tuple(levels), mode_name))).encode() + b"\n")
        out.flush()


@contextlib.contextmanager
def _compiling_pool(workers: int | None = None) -> Iterator[ProcessPoolExecutor | _StreamPool]:
    from concurrent.futures import ProcessPoolExecutor

    n = workers or os.cpu_count() or 1
    fork = sys.platform != "win32"
    if fork:
        from .linker.executor import stop_idle_threads

        # (the pool forks its workers: not while our threads place files)
        fork = stop_idle_threads()
    pool = ProcessPoolExecutor(n) if fork else _StreamPool(n)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _read_marker(marker: Path) -> list[_Row] | None:
    try:
        from .cache_admin import read_regular

        rows = [
            (str(rel), int(level), int(size), int(mtime_ns), str(digest))
            for rel, level, size, mtime_ns, digest in json.loads(read_regular(marker))
        ]
        # every row names a source of the entry: a path that climbs out, or
        # is absolute, would put a .pyc outside the environment
        if not all_safe_relpaths([rel for rel, *_ in rows]) or not all(
            rel.endswith(".py") and level in (0, 1, 2) and size >= 0 for rel, level, size, _, _ in rows
        ):
            return None
        return rows
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None  # damaged, or written by an older version: compile again


def _compile_entry(
    entry: CachedWheel, levels: tuple[int, ...], mode: py_compile.PycInvalidationMode
) -> list[_Row]:
    tree = str(entry.tree)
    rels = _sources(entry)
    paths = [os.path.join(tree, rel) for rel in rels]
    _ready_tree(entry, paths)
    workers = os.cpu_count() or 1
    if len(paths) < _PARALLEL_THRESHOLD or workers < 2:
        done = _compile_many((paths, levels, mode.name))
    else:
        chunks = [paths[i::workers] for i in range(workers)]
        with _compiling_pool(workers) as pool:
            futures = [pool.submit(_compile_many, (c, levels, mode.name)) for c in chunks]
            done = [item for future in futures for item in future.result()]
    return _compiled_rows(tree, done)


def _ready_tree(entry: CachedWheel, paths: Sequence[str]) -> None:
    """Before compiling into an entry's tree: a cache this process may
    write, no link anywhere in the tree (an entry never holds one), and the
    ``__pycache__`` directories made as the cache makes directories (never
    group- or world-writable; py_compile would make them as the umask
    allows)."""
    from importlib.util import cache_from_source

    root = entry.root.parent.parent
    check_tree(root, entry.tree)
    inside = os.fspath(entry.tree) + os.sep
    for directory in sorted({os.path.dirname(cache_from_source(path)) for path in paths}):
        if directory.startswith(inside):
            make_dirs(root, directory)


def _compiled_rows(tree: str, done: Iterable[tuple[str, int]]) -> list[_Row]:
    """The marker's rows: [archive path of the .py, level, then the size,
    mtime and hash of its .pyc]. A .pyc that is not a regular file by now
    is left out (not linked: the environment compiles its own)."""
    from .cache_admin import hash_regular

    prefix = len(tree) + 1
    rows = []
    for path, level in done:
        try:
            digest, st = hash_regular(pyc_path(path, level))
        except OSError:
            continue
        rows.append((path[prefix:].replace(os.sep, "/"), level, st.st_size, st.st_mtime_ns, f"sha256={digest}"))
    return sorted(rows)

