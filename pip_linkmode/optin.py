"""The ``--use-feature=linkmode`` opt-in: plain ``pip install`` linking, and pip's configuration for it.

``pip_linkmode_optin.pth`` and the top-level ``_pip_linkmode_optin`` gate
(see that module) call ``run_pip`` when pip's ``main`` runs with
``linkmode`` among its ``use-feature`` options. ``run_pip`` makes
``linkmode`` a choice pip's ``--use-feature`` accepts, and wraps pip's
install command so that, where pip parsed the feature as enabled, the
command runs with the same hook ``pip-linkmode install`` attaches. A pip
outside the supported range, or one whose internals moved, gets one
warning line and a plain install.

``main_opt_in`` is ``pip-linkmode opt-in status|enable|disable``: it reads
and writes ``use-feature`` in pip's configuration files with pip's own
configuration class, as ``pip config`` does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["FEATURE", "PTH_NAME", "GATE_MODULE", "main_opt_in", "root_files", "run_pip"]

FEATURE = "linkmode"
#: the start-up file and the gate module, both at the root of site-packages
PTH_NAME = "pip_linkmode_optin.pth"
GATE_MODULE = "_pip_linkmode_optin"
_PREFIX = "pip-linkmode: "


def root_files() -> dict[str, Path]:
    """The opt-in's files that live beside the ``pip_linkmode`` package
    (site-packages, or the source tree of an editable install), by name;
    those missing are left out."""
    here = Path(__file__).resolve().parent.parent
    names = (PTH_NAME, f"{GATE_MODULE}.py")
    return {name: here / name for name in names if (here / name).is_file()}


_NO_HOOK = (
    f"not installed: no {PTH_NAME} in this environment's site-packages (an editable install "
    "has none; install pip-linkmode from a wheel)"
)


def installed_hook() -> Path | None:
    """The start-up file, where it is in a site-packages directory this
    interpreter reads (not a source tree beside an editable install)."""
    import site
    import sysconfig

    pth = root_files().get(PTH_NAME)
    if pth is None:
        return None
    paths = sysconfig.get_paths()
    sites = {paths["purelib"], paths["platlib"], *site.getsitepackages()}
    if site.ENABLE_USER_SITE:
        sites.add(site.getusersitepackages())
    wanted = os.path.normcase(os.path.realpath(pth.parent))
    return pth if any(os.path.normcase(os.path.realpath(d)) == wanted for d in sites) else None


def _warn(message: str) -> None:
    sys.stderr.write(f"{_PREFIX}{message}\n")
    sys.stderr.flush()


# -- inside pip -----------------------------------------------------------------


def run_pip(pip_main: Callable[..., Any], argv: Sequence[str]) -> int:
    """pip's ``main(argv)`` with ``linkmode`` accepted by ``--use-feature``
    and the hook attached around the install command where it is enabled."""
    from _pip_linkmode_optin import without_feature

    argv = list(argv)
    try:
        with _feature_accepted(), _install_command_wrapped(argv):
            return int(pip_main(argv) or 0)
    except _Moved as exc:
        _warn(f"{exc}; installing with plain pip (no links).")
        return int(pip_main(without_feature(argv)) or 0)


class _Moved(Exception):
    """pip's internals are not where the opt-in attaches."""


@contextlib.contextmanager
def _feature_accepted() -> Iterator[None]:
    """``linkmode`` among the choices of pip's ``--use-feature`` option, for
    the command line, ``PIP_USE_FEATURE`` and the configuration files alike
    (pip checks each value against the option's choices)."""
    import pip

    try:
        from pip._internal.cli import cmdoptions
    except ImportError as exc:
        raise _Moved(f"pip {pip.__version__} has no {exc.name}") from None
    factory = getattr(cmdoptions, "use_new_feature", None)
    choices = getattr(factory, "keywords", {}).get("choices")
    if not isinstance(choices, list):
        raise _Moved(f"pip {pip.__version__}'s --use-feature option has no list of choices")
    added = FEATURE not in choices
    if added:
        choices.append(FEATURE)
    try:
        yield
    finally:
        if added and FEATURE in choices:
            choices.remove(FEATURE)


@contextlib.contextmanager
def _install_command_wrapped(argv: Sequence[str]) -> Iterator[None]:
    import pip

    try:
        from pip._internal.commands import install as install_cmd
    except ImportError as exc:
        raise _Moved(f"pip {pip.__version__} has no {exc.name}") from None
    command = getattr(install_cmd, "InstallCommand", None)
    original = getattr(command, "run", None)
    if command is None or original is None:
        raise _Moved(f"pip {pip.__version__} has no InstallCommand.run")

    from _pip_linkmode_optin import marked

    def run(self: Any, options: Any, args: list[str]) -> int:
        enabled = FEATURE in (getattr(options, "features_enabled", None) or []) or marked()
        if not enabled or _hook_attached():
            return int(original(self, options, args))
        return _linked_run(lambda: int(original(self, options, args)), argv)

    command.run = run
    try:
        yield
    finally:
        command.run = original


def _hook_attached() -> bool:
    """Is ``pip-linkmode install`` already running pip with its hook?"""
    try:
        from pip._internal.operations.install import wheel as wheel_mod
    except ImportError:
        return False
    return getattr(wheel_mod.install_wheel, "__module__", None) == "pip_linkmode.pip_plugin"


def _cache_dir(argv: Sequence[str]) -> str | None:
    """``--cache-dir`` as given on pip's command line (shared with pip, as
    ``pip-linkmode install --cache-dir`` is)."""
    found: str | None = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if name == "--cache-dir":
            found = value if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return found


def _linked_run(run: Callable[[], int], argv: Sequence[str]) -> int:
    """The install command, with ``pip-linkmode install``'s hook: the same
    checks, cache, healing, progress and summary lines (``run_hooked``)."""
    from .modes import ENV_LINK_MODE, link_mode_from_env
    from .pip_plugin import pip_support_problem, run_hooked

    problem = pip_support_problem()
    if problem is not None:
        _warn(f"{problem}; installing with plain pip (no links).")
        return run()
    try:
        mode = link_mode_from_env()
    except ValueError as exc:
        _warn(f"error: {ENV_LINK_MODE}: {exc}")
        return 2
    args = list(argv)
    if "install" in args:
        del args[args.index("install")]
    return run_hooked(run, args, mode, _cache_dir(argv), asked=f"{ENV_LINK_MODE}=symlink", error="pip-linkmode: error")


# -- pip's configuration ----------------------------------------------------------

#: where ``enable``/``disable`` write, as ``pip config --global|--user|--site``
VARIANTS = ("site", "user", "global")
_KEY = "global.use-feature"


def _configuration(variant: str | None) -> Any:
    from pip._internal.configuration import Configuration, Kind

    config = Configuration(isolated=False, load_only=Kind(variant) if variant else None)
    config.load()
    return config


def _features(value: Any) -> list[str]:
    return str(value).split() if value is not None else []


def _files_of(variant: str) -> list[str]:
    from pip._internal.configuration import Kind, get_configuration_files

    return list(get_configuration_files().get(Kind(variant), []))


def status_lines() -> list[str]:
    """Where the opt-in is on for this environment, and whether pip here can take it."""
    from _pip_linkmode_optin import config_values, requested

    from .pip_plugin import pip_support_problem

    lines: list[str] = []
    pth = installed_hook()
    if pth is not None:
        lines.append(f"hook: installed ({pth})")
    else:
        lines.append(f"hook: {_NO_HOOK}")
    from _pip_linkmode_optin import MARKER, marked

    if marked():
        lines.append(f"environment marker: on ({Path(__file__).resolve().parent.parent / MARKER}, "
                     "written by the linkmode seeder or pip-linkmode venv --seed-linkmode; `disable --site` removes it)")
    env = os.environ.get("PIP_USE_FEATURE")
    if env is not None:
        lines.append(f"PIP_USE_FEATURE={env!r} ({'on' if FEATURE in env.split() else 'off'})")
    for variant in VARIANTS:
        files = _files_of(variant)
        values = [v for k, v in config_values(_configuration(variant)) if not k.startswith(":env:")]
        state = f"use-feature = {' / '.join(values)}" if values else "no use-feature"
        state_of = "on" if any(FEATURE in v.split() for v in values) else "off"
        lines.append(f"{variant} config ({', '.join(files) or 'no file'}): {state} (linkmode {state_of})")
    on = requested([])
    problem = pip_support_problem()
    links = on and problem is None and pth is not None
    lines.append(
        f"plain `pip install` here: {'links' if links else 'plain pip'}"
        + (f" ({problem})" if on and problem else "")
    )
    return lines


def set_enabled(enabled: bool, variant: str) -> tuple[str, str]:
    """Add ``linkmode`` to (or remove it from) ``global.use-feature`` in
    one configuration file, keeping any other feature; (file, new value)."""
    config = _configuration(variant)
    try:
        current = _features(config.get_value(_KEY))
    except Exception:  # noqa: BLE001 - pip's ConfigurationError: not set
        current = []
    if enabled:
        wanted = current if FEATURE in current else [*current, FEATURE]
    else:
        wanted = [f for f in current if f != FEATURE]
    if wanted == current:
        return str(config.get_file_to_edit()), " ".join(current)
    if wanted:
        config.set_value(_KEY, " ".join(wanted))
    else:
        config.unset_value(_KEY)
    config.save()
    return str(config.get_file_to_edit()), " ".join(wanted)


def mark_environment(site_dir: str | os.PathLike[str]) -> Path:
    """Turn the opt-in on for the environment whose site-packages is
    ``site_dir`` (where pip-linkmode is installed): the marker file beside the
    gate, with a row in pip-linkmode's RECORD, so that ``pip uninstall
    pip-linkmode`` removes it and leaves plain pip (a ``use-feature`` line
    in the environment's pip.conf would outlive pip-linkmode, and pip would
    then refuse it)."""
    import base64
    import csv
    import hashlib
    import io

    from _pip_linkmode_optin import MARKER

    from .linker import write_beside

    site = Path(site_dir)
    (info,) = site.glob("pip_linkmode-*.dist-info")
    data = b"use-feature = linkmode\n"
    marker = site / MARKER
    write_beside(str(marker), data, 0o644)
    record = info / "RECORD"
    rows = [r for r in csv.reader(record.read_text("utf-8").splitlines()) if r and r[0] != MARKER]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    rows.append([MARKER, f"sha256={digest}", str(len(data))])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    write_beside(str(record), out.getvalue().encode("utf-8"), 0o644)
    return marker


def unmark_environment() -> Path | None:
    """Remove this environment's marker (and its RECORD row); its path, or None."""
    import csv
    import io

    from _pip_linkmode_optin import MARKER

    from .linker import write_beside

    marker = Path(__file__).resolve().parent.parent / MARKER
    if not marker.is_file():
        return None
    marker.unlink()
    for info in marker.parent.glob("pip_linkmode-*.dist-info"):
        record = info / "RECORD"
        if record.is_file():
            text = record.read_text("utf-8")
            rows = [r for r in csv.reader(text.splitlines()) if r and r[0] != MARKER]
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            write_beside(str(record), out.getvalue().encode("utf-8"), 0o644)
    return marker


USAGE = "usage: pip-linkmode opt-in status | enable [--site|--user|--global] | disable [--site|--user|--global]"


def main_opt_in(argv: Sequence[str]) -> int:
    """``pip-linkmode opt-in status|enable|disable [--site|--user|--global]``."""
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print(
            "enable/disable write use-feature in pip's configuration (default --site: this "
            "environment's own file; --user and --global reach every environment, and a pip "
            "without pip-linkmode rejects the feature)"
        )
        return 0 if args else 2
    action, rest = args[0], args[1:]
    variants = [a[2:] for a in rest if a in ("--site", "--user", "--global")]
    unknown = [a for a in rest if a not in ("--site", "--user", "--global")]
    if action not in ("status", "enable", "disable") or unknown or len(variants) > 1:
        print(f"pip-linkmode opt-in: error: {' '.join(args)!r} not understood\n{USAGE}", file=sys.stderr)
        return 2
    try:
        if action == "status":
            if variants:
                print(f"pip-linkmode opt-in: error: status takes no --{variants[0]}", file=sys.stderr)
                return 2
            for line in status_lines():
                print(line)
            return 0
        variant = variants[0] if variants else "site"
        if action == "enable" and installed_hook() is None:
            print(f"pip-linkmode opt-in: error: the hook is {_NO_HOOK}; pip here would refuse "
                  "use-feature = linkmode, so nothing was written", file=sys.stderr)
            return 2
        path, value = set_enabled(action == "enable", variant)
        unmarked = unmark_environment() if action == "disable" and variant == "site" else None
        if unmarked is not None:
            print(f"removed {unmarked} (the environment's marker)")
    except Exception as exc:  # noqa: BLE001 - pip's ConfigurationError, OSError: one line
        print(f"pip-linkmode opt-in: error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    state = "on" if action == "enable" else "off"
    print(f"{path}: use-feature = {value or '(unset)'} (linkmode {state} for pip in this environment"
          f"{'' if variant == 'site' else ' and every environment reading this file'})")
    return 0
