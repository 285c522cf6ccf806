"""``pip-linkmode`` command line: pip's syntax, with ``install``, ``venv`` and ``cache`` ours.

pip's general options (``-q``, ``--python X``, ``--no-cache-dir``...) may
come before the command, as with pip; they are handed to the command
after it, where pip accepts them too. Our ``cache`` is the linked-wheel
cache; pip's own ``cache`` command is ``pip-cache``.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: pip-linkmode [pip's general options] install [--link-mode MODE] [--cache-dir DIR] <pip install arguments>
       pip-linkmode venv DIR [options] [PACKAGE ...]
       pip-linkmode cache dir|info|list|verify|clean|prune [--cache-dir DIR]   (the linked-wheel cache)
       pip-linkmode pip-cache dir|info|list|remove|purge   (pip's own "pip cache")
       pip-linkmode opt-in status|enable|disable [--site|--user|--global]   (pip install --use-feature=linkmode)
       pip-linkmode help [COMMAND]
       pip-linkmode <any other pip command>   (handed to pip unchanged)

Link modes: auto (default), clone (alias reflink), hardlink, symlink, copy.
Environment: PIP_LINK_MODE, PIP_LINKMODE_CACHE_DIR, PIP_PYTHON; VIRTUAL_ENV
(the pip-linkmode of another environment installs into the active one).
"""

#: ours, before the command as after it (pip's --cache-dir is also ours)
_OUR_VALUE_OPTIONS = ("--link-mode",)

#: pip's general options that take a value, where pip cannot say (pip 23.1-26.3)
_PIP_VALUE_OPTIONS = (
    "--python", "--log", "--log-file", "--local-log", "--proxy", "--retries", "--timeout", "--exists-action",
    "--trusted-host", "--cert", "--client-cert", "--cache-dir", "--use-feature", "--use-deprecated",
    "--keyring-provider", "--resume-retries",
)


def _value_options() -> set[str]:
    """The general options of this pip that take a value (by pip's own table)."""
    try:
        from pip._internal.cli import cmdoptions

        made = [make() for make in cmdoptions.general_group["options"]]  # type: ignore[operator]
        found = {name for opt in made if opt.takes_value() for name in (*opt._long_opts, *opt._short_opts)}
    except Exception:  # noqa: BLE001 - no pip, or one we do not know: the table above
        found = set(_PIP_VALUE_OPTIONS)
    return found | set(_OUR_VALUE_OPTIONS)


def _split_command(args: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """(general options, command, the command's arguments), as pip splits them."""
    # pip's table costs importing pip's option parser (urllib3, ssl, rich:
    # 0.3 s): only where general options come first
    takes_value = _value_options() if args and args[0].startswith("-") else set()
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] not in ("-", "--"):
        arg = args[i]
        i += 2 if arg in takes_value else 1  # (``--opt=value`` is not in it)
    if i < len(args) and args[i] == "--":
        i += 1
    if i >= len(args):
        return list(args), None, []
    return list(args[:i]), args[i], list(args[i + 1 :])


def _version() -> str:
    from . import __version__

    found = [f"pip-linkmode {__version__} from {os.path.dirname(os.path.abspath(__file__))}"]
    for name in ("pip", "installer"):
        try:
            mod = __import__(name)
            found.append(f"{name} {getattr(mod, '__version__', '?')}")
        except ImportError:
            found.append(f"{name} not installed")
    py = sys.version_info
    return f"{found[0]} ({', '.join(found[1:])}; Python {py[0]}.{py[1]}.{py[2]})"


def main(argv: Sequence[str] | None = None, *, follow_virtual_env: bool = False) -> int:
    """``follow_virtual_env``: run as the ``pip-linkmode`` command (not
    ``python -m``), where ``install`` follows an active virtual environment
    that is not this one."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = _dispatch(args, follow_virtual_env)
        sys.stdout.flush()
    except OSError as exc:
        # a reader that stopped early (``| head``): nothing more to say to it
        # (Windows reports a pipe closed at the other end as EINVAL)
        if not _reader_gone(exc):
            raise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return status


def _reader_gone(exc: OSError) -> bool:
    """Is ``exc`` a write to stdout whose reader has gone?"""
    if isinstance(exc, BrokenPipeError):
        return True
    if os.name != "nt" or exc.errno != errno.EINVAL:
        return False
    try:  # Windows: EINVAL from a write into a pipe whose reader closed it
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):
        return False


def _dispatch(args: list[str], follow_virtual_env: bool) -> int:
    general, command, rest = _split_command(args)
    if command is None:
        if any(a in ("--version", "-V") for a in general):
            print(_version())
            return 0
        sys.stdout.write(USAGE)
        return 0 if any(a in ("-h", "--help") for a in general) else 2
    if command == "help":
        return _help(rest[:1])
    if command == "install":
        from ._reexec import run_elsewhere

        argv = [*general, *rest]
        status = run_elsewhere(argv, follow_virtual_env)  # (importing nothing an install needs)
        if status is not None:
            return status
        from .pip_plugin import install_here

        return install_here(argv)
    if command == "cache":
        return main_cache([*_ours(general, ("--cache-dir",)), *rest])
    if command == "pip-cache":
        from .pip_plugin import main_passthrough

        return main_passthrough([*general, "cache", *rest])
    if command == "opt-in":
        from .optin import main_opt_in

        return main_opt_in(rest)
    if command == "venv":
        from .venv import main_venv

        return main_venv([*_ours(general, ("--cache-dir", "--link-mode", "--python")), *rest])
    from .pip_plugin import main_passthrough

    return main_passthrough([*_without(general, _OUR_VALUE_OPTIONS), command, *rest])


def _without(general: Sequence[str], ours: Sequence[str]) -> list[str]:
    """pip's general options, ours (which pip would not know) taken out."""
    out: list[str] = []
    i = 0
    while i < len(general):
        name = general[i].partition("=")[0]
        if name in ours:
            i += 1 if "=" in general[i] else 2
            continue
        out.append(general[i])
        i += 1
    return out


def _ours(general: Sequence[str], known: Sequence[str]) -> list[str]:
    """Of pip's general options given before one of our commands, those it
    knows (``-q`` too); pip's others mean nothing to it."""
    out: list[str] = []
    i = 0
    takes_value = _value_options() if general else set()
    while i < len(general):
        arg = general[i]
        name = arg.partition("=")[0]
        width = 2 if name == arg and name in takes_value else 1
        if name in known or arg in ("-q", "--quiet"):
            out.extend(general[i : i + width])
        i += width
    return out


def _help(topic: Sequence[str]) -> int:
    """``pip-linkmode help [COMMAND]``: ours for our commands, pip's for pip's."""
    if not topic:
        sys.stdout.write(USAGE)
        return 0
    name = topic[0]
    if name == "install":
        from .pip_plugin import main_install

        return main_install(["--help"])
    if name == "cache":
        return main_cache(["--help"])
    if name == "venv":
        from .venv import main_venv

        return main_venv(["--help"])
    if name == "opt-in":
        from .optin import main_opt_in

        return main_opt_in(["--help"])
    from .pip_plugin import main_passthrough

    return main_passthrough(["help", "cache" if name == "pip-cache" else name])


_CACHE_ACTIONS = {
    "dir": ("print the cache's location",
            "Print the directory of the linked-wheel cache (pip's own cache: pip-linkmode pip-cache dir)."),
    "info": ("location, entries, files, size, what links share",
             "Show where the cache is, how many wheels and files it holds, their size, and how much "
             "environments share with it by links."),
    "list": ("one line per entry",
             "List the cached wheels, one line each; with PROJECT names, only theirs."),
    "verify": ("re-hash every cached file against its RECORD",
               "Re-hash every file the cache holds or produced (sources, bytecode, layouts, plans) "
               "against its recorded hash; exit 1 if any differs. --repair re-creates or removes damaged entries."),
    "clean": ("remove all entries, or those of the named projects",
              "Remove every entry, or those of the named projects. Environments that hardlinked, cloned "
              "or copied from them keep working; those in symlink mode would not, so their entries are "
              "kept unless --force."),
    "prune": ("remove leftovers of interrupted runs and unused entries",
              "Remove what interrupted runs left (temporary trees, stale locks) and, with --older-than "
              "DAYS, entries no install used for that long."),
}

#: pip's cache actions, reachable as ``pip-linkmode pip-cache ...``
_PIP_CACHE_ACTIONS = ("remove", "purge")


def main_cache(argv: Sequence[str]) -> int:
    """``pip-linkmode cache dir | info | list | verify | clean | prune``."""
    import argparse

    from . import cache_admin
    from .cache import CacheError, WheelCache

    args = list(argv)
    action = next((a for a in args if not a.startswith("-")), None)
    if action in _PIP_CACHE_ACTIONS:
        print(
            f"pip-linkmode cache: {action!r} is pip's cache command (pip's HTTP and wheel caches): "
            f"run `pip-linkmode pip-cache {action} ...`; the linked-wheel cache has "
            f"{', '.join(_CACHE_ACTIONS)} (`pip-linkmode cache clean` empties it)",
            file=sys.stderr,
        )
        return 2
    cache_help = "the cache (default: PIP_LINKMODE_CACHE_DIR or the user cache dir)"
    parser = argparse.ArgumentParser(
        prog="pip-linkmode cache",
        description="The linked-wheel cache: wheels unpacked once, that environments link from. "
        "pip's own cache (downloads, built wheels) is `pip-linkmode pip-cache`.",
    )
    parser.add_argument("--cache-dir", help=cache_help)
    parser.add_argument("-q", "--quiet", action="store_true", help=argparse.SUPPRESS)
    # --cache-dir is accepted after the action too (`cache verify --cache-dir D`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, help=cache_help)
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    made = {
        name: sub.add_parser(name, parents=[common], help=short, description=long)
        for name, (short, long) in _CACHE_ACTIONS.items()
    }
    made["list"].add_argument("projects", nargs="*", metavar="PROJECT")
    made["verify"].add_argument("--repair", action="store_true", help="re-create or remove damaged entries")
    made["clean"].add_argument("projects", nargs="*", metavar="PROJECT")
    made["clean"].add_argument("--force", action="store_true", help="also remove entries symlink-mode environments use")
    made["prune"].add_argument("--older-than", type=float, metavar="DAYS", help="also remove entries unused for DAYS")
    made["prune"].add_argument("--force", action="store_true", help="also remove entries symlink-mode environments use")
    try:
        opts = parser.parse_args(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    cache = WheelCache(opts.cache_dir)
    try:
        if opts.action == "dir":
            print(cache.root)
        elif opts.action == "info":
            print(cache_admin.info(cache).render())
        elif opts.action == "list":
            for line in cache_admin.list_entries(cache, opts.projects):
                print(line)
        elif opts.action == "verify":
            cache_admin.require_cache(cache)  # nothing there is not "every file matches"
            problems = cache_admin.verify(cache)
            for problem in problems:
                print(problem.render())
            if problems and opts.repair:
                for line in cache_admin.repair(cache, problems):
                    print(line)
                return 0
            if not problems:
                print(f"cache {cache.root}: every file matches its RECORD")
            return 1 if problems else 0
        else:
            if opts.action == "clean":
                result = cache_admin.clean(cache, opts.projects, force=opts.force)
            else:
                result = cache_admin.prune(cache, opts.older_than, force=opts.force)
            for line in result.removed:
                print(f"removed {line}")
            for line in result.kept:
                print(f"kept {line}", file=sys.stderr)
            return 1 if result.kept else 0
    except CacheError as exc:
        print(f"pip-linkmode cache: {exc}", file=sys.stderr)
        return 2
    return 0


def console_main() -> int:
    """The ``pip-linkmode`` command."""
    return main(follow_virtual_env=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
