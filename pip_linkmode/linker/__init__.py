"""Placing cached files into environments, in three parts and their shared types.

- ``policy``: which link mode works between two devices, and the one
  warning or error a user sees about it (``ModePolicy``);
- ``executor``: ``Linker``, which places files with threads and helper
  processes (``helpers``), in the mode the policy picks;
- ``journal``: what an install created, for undo and rollback;
- ``jobs`` (what is placed, and the report of it) and ``files`` (writing a
  per-environment file beside its target and renaming it over).
"""

from __future__ import annotations

from .executor import Linker
from .files import TEMP_SUFFIX, write_beside, write_fd
from .jobs import DirJob, LinkError, LinkJob, LinkReport
from .journal import Journal
from .policy import ModePolicy, reset_process_state

__all__ = [
    "TEMP_SUFFIX",
    "DirJob",
    "Journal",
    "LinkError",
    "LinkJob",
    "LinkReport",
    "Linker",
    "ModePolicy",
    "reset_process_state",
    "write_beside",
    "write_fd",
]
