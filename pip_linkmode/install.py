"""``install_wheels``: wheel files in, an environment out (the library door and venv seeding)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .linker import Linker, LinkReport
from .modes import LinkMode, link_mode_from_env, parse_link_mode

if TYPE_CHECKING:
    from .cache import WheelCache

__all__ = [
    "InstallReport",
    "Target",
    "install_wheel",
    "install_wheels",
    "target_for_python",
    "target_for_venv",
]

SCHEME_KEYS = ("purelib", "platlib", "headers", "scripts", "data")

# Run by the target interpreter when it is not the running one.
_PROBE = r"""
import json, sys, sysconfig
paths = sysconfig.get_paths()
venv = sys.prefix != sys.base_prefix
print(json.dumps({
    "executable": sys.executable,
    "version": list(sys.version_info[:2]),
    "cache_tag": sys.implementation.cache_tag,
    "paths": paths,
    "venv": venv,
    "prefix": sys.prefix,
}))
"""


class Target(NamedTuple):
    """Where an interpreter's environment keeps each kind of file."""

    interpreter: str
    version: tuple[int, int]
    cache_tag: str | None
    paths: Mapping[str, str]  # purelib, platlib, scripts, data, headers base
    is_venv: bool

    def scheme_for(self, name: str) -> dict[str, str]:
        """The installer scheme dict for one distribution."""
        scheme = {k: self.paths[k] for k in ("purelib", "platlib", "scripts", "data")}
        scheme["headers"] = os.path.join(self.paths["headers"], name)
        return scheme

    def with_root(self, root: str | os.PathLike[str]) -> Target:
        """This target re-rooted under ``root`` (like pip's ``--root``)."""
        def reroot(p: str) -> str:
            drive, rest = os.path.splitdrive(os.path.abspath(p))
            return os.path.join(os.fspath(root), rest.lstrip("\\/"))

        return Target(
            self.interpreter,
            self.version,
            self.cache_tag,
            {k: reroot(v) for k, v in self.paths.items()},
            self.is_venv,
        )


def _headers_base(info: Mapping[str, Any]) -> str:
    major, minor = info["version"]
    if info["venv"]:
        return os.path.join(info["prefix"], "include", "site", f"python{major}.{minor}")
    return str(info["paths"]["include"])


def _target_from_info(info: Mapping[str, Any]) -> Target:
    paths = dict(info["paths"])
    paths["headers"] = _headers_base(info)
    return Target(
        interpreter=info["executable"],
        version=tuple(info["version"]),  # type: ignore[arg-type]
        cache_tag=info["cache_tag"],
        paths={k: paths[k] for k in SCHEME_KEYS},
        is_venv=bool(info["venv"]),
    )


def _running_info() -> dict[str, Any]:
    return {
        "executable": sys.executable,
        "version": list(sys.version_info[:2]),
        "cache_tag": sys.implementation.cache_tag,
        "paths": sysconfig.get_paths(),
        "venv": sys.prefix != sys.base_prefix,
        "prefix": sys.prefix,
    }


def target_for_python(python: str | os.PathLike[str] | None = None) -> Target:
    """The environment of an interpreter (default: the running one)."""
    if python is None or os.path.abspath(python) == os.path.abspath(sys.executable):
        return _target_from_info(_running_info())
    import subprocess  # (a venv's own interpreter is read without it)

    try:
        out = subprocess.run(
            [os.fspath(python), "-I", "-c", _PROBE],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no Python interpreter at {python}") from exc
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"cannot query interpreter {python}: {exc.stderr.strip()}") from exc
    return _target_from_info(json.loads(out))


def venv_python(venv: str | os.PathLike[str]) -> Path:
    """The interpreter inside a virtual environment directory."""
    root = Path(venv)
    if os.name == "nt":
        return root / "Scripts" / "python.exe"
    return root / "bin" / "python"


def target_for_venv(venv: str | os.PathLike[str]) -> Target:
    """The environment of a virtual environment directory.

    Computed in-process when the venv has the running interpreter's version,
    else by asking the venv's own interpreter.
    """
    root = Path(os.path.abspath(venv))
    python = venv_python(root)
    cfg = root / "pyvenv.cfg"
    if not cfg.is_file():
        raise FileNotFoundError(f"{root} is not a virtual environment (no pyvenv.cfg)")
    version = _cfg_version(cfg)
    if version == sys.version_info[:2]:
        scheme = "venv" if "venv" in sysconfig.get_scheme_names() else (
            "nt" if os.name == "nt" else "posix_prefix"
        )
        base = str(root)
        paths = sysconfig.get_paths(
            scheme,
            vars={"base": base, "platbase": base, "installed_base": base, "installed_platbase": base},
        )
        info = {
            "executable": str(python),
            "version": list(version),
            "cache_tag": sys.implementation.cache_tag,
            "paths": paths,
            "venv": True,
            "prefix": base,
        }
        return _target_from_info(info)
    return target_for_python(python)


def _cfg_version(cfg: Path) -> tuple[int, int] | None:
    for line in cfg.read_text("utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            parts = value.strip().split(".")
            try:
                return int(parts[0]), int(parts[1])
            except (ValueError, IndexError):
                return None
    return None


class InstallReport:
    """What ``install_wheels`` did."""

    def __init__(
        self,
        installed: list[str] | None = None,
        links: LinkReport | None = None,
        unpacked: int = 0,
    ) -> None:
        self.installed: list[str] = [] if installed is None else installed  # "name-version"
        self.links = LinkReport() if links is None else links
        self.unpacked = unpacked  # wheels unpacked into the cache by this call

    def __repr__(self) -> str:
        return f"<InstallReport {self.installed} unpacked={self.unpacked} {self.links!r}>"

    def summary(self) -> str:
        return self.links.summary()


def _additional_metadata(
    installer_name: str, requested: bool, direct_url: Mapping[str, Any] | str | None
) -> dict[str, bytes]:
    meta = {"INSTALLER": f"{installer_name}\n".encode()}
    if requested:
        meta["REQUESTED"] = b""
    if direct_url is not None:
        text = direct_url if isinstance(direct_url, str) else json.dumps(direct_url, sort_keys=True)
        meta["direct_url.json"] = text.encode("utf-8")
    return meta


def install_wheels(
    wheels: Iterable[str | os.PathLike[str]],
    *,
    target: Target | None = None,
    venv: str | os.PathLike[str] | None = None,
    python: str | os.PathLike[str] | None = None,
    link_mode: LinkMode | str | None = None,
    cache: WheelCache | str | os.PathLike[str] | None = None,
    requested: bool = True,
    direct_url: Mapping[str, Any] | str | None = None,
    installer_name: str = "pip-linkmode",
    overwrite_existing: bool = True,
    compile_bytecode: bool = False,
    journal: list[tuple[str, str, int]] | None = None,
) -> InstallReport:
    """Install wheel files into a target, a venv or an interpreter's environment.

    Exactly one of ``target``, ``venv`` and ``python`` may be given; none
    means the running interpreter. ``link_mode`` None reads ``PIP_LINK_MODE``.
    ``compile_bytecode`` links ``.pyc`` files compiled once into the cache; it
    needs the target interpreter to be the running one (as pip's, whose
    ``--python`` re-runs pip there; ``pip-linkmode install --python`` does too).
    ``journal``, a list, receives (cache path, target path, size) of every
    file placed from the cache (what ``plan.record`` needs).
    """
    # Imported here: replaying a recorded plan (``plan``) needs none of them;
    # installer only where an entry is not installed from its layout alone.
    from . import bytecode
    from .cache import WheelCache
    from .laidout import LayoutTarget, install_layout
    from .placement import Layout, register_symlink_users, stored_layout

    if sum(x is not None for x in (target, venv, python)) > 1:
        raise TypeError("give at most one of target, venv and python")
    if target is None:
        target = target_for_venv(venv) if venv is not None else target_for_python(python)
    mode = link_mode_from_env() if link_mode is None else parse_link_mode(link_mode)
    if compile_bytecode and target.version != tuple(sys.version_info[:2]):
        raise ValueError(
            f"compile_bytecode needs the target's interpreter (Python {target.version[0]}."
            f"{target.version[1]}) to run this install: run it there, or use "
            "`pip-linkmode install --python`"
        )
    wheel_cache = cache if isinstance(cache, WheelCache) else WheelCache(cache)
    linker = Linker(mode, overwrite=overwrite_existing, help_links=True)
    linker.source_mtimes = compile_bytecode  # only linked .pyc files need them
    linker.placed_log = journal
    report = InstallReport(links=LinkReport(requested=mode))
    if os.name == "nt":
        from installer.utils import get_launcher_kind

        kind = get_launcher_kind()
    else:
        kind = "posix"
    before = len(wheel_cache.unpacked)
    levels = (0,) if compile_bytecode else ()
    # First every entry, unpacked and compiled where missing (compiling
    # overlaps unpacking), taking no lock while waiting for another.
    wheel_list = list(wheels)
    entries = bytecode.prepare(wheel_cache, wheel_list, levels)
    cached_bytecode = bool(levels) and target.cache_tag == sys.implementation.cache_tag
    # An entry with its layout kept goes in without installer (see
    # ``laidout``), as LinkingDestination's laid-out path would place it
    # (``_fast_path_applies``): POSIX scripts, bytecode from the cache.
    lean = kind == "posix" and not linker.platform.clones_directories and (
        not levels or (cached_bytecode and sys.pycache_prefix is None and sys.implementation.cache_tag is not None)
    )
    done: list[tuple[LinkReport, list[tuple[WheelCache | str, str, str]]]] = []
    # Each wheel's files are handed to the linker's worker threads, which
    # place them while this thread does the next wheel's bookkeeping (with
    # an entry's layout, that bookkeeping is per wheel, not per file, so the
    # threads no longer queue for the GIL); a path is never placed before an
    # earlier wheel's file of the same path. The entries stay locked (`cache
    # clean` waits) until every placement is over. Locks are taken in one
    # global order, so installs sharing entries never wait in a cycle.
    with contextlib.ExitStack() as locks:
        for key in sorted({entry.key for entry in entries}):
            locks.enter_context(wheel_cache.lock(key))
        for i, entry in enumerate(entries):
            if not (entry.root / "entry.json").is_file():  # removed before we locked it
                entries[i] = wheel_cache.get(wheel_list[i])
        try:
            for entry in entries:
                name, _, version = entry.dist_info[: -len(".dist-info")].rpartition("-")
                metadata = _additional_metadata(installer_name, requested, direct_url)
                layout = stored_layout(entry) if lean else None
                if isinstance(layout, Layout) and (not layout.entry_points or layout.scripts is not None):
                    wheel_report = LinkReport(requested=mode)
                    place = LayoutTarget(
                        target.scheme_for(name), target.interpreter, linker,
                        overwrite=overwrite_existing, levels=levels,
                    )
                    users = install_layout(entry, wheel_cache, layout, place, metadata, report=wheel_report, wait=False)
                    done.append((wheel_report, users))
                    report.installed.append(f"{name}-{version}")
                    continue
                from .destination import LinkingDestination
                from .source import CachedWheelSource

                source = CachedWheelSource(entry, wheel_cache)
                destination = LinkingDestination(
                    scheme_dict=target.scheme_for(source.distribution),
                    interpreter=target.interpreter,
                    script_kind=kind,  # type: ignore[arg-type]
                    overwrite_existing=overwrite_existing,
                    bytecode_optimization_levels=levels,
                    link_mode=mode,
                    linker=linker,
                    # compile_bytecode checked above that the target's Python is ours
                    cached_bytecode=cached_bytecode,
                    wait_for_links=False,  # the linker's threads go on during the next wheel
                )
                destination.install_cached(source, metadata)
                done.append((destination.report, destination.pending_users))
                report.installed.append(f"{source.distribution}-{source.version}")
            linker.finish()
        except BaseException:
            linker.rollback()
            raise
        finally:
            linker.close()  # its helper processes, if any
    for wheel_report, users in done:
        register_symlink_users(wheel_report, users)
        report.links.merge(wheel_report)
    report.unpacked = len(wheel_cache.unpacked) - before
    return report


def install_wheel(wheel: str | os.PathLike[str], **kwargs: Any) -> InstallReport:
    """Install one wheel file; see ``install_wheels`` for the arguments."""
    return install_wheels([wheel], **kwargs)
