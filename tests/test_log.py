"""``pip_linkmode._log``: records reach ``logging`` exactly where they could be seen."""

from __future__ import annotations

import logging
import subprocess
import sys

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
