"""What is placed and what came of it: link jobs, directory groups, reports, errors."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from ..modes import LinkMode

__all__ = ["DirJob", "LinkError", "LinkJob", "LinkReport", "Task", "human_size"]


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
Task = Sequence[tuple[LinkMode, str, str, Sequence[str], int | None]]


#: the order a report names the modes in
_REPORTED = (LinkMode.CLONE, LinkMode.HARDLINK, LinkMode.COPY, LinkMode.SYMLINK)


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
        return [m for m in _REPORTED if self.counts[m]]

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
            f"{human_size(self.bytes_shared)} not written thanks to links"
        )


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
