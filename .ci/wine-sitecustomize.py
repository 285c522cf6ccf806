"""Installed by .ci/windows as the Lib/sitecustomize.py of each WinPython it
sets up for the Windows suite under Wine, so every process of the suite has
it: the test runner, pip-linkmode's own re-runs, pip's, and those of the
venvs the tests make from these interpreters.

Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR (1359) for
a command that starts fine a moment later (seen once in about 450 spawns of
CI's Windows suite). It is Wine's, not ours, and a process of the product
under test can meet it as well as the test runner: here the system call is
tried up to twice more (at that level, so the pipe handles subprocess made
are still open). Any other error is raised as is. Never installed on real
Windows.
"""

import _winapi
import sys

_original = _winapi.CreateProcess


def _create_process(*args):  # type: ignore[no-untyped-def]
    for attempt in range(3):
        try:
            return _original(*args)
        except OSError as exc:
            if getattr(exc, "winerror", None) != 1359 or attempt == 2:
                raise
            sys.stderr.write(f"sitecustomize: Wine's CreateProcess failed with 1359; retrying ({attempt + 1})\n")
    raise AssertionError("unreachable")


_winapi.CreateProcess = _create_process
