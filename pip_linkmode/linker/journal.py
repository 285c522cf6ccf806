"""The journal of an install: what it created, so that a failure can undo exactly that.

Files placed where nothing was and directories made are written down as
they appear (a file placed over an existing one is not: it keeps its new
content). ``mark`` and ``undo_since`` undo one failed wheel of several;
undoing everything is a rollback. Undoing never follows links and never
touches the cache. The journal also knows which directories hold no
leftovers of a killed install (it made them, or swept them already).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from .files import LEFTOVER_SUFFIXES

__all__ = ["Journal"]


class Journal:
    """What one linker created, in order."""

    def __init__(self, fspath: Callable[[str], str]) -> None:
        #: the platform's spelling of a path for system calls
        self._fspath = fspath
        #: files placed where nothing was (worker threads append to it)
        self.created: list[str] = []
        #: directories made, outermost first
        self.created_dirs: list[str] = []
        #: directories with no leftovers of a killed install in them
        self._swept: set[str] = set()
        #: held through a sweep: a thread about to write a temp file of its
        #: own in that directory waits until the sweep is over
        self._sweeping = threading.Lock()

    def made_dir(self, path: str) -> None:
        """``path`` was created by this install (and so holds no leftovers)."""
        self.created_dirs.append(path)
        self._swept.add(path)

    def made_dirs(self, outermost_first: list[str]) -> None:
        self.created_dirs.extend(outermost_first)
        self._swept.update(outermost_first)

    def sweep_temps(self, directory: str) -> None:
        """Remove temp files (``.NAME.HEX.plm-tmp``) that a killed install left
        in a directory we are about to write in, and files Windows moved aside
        because they were in use (``.NAME.HEX.plm-old``: one still in use
        stays); once per directory."""
        if directory in self._swept:
            return
        with self._sweeping:
            if directory in self._swept:
                return  # (swept by another thread meanwhile)
            try:
                names = os.listdir(self._fspath(directory))
            except OSError:
                names = []
            for name in names:
                if name.startswith(".") and name.endswith(LEFTOVER_SUFFIXES):
                    try:
                        os.unlink(self._fspath(os.path.join(directory, name)))
                    except OSError:
                        pass
            # marked only now: a thread that finds it marked writes its own
            # temp file there after the sweep, never before it
            self._swept.add(directory)

    def mark(self) -> tuple[int, int]:
        """How much has been created so far, for ``undo_since``."""
        return len(self.created), len(self.created_dirs)

    def undo_since(self, mark: tuple[int, int]) -> None:
        """Remove the files, then the directories (if empty, deepest first),
        created since ``mark``. The caller first waits for every placement
        in flight."""
        files, dirs = mark
        created, self.created[files:] = self.created[files:], []
        made, self.created_dirs[dirs:] = self.created_dirs[dirs:], []
        for path in reversed(created):
            try:
                os.unlink(self._fspath(path))
            except OSError:
                pass
        for path in sorted(set(made), key=len, reverse=True):
            try:
                os.rmdir(self._fspath(path))
            except OSError:
                pass
