"""``pip_linkmode._log``: records reach ``logging`` exactly where they could be seen."""

from __future__ import annotations

import builtins
import logging
import subprocess
import sys
from typing import Any

import pytest

from pip_linkmode import _log

_FRESH = """
import sys
from pip_linkmode import _log
_log.debug("not seen %s", 1)
assert "logging" not in sys.modules, "a debug record imported logging"
_log.warning("seen %s", 2)
assert "logging" in sys.modules
"""


def test_a_process_without_logging_imports_it_only_for_a_warning() -> None:
    """Before anything imports ``logging`` a debug record has no handler to
    reach, so none is imported for it; a warning still reaches stderr
    through logging's last-resort handler, as ``logger.warning`` would."""
    proc = subprocess.run([sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "seen 2\n"


def test_records_reach_the_pip_linkmode_logger_once_logging_is_there(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=_log.NAME):
        _log.debug("a %s record", "debug")
        _log.warning("a %s record", "warning")
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("pip_linkmode", logging.DEBUG, "a debug record"),
        ("pip_linkmode", logging.WARNING, "a warning record"),
    ]


def test_a_debug_record_while_logging_is_still_being_imported_waits_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread's import of ``logging`` puts a half-made module in
    ``sys.modules`` first: a debug record then imports it (which waits for
    that import) instead of reading the entry (which has no ``getLogger``
    yet), so a helper's reader thread does not die on an AttributeError."""
    import types

    half_made = types.ModuleType("logging")
    monkeypatch.setitem(sys.modules, "logging", half_made)
    real_import = builtins.__import__

    def finished_import(name: str, *args: Any, **kwargs: Any) -> Any:
        return logging if name == "logging" else real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", finished_import)
    _log.debug("a record %s", "sent")  # (would raise AttributeError on the half-made module)
