"""The pip integration: pip does everything, except that wheel files arrive by links.

While ``pip-linkmode install`` runs pip in-process, two things are patched:

* ``install_wheel`` (pip's wheel-install step) is wrapped: before pip
  unpacks a wheel, the wheel is opened in the shared cache (unpacked and
  verified once), and made the active entry;
* ``ZipBackedFile.save`` (pip's "extract this member to its destination")
  links the member from the active cache entry instead of extracting it.

Everything else stays pip's own: resolving, building sdists, uninstalling
an old version, the RECORD it writes (it reuses the wheel's RECORD rows for
unchanged files), console scripts, INSTALLER, REQUESTED, direct_url.json,
bytecode compiling and rollback. Scripts under ``.data/scripts`` are left
to pip, which rewrites their ``#!python`` line in place, as are editable
installs and anything from a pip version whose internals we do not know.
"""

from __future__ import annotations

import compileall
import contextlib
import os
import py_compile
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import bytecode
from .cache import ENV_CACHE_DIR, CachedWheel, WheelCache
from .cache_admin import record_user
from .linker import Linker, LinkJob, LinkReport
from .modes import CHOICES, ENV_LINK_MODE, LinkMode, link_mode_from_env, parse_link_mode

__all__ = ["SUPPORTED_PIP", "main_install", "main_passthrough", "pip_support_problem"]

#: keyword arguments of compileall.compile_file that we understand
_COMPILE_KWARGS = {"force", "quiet", "optimize", "invalidation_mode", "ddir", "legacy", "rx"}

#: pip release lines whose internals this hook is written against.
SUPPORTED_PIP = ((23, 1), (26, 3))


def _pip_version() -> tuple[int, int] | None:
    try:
        import pip
    except ImportError:
        return None
    parts = pip.__version__.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None


def pip_support_problem() -> str | None:
    """Why the hook cannot attach to this pip, or None when it can."""
    version = _pip_version()
    if version is None:
        return "pip is not importable"
    low, high = SUPPORTED_PIP
    import pip

    if not low <= version <= high:
        return (
            f"pip {pip.__version__} is outside the supported range "
            f"{low[0]}.{low[1]} to {high[0]}.{high[1]}"
        )
    try:
        from pip._internal.cli.main import main  # noqa: F401
        from pip._internal.operations.install import wheel as wheel_mod
        from pip._internal.req import req_install
    except ImportError as exc:
        return f"pip {pip.__version__} has no {exc.name}"
    for owner, attr in (
        (wheel_mod, "install_wheel"),
        (wheel_mod, "ZipBackedFile"),
        (req_install, "InstallRequirement"),
    ):
        if not hasattr(owner, attr):
            return f"pip {pip.__version__} has no {owner.__name__}.{attr}"
    if not callable(getattr(wheel_mod.ZipBackedFile, "save", None)):
        return f"pip {pip.__version__}'s ZipBackedFile has no save()"
    return None


@dataclass
class _Active:
    entry: CachedWheel
    files: dict[str, int]  # archive path -> size, for files we may link
    tree: str
    own: tuple[str, ...]  # archive prefixes of what pip writes too: placed at once
    compiling: bool  # pip will compile the installed sources
    linked: dict[str, str] = field(default_factory=dict)  # env path -> archive path
    written: list[str] = field(default_factory=list)  # files pip saved itself where none was
    #: per (level, invalidation mode): the sources whose cached pyc is placed
    pycs: dict[tuple[int, str], set[str]] = field(default_factory=dict)


class _Hook:
    """The patches, and the state they share during one pip run."""

    def __init__(self, mode: LinkMode, cache: WheelCache) -> None:
        self.mode = mode
        self.cache = cache
        self.linker = Linker(mode)
        self.report = LinkReport(requested=mode)
        self.local = threading.local()
        self.wheels = 0

    def _active(self) -> _Active | None:
        return getattr(self.local, "active", None)

    def wrap_install_wheel(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def install_wheel(name: str, wheel_path: str, *args: Any, **kwargs: Any) -> Any:
            if getattr(self.local, "editable", False):
                return original(name, wheel_path, *args, **kwargs)
            entry = self.cache.get(wheel_path)
            data_scripts = f"{entry.dist_info[: -len('.dist-info')]}.data/scripts/"
            files = {f.path: f.size for f in entry.files if not f.path.startswith(data_scripts)}
            # Package files are placed by the linker's threads while pip goes
            # on, except what pip itself looks at before it returns: sources
            # it will compile (it checks they exist), and what it may write
            # too (.dist-info, .data). pip's signature: (name, wheel_path,
            # scheme, req_description, pycompile=True, ...).
            pycompile = kwargs.get("pycompile", args[2] if len(args) > 2 else True)
            own = (entry.dist_info + "/", entry.dist_info[: -len(".dist-info")] + ".data/")
            active = self.local.active = _Active(entry, files, str(entry.tree), own, bool(pycompile))
            self.linker.source_mtimes = bool(pycompile)  # the last wheel's files are all placed
            symlinks = self.report.counts[LinkMode.SYMLINK]
            mark = len(self.linker.created)
            try:
                with self.cache.lock(entry.key):  # `cache clean` waits for us
                    result = original(name, wheel_path, *args, **kwargs)
                    self.linker.finish()
            except BaseException:
                # pip has no rollback for a half-installed wheel: remove what
                # we placed for it, the files pip saved where none was (the
                # archive's RECORD, .data scripts), and the directories that
                # leaves empty.
                with contextlib.suppress(Exception):  # the failure is being handled
                    self.linker.finish()
                placed, self.linker.created[mark:] = self.linker.created[mark:], []
                _remove_placed([*placed, *active.written], args[0] if args else kwargs.get("scheme"))
                raise
            finally:
                self.local.active = None
            scheme = args[0] if args else kwargs.get("scheme")
            if self.report.counts[LinkMode.SYMLINK] > symlinks and scheme is not None:
                record_user(self.cache, entry.key, scheme.data)
            self.wheels += 1
            return result

        return install_wheel

    def wrap_save(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def save(file: Any) -> None:
            active = self._active()
            path = getattr(file, "src_record_path", None)
            size = active.files.get(path) if active is not None and path is not None else None
            if active is None:
                return original(file)
            dest = os.path.abspath(file.dest_path)
            if size is None or path is None:
                self.linker.finish()  # what pip writes itself: after ours, as before
                fresh = not os.path.lexists(dest)
                original(file)
                if fresh:  # removed with ours if the wheel fails
                    active.written.append(dest)
                return None
            own = path.startswith(active.own)
            if own:
                # .dist-info and .data come last: before them every package
                # file is in place, so a failure stops pip before it records
                # the wheel (as when files were placed one by one)
                self.linker.finish()
            later = not own and not (active.compiling and path.endswith(".py"))
            self.linker.link_one(LinkJob(f"{active.tree}/{path}", dest, size), self.report, later=later)
            active.linked[dest] = path

        return save

    def wrap_compile_file(self, original: Callable[..., bool]) -> Callable[..., bool]:
        """pip compiles each installed .py; for linked ones, the cached pyc
        is placed instead (all of the wheel's at its first call)."""

        def compile_file(fullname: Any, *args: Any, **kwargs: Any) -> bool:
            active = self._active()
            path = os.path.abspath(os.fspath(fullname))
            rel = active.linked.get(path) if active is not None else None
            if active is None or rel is None or args or set(kwargs) - _COMPILE_KWARGS:
                self.linker.settle(path)  # compiled from the placed source
                return original(fullname, *args, **kwargs)
            level = kwargs.get("optimize", -1)
            level = sys.flags.optimize if level == -1 else int(level)
            mode = kwargs.get("invalidation_mode") or bytecode.invalidation_mode()
            placed = active.pycs.get((level, mode.name))
            if placed is None:
                placed = active.pycs[(level, mode.name)] = self._place_pycs(active, level, mode)
            # False: it did not compile in the cache either, and pip skips it
            return path in placed

        return compile_file

    def _place_pycs(self, active: _Active, level: int, mode: py_compile.PycInvalidationMode) -> set[str]:
        """On pip's first compile call for a wheel: the cached pyc of every
        source we linked, placed by the linker's threads, all in place when
        this returns (pip checks that each pyc exists as its call returns).

        pip then calls for every one of those sources (it compiles every
        installed ``.py`` file), so each pyc placed here gets its RECORD row.
        """
        pycs = bytecode.ensure_bytecode(self.cache, active.entry, (level,), mode)
        placed: set[str] = set()
        for dest, rel in active.linked.items():
            cached = pycs.get((rel, level)) if dest.endswith(".py") else None
            if cached is not None:
                job = LinkJob(cached.path, bytecode.pyc_path(dest, level), cached.size)
                self.linker.link_one(job, self.report, later=True)
                placed.add(dest)
        self.linker.finish()
        return placed

    def wrap_replace(self, original: Callable[[str, str], None]) -> Callable[[str, str], None]:
        """Before pip writes a wheel's metadata (RECORD last), every file of
        the wheel is in place: a failure placing one stops pip before it
        records the wheel as installed."""

        def replace(src: str, dst: str) -> None:
            if self._active() is not None:
                self.linker.finish()
            original(src, dst)

        return replace

    def wrap_req_install(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def install(req: Any, *args: Any, **kwargs: Any) -> Any:
            self.local.editable = bool(getattr(req, "editable", False))
            try:
                return original(req, *args, **kwargs)
            finally:
                self.local.editable = False

        return install

    def wrap_install_given_reqs(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Before pip installs anything: every wheel into the cache, and its
        bytecode compiled when pip will compile, in one pass that compiles
        on every core while it unpacks (pip installs one wheel at a time)."""

        def install_given_reqs(requirements: Any, *args: Any, **kwargs: Any) -> Any:
            wheels = [
                path
                for req in requirements
                if not getattr(req, "editable", False)
                and isinstance(path := getattr(req, "local_file_path", None), str)
                and path.endswith(".whl")
            ]
            compiling = kwargs.get("pycompile", True)
            level = sys.flags.optimize
            bytecode.prepare(self.cache, wheels, (level,) if compiling else ())
            return original(requirements, *args, **kwargs)

        return install_given_reqs

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        from pip._internal.commands import install as install_cmd
        from pip._internal.operations.install import wheel as wheel_mod
        from pip._internal.req import req_install

        saved: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, attr: str, new: Any) -> None:
            saved.append((owner, attr, getattr(owner, attr)))
            setattr(owner, attr, new)

        patch(wheel_mod, "install_wheel", self.wrap_install_wheel(wheel_mod.install_wheel))
        if hasattr(install_cmd, "install_given_reqs"):
            patch(install_cmd, "install_given_reqs", self.wrap_install_given_reqs(install_cmd.install_given_reqs))
        if hasattr(req_install, "install_wheel"):  # pip < 24.1 imports it at module level
            patch(req_install, "install_wheel", wheel_mod.install_wheel)
        patch(wheel_mod.ZipBackedFile, "save", self.wrap_save(wheel_mod.ZipBackedFile.save))
        cls = req_install.InstallRequirement
        patch(cls, "install", self.wrap_req_install(cls.install))
        patch(compileall, "compile_file", self.wrap_compile_file(compileall.compile_file))
        if hasattr(wheel_mod, "replace"):  # how pip puts INSTALLER, RECORD... in place
            patch(wheel_mod, "replace", self.wrap_replace(wheel_mod.replace))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # every wheel has finished or failed
                self.linker.close()  # its helper processes, if any
            for owner, attr, old in reversed(saved):
                setattr(owner, attr, old)


@dataclass
class _Options:
    mode: LinkMode
    cache_dir: str | None
    python: str | None
    pip_args: list[str]


class UsageError(Exception):
    pass


def _remove_placed(paths: Sequence[str], scheme: Any) -> None:
    roots = {os.path.abspath(getattr(scheme, k)) for k in ("purelib", "platlib", "scripts", "data", "headers")
             if scheme is not None and getattr(scheme, k, None)}
    parents: set[str] = set()
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
        parents.add(os.path.dirname(path))
    for parent in sorted(parents, key=len, reverse=True):
        while parent not in roots and os.path.dirname(parent) != parent:
            try:
                os.rmdir(parent)  # only if empty
            except OSError:
                break
            parent = os.path.dirname(parent)


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


def _run_pip(args: Sequence[str]) -> int:
    from pip._internal.cli.main import main as pip_main

    try:
        return int(pip_main(list(args)) or 0)
    except SystemExit as exc:  # pip exits for --help, --version, parse errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)


def _reexec_with(python: str, argv: Sequence[str]) -> int:
    """Run ``pip-linkmode install`` inside another interpreter, as pip's
    ``--python`` runs pip there, so it installs into that interpreter's
    environment. Only our code and its dependencies are made importable
    there (links in a private directory), not this environment's packages."""
    import tempfile

    import filelock
    import installer
    import packaging
    import pip

    import pip_linkmode

    if not os.path.exists(python):
        print(f"pip-linkmode: no Python interpreter at {python}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pip-linkmode-run-") as tmp:
        for mod in (pip_linkmode, installer, filelock, packaging, pip):
            pkg_dir = os.path.dirname(os.path.abspath(mod.__file__ or ""))
            os.symlink(pkg_dir, os.path.join(tmp, os.path.basename(pkg_dir)), target_is_directory=True)
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from pip_linkmode.pip_plugin import main_install; "
            "sys.exit(main_install(sys.argv[2:]))"
        )
        return subprocess.call([python, "-c", code, tmp, *argv])


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


def _preload() -> None:
    """Import now what the hook may need mid-install: pip 26.3 refuses new
    imports while it installs (it guards against half-replaced packages)."""
    import concurrent.futures.process  # noqa: F401
    import concurrent.futures.thread  # noqa: F401  (the linker's pool, imported lazily)
    import multiprocessing.connection  # noqa: F401
    import multiprocessing.context  # noqa: F401
    import multiprocessing.queues  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import packaging.utils  # noqa: F401  (the cache parses names on a miss)

    from . import _cachecore, cache  # noqa: F401
    from ._platform import placer  # noqa: F401  (the linker's helper processes)

    _cachecore.filelock_class()
    if sys.platform != "win32":
        import multiprocessing.popen_fork  # noqa: F401
        import multiprocessing.popen_forkserver  # noqa: F401
        import multiprocessing.popen_spawn_posix  # noqa: F401


def main_install(argv: Sequence[str]) -> int:
    """``pip-linkmode install [--link-mode MODE] [--cache-dir DIR] <pip install args>``."""
    try:
        opts = _split_options(argv)
    except UsageError as exc:
        print(f"pip-linkmode install: error: {exc} (link modes: {', '.join(CHOICES)})", file=sys.stderr)
        return 2
    if opts.python and os.path.abspath(opts.python) != os.path.abspath(sys.executable):
        # A venv's python is a symlink to its base interpreter: compare the
        # paths as given, not resolved, or the venv would be ignored.
        return _reexec_with(opts.python, _without_python_option(argv))
    problem = pip_support_problem()
    if problem is not None:
        print(f"pip-linkmode: {problem}; installing with plain pip (no links).", file=sys.stderr)
        return _run_pip(["install", *opts.pip_args])
    _preload()
    cache_root = opts.cache_dir or os.environ.get(ENV_CACHE_DIR)
    hook = _Hook(opts.mode, WheelCache(cache_root))
    with hook.attached():
        status = _run_pip(["install", *opts.pip_args])
    if hook.wheels:
        print(hook.report.summary(), flush=True)
    return status


def main_passthrough(args: Sequence[str]) -> int:
    """Any other command: pip's own, unchanged."""
    return _run_pip(list(args))
