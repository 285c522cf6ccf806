"""``pip-linkmode`` command line: ``install``, ``venv``, ``cache`` and pip pass-through."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: pip-linkmode install [--link-mode MODE] [--cache-dir DIR] <pip install arguments>
       pip-linkmode venv DIR [options] [PACKAGE ...]
       pip-linkmode <any other pip command>   (handed to pip unchanged)

Link modes: auto (default), clone (alias reflink), hardlink, symlink, copy.
Environment: PIP_LINK_MODE, PIP_LINKMODE_CACHE_DIR.
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("--version", "-V"):
        from . import __version__

        print(f"pip-linkmode {__version__}")
        return 0
    if command == "install":
        from .pip_plugin import main_install

        return main_install(rest)
    if command == "venv":
        from .venv import main_venv

        return main_venv(rest)
    from .pip_plugin import main_passthrough

    return main_passthrough(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
