"""Child process of the benchmark harness: one ``install_wheels`` call, timed.

Run as ``python benchmarks/lib_install.py VENV MODE CACHE WHEEL_DIR
[--compile] [--phases] [--cprofile FILE]``. Prints one JSON line on stdout:
the time to import pip_linkmode, the time of the ``install_wheels`` call
alone, the process's own peak RSS and, with ``--phases``, the exclusive
wall time spent in each phase of the install (see ``PHASES``).

Not part of the test suite; it imports pip_linkmode from the repository.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

# (phase, module, class or None, attribute). Exclusive time: a phase's own
# time minus the time of phases nested inside it (main thread only; the
# linker's worker threads are covered by the main thread waiting on them).
PHASES: tuple[tuple[str, str, str | None, str], ...] = (
    ("target/scheme", "pip_linkmode.install", None, "target_for_venv"),
    ("cache key + lookup", "pip_linkmode.cache", "WheelCache", "get"),
    ("unpack into cache (miss)", "pip_linkmode.cache", "WheelCache", "_populate"),
    ("installer.install bookkeeping", "installer", None, "install"),
    ("planned install loop (install_cached)", "pip_linkmode.destination", "LinkingDestination", "install_cached"),
    ("queue link jobs (write_file)", "pip_linkmode.destination", "LinkingDestination", "write_file"),
    ("generated files (RECORD, INSTALLER, scripts)", "pip_linkmode.destination", "LinkingDestination", "write_to_fs"),
    ("finalize (RECORD rows)", "pip_linkmode.destination", "LinkingDestination", "finalize_installation"),
    ("link: mkdir + device grouping", "pip_linkmode.linker", "Linker", "_group_by_devices"),
    ("link: clone whole trees", "pip_linkmode.linker", "Linker", "_clone_trees"),
    ("link: place files", "pip_linkmode.linker", "Linker", "run"),
    ("link: directories and files (run_dirs)", "pip_linkmode.linker", "Linker", "run_dirs"),
    ("entry layout (load_layout)", "pip_linkmode.placement", None, "load_layout"),
    ("laid-out install (RECORD rows, specials)", "pip_linkmode.laidout", None, "install_layout"),
    ("generated files (Linker.write)", "pip_linkmode.linker", "Linker", "write"),
    ("stored layout", "pip_linkmode.placement", None, "stored_layout"),
    ("prepare entries (index, entry.json)", "pip_linkmode.bytecode", None, "prepare"),
    ("entry locks", "pip_linkmode.cache", "WheelCache", "lock"),
    ("compile: cached bytecode", "pip_linkmode.bytecode", None, "ensure_bytecode"),
    ("compile: queue pyc links", "pip_linkmode.destination", "LinkingDestination", "_queue_cached_bytecode"),
    ("compile: installer fallback", "installer.destinations", "SchemeDictionaryDestination", "_compile_bytecode"),
)


class PhaseTimer:
    """Exclusive wall time per phase, measured by wrapping functions."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [phase, start, nested time]
        self._main = threading.get_ident()

    def wrap(self, phase: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._main:
                return func(*args, **kwargs)
            frame: list[Any] = [phase, time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return func(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[1]
                self.totals[phase] = self.totals.get(phase, 0.0) + spent - frame[2]
                self.calls[phase] = self.calls.get(phase, 0) + 1
                if self._stack:
                    self._stack[-1][2] += spent

        return wrapper

    def attach(self) -> list[str]:
        """Wrap every phase function that exists; return those that do not."""
        import importlib

        missing: list[str] = []
        for phase, module_name, cls_name, attr in PHASES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                missing.append(f"{module_name}.{attr}")
                continue
            owner: Any = getattr(module, cls_name, None) if cls_name else module
            func = getattr(owner, attr, None) if owner is not None else None
            if func is None:
                missing.append(f"{module_name}.{cls_name + '.' if cls_name else ''}{attr}")
                continue
            setattr(owner, attr, self.wrap(phase, func))
        return missing


class DoorReport:
    """What ``installer_door`` did, as ``install_wheels``'s report says it."""

    def __init__(self) -> None:
        from pip_linkmode import LinkReport

        self.links = LinkReport()
        self.installed: list[str] = []
        self.unpacked = 0

    def summary(self) -> str:
        return self.links.summary()


def installer_door(
    wheels: list[str], *, venv: str, link_mode: str, cache: str, compile_bytecode: bool, batch: bool = False
) -> DoorReport:
    """The installer door as a tool uses it: per wheel, ``WheelCache.open``
    and a ``LinkingDestination`` handed to ``installer.install``; with
    ``batch``, every destination in one ``LinkBatch``."""
    import contextlib

    import installer

    from pip_linkmode import LinkBatch, LinkingDestination, WheelCache
    from pip_linkmode.install import target_for_venv

    target = target_for_venv(venv)
    wheel_cache = WheelCache(cache)
    report = DoorReport()
    kind: Any = "win-amd64" if os.name == "nt" else "posix"
    group = LinkBatch(link_mode) if batch else None
    with group if group is not None else contextlib.nullcontext():
        for wheel in wheels:
            with wheel_cache.open(wheel) as source:
                destination = LinkingDestination(
                    target.scheme_for(source.distribution), target.interpreter, kind,
                    bytecode_optimization_levels=(0,) if compile_bytecode else (), link_mode=link_mode,
                    batch=group,
                )
                installer.install(source, destination, {"INSTALLER": b"pip-linkmode\n"})
            if group is None:
                report.links.merge(destination.report)
            report.installed.append(source.distribution)
    if group is not None:
        report.links.merge(group.report)
    return report


class Args:
    """The command line (parsed without argparse: its 9 ms of imports are
    no part of the install a library user runs)."""

    def __init__(self) -> None:
        self.venv = self.mode = self.cache = self.wheel_dir = ""
        self.compile = self.phases = False
        self.cprofile: str | None = None
        self.door = "install_wheels"


def parse_args(argv: list[str]) -> Args:
    """``VENV MODE CACHE WHEEL_DIR [--compile] [--phases] [--cprofile FILE]
    [--door install_wheels|installer|installer-batch]``"""
    args, rest = Args(), list(argv)
    positional = []
    while rest:
        arg = rest.pop(0)
        if arg in ("--compile", "--phases"):
            setattr(args, arg[2:], True)
        elif arg in ("--cprofile", "--door") and rest:
            setattr(args, arg[2:], rest.pop(0))
        elif arg.startswith("-"):
            raise SystemExit(f"lib_install.py: unknown option {arg}\n{parse_args.__doc__}")
        else:
            positional.append(arg)
    if len(positional) != 4 or args.door not in ("install_wheels", "installer", "installer-batch"):
        raise SystemExit(f"usage: lib_install.py {parse_args.__doc__}")
    args.venv, args.mode, args.cache, args.wheel_dir = positional
    return args


def main() -> int:
    args = parse_args(sys.argv[1:])
    wheels = sorted(
        os.path.join(args.wheel_dir, n) for n in os.listdir(args.wheel_dir) if n.endswith(".whl")
    )

    t0 = time.perf_counter()
    install: Callable[..., Any] = installer_door
    if args.door == "installer-batch":
        install = functools.partial(installer_door, batch=True)
    elif args.door == "install_wheels":
        from pip_linkmode import install_wheels

        install = install_wheels

    t1 = time.perf_counter()
    timer = PhaseTimer() if args.phases else None
    missing = timer.attach() if timer is not None else []
    profiler = None
    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
    t2 = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    report = install(
        wheels,
        venv=args.venv,
        link_mode=args.mode,
        cache=args.cache,
        compile_bytecode=args.compile,
    )
    if profiler is not None:
        profiler.disable()
    t3 = time.perf_counter()
    if profiler is not None and args.cprofile:
        profiler.dump_stats(args.cprofile)
    out: dict[str, Any] = {
        "import_s": t1 - t0,
        "call_s": t3 - t2,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "installed": len(report.installed),
        "unpacked": report.unpacked,
        "summary": report.summary(),
    }
    if timer is not None:
        out["phases"] = timer.totals
        out["phase_calls"] = timer.calls
        out["phases_missing"] = missing
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
