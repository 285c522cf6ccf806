"""Virtual environments seeded by links: ``LinkedEnvBuilder``, ``create()``, ``pip-linkmode venv``.

The environment itself is made by the standard library's ``venv`` (in this
process for the running interpreter, or by ``PY -m venv --without-pip`` for
another one), so it is a normal venv that every tool recognises. Instead of
running ``ensurepip``, the wheels that the target interpreter's own
``ensurepip`` bundles (pip, and setuptools where it is bundled, up to Python
3.11) are installed through the core engine, ``install_wheels``, which
links them from the shared cache. pip's console scripts are then named the
way pip's own installer names them for the target: ``pip``, ``pip3`` and
``pip3.X``, with matching RECORD rows.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import venv
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

from . import plan
from ._cachecore import CacheError, resolve_root
from .install import InstallReport, Target, install_wheels, target_for_venv, venv_python
from .linker import LinkError, write_beside
from .modes import CHOICES, LinkMode, link_mode_from_env, parse_link_mode

if TYPE_CHECKING:
    from .cache import WheelCache

__all__ = [
    "Interpreter",
    "LinkedEnvBuilder",
    "SeedResult",
    "VenvError",
    "create",
    "interpreter_info",
    "linkmode_wheels",
    "main_venv",
    "seed",
]

PROG = "pip-linkmode venv"

# Run by the target interpreter (or exec'd here for the running one): which
# wheels its ensurepip would install. Python 3.10 - 3.12 have
# ``_get_packages()`` (pip, and setuptools up to 3.11; a distribution's
# WHEEL_PKG_DIR wins over ``_bundled``); 3.13 has ``_get_pip_whl_path_ctx()``;
# anything else falls back to the ``_bundled`` directory.
_LOCATE = r"""
import glob, json, os, sys

def locate():
    wheels = {}
    try:
        import ensurepip
    except ImportError:
        ensurepip = None
    if ensurepip is not None:
        here = os.path.dirname(ensurepip.__file__)
        get_packages = getattr(ensurepip, "_get_packages", None)
        path_ctx = getattr(ensurepip, "_get_pip_whl_path_ctx", None)
        if get_packages is not None:
            for name, pkg in get_packages().items():
                path = getattr(pkg, "wheel_path", None)
                if not path:
                    path = os.path.join(here, "_bundled", pkg.wheel_name)
                wheels[name] = str(path)
        elif path_ctx is not None:
            with path_ctx() as path:
                wheels["pip"] = str(path)
        wheels = {k: v for k, v in wheels.items() if os.path.isfile(v)}
        if "pip" not in wheels:
            wheels = {}
            for path in sorted(glob.glob(os.path.join(here, "_bundled", "*.whl"))):
                wheels[os.path.basename(path).split("-")[0]] = path
    return {
        "executable": sys.executable,
        "version": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "wheels": wheels,
    }
"""

_PIP_SCRIPT = re.compile(r"pip(\d+(\.\d+)?)?")


class VenvError(Exception):
    """A failure reported as one line on stderr with exit status 2."""


class Interpreter(NamedTuple):
    """A Python interpreter and the wheels its ``ensurepip`` bundles."""

    executable: str
    version: tuple[int, int, int]
    implementation: str
    wheels: dict[str, str]  # project name -> wheel file

    @property
    def short(self) -> str:
        name = {"cpython": "CPython", "pypy": "PyPy"}.get(self.implementation, self.implementation)
        return f"{name} {'.'.join(map(str, self.version))}"


def _interpreter_from(data: dict[str, Any]) -> Interpreter:
    return Interpreter(
        executable=str(data["executable"]),
        version=(int(data["version"][0]), int(data["version"][1]), int(data["version"][2])),
        implementation=str(data["implementation"]),
        wheels={str(k): str(v) for k, v in data["wheels"].items()},
    )


def interpreter_info(python: str | os.PathLike[str] | None = None) -> Interpreter:
    """The interpreter ``python`` (default: the running one) and its ensurepip wheels.

    Raises VenvError when the interpreter does not exist or cannot run.
    """
    if python is None:
        namespace: dict[str, Any] = {}
        exec(compile(_LOCATE, "<pip-linkmode ensurepip locator>", "exec"), namespace)
        return _interpreter_from(namespace["locate"]())
    exe = _resolve_python(os.fspath(python))
    try:
        proc = subprocess.run(
            [exe, "-I", "-c", _LOCATE + "\nprint(json.dumps(locate()))"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except OSError as exc:
        raise VenvError(f"cannot run the interpreter {exe}: {exc.strerror or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise VenvError(f"the interpreter {exe} did not answer within {exc.timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise VenvError(f"the interpreter {exe} failed: {_last_line(proc.stderr)}")
    try:
        return _interpreter_from(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise VenvError(f"{exe} did not answer like a Python 3 interpreter") from exc


def _resolve_python(python: str) -> str:
    """A path to the interpreter: a path as given, a command on PATH, or ``3.12``.

    On Windows a version is also looked up with the ``py`` launcher
    (``py -3.12``), as python.org's installers put no ``python3.12`` on PATH.
    """
    if os.sep in python or (os.altsep and os.altsep in python):
        if os.path.isfile(python) and os.access(python, os.X_OK):
            return os.path.abspath(python)
        raise VenvError(f"no Python interpreter at {python} (no such executable file)")
    version = re.fullmatch(r"\d+(\.\d+)*", python) is not None
    found = shutil.which(f"python{python}" if version else python)
    if found:
        return found
    where = "on PATH"
    if version and os.name == "nt":
        found = _py_launcher(python)
        if found:
            return found
        where = "on PATH or by the py launcher"
    raise VenvError(f"no Python interpreter {python!r} found {where}; give its path with --python")


def _py_launcher(version: str) -> str | None:
    """The interpreter the Windows ``py`` launcher runs for ``-VERSION``, if any."""
    py = shutil.which("py")
    if py is None:
        return None
    try:
        proc = subprocess.run(
            [py, f"-{version}", "-c", "import sys; print(sys.executable)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not os.path.isfile(lines[-1].strip()):
        return None
    return lines[-1].strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


# -- seeding ------------------------------------------------------------------


class SeedResult:
    """What ``seed`` put into an environment."""

    def __init__(self, installed: list[str] | None = None, report: InstallReport | None = None) -> None:
        self.installed: list[str] = [] if installed is None else installed  # "name-version"
        self.report = InstallReport() if report is None else report

    def __repr__(self) -> str:
        return f"<SeedResult {self.installed} {self.report!r}>"


def seed(
    env_dir: str | os.PathLike[str],
    *,
    interpreter: Interpreter | None = None,
    link_mode: LinkMode | str | None = None,
    cache: WheelCache | str | os.PathLike[str] | None = None,
    seed_linkmode: bool = False,
    target: Target | None = None,
    compile_bytecode: bool | None = None,
    script_interpreter: str | None = None,
    opt_in: bool = True,
) -> SeedResult:
    """Install the interpreter's ensurepip wheels (and optionally pip-linkmode) by links.

    With ``seed_linkmode``, ``opt_in`` also turns on the environment's
    opt-in (``optin.mark_environment``, as the virtualenv seeder does): its
    plain ``pip install`` links too.

    ``script_interpreter``: the environment's interpreter as scripts name
    it, where that is not ``bin/python`` (``venv`` runs ensurepip with the
    base interpreter's own name: ``bin/python3.13`` for a 3.13 made from a
    venv, and pip's scripts then name that).

    ``interpreter`` None means the running interpreter; ``env_dir`` must be
    a virtual environment of that interpreter. ``compile_bytecode`` links
    ``.pyc`` files compiled once into the cache, as ensurepip's pip compiles
    them; None means whenever the environment's Python version is the
    running one's (the engine compiles with the running interpreter).
    """
    interp = interpreter if interpreter is not None else interpreter_info()
    if "pip" not in interp.wheels:
        raise VenvError(
            f"{interp.executable} bundles no pip wheel for ensurepip; use --without-pip "
            "and install pip yourself"
        )
    if target is None:
        target = target_for_venv(env_dir)
    if script_interpreter is not None:
        target = target._replace(interpreter=script_interpreter)
    same_version = tuple(target.version) == tuple(sys.version_info[:2])
    if compile_bytecode is None:
        compile_bytecode = same_version
    elif compile_bytecode and not same_version:
        raise VenvError(
            f"cannot compile bytecode for Python {target.version[0]}.{target.version[1]} "
            f"from Python {sys.version_info[0]}.{sys.version_info[1]}; leave out --compile"
        )
    names = sorted(interp.wheels, key=lambda n: (n == "pip", n))  # pip last, as ensurepip
    wheels = [interp.wheels[n] for n in names]
    mode = link_mode_from_env() if link_mode is None else parse_link_mode(link_mode)
    with contextlib.ExitStack() as stack:
        if seed_linkmode:
            packed = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pip-linkmode-seed-")))
            wheels[-1] = _pip_for_linkmode(wheels[-1], packed, target.version)
        return _seed(
            env_dir, interp, wheels, mode, link_mode, cache, seed_linkmode, target, compile_bytecode, interpreter,
            opt_in=opt_in,
        )


def _pip_for_linkmode(pip_wheel: str, out_dir: Path, version: Sequence[int]) -> str:
    """The pip wheel to seed beside pip-linkmode: the interpreter's bundled
    one when pip-linkmode supports it, else this environment's pip, packed
    from its installed copy (Python 3.10's ensurepip bundles pip 23.0.1,
    older than the pip-linkmode front end works with)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import parse_wheel_filename

    wanted = SpecifierSet()
    for text in _own_distribution().requires or []:
        req = Requirement(text)
        if req.name.lower() == "pip":
            wanted &= req.specifier
    bundled = parse_wheel_filename(os.path.basename(pip_wheel))[1]
    if wanted.contains(bundled, prereleases=True):
        return pip_wheel
    running = metadata.distribution("pip")
    python = f"{version[0]}.{version[1]}"
    requires_python = running.metadata["Requires-Python"] or ""
    if not wanted.contains(running.version, prereleases=True) or not SpecifierSet(requires_python).contains(
        f"{python}.0", prereleases=True
    ):
        raise VenvError(
            f"Python {python} bundles pip {bundled}, and pip-linkmode needs pip{wanted}; this "
            f"environment's pip {running.version} cannot stand in for it (leave out --seed-linkmode)"
        )
    return str(_pack_wheel(out_dir, running, _dist_files(running)))


def _seed(
    env_dir: str | os.PathLike[str],
    interp: Interpreter,
    wheels: list[str],
    mode: LinkMode,
    link_mode: LinkMode | str | None,
    cache: WheelCache | str | os.PathLike[str] | None,
    seed_linkmode: bool,
    target: Target,
    compile_bytecode: bool,
    interpreter: Interpreter | None,
    *,
    opt_in: bool = True,
) -> SeedResult:
    result = SeedResult()
    # The same seed into a fresh environment of the same layout is recorded
    # once and replayed after (``plan``): no wheel opened, installer not imported.
    key = None
    env_root = os.path.abspath(env_dir)
    layout = _layout(target, env_root)
    if layout is not None and not seed_linkmode and interpreter is None:
        cache_root = _cache_root(cache)
        levels = (0,) if compile_bytecode else ()
        key = plan.plan_key(wheels, layout, mode, levels, "pip")
        replayed = plan.replay(cache_root, key, env_root, target.interpreter, mode)
        if replayed is not None:  # (symlink-mode users are registered by its Placement)
            result.installed.extend(replayed.installed)
            result.report.installed.extend(replayed.installed)
            result.report.links = replayed.report
            return result
        before = plan.snapshot(env_root)
    wheel_cache = _wheel_cache(cache)
    journal: list[tuple[str, str, int]] | None = [] if key is not None else None
    report = install_wheels(
        wheels,
        target=target,
        link_mode=mode,
        cache=wheel_cache,
        installer_name="pip",
        compile_bytecode=compile_bytecode,
        journal=journal,
    )
    result.report.links.requested = report.links.requested
    _merge(result, report)
    pip = next(i for i in report.installed if i.rpartition("-")[0].lower() == "pip")
    fix_pip_scripts(target, Path(target.paths["purelib"]) / f"{pip}.dist-info", interp.version[:2])
    if key is not None and journal is not None:
        plan.record(
            str(wheel_cache.root), key, env_root, target.interpreter, journal, before, report.installed
        )
    if seed_linkmode:
        with tempfile.TemporaryDirectory(prefix="pip-linkmode-seed-") as tmp:
            own, deps = linkmode_wheels(Path(tmp), interp.version[:2])
            _merge(result, install_wheels(
                [own],
                target=target,
                link_mode=link_mode,
                cache=wheel_cache,
                installer_name="pip",
                compile_bytecode=compile_bytecode,
            ))
            if deps:
                _merge(result, install_wheels(
                    deps,
                    target=target,
                    link_mode=link_mode,
                    cache=wheel_cache,
                    installer_name="pip",
                    requested=False,
                    compile_bytecode=compile_bytecode,
                ))
        if opt_in:
            from .optin import mark_environment

            mark_environment(target.paths["purelib"])
    return result


def _layout(target: Target, env_root: str) -> dict[str, str] | None:
    """The target's scheme paths relative to ``env_root``; None if one lies outside."""
    layout = {}
    for name, path in target.paths.items():
        rel = os.path.relpath(path, env_root)
        if rel.startswith(os.pardir):
            return None
        layout[name] = rel
    return layout


def _cache_root(cache: WheelCache | str | os.PathLike[str] | None) -> str:
    """The absolute cache root that ``WheelCache(cache)`` would use."""
    if cache is None or isinstance(cache, (str, os.PathLike)):
        return str(resolve_root(cache))
    return str(cache.root)  # a WheelCache (not imported here: the fast path avoids it)


def _wheel_cache(cache: WheelCache | str | os.PathLike[str] | None) -> WheelCache:
    """``cache`` as a WheelCache (imported here: only the full install needs it)."""
    from .cache import WheelCache

    return cache if isinstance(cache, WheelCache) else WheelCache(cache)


def _merge(result: SeedResult, report: InstallReport) -> None:
    result.installed.extend(report.installed)
    result.report.installed.extend(report.installed)
    result.report.links.merge(report.links)
    result.report.unpacked += report.unpacked




def fix_pip_scripts(target: Target, dist_info: Path, version: tuple[int, ...]) -> None:
    """Give pip the scripts pip's installer gives it: ``pip``, ``pipX``, ``pipX.Y``.

    pip's wheel lists the versioned scripts of the Python it was built with
    (``pip3.11`` in the wheel bundled with 3.12, none at all in 24.2);
    pip's installer drops those and writes the target's. Generated scripts
    are per-environment files (never linked), so they are renamed or added
    here and the RECORD rows follow. Script contents do not depend on the
    script's name (a ``.exe`` launcher's neither). The rows name the scripts
    as pip does: relative to site-packages, '/'-separated (installer writes
    absolute paths on Windows, e.g. ``C:\\env\\Scripts/pip.exe``).
    """
    record = dist_info / "RECORD"
    rows: list[list[str]] = [row for row in csv.reader(record.read_text("utf-8").splitlines()) if row]
    scripts_dir = os.path.normcase(os.path.abspath(target.paths["scripts"]))
    site = target.paths["purelib"]
    wanted = ["pip", f"pip{version[0]}", f"pip{version[0]}.{version[1]}"]
    present: dict[str, tuple[list[str], Path]] = {}
    for row in rows:
        name = posixpath.basename(row[0].replace("\\", "/"))
        if not name.startswith("pip") or not (row[0].startswith("..") or os.path.isabs(row[0])):
            continue  # scripts live outside site-packages
        path = Path(os.path.normpath(os.path.join(site, row[0])))
        if os.path.normcase(str(path.parent)) != scripts_dir:
            continue
        stem = path.stem if path.suffix.lower() == ".exe" else path.name
        if _PIP_SCRIPT.fullmatch(stem):
            present[stem] = (row, path)
    if not present:
        return
    model_row, model_path = present.get("pip") or next(iter(present.values()))
    ext = model_path.suffix if model_path.suffix.lower() == ".exe" else ""
    dropped = [stem for stem in present if stem not in wanted]
    for stem in dropped:
        row, path = present[stem]
        path.unlink()
        rows.remove(row)
    missing = [stem for stem in wanted if stem not in present]
    renamed = False
    for stem, (row, path) in present.items():
        if stem not in dropped and row[0] != _record_name(path, site):
            row[0] = _record_name(path, site)
            renamed = True
    if not missing and not dropped and not renamed:
        return
    if missing:
        data = model_path.read_bytes()
        mode = stat.S_IMODE(model_path.stat().st_mode)
        for stem in missing:
            path = model_path.with_name(stem + ext)
            write_beside(str(path), data, mode)
            rows.append([_record_name(path, site), model_row[1], model_row[2]])
    rows.sort(key=lambda r: r[0])  # installer writes RECORD sorted by path
    buf = io.StringIO()
    csv.writer(buf, delimiter=",", quotechar='"', lineterminator="\n").writerows(rows)
    write_beside(str(record), buf.getvalue().encode("utf-8"))


def _record_name(path: Path, site: str) -> str:
    """How pip's RECORD names a file outside site-packages: relative, '/'-separated
    (absolute where no relative path exists, e.g. on another Windows drive)."""
    try:
        name = os.path.relpath(path, site)
    except ValueError:
        name = str(path)
    return name.replace(os.sep, "/")


# -- pip-linkmode itself as wheels (for --seed-linkmode) ----------------------

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SKIP_DIST_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "RECORD.jws", "RECORD.p7s", "WHEEL"}


def linkmode_wheels(out_dir: Path, version: tuple[int, ...] | None = None) -> tuple[Path, list[Path]]:
    """Wheels of the running pip-linkmode and of its runtime dependencies but pip.

    They are packed from the installed distributions (deterministically, so
    the cache recognises them on the next run): pip-linkmode from the package
    directory this module was imported from (editable installs included),
    each dependency from the files its RECORD lists. Returns (own wheel,
    dependency wheels).
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    dist = _own_distribution()
    requires_python = dist.metadata["Requires-Python"]
    if version is not None and requires_python:
        if not SpecifierSet(requires_python).contains(".".join(map(str, version[:2])) + ".0"):
            raise VenvError(
                f"pip-linkmode needs Python {requires_python}; the environment has "
                f"{'.'.join(map(str, version[:2]))} (leave out --seed-linkmode)"
            )
    from .optin import root_files

    own_files = _package_files(Path(__file__).resolve().parent, "pip_linkmode")
    own_files.update(root_files())  # the --use-feature=linkmode start-up hook and its gate
    own = _pack_wheel(out_dir, dist, own_files)
    deps: list[Path] = []
    env = None
    if version is not None:
        env = {"python_version": f"{version[0]}.{version[1]}", "python_full_version": f"{version[0]}.{version[1]}.0"}
    for text in dist.requires or []:
        req = Requirement(text)
        if req.name.lower() == "pip" or (req.marker and not req.marker.evaluate(env)):
            continue
        dep = metadata.distribution(req.name)
        deps.append(_pack_wheel(out_dir, dep, _dist_files(dep)))
    return own, deps


def _own_distribution() -> Any:
    """pip-linkmode's installed distribution. A source checkout on sys.path
    (the current directory, say) may hold a stale pip_linkmode.egg-info,
    which Python 3.10 finds first and which has no METADATA: skipped."""
    from importlib import metadata

    found = (d for d in metadata.distributions(name="pip-linkmode") if d.read_text("METADATA") is not None)
    return next(found, None) or metadata.distribution("pip-linkmode")


def _package_files(directory: Path, arc_prefix: str) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        rel = os.path.relpath(dirpath, directory)
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                continue
            arc = posixpath.join(arc_prefix, *([] if rel == "." else rel.split(os.sep)), name)
            files[arc] = Path(dirpath) / name
    return files


def _dist_files(dist: Any) -> dict[str, Path]:
    """Files of an installed distribution that belong in its wheel's root."""
    files: dict[str, Path] = {}
    for entry in dist.files or []:
        parts = entry.parts
        if not parts or parts[0] == ".." or "__pycache__" in parts or parts[0].endswith(".dist-info"):
            continue
        if entry.name.endswith((".pyc", ".pyo", ".pth")):
            continue
        if entry.name.endswith((".so", ".pyd", ".dylib")):
            raise VenvError(f"{dist.metadata['Name']} is not pure Python; cannot seed it from the installed copy")
        files["/".join(parts)] = Path(dist.locate_file(entry))
    if not files:
        raise VenvError(f"cannot find the installed files of {dist.metadata['Name']}")
    return files


def _pack_wheel(out_dir: Path, dist: Any, files: dict[str, Path]) -> Path:
    from packaging.utils import canonicalize_name

    from .cache import record_digest

    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    version = str(dist.version)
    dist_info = f"{name}-{version}.dist-info"
    members: dict[str, bytes] = {arc: path.read_bytes() for arc, path in files.items()}
    # (os.access says X_OK for every file on Windows, which has no executable bit)
    modes: dict[str, int] = {
        arc: 0o755 if os.name != "nt" and os.access(path, os.X_OK) and not arc.endswith(".py") else 0o644
        for arc, path in files.items()
    }
    for entry in dist.files or []:
        if len(entry.parts) == 2 and entry.parts[0].endswith(".dist-info") and entry.name not in _SKIP_DIST_INFO:
            members[f"{dist_info}/{entry.name}"] = Path(dist.locate_file(entry)).read_bytes()
    for extra in ("METADATA", "entry_points.txt"):
        text = dist.read_text(extra)
        if text is not None:
            members[f"{dist_info}/{extra}"] = text.encode("utf-8")
    members[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: pip-linkmode (repacked installed copy)\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    from hashlib import sha256  # (only here: a seeded venv imports no hashlib)

    record_path = f"{dist_info}/RECORD"
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=",", quotechar='"', lineterminator="\n")
    for arc in sorted(members):
        data = members[arc]
        writer.writerow([arc, "sha256=" + record_digest(sha256(data).digest()), str(len(data))])
    writer.writerow([record_path, "", ""])
    members[record_path] = buf.getvalue().encode("utf-8")
    out = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for arc in sorted(members, key=lambda a: (a == record_path, a)):
            info = zipfile.ZipInfo(arc, date_time=_ZIP_DATE)
            info.external_attr = (stat.S_IFREG | modes.get(arc, 0o644)) << 16
            zf.writestr(info, members[arc])
    return out


# -- the EnvBuilder -----------------------------------------------------------


class LinkedEnvBuilder(venv.EnvBuilder):
    """``venv.EnvBuilder`` whose ``with_pip=True`` seeds pip by links, never via ensurepip.

    Extra keyword arguments: ``link_mode`` (None: ``PIP_LINK_MODE`` or
    auto), ``cache_dir`` (a path or a ``WheelCache``; None: the default
    cache), ``seed_linkmode`` (also install pip-linkmode and its
    dependencies) and ``opt_in`` (with ``seed_linkmode``: the environment's
    plain ``pip install`` links too; ``seed``). Everything else is passed to ``venv.EnvBuilder``. After
    ``create()``, ``seed_result`` says what was installed and how.
    """

    def __init__(
        self,
        system_site_packages: bool = False,
        clear: bool = False,
        symlinks: bool = False,
        upgrade: bool = False,
        with_pip: bool = False,
        prompt: str | None = None,
        upgrade_deps: bool = False,
        *,
        link_mode: LinkMode | str | None = None,
        cache_dir: WheelCache | str | os.PathLike[str] | None = None,
        seed_linkmode: bool = False,
        compile_bytecode: bool | None = None,
        opt_in: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            system_site_packages=system_site_packages,
            clear=clear,
            symlinks=symlinks,
            upgrade=upgrade,
            with_pip=with_pip,
            prompt=prompt,
            upgrade_deps=upgrade_deps,
            **kwargs,
        )
        self.link_mode = None if link_mode is None else parse_link_mode(link_mode)
        self.cache_dir = cache_dir
        self.seed_linkmode = seed_linkmode
        self.compile_bytecode = compile_bytecode
        self.opt_in = opt_in
        self.seed_result: SeedResult | None = None

    def _setup_pip(self, context: SimpleNamespace) -> None:
        """Seed the ensurepip wheels by links (replaces ensurepip's run)."""
        self.seed_result = seed(
            context.env_dir,
            link_mode=self.link_mode,
            cache=self.cache_dir,
            seed_linkmode=self.seed_linkmode,
            compile_bytecode=self.compile_bytecode,
            script_interpreter=context.env_exec_cmd,
            opt_in=self.opt_in,
        )


def create(
    env_dir: str | os.PathLike[str],
    system_site_packages: bool = False,
    clear: bool = False,
    symlinks: bool = False,
    with_pip: bool = True,
    prompt: str | None = None,
    upgrade_deps: bool = False,
    *,
    link_mode: LinkMode | str | None = None,
    cache_dir: WheelCache | str | os.PathLike[str] | None = None,
    seed_linkmode: bool = False,
    compile_bytecode: bool | None = None,
    opt_in: bool = True,
    **kwargs: Any,
) -> SeedResult | None:
    """Like ``venv.create``, but pip is seeded by links (and on by default).

    Returns what was seeded, or None with ``with_pip=False``.
    """
    builder = LinkedEnvBuilder(
        system_site_packages=system_site_packages,
        clear=clear,
        symlinks=symlinks,
        with_pip=with_pip,
        prompt=prompt,
        upgrade_deps=upgrade_deps,
        link_mode=link_mode,
        cache_dir=cache_dir,
        seed_linkmode=seed_linkmode,
        compile_bytecode=compile_bytecode,
        opt_in=opt_in,
        **kwargs,
    )
    builder.create(os.fspath(env_dir))
    return builder.seed_result


# -- command line -------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Create a virtual environment with the standard library's venv and "
        "seed pip (the wheel the interpreter's ensurepip bundles) by links from the shared cache.",
    )
    p.add_argument("dir", metavar="DIR", help="the environment's directory")
    p.add_argument("packages", metavar="PACKAGE", nargs="*", default=[], help="packages to install afterwards")
    p.add_argument("-r", "--requirement", action="append", default=[], metavar="FILE",
                   help="install from this requirements file afterwards (repeatable)")
    p.add_argument("--link-mode", type=_mode_arg, default=None, metavar="MODE",
                   help=f"one of {', '.join(CHOICES)} (default: PIP_LINK_MODE or auto)")
    p.add_argument("--cache-dir", default=None, metavar="D", help="the wheel cache (default: PIP_LINKMODE_CACHE_DIR or the user cache)")
    p.add_argument("--python", default=None, metavar="PY",
                   help="create the environment for this interpreter (path, command or version like 3.12)")
    p.add_argument("--prompt", default=None, metavar="P", help="the prompt prefix of the environment")
    p.add_argument("--system-site-packages", action="store_true", help="give access to the system site-packages")
    p.add_argument("--clear", action="store_true", help="delete the directory's contents first")
    p.add_argument("--without-pip", action="store_true", help="do not seed pip")
    p.add_argument("--seed-linkmode", action="store_true",
                   help="also install pip-linkmode (and installer, packaging, filelock) into the environment, "
                   "with its opt-in on: plain pip install there links too")
    p.add_argument("--no-linkmode-opt-in", dest="opt_in", action="store_false",
                   help="with --seed-linkmode: leave the opt-in off (pip install links only with "
                   "--use-feature=linkmode), as the virtualenv seeder's option of that name")
    pyc = p.add_mutually_exclusive_group()
    pyc.add_argument("--compile", dest="compile", action="store_true", default=None,
                     help="link .pyc files compiled once into the cache, as ensurepip compiles them "
                     "(the default when the environment's Python version is the running one's)")
    pyc.add_argument("--no-compile", dest="compile", action="store_false", help="link no .pyc files")
    links = p.add_mutually_exclusive_group()
    links.add_argument("--symlinks", dest="symlinks", action="store_true", default=None,
                       help="symlink the interpreter (the default on POSIX)")
    links.add_argument("--copies", dest="symlinks", action="store_false", help="copy the interpreter")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def _mode_arg(value: str) -> LinkMode:
    try:
        return parse_link_mode(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _error(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return 2


def _make_dir(path: Path) -> Path | None:
    """Create ``path`` (and parents); return the topmost directory created, or None."""
    missing: list[Path] = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    if not missing:
        return None
    try:
        os.makedirs(path)
    except OSError as exc:
        for d in missing:  # the lowest first
            try:
                os.rmdir(d)
            except OSError:
                pass
        raise VenvError(f"cannot create {path}: {exc.strerror or exc}") from exc
    return missing[-1]


def _undo(env_dir: Path, created: Path | None) -> None:
    """Remove what this run put there: the directories it created, else the contents."""
    from .cache import remove_tree

    try:
        if created is not None:
            remove_tree(created)
        elif env_dir.is_dir():
            for child in env_dir.iterdir():
                remove_tree(child)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: warning: could not remove {env_dir} completely: {exc}\n")


def main_venv(argv: Sequence[str]) -> int:
    """``pip-linkmode venv DIR [options] [PACKAGE ... | -r FILE]``; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.without_pip and args.seed_linkmode:
        return _error("--seed-linkmode needs pip in the environment; leave out --without-pip")
    if not args.opt_in and not args.seed_linkmode:
        return _error("--no-linkmode-opt-in is for --seed-linkmode (without it no pip-linkmode is installed)")
    env_dir = Path(os.path.abspath(args.dir))
    if os.path.lexists(env_dir):
        if not env_dir.is_dir():
            return _error(f"{env_dir} exists and is not a directory")
        if not args.clear and next(os.scandir(env_dir), None) is not None:
            return _error(f"{env_dir} exists and is not empty; use --clear to replace its contents")
    try:
        interp = interpreter_info(args.python) if args.python else None
        created = _make_dir(env_dir)
    except VenvError as exc:
        return _error(str(exc))
    try:
        interp, result = _build(args, env_dir, interp)
        if args.packages or args.requirement:
            _install_packages(args, env_dir)
    except (VenvError, CacheError, LinkError, OSError, subprocess.SubprocessError) as exc:
        _undo(env_dir, created)
        return _error(_one_line(exc))
    except BaseException:
        _undo(env_dir, created)
        raise
    if not args.quiet:
        print(f"created virtual environment {env_dir} ({interp.short}, {interp.executable})")
        if result is not None:
            print(f"seeded {', '.join(result.installed)}")
            print(result.report.summary())
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, LinkError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _build(
    args: argparse.Namespace, env_dir: Path, interp: Interpreter | None
) -> tuple[Interpreter, SeedResult | None]:
    with_pip = not args.without_pip
    if interp is None:  # the running interpreter: build in this process
        interp = interpreter_info()
        symlinks = os.name != "nt" if args.symlinks is None else args.symlinks
        extra: dict[str, Any] = {}
        if sys.version_info >= (3, 13):
            extra["scm_ignore_files"] = {"git"}  # as `python -m venv` does
        builder = LinkedEnvBuilder(
            system_site_packages=args.system_site_packages,
            clear=args.clear,
            symlinks=symlinks,
            with_pip=with_pip,
            prompt=args.prompt,
            link_mode=args.link_mode,
            cache_dir=args.cache_dir,
            seed_linkmode=args.seed_linkmode,
            compile_bytecode=args.compile,
            opt_in=args.opt_in,
            **extra,
        )
        builder.create(str(env_dir))
        return interp, builder.seed_result
    cmd = [interp.executable, "-m", "venv", "--without-pip"]
    if args.prompt is not None:
        cmd += ["--prompt", args.prompt]
    if args.system_site_packages:
        cmd.append("--system-site-packages")
    if args.clear:
        cmd.append("--clear")
    if args.symlinks is not None:
        cmd.append("--symlinks" if args.symlinks else "--copies")
    proc = subprocess.run([*cmd, str(env_dir)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise VenvError(f"{interp.executable} -m venv failed: {_last_line(proc.stderr or proc.stdout)}")
    if not with_pip:
        return interp, None
    result = seed(
        env_dir,
        interpreter=interp,
        link_mode=args.link_mode,
        cache=args.cache_dir,
        seed_linkmode=args.seed_linkmode,
        compile_bytecode=args.compile,
        opt_in=args.opt_in,
    )
    return interp, result


def _install_packages(args: argparse.Namespace, env_dir: Path) -> None:
    """Install the requested packages through the pip front end (``pip-linkmode install``)."""
    python = str(venv_python(env_dir))
    if args.seed_linkmode:
        cmd = [python, "-m", "pip_linkmode", "install"]
    else:
        cmd = [sys.executable, "-m", "pip_linkmode", "install", "--python", python]
    if args.link_mode is not None:
        cmd += ["--link-mode", str(args.link_mode)]
    if args.cache_dir is not None:
        cmd += ["--cache-dir", os.path.abspath(args.cache_dir)]
    for req in args.requirement:
        cmd += ["-r", req]
    cmd += args.packages
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise VenvError(
            f"installing {' '.join(_describe(args.packages, args.requirement))} failed "
            f"(exit status {code}); removed {env_dir}"
        )


def _describe(packages: Iterable[str], requirements: Iterable[str]) -> list[str]:
    return [*packages, *(f"-r {r}" for r in requirements)]
