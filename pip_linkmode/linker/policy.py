"""The mode policy: which link mode places files between two devices, and what to say about it.

For each (requested mode, cache device, target device) the first file
probes the modes of the request's chain in order; the first that works is
remembered for the process, so every later file of that pair costs its
placing call and nothing else. ``auto`` tries clone, then hardlink, then
copy and says what it picked; an explicit mode that cannot work falls back
to copy with one warning per process naming the cause and the remedy.
After a mode has worked, a failure is an error naming the file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import NamedTuple

from .. import _log
from .._platform import Cause, Platform
from ..modes import LinkMode
from .jobs import LinkError, LinkJob, LinkReport

__all__ = ["CHAINS", "ModePolicy", "Resolution", "reset_process_state"]

#: the modes a request tries, in order; the last one's failure is an error
CHAINS = {
    LinkMode.AUTO: (LinkMode.CLONE, LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.CLONE: (LinkMode.CLONE, LinkMode.COPY),
    LinkMode.HARDLINK: (LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.SYMLINK: (LinkMode.SYMLINK, LinkMode.COPY),
    LinkMode.COPY: (LinkMode.COPY,),
}


class Resolution(NamedTuple):
    mode: LinkMode
    note: str | None  # why this mode, when it is not the one asked for


# Process-wide memory: (requested mode, cache dev, target dev) -> resolution.
_resolved: dict[tuple[LinkMode, int, int], Resolution] = {}
_warned: set[tuple[LinkMode, Cause]] = set()
_state_lock = threading.Lock()
#: the names of the link modes, as operations are named in errors
_MODE_NAMES = frozenset(mode.value for mode in LinkMode)


def reset_process_state() -> None:
    """Forget probed modes, issued warnings and helper processes found
    unable to start (for tests and long-lived hosts)."""
    from .helpers import forget_failed_starts

    with _state_lock:
        _resolved.clear()
        _warned.clear()
    forget_failed_starts()


class ModePolicy:
    """One requested mode's choices and messages, on one platform."""

    def __init__(self, mode: LinkMode, platform: Platform) -> None:
        self.mode = mode
        self.platform = platform

    def known(self, sdev: int, ddev: int) -> Resolution | None:
        """The mode already resolved for a device pair, without probing."""
        with _state_lock:
            return _resolved.get((self.mode, sdev, ddev))

    def resolve(
        self,
        sdev: int,
        ddev: int,
        first: LinkJob,
        report: LinkReport,
        place: Callable[[LinkMode, LinkJob], LinkReport],
    ) -> tuple[Resolution, bool]:
        """The mode for a device pair; if not known yet, probes it by
        ``place``-ing ``first`` in each mode of the chain (``place`` raises
        the raw OSError of a mode that does not work).

        Returns the resolution and whether ``first`` has been placed.
        """
        key = (self.mode, sdev, ddev)
        with _state_lock:
            known = _resolved.get(key)
        if known is not None:
            if known.note and known.note not in report.notes:
                report.notes.append(known.note)
            return known, False
        chain = CHAINS[self.mode]
        failures: list[str] = []
        for candidate in chain:
            try:
                placed = place(candidate, first)
            except OSError as exc:
                cause = self.platform.classify(exc)
                if cause is None or candidate is chain[-1]:
                    raise self.error(exc, candidate.value, first.dst, first.src) from exc
                failures.append(f"{candidate} not possible ({cause.value})")
                if self.mode is not LinkMode.AUTO:
                    self.warn_once(candidate, cause, exc, first)
                continue
            note = None
            if self.mode is LinkMode.AUTO:
                note = f"auto chose {candidate}" + (f": {'; '.join(failures)}" if failures else "")
            elif failures:
                note = f"fell back to {candidate}: {'; '.join(failures)}"
            resolution = Resolution(candidate, note)
            with _state_lock:
                _resolved[key] = resolution
            if note and note not in report.notes:
                report.notes.append(note)
            report.merge(placed)
            return resolution, True
        raise AssertionError("unreachable: the last mode in a chain raises")

    def warn_once(self, mode: LinkMode, cause: Cause, exc: OSError, job: LinkJob) -> None:
        """The one warning per process for ``mode`` failing by ``cause``."""
        with _state_lock:
            if (mode, cause) in _warned:
                return
            _warned.add((mode, cause))
        hint = ""
        if cause is Cause.PRIVILEGE:
            hint = " " + self.platform.remedy(exc, mode.value) + "."
        elif cause is Cause.CROSS_DEVICE:
            hint = " Put the cache on the target's filesystem (--cache-dir) to link."
        _log.warning(
            "%s is not possible from the cache %s to %s: %s; falling back to copy.%s "
            "To silence this, use --link-mode=copy (or PIP_LINK_MODE=copy).",
            mode,
            os.path.normpath(os.path.dirname(job.src)),  # (one kind of separator on Windows)
            os.path.normpath(os.path.dirname(job.dst)),
            cause.value,
            hint,
        )

    def _mode_of(self, op: str) -> str:
        """The link mode an operation is (``auto`` resolves to one), else the requested one."""
        return op if op in _MODE_NAMES else self.mode.value

    def error(self, exc: OSError, op: str, path: str, src: str | None = None) -> LinkError:
        """The error a user sees: the operation, the file, the cause, the remedy."""
        what = exc.strerror or str(exc)
        frm = f" from {os.path.normpath(src)}" if src else ""
        err = LinkError(
            exc.errno,
            f"{op} failed for {os.path.normpath(path)}{frm}: {what}; {self.platform.remedy(exc, self._mode_of(op))}",
        )
        err.filename = path
        return err
