"""PDM's own wheel installer, with links: the one line is

    pdm.installers.installers._install = pip_linkmode.installer_api.install

PDM's ``install_wheel`` opens the wheel with its ``WheelFile`` (installer's,
subclassed), builds its ``InstallDestination`` (a ``SchemeDictionaryDestination``
subclass with its own ``write_to_fs``, ``_compile_bytecode`` and, on Windows,
``finalize_installation``) and calls, through its ``install``, the
``install`` it imported from installer as ``_install``. The line above
rebinds that name: the same arguments then go to pip-linkmode, which takes
the wheel from the shared cache (``PIP_LINKMODE_CACHE_DIR``, or the user
cache) and keeps PDM's destination class and its settings.

    python examples/pdm_links.py WHEEL [WHEEL ...] [--work DIR]

Run it with a Python that has pdm 2.x and pip-linkmode installed. It makes
two fresh venvs under DIR (a temp dir by default), ``env-plain`` and
``env-links``, installs the wheels into each with PDM's ``install_wheel`` (as
``pdm sync`` does without ``install.cache``; PDM compiles no bytecode), the
second time after the one line, and says how many installed files share an
inode with a cache file: the package files do, though the tool's own
``write_to_fs`` writes every file itself (docs/installer-door.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import venv
from pathlib import Path

from pdm.core import Core
from pdm.environments import PythonEnvironment
from pdm.installers import installers

from pip_linkmode import WheelCache, installer_api


def install_with_pdm(env_dir: Path, wheels: list[Path], project_dir: Path) -> None:
    """What PDM's install manager does for each wheel of ``pdm sync``."""
    venv.create(env_dir, with_pip=False)
    project_dir.mkdir(parents=True, exist_ok=True)
    project = Core().create_project(project_dir)
    environment = PythonEnvironment(project, python=str(env_dir / "bin" / "python"))
    for wheel in wheels:
        installers.install_wheel(wheel, environment, requested=True)


def inodes_under(root: Path) -> set[tuple[int, int]]:
    return {(st.st_dev, st.st_ino) for p in root.rglob("*") if p.is_file() and (st := p.lstat())}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="pdm-links-"))
    work.mkdir(parents=True, exist_ok=True)
    wheels = [w.resolve() for w in args.wheels]

    install_with_pdm(work / "env-plain", wheels, work / "project")

    installers._install = installer_api.install  # the one line
    install_with_pdm(work / "env-links", wheels, work / "project")

    cache = Path(os.environ.get("PIP_LINKMODE_CACHE_DIR") or WheelCache().root)
    shared = inodes_under(cache)
    site = next((work / "env-links").glob("lib/python*/site-packages"))
    files = [p for p in site.rglob("*") if p.is_file() and not p.is_symlink()]
    linked = [p for p in files if (p.lstat().st_dev, p.lstat().st_ino) in shared]
    print(f"pdm installed {len(wheels)} wheel(s) into {work / 'env-plain'} and {work / 'env-links'}")
    print(f"env-links: {len(linked)} of {len(files)} files in site-packages share an inode with the cache at {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
