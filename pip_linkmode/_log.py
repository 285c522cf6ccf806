"""The ``pip_linkmode`` logger, without importing ``logging`` for records no one can see.

Importing ``logging`` (with the ``traceback``, ``tokenize`` and ``string``
it brings) costs a process about 4 ms, a fiftieth of a warm install. A
record below WARNING can reach no handler while ``logging`` has not been
imported: nothing can have configured one, and its root logger's level
is WARNING. So ``debug`` drops its record when ``logging`` is absent from
``sys.modules``, and logs it as usual once anything has imported it; a
warning always imports it (its last-resort handler prints the record).
"""

from __future__ import annotations

import sys

__all__ = ["NAME", "debug", "warning"]

#: the logger every record goes to
NAME = "pip_linkmode"


def debug(msg: str, *args: object) -> None:
    """``logging.getLogger(NAME).debug(msg, *args)`` where it could be seen."""
    if "logging" in sys.modules:
        import logging  # (not the entry itself: another thread may be importing it still)

        logging.getLogger(NAME).debug(msg, *args)


def warning(msg: str, *args: object) -> None:
    """``logging.getLogger(NAME).warning(msg, *args)``."""
    import logging

    logging.getLogger(NAME).warning(msg, *args)
