"""The pip integration: pip does everything, except that wheel files arrive by links.

While ``pip-linkmode install`` runs pip in-process, pip's wheel-install
step (``install_wheel``) is replaced, nothing else. For each wheel:

* the wheel is opened in the shared cache (unpacked and verified once);
* where every rule pip applies to it is one ``_LinkedInstall`` reproduces
  (the usual case), the wheel is installed from the cache entry's layout:
  its files linked directory by directory, the ``#!python`` line of its
  ``.data/scripts`` rewritten as pip rewrites it, cached bytecode linked
  where pip would compile, and the console scripts, INSTALLER, REQUESTED,
  direct_url.json and RECORD made by pip's own functions from the wheel's
  RECORD, so the environment is byte for byte what pip leaves (a test
  compares whole trees under each supported pip);
* otherwise pip's own loop runs with ``ZipBackedFile.save`` (pip's "extract
  this member to its destination") patched to link the member from the
  cache entry, and ``compileall.compile_file`` to place its cached pyc;
* a wheel the cache refuses (it links only what it verified against the
  wheel's RECORD) goes through pip's own loop unlinked, with one line
  saying why: pip then installs it, or refuses it in its own words.

Everything else stays pip's own: resolving, building sdists, uninstalling
an old version, editable installs, and anything from a pip version whose
internals we do not know.
"""

from __future__ import annotations

import compileall
import contextlib
import csv
import inspect
import io
import logging
import os
import py_compile
import stat
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import Parser
from itertools import starmap
from pathlib import Path
from typing import Any

from . import bytecode
from ._reexec import UsageError, _split_options, run_elsewhere
from .cache import (
    _SIGNATURES,
    ENV_CACHE_DIR,
    CachedWheel,
    CacheError,
    InvalidWheel,
    WheelCache,
    remove_tree,
)
from .cache_admin import record_user
from .install import SCHEME_KEYS
from .linker import Linker, LinkJob, LinkReport, write_beside
from .modes import CHOICES, ENV_LINK_MODE, LinkMode
from .placement import Placement, execute, link_groups, load_layout, pyc_dirs
from .source import CachedWheelSource

__all__ = ["SUPPORTED_PIP", "main_install", "main_passthrough", "pip_support_problem"]

#: keyword arguments of compileall.compile_file that we understand
_COMPILE_KWARGS = {"force", "quiet", "optimize", "invalidation_mode", "ddir", "legacy", "rx"}

#: what reading a zip member raises when its bytes are broken (bad CRC,
#: truncated or corrupt data, encryption, an unknown compression)
_ZIP_READ_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, RuntimeError, NotImplementedError)

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


#: pip's ``install_wheel`` parameters (23.1 to 26.3) that ``_LinkedInstall`` knows
_INSTALL_PARAMS = frozenset({
    "name", "wheel_path", "scheme", "req_description", "pycompile", "warn_script_location",
    "direct_url", "requested", "script_executable", "rollback_on_error",
})


def _install_signature(func: Callable[..., Any]) -> inspect.Signature | None:
    """pip's ``install_wheel`` signature, when every parameter is one we know."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    names = set(sig.parameters)
    if not {"name", "wheel_path", "scheme", "req_description"} <= names or names - _INSTALL_PARAMS:
        return None
    return sig


def _bind(
    signature: inspect.Signature | None, name: str, wheel_path: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> inspect.BoundArguments | None:
    """pip's ``install_wheel`` call by parameter name; None where it does not bind."""
    if signature is None:
        return None
    try:
        return signature.bind(name, wheel_path, *args, **kwargs)
    except TypeError:
        return None


@dataclass(frozen=True)
class _Pip:
    """The parts of pip's wheel installer that the linked install calls, so
    that what it decides and writes (scripts, RECORD rows, warnings) is pip's."""

    wheel: Any  # pip._internal.operations.install.wheel
    directory_distribution: Callable[[str], Any]
    wheel_version: Callable[[Any], tuple[int, ...]]
    canonicalize_name: Callable[[str], str]
    direct_url_name: str

    @classmethod
    def load(cls) -> _Pip | None:
        try:
            from pip._internal.metadata import get_directory_distribution
            from pip._internal.models.direct_url import DIRECT_URL_METADATA_NAME
            from pip._internal.operations.install import wheel
            from pip._internal.utils.wheel import wheel_version
            from pip._vendor.packaging.utils import canonicalize_name
        except ImportError:
            return None
        parts = (
            "PipScriptMaker", "get_entrypoints", "get_console_script_specs",
            "message_about_scripts_not_on_PATH", "get_csv_rows_for_installed",
            "_normalized_outrows", "_fs_to_record_path", "wheel_root_is_purelib",
            "req_error_context", "logger",
        )
        if not all(hasattr(wheel, name) for name in parts):
            return None
        return cls(wheel, get_directory_distribution, wheel_version, canonicalize_name, DIRECT_URL_METADATA_NAME)


@dataclass
class _LinkedInstall:
    """One wheel's install as pip's ``install_wheel`` would do it, from its cache entry.

    pip's own loop opens the zip, and per file computes paths, saves it and
    turns its path into a RECORD path; here the files come from the entry's
    precomputed layout, directory by directory, in one ``run_dirs`` call.
    What pip decides per wheel stays pip's: its console and GUI scripts are
    made by pip's script maker, RECORD by pip's row functions from the
    wheel's RECORD, with pip's warnings. Only wheels where every rule pip
    applies is known to give the same result get here (``plan``); any other
    goes through pip's loop with the ``save`` hook.
    """

    lib_dir: str
    info_dir: str
    dist: Any  # pip's distribution of the cached .dist-info directory
    placement: Placement  # what is linked, directory by directory (pycs last)
    #: archive path -> RECORD path, where that is not the archive path
    #: (``.data`` files), and pip's entries for pycs (absolute path -> RECORD path)
    installed: dict[str, str]
    scripts: list[tuple[str, str, str]]  # .data/scripts: (archive path, target, RECORD path)
    console: dict[str, str]
    gui: dict[str, str]

    @classmethod
    def plan(cls, pip: _Pip, cache: WheelCache, entry: CachedWheel, call: inspect.BoundArguments) -> _LinkedInstall | None:
        """None where pip's loop must do it: anything this does not reproduce exactly."""
        args = call.arguments
        name, scheme, pycompile = args["name"], args["scheme"], bool(args.get("pycompile", True))
        if pycompile and (sys.pycache_prefix is not None or sys.implementation.cache_tag is None):
            return None
        layout = load_layout(CachedWheelSource(entry, cache))
        info_dir = entry.dist_info
        tree = str(entry.tree)
        info_path = f"{tree}/{info_dir}"
        if layout is None or any(os.path.lexists(f"{info_path}/{sig}") for sig in _SIGNATURES):
            return None
        # what pip's loop would look at, from the layout (not the entry's
        # 20,000-row manifest): top-level names, .data files
        tops: set[str] = set()
        for _, sdir, _, names, _, _ in layout.groups:
            if sdir:
                tops.add(sdir.partition("/")[0])
            else:
                tops.update(names)
        if [t for t in tops if t.endswith(".dist-info")] != [info_dir]:
            return None  # pip's error
        data = info_dir[: -len(".dist-info")] + ".data/"
        if any(t.endswith(".data") and t != data[:-1] for t in tops):
            return None  # pip routes any top-level *.data directory (or refuses it); the cache only its own
        if not pip.canonicalize_name(info_dir).startswith(pip.canonicalize_name(name)):
            return None
        with open(f"{info_path}/WHEEL", "rb") as f:
            try:
                wheel_meta = Parser().parsestr(f.read().decode())
                if pip.wheel_version(wheel_meta) != (1, 0):
                    return None  # pip warns or refuses
            except Exception:  # noqa: BLE001 - pip's own loop gives its own error
                return None
        root = "purelib" if pip.wheel.wheel_root_is_purelib(wheel_meta) else "platlib"
        if root != layout.root:
            return None
        paths = {key: getattr(scheme, key) for key in SCHEME_KEYS}
        lib_dir = paths[root]
        dist = pip.directory_distribution(info_path)
        console, gui = pip.wheel.get_entrypoints(dist)
        to_record = pip.wheel._fs_to_record_path
        installed: dict[str, str] = {}
        scripts: list[tuple[str, str, str]] = []
        targets: set[str] = set()
        data_files = [
            (key, f"{sdir}/{name}", f"{ddir}/{name}" if ddir else name)
            for key, sdir, ddir, names, _, _ in layout.groups
            if sdir.startswith(data)
            for name in names
        ]
        data_files += [(key, archive, path) for _, kind, key, path, archive, _ in layout.special if kind == "write"]
        for key, archive, sub in data_files:
            target = os.path.join(paths[key], sub)
            same = _same_path(target)
            if same in targets or (pycompile and archive.endswith(".py") and not bytecode.compiles(entry, archive)):
                return None  # one path twice, or a .py pip compiles where the cache does not
            targets.add(same)
            installed[archive] = record = to_record(target, lib_dir)
            if key == "scripts":
                base = os.path.basename(target)
                lower = base.lower()
                cut = 4 if lower.endswith((".exe", ".pya")) else 10 if lower.endswith("-script.py") else 0
                stem = base[: len(base) - cut] if cut else base
                if stem in console or stem in gui:
                    return None  # pip leaves out a setuptools wrapper of an entry point
                scripts.append((archive, target, record))
        if any(key in ("purelib", "platlib") for key, _, _ in data_files) and targets & {
            _same_path(f"{lib_dir}/{ddir}/{name}" if ddir else f"{lib_dir}/{name}")
            for key, sdir, ddir, names, _, _ in layout.groups
            if key == root and not sdir.startswith(data)
            for name in names
        }:
            return None
        def dir_of(key: str, ddir: str) -> str:
            return os.path.join(paths[key], ddir) if ddir else paths[key]

        # scripts are pip's to write (its ScriptFile rule), after the links
        placement = Placement(link_groups(layout, tree, dir_of, skip=("scripts",)), source_root=tree)
        placement.users.append((cache, entry.key, paths["data"]))
        if pycompile:
            for pycs in pyc_dirs(cache, entry, (sys.flags.optimize,), root, dir_of):
                placement.groups.append(pycs.group)
                dst = pycs.group[1]
                for pyc in pycs.group[2]:
                    full = f"{dst}/{pyc}"
                    installed[full] = f"{pycs.rel_dir}/{pyc}" if pycs.scheme == root else to_record(full, lib_dir)
        return cls(lib_dir, info_dir, dist, placement, installed, scripts, console, gui)

    def run(self, hook: _Hook, entry: CachedWheel, call: inspect.BoundArguments, fresh: list[str]) -> None:
        """Place and write everything; ``fresh`` receives each file written where none was."""
        pip = hook.pip
        assert pip is not None
        args = call.arguments
        linker = hook.linker
        umask = linker.umask
        tree = str(entry.tree)
        replace = linker.platform.replace
        linker.source_mtimes = bool(args.get("pycompile", True))
        # Every file in place before anything is written over it, as in
        # pip's order: a wheel's own INSTALLER, a .data file where a script
        # goes (pip writes it, then its script maker writes over it).
        hook.report.merge(execute(self.placement, linker))

        def write(path: str, data: bytes, mode: int) -> None:
            existed = os.path.lexists(path)
            write_beside(path, data, mode, replace, fresh=not existed)
            if not existed:
                fresh.append(path)

        # .data/scripts, as pip's ScriptFile: "#!python..." becomes this
        # interpreter (pip's rule, not the target's), and RECORD rehashes it
        changed: set[str] = set()
        exe = sys.executable.encode(sys.getfilesystemencoding()) + os.linesep.encode("ascii")
        for archive, target, record in self.scripts:
            with open(f"{tree}/{archive}", "rb") as f:
                content = f.read()
                executable = os.fstat(f.fileno()).st_mode & 0o111  # the cache keeps the wheel's x bit
            if content.startswith(b"#!python"):
                end = content.find(b"\n")
                content = b"#!" + exe + (content[end + 1 :] if end >= 0 else b"")
                changed.add(record)
            linker.ensure_dir(os.path.dirname(target))
            write(target, content, ((0o777 & ~umask) | 0o111) if executable else 0o666 & ~umask)
        # pip's console and GUI scripts, made by pip's maker as pip sets it up
        wheel = pip.wheel
        scripts_dir = args["scheme"].scripts
        maker = wheel.PipScriptMaker(None, scripts_dir)
        if args.get("script_executable") is not None:
            maker.executable = args["script_executable"]
        maker.clobber = True
        maker.variants = {""}
        maker.set_mode = True
        console_specs = wheel.get_console_script_specs(self.console)
        gui_specs = list(starmap("{} = {}".format, self.gui.items()))
        names = _script_paths(maker, scripts_dir, [*console_specs, *gui_specs])
        there = _unshare_scripts(names)
        try:
            generated: list[str] = maker.make_multiple(console_specs)
            console_made = list(generated)
            generated.extend(maker.make_multiple(gui_specs, {"gui": True}))
        finally:  # scripts made before a bad entry point are removed with the rest
            fresh.extend(path for path in names if path not in there and os.path.lexists(path))
        if args.get("warn_script_location", True):
            message = wheel.message_about_scripts_not_on_PATH(console_made)
            if message is not None:
                wheel.logger.warning(message)
        meta_mode = 0o666 & ~umask
        info = os.path.join(self.lib_dir, self.info_dir)
        metadata = [("INSTALLER", b"pip\n")]
        if args.get("direct_url") is not None:
            metadata.append((pip.direct_url_name, args["direct_url"].to_json().encode("utf-8")))
        if args.get("requested", False):
            metadata.append(("REQUESTED", b""))
        for filename, content in metadata:
            write(os.path.join(info, filename), content, meta_mode)
            generated.append(os.path.join(info, filename))
        rows = wheel.get_csv_rows_for_installed(
            list(csv.reader(self.dist.read_text("RECORD").splitlines())),
            installed=dict(self.installed),
            changed=changed,
            generated=generated,
            lib_dir=self.lib_dir,
        )
        out = io.StringIO()
        csv.writer(out).writerows(wheel._normalized_outrows(rows))  # pip's dialect: "\r\n" lines
        write(os.path.join(info, "RECORD"), out.getvalue().encode("utf-8"), meta_mode)


if os.sep == "/":

    def _same_path(path: str) -> str:
        return path

else:

    def _same_path(path: str) -> str:
        """One spelling per file: Windows takes either separator, in any case."""
        return os.path.normcase(os.path.normpath(path))


def _script_paths(maker: Any, scripts_dir: str, specs: Sequence[str]) -> list[str]:
    """The files pip's script maker writes for these entry points: on
    Windows each is an ``.exe`` launcher (distlib drops a ``.py*`` suffix
    first), elsewhere a file of the entry point's name."""
    launchers = os.name == "nt" and bool(getattr(maker, "add_launchers", True))
    paths: list[str] = []
    for spec in specs:
        name = spec.partition("=")[0].strip()
        if launchers:
            stem, ext = os.path.splitext(name)
            name = f"{stem if ext.startswith('.py') else name}.exe"
        paths.append(os.path.join(scripts_dir, name))
    return paths


def _unshare_scripts(paths: Sequence[str]) -> set[str]:
    """Before pip's script maker writes these scripts (into an existing
    file): remove any that is a link (to the cache, perhaps). Returns the
    paths that exist."""
    there: set[str] = set()
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode) or st.st_nlink > 1:
            os.unlink(path)
        else:
            there.add(path)
    return there


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
        self.linker = Linker(mode, help_links=True)  # pip prepares the next wheel meanwhile
        self.report = LinkReport(requested=mode)
        self.local = threading.local()
        self.wheels = 0
        self.pip = _Pip.load()
        self.linked_installs = 0  # wheels installed by _LinkedInstall (the rest by pip's loop)
        self.entries: list[CachedWheel] = []  # the wheels installed, in order (for -v)
        self.progress = "off"  # how a cold install shows progress: "bar", "lines" or "off" (main_install)
        #: wheel path -> why the cache refused it: pip's loop installs it unlinked
        self.refused: dict[str, InvalidWheel] = {}
        #: pip's InstallationError, once attached (pip 26.3 refuses imports mid-install)
        self.installation_error: type[Exception] = Exception
        #: wheels unpacked while pip still resolves and downloads (None: not
        #: for this run, a --dry-run, which installs nothing)
        self.early: bytecode.EarlyUnpack | None = bytecode.EarlyUnpack(cache)

    def _active(self) -> _Active | None:
        return getattr(self.local, "active", None)

    def wrap_install_wheel(self, original: Callable[..., Any]) -> Callable[..., Any]:
        signature = _install_signature(original) if self.pip is not None else None

        def install_wheel(name: str, wheel_path: str, *args: Any, **kwargs: Any) -> Any:
            if getattr(self.local, "editable", False):
                return original(name, wheel_path, *args, **kwargs)
            refused = self.refused.get(os.path.abspath(wheel_path))
            if refused is None:
                try:
                    entry = self.cache.get(wheel_path)
                except InvalidWheel as exc:
                    refused = self.refused[os.path.abspath(wheel_path)] = exc
            if refused is not None:
                scheme = args[0] if args else kwargs.get("scheme")
                return self._install_unverified(refused, scheme, lambda: original(name, wheel_path, *args, **kwargs))
            call = _bind(signature, name, wheel_path, args, kwargs)
            if call is not None and self.pip is not None:
                plan = _LinkedInstall.plan(self.pip, self.cache, entry, call)
                if plan is not None:
                    return self._install_linked(plan, entry, call)
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
            mark = self.linker.mark()
            try:
                with self.cache.lock(entry.key):  # `cache clean` waits for us
                    result = original(name, wheel_path, *args, **kwargs)
                    self.linker.finish()
            except BaseException:
                # pip has no rollback for a half-installed wheel: remove what
                # we placed for it, the files pip saved where none was (the
                # archive's RECORD, .data scripts), and the directories that
                # leaves empty.
                scheme = args[0] if args else kwargs.get("scheme")
                self._undo(mark, active.written, scheme)
                _remove_empty_dist_info(scheme, entry.dist_info)
                raise
            finally:
                self.local.active = None
            # (pip's loop placed the files one by one, outside a Placement:
            # the entry's symlink-mode user is registered here)
            scheme = args[0] if args else kwargs.get("scheme")
            if self.report.counts[LinkMode.SYMLINK] > symlinks and scheme is not None:
                record_user(self.cache, entry.key, scheme.data)
            self._installed(entry)
            return result

        return install_wheel

    def _install_unverified(self, refused: InvalidWheel, scheme: Any, install: Callable[[], Any]) -> Any:
        """A wheel the cache refused, through pip's own per-file loop from the
        wheel file, nothing linked: pip installs what it installs and refuses
        what it refuses, in its own words and exit status. What pip wrote
        where nothing was is removed if it fails (pip itself leaves it).
        Once pip has installed it, one line says why it is not linked."""
        written: list[str] = []
        self.local.unverified = written
        try:
            result = install()
        except BaseException:
            _remove_placed(written, scheme)
            raise
        finally:
            self.local.unverified = None
        if logging.getLogger().isEnabledFor(logging.WARNING):  # (pip's -qq silences it)
            where = f"member {refused.member!r}: " if refused.member else ""
            print(
                f"pip-linkmode: {os.path.basename(refused.wheel)} is not linked (the cache refuses it: "
                f"{where}{refused.reason}); pip's own per-file loop installed it",
                file=sys.stderr,
                flush=True,
            )
        return result

    def _save_unverified(self, original: Callable[[Any], None], file: Any, written: list[str]) -> None:
        """pip extracts a member of a wheel the cache refused: a member whose
        bytes cannot be read is one error line naming the wheel and member
        (pip's loop would end in a traceback)."""
        dest = os.path.abspath(file.dest_path)
        fresh = not os.path.lexists(dest)
        try:
            original(file)
        except _ZIP_READ_ERRORS as exc:
            zip_file = getattr(file, "_zip_file", None)
            wheel = os.path.basename(getattr(zip_file, "filename", None) or "")
            member = getattr(file, "src_record_path", None) or os.path.basename(dest)
            raise self.installation_error(f"invalid wheel {wheel}, member {member!r}: cannot be read: {exc}") from exc
        finally:
            if fresh and os.path.lexists(dest):
                written.append(dest)

    def _install_linked(self, plan: _LinkedInstall, entry: CachedWheel, call: inspect.BoundArguments) -> None:
        assert self.pip is not None
        mark = self.linker.mark()
        fresh: list[str] = []
        scheme = call.arguments["scheme"]
        try:
            with self.cache.lock(entry.key), self.pip.wheel.req_error_context(call.arguments["req_description"]):
                plan.run(self, entry, call, fresh)
        except BaseException:
            # as pip's loop with the hook: nothing of this wheel is left
            self._undo(mark, fresh, scheme)
            raise
        self._installed(entry)  # (its Placement registered any symlink-mode user)
        self.linked_installs += 1

    def _installed(self, entry: CachedWheel) -> None:
        """A wheel is in: counted (and kept for ``-v``)."""
        self.wheels += 1
        self.entries.append(entry)

    def _undo(self, mark: tuple[int, int], written: Sequence[str], scheme: Any) -> None:
        """After a wheel failed: what the linker placed for it and the files
        written where none was, with the directories that leaves empty."""
        with contextlib.suppress(Exception):  # the failure is being handled
            self.linker.finish()
        self.linker.undo_since(mark)
        _remove_placed(written, scheme)

    def wrap_save(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def save(file: Any) -> None:
            active = self._active()
            path = getattr(file, "src_record_path", None)
            size = active.files.get(path) if active is not None and path is not None else None
            if active is None:
                unverified = getattr(self.local, "unverified", None)
                if unverified is not None:
                    return self._save_unverified(original, file, unverified)
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
            if (
                active is None
                or rel is None
                or args
                or set(kwargs) - _COMPILE_KWARGS
                or not bytecode.compiles(active.entry, rel)  # a .py in .data/data, say
            ):
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
            with _ColdProgress(self.cache, wheels, bool(compiling), self.progress):
                if self.early is not None:
                    self.early.settle()  # (what it could not unpack, the pass below meets)
                self._prepare(wheels, (level,) if compiling else ())
            return original(requirements, *args, **kwargs)

        return install_given_reqs

    def wrap_prepare_linked(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """Each wheel pip has found or downloaded, handed to the early
        unpack as soon as pip has its file (pip resolves and downloads the
        rest meanwhile)."""

        def prepare_linked(preparer: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            dist = original(preparer, req, *args, **kwargs)
            path = getattr(req, "local_file_path", None)
            if self.early is not None and isinstance(path, str) and path.endswith(".whl") and not getattr(req, "editable", False):
                self.early.add(path)
            return dist

        return prepare_linked

    def _prepare(self, wheels: list[str], levels: tuple[int, ...]) -> None:
        """``bytecode.prepare`` for the wheels the cache takes; each wheel it
        refuses is noted (pip's loop installs it unlinked) and the pass runs
        again for the others (their finished entries are found at once)."""
        todo = list(wheels)
        while todo:
            try:
                bytecode.prepare(self.cache, todo, levels)
                return
            except InvalidWheel as exc:
                bad = os.path.abspath(exc.wheel)
                rest = [w for w in todo if os.path.abspath(w) != bad]
                if len(rest) == len(todo):
                    raise  # (not one of these wheels: nothing to set aside)
                self.refused[bad] = exc
                todo = rest

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        from pip._internal.commands import install as install_cmd
        from pip._internal.exceptions import InstallationError
        from pip._internal.operations import prepare as prepare_mod
        from pip._internal.operations.install import wheel as wheel_mod
        from pip._internal.req import req_install

        saved: list[tuple[Any, str, Any]] = []
        self.installation_error = InstallationError

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
        preparer = prepare_mod.RequirementPreparer
        if hasattr(preparer, "_prepare_linked_requirement"):  # every pip we support: where a file arrives
            patch(preparer, "_prepare_linked_requirement", self.wrap_prepare_linked(preparer._prepare_linked_requirement))
        try:
            yield
        finally:
            if self.early is not None:
                self.early.close()
            with contextlib.suppress(Exception):  # every wheel has finished or failed
                self.linker.close()  # its helper processes, if any
            for owner, attr, old in reversed(saved):
                setattr(owner, attr, old)


class _ColdProgress:
    """Progress while wheels are unpacked into the cache and compiled, as
    pip shows it while it downloads: nothing when the cache had them all
    (the pass ends within ``DELAY``); else a bar from pip's vendored rich
    on a terminal, or one line per phase (``lines``). Counts the wheels the
    cache has answered for (hits and fresh unpacks) by watching this cache
    object's lookups for the duration."""

    #: seconds: a warm pass ends well within it (the suite sets 0 to see
    #: every phase whatever the machine's speed)
    DELAY = float(os.environ.get("_PIP_LINKMODE_PROGRESS_DELAY", "0.5"))

    def __init__(self, cache: WheelCache, wheels: Sequence[str], compiling: bool, how: str) -> None:
        self.cache, self.total, self.compiling, self.how = cache, len(set(wheels)), compiling, how
        self.seen: set[str] = set()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.started = 0.0
        self.saved: dict[str, Any] = {}

    def __enter__(self) -> _ColdProgress:
        if self.how == "off" or not self.total:
            return self
        import time

        self.started = time.monotonic()
        for name in ("get", "get_nowait", "get_indexed", "answered"):
            original = getattr(self.cache, name)
            self.saved[name] = original
            setattr(self.cache, name, self._counting(original))
        self.thread = threading.Thread(target=self._show, name="pip-linkmode-progress", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        for name in self.saved:
            delattr(self.cache, name)  # the class's methods again

    def _counting(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def lookup(wheel: Any, *rest: Any) -> Any:
            entry = original(wheel, *rest)
            if entry is not None:
                self.seen.add(os.fspath(wheel))
            return entry

        return lookup

    def _phase(self) -> str:
        if len(self.seen) < self.total:
            return "unpacking wheels into the cache" + (" and compiling them" if self.compiling else "")
        return "compiling bytecode" if self.compiling else "finishing"

    def _show(self) -> None:
        if self.done.wait(self.DELAY):
            return  # the cache had them all
        try:
            if self.how == "bar":
                self._bar()
            else:
                self._lines()
        except Exception:  # noqa: BLE001 - progress is a courtesy, never a failure
            self.done.wait()

    def _lines(self) -> None:
        import time

        phase = self._phase()
        wheels = f"{self.total} wheel{'s' if self.total != 1 else ''}"
        print(f"pip-linkmode: {phase} ({wheels})...", file=sys.stderr, flush=True)
        while not self.done.wait(0.2):
            if self._phase() != phase:
                phase = self._phase()
                print(f"pip-linkmode: {phase}...", file=sys.stderr, flush=True)
        fresh = len(self.cache.unpacked)
        print(f"pip-linkmode: cache ready in {time.monotonic() - self.started:.1f} s "
              f"({fresh} of {wheels} unpacked now)", file=sys.stderr, flush=True)

    def _bar(self) -> None:
        from pip._vendor.rich.console import Console
        from pip._vendor.rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=Console(file=sys.stderr), transient=True) as progress:
            task = progress.add_task(self._phase(), total=self.total)
            while not self.done.wait(0.1):
                progress.update(task, completed=len(self.seen), description=self._phase())


def _remove_placed(paths: Sequence[str], scheme: Any) -> None:
    roots = {os.path.abspath(getattr(scheme, k)) for k in SCHEME_KEYS
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


def _default_site_dirs(view: _PipView) -> list[str]:
    """The directories this interpreter's ``pip install`` installs packages
    into, as pip's own parser read its arguments (abbreviations, ``-Ut DIR``,
    ``PIP_TARGET``, configuration files): none where pip installs elsewhere."""
    import sysconfig

    if view.installs_into == "user":
        import site

        return [site.getusersitepackages()]
    if view.installs_into != "site":
        return []
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(os.path.abspath(paths[k]) for k in ("purelib", "platlib")))


def heal_killed_installs(cache: WheelCache, site_dirs: Sequence[str]) -> list[str]:
    """Remove what a killed install left in ``site_dirs``: a ``.dist-info``
    that pip marked as its own (INSTALLER) but never got a RECORD, with the
    wheel's files that are still exactly the cache entry's (the same inode,
    or the same bytes by the entry's hash). pip would report such a
    distribution as installed and fail to uninstall it. One line each, to
    tell the user.

    An install from that entry running now holds the entry's lock, and is
    left alone (its RECORD comes last); an entry that cannot be read (a
    damaged manifest) leaves the leftovers as they are, and says so."""
    told: list[str] = []
    for site in site_dirs:
        try:
            found = sorted(os.scandir(site), key=lambda d: d.name)
        except OSError:
            continue
        for info in found:
            if not info.name.endswith(".dist-info") or not info.is_dir(follow_symlinks=False):
                continue
            if os.path.lexists(os.path.join(info.path, "RECORD")):
                continue
            try:
                with open(os.path.join(info.path, "INSTALLER"), "rb") as f:
                    if f.read().strip() != b"pip":
                        continue
            except OSError:
                continue  # not a pip install: not ours to judge (a distribution's own layout)
            project = info.name[: -len(".dist-info")].replace("-", " ", 1)
            try:
                line = _heal_one(cache, site, info.path, info.name, project)
            except (CacheError, OSError) as exc:
                line = (f"found what a killed install of {project} left in {site} (a .dist-info without "
                        f"RECORD), and left it: {' '.join(str(exc).split())}")
            if line is not None:
                told.append(line)
    return told


def _heal_one(cache: WheelCache, site: str, info_path: str, dist_info: str, project: str) -> str | None:
    left = f"found what a killed install of {project} left in {site} (a .dist-info without RECORD), and left it"
    entry = _entry_of(cache, dist_info)
    if entry is None:  # (its files cannot be told from others', nor a running install from it)
        return f"{left}: its wheel is not in the cache {cache.root}; remove {info_path}, then install {project} again"
    lock = cache.lock(entry.key)
    if not lock.acquire(blocking=False):
        return None  # an install from that entry is running now: its RECORD is still to come
    try:
        if not lock.held:
            return f"{left}: the cache {cache.root} cannot be locked, so an install from it may be running"
        if os.path.lexists(os.path.join(info_path, "RECORD")):
            return None  # (it finished meanwhile)
        removed = _remove_traced_files(cache, entry, site)
        _remove_tree_quietly(info_path)
    finally:
        lock.release()
    return (f"removed what a killed install of {project} left in {site} "
            f"(a .dist-info without RECORD, and {removed} of its files)")


def _entry_of(cache: WheelCache, dist_info: str) -> CachedWheel | None:
    """The cache entry of the wheel whose .dist-info this is; entries that
    cannot be read are passed over (another project's damage is not this one's)."""
    from ._cachecore import check_path

    check_path(cache.root, cache.entries_dir)
    try:
        names = sorted(os.listdir(cache.entries_dir))
    except (FileNotFoundError, NotADirectoryError):
        return None
    for name in names:
        try:
            entry = cache.lookup(name)
        except CacheError:
            continue
        if entry is not None and entry.dist_info == dist_info:
            return entry
    return None


def _plain_dir(site: str, rel_dir: str, known: dict[str, bool]) -> bool:
    """Is ``site``/``rel_dir`` reached through real directories only (no
    link, no junction)? A package directory linked elsewhere (a developer's
    checkout) is not the install's to remove from."""
    if not rel_dir:
        return True
    # (symbolic links and junctions, as the cache judges them)
    from ._cachecore import _is_link as is_link

    found = known.get(rel_dir)
    if found is None:
        head = rel_dir.rpartition("/")[0]
        try:
            st = os.lstat(os.path.join(site, *rel_dir.split("/")))
            found = _plain_dir(site, head, known) and stat.S_ISDIR(st.st_mode) and not is_link(st)
        except OSError:
            found = False
        known[rel_dir] = found
    return found


def _remove_traced_files(cache: WheelCache, entry: CachedWheel, site: str) -> int:
    """Remove the files of the cached wheel (``entry``) whose .dist-info a
    killed install left that are still that entry's files in ``site``; how
    many. Nothing is reached through a link: not in ``site`` (a linked
    package directory is left alone), not in the cache (an entry's tree
    holding a link is not trusted: CacheError)."""
    import hashlib

    from ._cachecore import check_no_links
    from .cache import record_digest

    dist_info = entry.dist_info
    check_no_links(cache.root, entry.tree)  # (links and junctions: UnsafeCachePath)
    data_dir = dist_info[: -len(".dist-info")] + ".data/"
    removed = 0
    parents: set[str] = set()
    plain: dict[str, bool] = {}
    for cached in entry.files:
        if cached.path.startswith((dist_info + "/", data_dir)):
            continue
        if not _plain_dir(site, cached.path.rpartition("/")[0], plain):
            continue
        target = os.path.join(site, *cached.path.split("/"))
        source = os.fspath(entry.path_of(cached.path))
        try:
            st = os.lstat(target)
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISLNK(st.st_mode):
                same = os.path.realpath(target) == os.path.realpath(source)
            elif os.path.samestat(st, os.lstat(source)):
                same = True
            else:
                with open(target, "rb") as f:
                    digest = "sha256=" + record_digest(hashlib.sha256(f.read()).digest())
                same = st.st_size == cached.size and digest == cached.hash
            if same:
                os.unlink(target)
                removed += 1
                parents.add(os.path.dirname(target))
        except OSError:
            continue
    for parent in sorted(parents, key=len, reverse=True):
        while parent.startswith(site + os.sep):
            try:
                os.rmdir(parent)  # only if empty
            except OSError:
                break
            parent = os.path.dirname(parent)
    return removed


def _remove_tree_quietly(path: str) -> None:
    import shutil

    with contextlib.suppress(OSError):
        shutil.rmtree(path)


def _remove_empty_dist_info(scheme: Any, dist_info: str) -> None:
    """A failed wheel's ``.dist-info`` directory, if it is empty: pip 26.3
    leaves it so when a failure stops its first file there (seen in the
    worker-thread test), and an empty one reads as an installed
    distribution with no metadata."""
    for key in ("purelib", "platlib"):
        root = getattr(scheme, key, None) if scheme is not None else None
        if root:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, dist_info))  # only if empty


def _run_pip(args: Sequence[str]) -> int:
    from pip._internal.cli.main import main as pip_main

    try:
        return int(pip_main(list(args)) or 0)
    except SystemExit as exc:  # pip exits for --help, --version, parse errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)


#: The re-executed interpreter's start: a Python we do not support says so in
#: one line (the rest of this code needs 3.10); then our packages importable
#: by name, from their directories here, and nothing else of this
#: environment. A finder on ``sys.meta_path`` needs no link of any kind (a
#: directory symlink needs privilege on Windows, and a junction would be one
#: more thing to clean up).
def _preload() -> None:
    """Import now what the hook may need mid-install: pip 26.3 refuses new
    imports while it installs (it guards against half-replaced packages)."""
    import concurrent.futures.process  # noqa: F401
    import concurrent.futures.thread  # noqa: F401  (threads unpacking wheels, imported lazily)
    import multiprocessing.connection  # noqa: F401
    import multiprocessing.context  # noqa: F401
    import multiprocessing.queues  # noqa: F401
    import multiprocessing.synchronize  # noqa: F401

    import packaging.utils  # noqa: F401  (the cache parses names on a miss)

    from . import _cachecore, archive, cache  # noqa: F401  (archive: a wheel unpacked mid-install)
    from ._platform import placer  # noqa: F401  (the linker's helper processes)

    if sys.platform == "win32":
        _cachecore.filelock_class()  # (the cache's entry locks there)
    else:
        import multiprocessing.popen_fork  # noqa: F401
        import multiprocessing.popen_forkserver  # noqa: F401
        import multiprocessing.popen_spawn_posix  # noqa: F401


INSTALL_HELP = f"""
pip-linkmode options (before or after "install"):
  --link-mode MODE    how files arrive from the cache: {", ".join(CHOICES)}
                      (default: auto = clone, else hardlink, else copy)
  --cache-dir DIR     pip's cache, and ours beside it (DIR/entries, ...)
  --python PY         an interpreter or a virtual environment's directory
                      to install into, as pip's --python (Python 3.10-3.13)
  --no-cache-dir      no persistent cache: a temporary one for this run

Environment:
  {ENV_LINK_MODE}       link mode, as --link-mode
  {ENV_CACHE_DIR}  the cache, as --cache-dir
  PIP_PYTHON          as --python
  VIRTUAL_ENV         the pip-linkmode command of another environment (pipx, a
                      tools venv) installs into this active venv when no
                      --python is given

Summary on stderr: silenced by -q; -v adds why a mode was chosen and, per
wheel, whether it was a cache hit or unpacked now.
"""


@dataclass(frozen=True)
class _PipView:
    """What pip makes of the install arguments (its config files and
    PIP_* variables included) that decides what we print and where our
    cache is."""

    verbosity: int  # pip's -v count less its -q count
    no_cache: bool  # --no-cache-dir / PIP_NO_CACHE_DIR
    wants_help: bool
    progress: str = "lines"  # a cold install's progress: "bar" on a terminal (pip's --progress-bar permitting)
    dry_run: bool = False
    #: where pip installs: "site" (this interpreter's site-packages), "user"
    #: (--user), or "elsewhere" (--target, --prefix, --root; or arguments
    #: pip's parser refused: nothing of this interpreter's is looked at)
    installs_into: str = "elsewhere"


def _pip_view(pip_args: Sequence[str]) -> _PipView:
    """pip's own reading of ``pip install <pip_args>``, by its own parser;
    where that parser refuses them, a plain count (pip then reports the
    error itself)."""
    args = list(pip_args)
    wants_help = any(a in ("-h", "--help") for a in args[: args.index("--") if "--" in args else None])
    try:
        from pip._internal.commands import create_command

        command = create_command("install", isolated="--isolated" in args)
        with contextlib.ExitStack() as accepted:
            from .optin import _feature_accepted

            # use-feature = linkmode (argv, PIP_USE_FEATURE, a config file)
            # is a choice pip's parser knows only while the opt-in runs pip
            with contextlib.suppress(Exception):
                accepted.enter_context(_feature_accepted())
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                options, _ = command.parser.parse_args(args)
        bar = getattr(options, "progress_bar", "on") != "off" and sys.stderr.isatty()
        into = "elsewhere" if any(getattr(options, d, None) for d in ("target_dir", "prefix_path", "root_path")) \
            else "user" if getattr(options, "use_user_site", None) else "site"
        return _PipView(int(options.verbose) - int(options.quiet), options.cache_dir is False, wants_help,
                        "bar" if bar else "lines", bool(getattr(options, "dry_run", False)), into)
    except (Exception, SystemExit):  # noqa: BLE001 - pip says what is wrong when it runs
        verbosity = _count_flag(args, "v", "--verbose") - _count_flag(args, "q", "--quiet")
        return _PipView(verbosity, "--no-cache-dir" in args, wants_help, dry_run="--dry-run" in args)


def _count_flag(args: Sequence[str], short: str, long: str) -> int:
    """How often a counted flag is given: ``--verbose``, ``-v``, ``-vv``."""
    return sum(1 if a == long else len(a) - 1 for a in args
               if a == long or (a[:1] == "-" and a[1:2] != "-" and set(a[1:]) == {short}))


def _temporary_cache_dir() -> str:
    """A cache for one ``--no-cache-dir`` run: in the temporary directory
    where that is on the environment's filesystem (so files can still be
    linked), else inside the environment itself."""
    import tempfile

    where: str | None = None
    with contextlib.suppress(OSError):
        if os.stat(tempfile.gettempdir()).st_dev != os.stat(sys.prefix).st_dev and os.access(sys.prefix, os.W_OK):
            where = sys.prefix
    return tempfile.mkdtemp(prefix=".pip-linkmode-tmp-", dir=where)


def short_summary(report: LinkReport, *, temporary: bool = False, into: str | None = None) -> str:
    """One line for the common case: ``Linked 82 files (hardlink) from the
    cache; 1.4 MB not written``."""
    from .linker.jobs import human_size as _human

    linked = {m: n for m, n in report.counts.items() if n and m is not LinkMode.COPY}
    copied = report.counts[LinkMode.COPY]
    parts: list[str] = []
    if linked:
        modes = ", ".join(f"{m} {n}" if len(linked) > 1 else str(m) for m, n in linked.items())
        parts.append(f"Linked {sum(linked.values())} files ({modes})")
    if copied:
        parts.append(f"copied {copied}" if parts else f"Copied {copied} files")
    source = "a temporary cache (--no-cache-dir: removed now)" if temporary else "the cache"
    line = f"{', '.join(parts) or 'No files placed'} from {source}"
    if report.bytes_shared:
        line += f"; {_human(report.bytes_shared)} not written"
    if into:
        line += f"; into {into}"
    return line


def _fell_back(report: LinkReport) -> bool:
    """Did something not go as asked: an explicit mode that was not used
    throughout, or a fall back (auto's own choice is not one)."""
    if any(not note.startswith("auto chose") for note in report.notes):
        return True
    return report.requested is not LinkMode.AUTO and report.modes_used not in ([], [report.requested])


def main_install(argv: Sequence[str], *, follow_virtual_env: bool = False, into: str | None = None) -> int:
    """``pip-linkmode install [--link-mode MODE] [--cache-dir DIR] <pip install args>``.

    ``follow_virtual_env``: the ``pip-linkmode`` command (not ``python -m``)
    installs into the active virtual environment when that is not its own;
    ``into``: the summary says where it installed, when that was chosen so.
    """
    status = run_elsewhere(argv, follow_virtual_env, into)
    return install_here(argv, into=into) if status is None else status


def install_here(argv: Sequence[str], *, into: str | None = None) -> int:
    """``main_install`` in this interpreter, once ``_reexec`` has found
    that it is the one to install into."""
    try:
        opts = _split_options(argv)
    except UsageError as exc:
        print(f"pip-linkmode install: error: {exc} (link modes: {', '.join(CHOICES)})", file=sys.stderr)
        return 2
    os.environ.pop("PIP_PYTHON", None)  # this interpreter: pip must not run itself elsewhere
    view = _pip_view(opts.pip_args)
    if view.wants_help:
        saved, sys.argv[0] = sys.argv[0], "pip-linkmode"  # pip's usage names its program by it
        try:
            status = _run_pip(["install", *opts.pip_args])
        finally:
            sys.argv[0] = saved
        sys.stdout.write(INSTALL_HELP)
        return status
    problem = pip_support_problem()
    if problem is not None:
        print(f"pip-linkmode: {problem}; installing with plain pip (no links).", file=sys.stderr)
        return _run_pip(["install", *opts.pip_args])
    return run_hooked(lambda: _run_pip(["install", *opts.pip_args]), opts.pip_args, opts.mode, opts.cache_dir,
                      asked="--link-mode symlink", error="pip-linkmode install: error", into=into, view=view)


def run_hooked(
    run: Callable[[], int],
    pip_args: Sequence[str],
    mode: LinkMode,
    cache_dir: str | None,
    *,
    asked: str,
    error: str,
    into: str | None = None,
    view: _PipView | None = None,
) -> int:
    """pip's install (``run``, given ``pip install <pip_args>``) with the
    hook attached, as both doors run it (``pip-linkmode install`` and plain
    pip with the opt-in): symlink mode refused with ``--no-cache-dir``
    (``asked`` says where symlink came from, ``error`` starts the line), a
    temporary cache for ``--no-cache-dir``, an unusable cache said before
    pip resolves, killed installs healed, a cold install's progress, then
    the summary lines. ``view``: ``_pip_view(pip_args)``, where the caller
    has it already."""
    view = view or _pip_view(pip_args)
    if view.no_cache and mode is LinkMode.SYMLINK:
        print(f"{error}: {asked} needs a cache that stays; "
              "drop --no-cache-dir (PIP_NO_CACHE_DIR) or pick another mode", file=sys.stderr)
        return 2
    _preload()
    temporary = _temporary_cache_dir() if view.no_cache else None
    try:
        cache = WheelCache(temporary or cache_dir or os.environ.get(ENV_CACHE_DIR))
        try:
            cache._ensure_dirs()  # an unusable cache: said before pip resolves or downloads
        except CacheError as exc:
            print(f"pip-linkmode: {exc}", file=sys.stderr)
            return 2
        # a killed install's entry is in the kept cache, whichever this run uses
        kept = WheelCache(cache_dir or os.environ.get(ENV_CACHE_DIR)) if temporary is not None else cache
        for line in heal_killed_installs(kept, _default_site_dirs(view)):
            print(f"pip-linkmode: {line}", file=sys.stderr)
        hook = _Hook(mode, cache)
        hook.progress = "off" if view.verbosity < 0 else view.progress
        if view.dry_run:
            hook.early = None  # (nothing is installed: nothing to unpack ahead)
        if hook.progress == "bar":  # now: pip 26.3 refuses imports while it installs
            import pip._vendor.rich.console
            import pip._vendor.rich.progress  # noqa: F401
        with hook.attached():
            status = run()
    finally:
        if temporary is not None:
            remove_tree(Path(temporary))
    if hook.wheels and view.verbosity >= 0:
        # on stderr (stdout is pip's: ``--report -`` writes JSON there),
        # short, silenced by -q, the long form under -v or on a fallback
        _print_summary(hook, cache, view.verbosity, temporary is not None, into)
    return status


def _print_summary(hook: _Hook, cache: WheelCache, verbosity: int, temporary: bool, into: str | None) -> None:
    """Ours on stderr (stdout is pip's: ``--report -`` writes JSON there)."""
    err = sys.stderr
    if verbosity > 0:
        unpacked = set(cache.unpacked)
        for entry in hook.entries:
            how = "unpacked now" if entry.key in unpacked else "cache hit"
            print(f"pip-linkmode: {entry.dist_info[: -len('.dist-info')]}: {how}", file=err)
    print(short_summary(hook.report, temporary=temporary, into=into), file=err)
    if verbosity > 0 or _fell_back(hook.report):
        print(hook.report.summary(), file=err)
    looped = hook.wheels - hook.linked_installs
    if looped and verbosity > 0:
        print(
            f"pip-linkmode: {looped} of {hook.wheels} wheels went through pip's own per-file loop "
            "(a layout the linked install does not reproduce exactly)",
            file=err,
        )
    err.flush()


def main_passthrough(args: Sequence[str]) -> int:
    """Any other command: pip's own, unchanged."""
    return _run_pip(list(args))
