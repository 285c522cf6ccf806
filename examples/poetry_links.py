"""Poetry's own wheel installer, with links: the one line is

    poetry.installation.wheel_installer.install = pip_linkmode.installer_api.install

Poetry's ``WheelInstaller.install`` opens each wheel with installer's
``WheelFile``, builds its ``WheelDestination`` (a ``SchemeDictionaryDestination``
subclass whose ``write_to_fs`` tolerates an existing file, for namespace
packages) and calls the ``install`` it imported from installer. The line
above rebinds that name: the same arguments then go to pip-linkmode, which
takes the wheel from the shared cache (``PIP_LINKMODE_CACHE_DIR``, or the
user cache) and keeps poetry's destination class and its settings.

    python examples/poetry_links.py WHEEL [WHEEL ...] [--work DIR]

Run it with a Python that has poetry 2.x and pip-linkmode installed. It makes
two fresh venvs under DIR (a temp dir by default), ``env-plain`` and
``env-links``, installs the wheels into each with poetry's ``WheelInstaller``
with bytecode compilation on (as ``poetry install --compile``: level -1), the second
time after the one line, and says how many installed files share an inode
with a cache file: the package files do, though the tool's own
``write_to_fs`` writes every file itself (docs/installer-door.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import venv
from pathlib import Path

from poetry.installation import wheel_installer
from poetry.installation.wheel_installer import WheelInstaller
from poetry.utils.env import VirtualEnv

from pip_linkmode import WheelCache, installer_api


def install_with_poetry(env_dir: Path, wheels: list[Path]) -> None:
    """What poetry's executor does for each wheel of ``poetry install``."""
    venv.create(env_dir, with_pip=False)
    installer = WheelInstaller(VirtualEnv(env_dir))
    installer.enable_bytecode_compilation(True)  # poetry install --compile
    for wheel in wheels:
        installer.install(wheel)
    if installer.invalid_wheels:
        raise SystemExit(f"poetry found invalid wheels: {installer.invalid_wheels}")


def inodes_under(root: Path) -> set[tuple[int, int]]:
    return {(st.st_dev, st.st_ino) for p in root.rglob("*") if p.is_file() and (st := p.lstat())}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="poetry-links-"))
    work.mkdir(parents=True, exist_ok=True)
    wheels = [w.resolve() for w in args.wheels]

    install_with_poetry(work / "env-plain", wheels)

    wheel_installer.install = installer_api.install  # the one line
    install_with_poetry(work / "env-links", wheels)

    cache = Path(os.environ.get("PIP_LINKMODE_CACHE_DIR") or WheelCache().root)
    shared = inodes_under(cache)
    site = next((work / "env-links").glob("lib/python*/site-packages"))
    files = [p for p in site.rglob("*") if p.is_file() and not p.is_symlink()]
    linked = [p for p in files if (p.lstat().st_dev, p.lstat().st_ino) in shared]
    print(f"poetry installed {len(wheels)} wheel(s) into {work / 'env-plain'} and {work / 'env-links'}")
    print(f"env-links: {len(linked)} of {len(files)} files in site-packages share an inode with the cache at {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
