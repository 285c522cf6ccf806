"""Where ``pip-linkmode install`` runs: here, or re-run inside the
interpreter ``--python`` (or ``PIP_PYTHON``, or the active virtual
environment) names, as pip's ``--python`` re-runs pip there.

Kept apart from ``pip_plugin`` so that deciding, and starting the other
interpreter, imports none of what installing needs (``pip_plugin``'s
imports, filelock and installer: about 0.15 s a run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .modes import ENV_LINK_MODE, LinkMode, link_mode_from_env, parse_link_mode


@dataclass
class _Options:
    mode: LinkMode
    cache_dir: str | None
    python: str | None
    pip_args: list[str]


class UsageError(Exception):
    pass


def _split_options(argv: Sequence[str]) -> _Options:
    """Take out our options; everything else goes to ``pip install`` unchanged.

    ``--cache-dir`` is both ours and pip's: pip keeps its HTTP and wheel
    caches there, we keep the unpacked entries beside them.
    """
    mode: LinkMode | None = None
    cache_dir: str | None = None
    python: str | None = None
    rest: list[str] = []
    args = list(argv)
    i = 0

    def value(opt: str) -> str:
        nonlocal i
        if i + 1 >= len(args):
            raise UsageError(f"{opt} needs a value")
        i += 1
        return args[i]

    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, eq, inline = arg.partition("=")
        if name == "--link-mode":
            raw = inline if eq else value(name)
            try:
                mode = parse_link_mode(raw)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        elif name == "--cache-dir":
            cache_dir = inline if eq else value(name)
            rest.extend(["--cache-dir", cache_dir])
        elif name == "--python":
            python = inline if eq else value(name)
        else:
            rest.append(arg)
        i += 1
    if mode is None:
        try:
            mode = link_mode_from_env()
        except ValueError as exc:
            raise UsageError(f"{ENV_LINK_MODE}: {exc}") from None
    return _Options(mode, cache_dir, python, rest)


def _is_this_environment(prefix: str) -> bool:
    try:
        return os.path.samefile(prefix, sys.prefix)
    except OSError:
        return False


def run_elsewhere(argv: Sequence[str], follow_virtual_env: bool, into: str | None = None) -> int | None:
    """The install re-run in the interpreter it names (``--python``,
    ``PIP_PYTHON``, or with ``follow_virtual_env`` the active venv when it
    is not this one): its exit status. None: it runs here (a usage error
    too, which the install reports). ``into``: why that environment, for
    the summary, where the caller chose it."""
    try:
        opts = _split_options(argv)
    except UsageError:
        return None
    python = opts.python or os.environ.get("PIP_PYTHON") or None
    if python is None and follow_virtual_env:
        active = os.environ.get("VIRTUAL_ENV")
        if active and not _is_this_environment(active):
            python, into = active, f"the active virtual environment {active} (VIRTUAL_ENV)"
    if not python or _same_interpreter(python):
        return None
    return _reexec_with(python, _without_python_option(argv), into)


_REEXEC_CODE = """\
import sys
if sys.version_info < (3, 10):
    sys.stderr.write("pip-linkmode: %s is Python %d.%d; pip-linkmode installs into Python 3.10 to 3.13 "
                     "(use plain pip there: python -m pip install ...)\\n"
                     % (sys.executable, sys.version_info[0], sys.version_info[1]))
    sys.exit(2)
import importlib.util, json, os
_dirs = json.loads(sys.argv[1])
class _Ours:
    @staticmethod
    def find_spec(name, path=None, target=None):
        where = _dirs.get(name)
        if where is None:
            return None
        init = os.path.join(where, "__init__.py")
        return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[where])
sys.meta_path.insert(0, _Ours)
from pip_linkmode.pip_plugin import install_here
sys.exit(install_here(sys.argv[3:], into=sys.argv[2] or None))
"""


def _reexec_with(python: str, argv: Sequence[str], into: str | None = None) -> int:
    """Run ``pip-linkmode install`` inside another interpreter, as pip's
    ``--python`` runs pip there, so it installs into that interpreter's
    environment. Only our code and its dependencies are importable there
    (by name, from this environment's copies), not this environment's other
    packages. ``into``: why that environment, for the summary."""
    import json

    found = _interpreter(python)
    if found is None:
        print(f"pip-linkmode: no Python interpreter at {python}", file=sys.stderr)
        return 2
    dirs = {"pip_linkmode": os.path.dirname(os.path.abspath(__file__))}
    for name in ("installer", "filelock", "packaging", "pip", "zlib_ng"):
        where = _package_dir(name)
        if where is not None:
            dirs[name] = where
        elif name != "zlib_ng":  # (the faster inflater, where this environment has one)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    env = dict(os.environ)
    env.pop("PIP_PYTHON", None)  # followed here: pip there must not run itself elsewhere again
    return subprocess.call([found, "-c", _REEXEC_CODE, json.dumps(dirs), into or "", *argv], env=env)


def _package_dir(name: str) -> str | None:
    """Where a top-level package of this environment is, found without
    importing it (filelock's import alone takes 50 ms, for nothing here)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.abspath(next(iter(spec.submodule_search_locations)))


def _interpreter(python: str) -> str | None:
    """What ``--python`` names, read as pip reads it: an interpreter, or a
    virtual environment's directory (its ``bin/python`` or
    ``Scripts/python.exe``); None where there is none."""
    if os.path.isdir(python):
        candidates = [os.path.join(python, exe) for exe in ("bin/python", "Scripts/python.exe")]
        return next((exe for exe in candidates if os.path.isfile(exe)), None)
    return python if os.path.exists(python) else None


def _same_interpreter(python: str) -> bool:
    """Is ``python`` this interpreter? A venv's python is a symlink to its
    base interpreter (POSIX) or a launcher that starts it (Windows):
    compare the paths as given, not resolved, or the venv would be ignored;
    on Windows in any case."""
    found = _interpreter(python)
    here = os.path.normcase(os.path.abspath(sys.executable))
    return found is not None and os.path.normcase(os.path.abspath(found)) == here


def _without_python_option(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--python":
            skip = True
        elif not arg.startswith("--python="):
            out.append(arg)
    return out


