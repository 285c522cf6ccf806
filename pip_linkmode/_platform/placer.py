"""A helper process that places files with the platform's own primitives.

Placing a file is a few system calls and almost no Python; in one process
every thread still needs the GIL between those calls, and the thread that
prepares the next wheel holds it for long stretches. Helper processes have
an interpreter each, so the calls of two helpers and the preparing thread
run truly in parallel (a clone install on XFS is CPU-bound in the kernel).

The parent sends frames (little-endian 4-byte length, then a ``marshal``
body) on the helper's stdin: ``(task id, source mtimes, groups, dirs)``,
each group ``(op, cache dir + "/", target dir + "/", names, perm)`` with
``op`` one of ``clone``, ``hardlink``, ``symlink`` and ``perm`` the
permission bits of its clones (None: the cache file's); ``dirs`` are the
target directories to make first, in order (a missing parent is made
too: another helper's task may not have made it yet). For each task the
helper answers on stdout ``(task id, failures, made, unmade)``: ``failures``
are ``(group index, name index, errno, message)`` for every file whose
call raised, after trying the rest; ``made`` the directories this helper
created; ``unmade`` is False, or True where a directory could not be made,
and then no file of the task was tried (the parent makes its directories
and places its files itself, and so reports that error as its own). The
parent handles a file's failure as it would one of its own (an existing
target is replaced, a full disk is an error naming the file). The
helper's first frame, once it has imported the platform, is ``READY``
(with the version of these frames); end of input ends it.
"""

from __future__ import annotations

import importlib
import marshal
import os
import signal
import struct
import sys

TYPE_CHECKING = False  # (typing itself would be a third of a helper's start)
if TYPE_CHECKING:
    from typing import IO, Any

    from .posix import Platform

__all__ = ["READY", "DirNotMade", "main", "make_dir", "make_dirs", "read_frame", "serve", "write_frame"]

_HEAD = struct.Struct("<I")
#: a helper's first frame: ready, and which frames it reads and answers (a
#: parent from before an upgrade in the same run ends a helper that says
#: otherwise, and its threads place the files)
READY = ("ready", 2)


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value, or None at end of input."""
    head = stream.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return marshal.loads(body)


def write_frame(stream: IO[bytes], value: Any) -> None:
    body = marshal.dumps(value)
    stream.write(_HEAD.pack(len(body)) + body)
    stream.flush()


class DirNotMade(Exception):
    """``make_dir`` could not make ``path``: ``error`` says why."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(path, error)
        self.path = path
        self.error = error


def make_dir(platform: Platform, path: str, made: list[str]) -> None:
    """Make ``path`` unless it exists, its missing parents first, appending
    each directory made to ``made``; ``DirNotMade`` names the one that
    could not be made. A parent that exists and still leaves ``path`` not
    found (a dangling link in its place) is a failure, not a retry. The
    linker's threads (``Linker._create_dir``) and helpers alike use it."""
    fs = platform.fspath(path)
    try:
        os.mkdir(fs)
    except FileExistsError:
        return
    except FileNotFoundError as exc:
        parent = os.path.dirname(path)
        if parent == path:
            raise
        make_dir(platform, parent, made)  # made by a task not run yet, or not ours
        try:
            os.mkdir(fs)
        except FileExistsError:
            return
        except OSError as again:
            raise DirNotMade(path, again) from exc
    except OSError as exc:
        raise DirNotMade(path, exc) from exc
    made.append(path)


def make_dirs(platform: Platform, dirs: list[str], made: list[str]) -> bool:
    """``make_dir`` of each of ``dirs``, in order; False where one could not
    be made (nothing more is tried)."""
    try:
        for path in dirs:
            make_dir(platform, path, made)
    except (DirNotMade, OSError, ValueError):  # (ValueError: a NUL byte)
        return False
    return True


def serve(platform: Platform, inp: IO[bytes], out: IO[bytes]) -> None:
    """Place the files of each task read from ``inp``; answer on ``out``."""
    while True:
        frame = read_frame(inp)
        if frame is None:
            return
        task_id, keep_mtimes, groups, dirs = frame
        failures: list[tuple[int, int, int, str]] = []
        made: list[str] = []
        if not make_dirs(platform, dirs, made):
            write_frame(out, (task_id, failures, made, True))
            continue
        for gi, (opname, sp, dp, names, perm) in enumerate(groups):
            failed = platform.place_files(opname, sp, dp, names, source_mtime=bool(keep_mtimes), perm=perm)
            failures.extend((gi, ni, exc.errno or 0, exc.strerror or str(exc)) for ni, exc in failed)
        write_frame(out, (task_id, failures, made, False))


def main() -> None:
    """``python -I -S -c ... MODULE:CLASS``: say ready, serve stdin with that platform.

    Ctrl-C is the parent's to handle (it rolls back, then ends the
    helpers); a parent gone without a word ends the helper quietly.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    module, _, name = sys.argv[1].partition(":")
    platform = getattr(importlib.import_module(module), name)()
    try:
        write_frame(sys.stdout.buffer, READY)
        serve(platform, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:
        os._exit(0)  # nothing left to flush to
    # End of input: every answer is written (``write_frame`` flushes each),
    # and nothing else is this process's to finish. Ending here skips the
    # interpreter's own teardown, which the installing process waits for
    # when it closes its helpers.
    os._exit(0)
