"""The ``linkmode`` virtualenv seeder: ``virtualenv --seeder linkmode ENV`` (or ``VIRTUALENV_SEEDER=linkmode``).

virtualenv chooses the wheels, as its default seeder does: pip, and
setuptools (and wheel) where virtualenv adds them for that Python, with its
``--pip``/``--setuptools``/``--wheel`` versions, ``--no-*`` options,
``--extra-search-dir`` and ``--download`` (off by default: its bundled
wheels, offline). They are placed by links from pip-linkmode's cache
(``pip_linkmode.venv``'s seeding: recorded once as a plan and replayed when
the environment's Python is the one running virtualenv), then pip-linkmode
itself and its dependencies, and the opt-in is turned on for the
environment (``optin.mark_environment``: a marker beside the gate, listed in
pip-linkmode's RECORD), so that every later ``pip install`` there links and
``pip uninstall pip-linkmode`` leaves plain pip.

Options of its own: ``--link-mode MODE`` (default ``PIP_LINK_MODE`` or auto;
``VIRTUALENV_LINK_MODE`` too), ``--symlink-app-data`` (the app-data
seeder's option, here: link mode symlink), ``--no-linkmode-opt-in`` (seed
pip-linkmode without enabling the opt-in). The cache is
``PIP_LINKMODE_CACHE_DIR`` or the default one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from virtualenv.seed.embed.base_embed import BaseEmbed

from .modes import CHOICES, LinkMode, link_mode_from_env, parse_link_mode

__all__ = ["LinkmodeSeeder"]


def _mode(value: str) -> LinkMode:
    try:
        return parse_link_mode(value)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc)) from None


class LinkmodeSeeder(BaseEmbed):
    """Seeds pip (setuptools, wheel) and pip-linkmode by links from the shared cache."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self.link_mode: LinkMode | None = getattr(options, "link_mode", None)
        if getattr(options, "symlink_app_data", False):
            self.link_mode = LinkMode.SYMLINK
        self.opt_in = not getattr(options, "no_linkmode_opt_in", False)

    @classmethod
    def add_parser_arguments(cls, parser: ArgumentParser, interpreter: Any, app_data: Any) -> None:
        super().add_parser_arguments(parser, interpreter, app_data)
        parser.add_argument(
            "--link-mode",
            dest="link_mode",
            metavar="MODE",
            type=_mode,
            default=None,
            help=f"how seeded files arrive from pip-linkmode's cache: {', '.join(CHOICES)} "
            "(default: PIP_LINK_MODE or auto)",
        )
        parser.add_argument(
            "--symlink-app-data",
            dest="symlink_app_data",
            action="store_true",
            default=False,
            help="symlink the seeded files from the cache (--link-mode symlink)",
        )
        parser.add_argument(
            "--no-linkmode-opt-in",
            dest="no_linkmode_opt_in",
            action="store_true",
            default=False,
            help="seed pip-linkmode, but do not turn --use-feature=linkmode on for the environment",
        )

    def __repr__(self) -> str:
        base = super().__repr__()
        return f"{base[:-1]}, link_mode={self.link_mode or 'default'}, opt_in={self.opt_in})"

    def run(self, creator: Any) -> None:
        if not self.enabled:
            return
        from . import venv as seeding
        from .install import install_wheels, target_for_venv

        version = tuple(creator.interpreter.version_info[:3])
        wheels = self._wheels(creator.interpreter.version_release_str)
        env_dir = str(creator.dest)
        target = target_for_venv(env_dir)
        same = version[:2] == tuple(sys.version_info[:2])
        cache = seeding._wheel_cache(None)
        if "pip" not in wheels:  # pip-linkmode is a pip add-on: nothing to add it to
            if wheels:
                install_wheels(list(wheels.values()), target=target, link_mode=self.link_mode, cache=cache,
                               installer_name="pip", compile_bytecode=same)
            return
        with contextlib.ExitStack() as stack:
            ours = self._linkmode_wheels(stack, (version[0], version[1]))
            others = sorted(n for n in wheels if n != "pip")
            # pip last, as ensurepip; pip-linkmode and its dependencies before it
            files = [*(wheels[n] for n in others), *ours, wheels["pip"]]
            interp = seeding.Interpreter(str(creator.exe), (version[0], version[1], version[2]),
                                         str(creator.interpreter.implementation).lower(), wheels)
            mode = link_mode_from_env() if self.link_mode is None else self.link_mode
            # For the Python running virtualenv: the first seed is recorded as a
            # plan in the cache and later ones replay it (no wheel opened).
            seeding._seed(env_dir, interp, files, mode, self.link_mode, cache, False, target, same,
                          None if same else interp)
        if self.opt_in:
            from .optin import mark_environment

            mark_environment(target.paths["purelib"])

    def _linkmode_wheels(self, stack: contextlib.ExitStack, version: tuple[int, int]) -> list[str]:
        """pip-linkmode's wheel and its dependencies' (but pip), packed from their
        installed files once per content, kept in virtualenv's app-data so
        that their paths and stats (part of a plan's key) stay the same."""
        from . import venv as seeding

        key = _source_key(version)  # (and each dependency's Requires-Python checked)
        if getattr(self.app_data, "transient", True):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pip-linkmode-seed-")))
            own, deps = seeding.linkmode_wheels(tmp, version)
            return [str(own), *map(str, deps)]
        folder = Path(self.app_data.house).parent / "pip-linkmode" / key
        done = folder / "wheels.txt"
        if done.is_file():
            names = done.read_text("utf-8").split()
            if names and all((folder / n).is_file() for n in names):
                return [str(folder / n) for n in names]
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            own, deps = seeding.linkmode_wheels(tmp, version)
            names = [own.name, *(d.name for d in deps)]
            (tmp / "wheels.txt").write_text("\n".join(names) + "\n", "utf-8")
            try:
                os.replace(tmp, folder)
            except OSError:  # another seeder got there first (or a stale one is in the way)
                if not done.is_file():
                    shutil.rmtree(folder, ignore_errors=True)
                    os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return [str(folder / n) for n in names]

    def _wheels(self, for_py_version: str) -> dict[str, str]:
        """The wheel virtualenv's own seeder would install, per distribution."""
        from virtualenv.seed.wheels import get_wheel

        found: dict[str, str] = {}
        for distribution, version in self.distribution_to_versions().items():
            wheel = None
            for download in [True] if self.download else [False, True]:
                wheel = get_wheel(
                    distribution=distribution,
                    version=version,
                    for_py_version=for_py_version,
                    search_dirs=self.extra_search_dir,
                    download=download,
                    app_data=self.app_data,
                    do_periodic_update=self.periodic_update,
                    env=self.env,
                )
                if wheel is not None:
                    break
            if wheel is None:
                raise RuntimeError(f"pip-linkmode seeder: no {distribution} wheel {version or ''} for Python "
                                   f"{for_py_version} (try --download)")
            found[distribution] = os.fspath(wheel.path)
        return found


def _source_key(version: tuple[int, int]) -> str:
    """What the packed wheels depend on: the target Python's version, every
    file of pip-linkmode (size, mtime) and each dependency's version and place.
    A dependency whose Requires-Python excludes the target is an error."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    from . import venv as seeding
    from .optin import root_files

    here = Path(__file__).resolve().parent
    files = {**seeding._package_files(here, "pip_linkmode"), **root_files()}
    stats = []
    for arc, path in sorted(files.items()):
        st = path.stat()
        stats.append([arc, st.st_size, st.st_mtime_ns])
    deps = []
    env = {"python_version": f"{version[0]}.{version[1]}", "python_full_version": f"{version[0]}.{version[1]}.0"}
    for text in seeding._own_distribution().requires or []:
        req = Requirement(text)
        if req.name.lower() == "pip" or (req.marker and not req.marker.evaluate(env)):
            continue
        dist = metadata.distribution(req.name)
        needs = dist.metadata["Requires-Python"]
        if needs and not SpecifierSet(needs).contains(f"{version[0]}.{version[1]}.0", prereleases=True):
            raise RuntimeError(
                f"pip-linkmode seeder: {dist.metadata['Name']} {dist.version}, installed beside virtualenv and "
                f"copied into each environment, needs Python {needs}, not {version[0]}.{version[1]}; install "
                f"a release that supports both here (pip install '{req.name}' with a version for "
                f"{version[0]}.{version[1]}), or seed this environment with --seeder app-data"
            )
        deps.append([req.name, dist.version, str(dist.locate_file(""))])
    blob = json.dumps([list(version), stats, deps], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:24]
