"""``pip-linkmode`` command line: ``install``, ``venv``, ``cache`` and pip pass-through."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

USAGE = """\
usage: pip-linkmode install [--link-mode MODE] [--cache-dir DIR] <pip install arguments>
       pip-linkmode venv DIR [options] [PACKAGE ...]
       pip-linkmode cache dir|info|list|verify|clean|prune [--cache-dir DIR]
       pip-linkmode opt-in status|enable|disable [--site|--user|--global]   (pip install --use-feature=linkmode)
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
    if command == "cache":
        return main_cache(rest)
    if command == "opt-in":
        from .optin import main_opt_in

        return main_opt_in(rest)
    if command == "venv":
        from .venv import main_venv

        return main_venv(rest)
    from .pip_plugin import main_passthrough

    return main_passthrough(args)


def main_cache(argv: Sequence[str]) -> int:
    """``pip-linkmode cache dir | info | list | verify | clean | prune``."""
    import argparse

    from . import cache_admin
    from .cache import CacheError, WheelCache

    cache_help = "the cache (default: PIP_LINKMODE_CACHE_DIR or the user cache dir)"
    parser = argparse.ArgumentParser(prog="pip-linkmode cache")
    parser.add_argument("--cache-dir", help=cache_help)
    # --cache-dir is accepted after the action too (`cache verify --cache-dir D`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, help=cache_help)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("dir", parents=[common], help="print the cache's location")
    sub.add_parser("info", parents=[common], help="location, entries, files, size, what links share")
    p_list = sub.add_parser("list", parents=[common], help="one line per entry")
    p_list.add_argument("projects", nargs="*")
    p_verify = sub.add_parser("verify", parents=[common], help="re-hash every cached file against its RECORD")
    p_verify.add_argument("--repair", action="store_true", help="re-create or remove damaged entries")
    p_clean = sub.add_parser("clean", parents=[common], help="remove all entries, or those of the named projects")
    p_clean.add_argument("projects", nargs="*")
    p_clean.add_argument("--force", action="store_true", help="also remove entries symlink-mode environments use")
    p_prune = sub.add_parser("prune", parents=[common], help="remove leftovers of interrupted runs and unused entries")
    p_prune.add_argument("--older-than", type=float, metavar="DAYS", help="also remove entries unused for DAYS")
    p_prune.add_argument("--force", action="store_true", help="also remove entries symlink-mode environments use")
    opts = parser.parse_args(list(argv))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
