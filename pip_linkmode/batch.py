"""``LinkBatch``: several ``installer.install`` calls whose files are placed while the next is prepared.

Each ``installer.install`` through a plain ``LinkingDestination`` returns
once its wheel's files are in place, as installer's contract says. That
leaves the process's link workers idle while installer prepares the next
wheel, and the install loop idle while they link. A destination made
with ``batch=`` (inside ``with LinkBatch() as batch:``) no longer waits:
its files may still be in placement when ``installer.install`` returns,
and every one is in place when the ``with`` block ends. This is the
overlap ``install_wheels`` has, for a tool that keeps its own
``installer.install`` loop.

A batch is all or nothing, as ``install_wheels`` is: an install of it
that fails (a file already there, a link refused, Ctrl-C) removes what
every install of the batch created, and the batch takes no more. The
failure propagates from the ``installer.install`` call it happened in;
a link that failed after its install returned is raised (the
``LinkError`` naming the file) by the next call that waits for the
batch's links, at the latest at the end of the ``with`` block. A batch
whose failure the tool caught and went on from refuses further installs
and raises ``LinkError`` at its end too: nothing of it is left in the
environment.

One thread's installs, one after another: a destination joins the batch
on the thread that entered it, and installs inside its block. A
destination class that writes or compiles files its own way (overriding
``write_to_fs``, ``write_file`` or ``_compile_bytecode``) cannot join: the
batch could not remove what it wrote.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .linker import Linker, LinkError, LinkReport
from .modes import LinkMode, link_mode_from_env, parse_link_mode

if TYPE_CHECKING:
    from types import TracebackType

    from .destination import LinkingDestination

__all__ = ["LinkBatch"]


class LinkBatch:
    """The installs of one ``with`` block, placed by one linker whose
    workers go on while the next install is prepared (see the module's
    text). ``link_mode`` None reads ``PIP_LINK_MODE`` (else auto), as a
    ``LinkingDestination`` does; every destination of the batch links in
    that mode and with its ``overwrite_existing``. ``report`` sums the
    batch's destinations' reports once the block has ended."""

    def __init__(self, link_mode: LinkMode | str | None = None, *, overwrite_existing: bool = False) -> None:
        self.link_mode = link_mode_from_env() if link_mode is None else parse_link_mode(link_mode)
        self.overwrite_existing = overwrite_existing
        #: every destination's report, merged at the end of the block
        self.report = LinkReport(requested=self.link_mode)
        #: the first failure of an install of this batch (it was rolled back)
        self.failure: BaseException | None = None
        self._linker: Linker | None = None
        self._destinations: list[LinkingDestination] = []
        self._thread: int | None = None
        self._state = "new"  # -> "open" (in its with block) -> "ended"

    def __enter__(self) -> LinkBatch:
        if self._state != "new":
            raise RuntimeError("a LinkBatch is entered once: make a new one for the next installs")
        self._state = "open"
        self._thread = threading.get_ident()
        return self

    def check(self) -> None:
        """Raise unless an install may begin in this batch now: inside its
        block, on the thread that entered it, no install of it failed."""
        if self._state != "open":
            raise RuntimeError(
                "a LinkingDestination of a LinkBatch installs inside its with block"
                + (" (this one has ended)" if self._state == "ended" else "")
            )
        if self.failure is not None:
            raise LinkError(f"this LinkBatch was rolled back after an install of it failed: {self.failure}")
        if threading.get_ident() != self._thread:
            raise RuntimeError("a LinkBatch takes the installs of the thread that entered it")

    def join(self, destination: LinkingDestination) -> Linker:
        """The linker ``destination`` places its files with (called by
        ``LinkingDestination`` made with ``batch=``)."""
        self.check()
        if destination.writes_its_own_way():
            raise ValueError(
                f"a {type(destination).__name__} writes or compiles files its own way (write_to_fs, write_file or "
                "_compile_bytecode): a LinkBatch could not remove them after a failure; install it without a batch"
            )
        if destination.overwrite_existing != self.overwrite_existing:
            raise ValueError(
                f"a LinkingDestination with overwrite_existing={destination.overwrite_existing} cannot join a "
                f"LinkBatch made with overwrite_existing={self.overwrite_existing}"
            )
        if destination.link_mode != self.link_mode:
            raise ValueError(
                f"a LinkingDestination with link_mode {destination.link_mode} cannot join a LinkBatch "
                f"that links in mode {self.link_mode}"
            )
        linker = self._linker
        if linker is None:
            linker = self._linker = Linker(
                self.link_mode, overwrite=self.overwrite_existing, help_links=True, share_helpers=True
            )
            linker.source_mtimes = False
        if destination.bytecode_optimization_levels and not linker.source_mtimes:
            linker.source_mtimes = True  # (cached .pyc files are checked against their source's mtime)
        self._destinations.append(destination)
        return linker

    def fail(self, error: BaseException) -> None:
        """An install of this batch failed: remove what every install of
        it created (once its placements in flight are over)."""
        if self.failure is None:
            self.failure = error
        self._rollback()

    def _rollback(self) -> None:
        linker = self._linker
        if linker is not None:
            linker.rollback()
            self._linker = None  # (only once over: an interrupted rollback is tried again at the end)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._state = "ended"
        linker = self._linker
        if exc is not None or self.failure is not None:
            self._rollback()
            if exc is None:
                raise LinkError(
                    f"every install of this LinkBatch was removed: one of them failed ({self.failure})"
                ) from self.failure
            return
        if linker is None:
            return  # (no destination joined)
        try:
            linker.close()  # (every file placed, every answer read; the shared helpers stay)
        except BaseException as error:
            self.failure = error
            self._rollback()
            raise
        self._linker = None
        from .placement import register_symlink_users

        for destination in self._destinations:
            register_symlink_users(destination.report, destination.pending_users)
            destination.pending_users = []
            self.report.merge(destination.report)
        self._destinations.clear()
