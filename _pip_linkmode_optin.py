"""The gate of pip-linkmode's ``--use-feature=linkmode`` opt-in, loaded only when pip's CLI is.

``pip_linkmode_optin.pth`` (installed beside this file, at the root of
site-packages) registers a finder on ``sys.meta_path`` at start-up that
answers for one module only, ``pip._internal.cli.main``, by calling
``find_spec`` here. This module then lets pip's own finder find it and wraps
its loader so that, once the module has run, its entry points are wrapped:
called with ``linkmode`` among pip's ``use-feature`` options (the command
line, ``PIP_USE_FEATURE``, or ``use-feature`` in pip's configuration),
``main`` (and pip 26.3's ``cli``) hands over to ``pip_linkmode.optin``;
otherwise it is pip's own, called as it would have been. Nothing here imports pip, installer or
pip_linkmode before pip's ``main`` is called with the feature on (pip's
configuration reader is pip's, imported once pip is running).
"""

from __future__ import annotations

import os
import sys
from typing import Any

TRIGGER = "pip._internal.cli.main"
FEATURE = "linkmode"
ENV = "PIP_USE_FEATURE"
#: what pip's console scripts and ``python -m pip`` call: ``main`` (pip 26.2 and
#: before), ``cli`` (26.3: ``main`` without its import guard is for other callers)
ENTRY_POINTS = ("main", "cli")
#: beside this module: the environment's own opt-in (the ``linkmode`` seeder
#: writes it and lists it in pip-linkmode's RECORD, so uninstalling removes it)
MARKER = "pip_linkmode_optin.on"


def find_spec(name: str, path: Any = None, target: Any = None) -> Any:
    """The spec other finders give for ``name``, its loader wrapped (``TRIGGER`` only)."""
    if name != TRIGGER:
        return None
    for finder in sys.meta_path:
        if type(finder).__name__ == "PipLinkmodeOptIn" or getattr(finder, "__name__", "") == "PipLinkmodeOptIn":
            continue
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        spec = find(name, path, target)
        if spec is not None:
            break
    else:
        return None
    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
        spec.loader = _Loader(spec.loader)
    return spec


class _Loader:
    """pip's loader for its CLI module, which wraps ``main`` once the module has run."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._loader, attr)

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        for name in ENTRY_POINTS:
            original = getattr(module, name, None)
            if callable(original):
                setattr(module, name, _wrap(original))


def _wrap(original: Any) -> Any:
    def main(args: list[str] | None = None) -> Any:
        argv = sys.argv[1:] if args is None else list(args)
        if not requested(argv):
            return original(args)  # pip's own, as it was called
        try:
            from pip_linkmode.optin import run_pip
        except Exception as exc:  # noqa: BLE001 - a broken install must not break pip
            sys.stderr.write(
                f"pip-linkmode: cannot load pip_linkmode ({type(exc).__name__}: {exc}); "
                "installing with plain pip (no links).\n"
            )
            return int(original(without_feature(argv)) or 0)
        return run_pip(original, argv)

    main.__wrapped__ = original  # type: ignore[attr-defined]
    main.__doc__ = getattr(original, "__doc__", None)
    return main


def requested(argv: list[str]) -> bool:
    """Is ``linkmode`` among pip's ``use-feature`` options for this run?

    The command line (``--use-feature=linkmode``, ``--use-feature linkmode``,
    or an abbreviation optparse accepts), ``PIP_USE_FEATURE``, the
    environment's marker, and ``use-feature`` in any section of pip's
    configuration files.
    """
    if any(FEATURE in values for values in _argv_features(argv)):
        return True
    if FEATURE in os.environ.get(ENV, "").split() or marked():
        return True
    return _configured()


def marked() -> bool:
    """Is the environment's own opt-in (``MARKER``) beside this module?"""
    return os.path.isfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), MARKER))


def _argv_features(argv: list[str]) -> list[list[str]]:
    found: list[list[str]] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if len(name) >= len("--use-f") and "--use-feature".startswith(name):
            if eq:
                found.append([value])
            elif i + 1 < len(argv):
                found.append([argv[i + 1]])
    return found


def _configured() -> bool:
    """``use-feature = ... linkmode ...`` in pip's configuration (read by pip's own reader)."""
    try:
        from pip._internal.configuration import Configuration

        config = Configuration(isolated=False)
        config.load()
        return any(FEATURE in value.split() for _, value in config_values(config))
    except Exception:  # noqa: BLE001 - pip reports a broken configuration itself
        return False


def config_values(config: Any) -> list[tuple[str, str]]:
    """``(key, value)`` of every ``use-feature`` in a loaded pip ``Configuration``:
    its ``items()`` gives them so up to pip 26.2, and per file (file name, dict) after."""
    found: list[tuple[str, str]] = []
    for key, value in config.items():
        pairs = value.items() if isinstance(value, dict) else [(key, value)]
        found.extend((k, str(v)) for k, v in pairs if str(k).endswith(".use-feature"))
    return found


def without_feature(argv: list[str]) -> list[str]:
    """``argv`` and ``PIP_USE_FEATURE`` without ``linkmode``, for a pip that cannot accept it."""
    out: list[str] = []
    skip = False
    for i, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        name, eq, value = arg.partition("=")
        if len(name) >= len("--use-f") and "--use-feature".startswith(name):
            if eq and value == FEATURE:
                continue
            if not eq and i + 1 < len(argv) and argv[i + 1] == FEATURE:
                skip = True
                continue
        out.append(arg)
    if ENV in os.environ:
        os.environ[ENV] = " ".join(v for v in os.environ[ENV].split() if v != FEATURE)
    return out
