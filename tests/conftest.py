"""Shared fixtures: wheels built here, real venvs, real loop-mounted filesystems."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from wheelmaker import WheelSpec, build_wheel, demo_spec  # noqa: E402

from pip_linkmode import linker  # noqa: E402

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _on_wine() -> bool:
    if sys.platform != "win32":
        return False
    import ctypes

    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")  # type: ignore[attr-defined]


ON_WINE = _on_wine()


def _symlinks_work() -> bool:
    """Can this process make a file symlink that is really there?"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        target, link = os.path.join(tmp, "t"), os.path.join(tmp, "l")
        open(target, "wb").close()
        try:
            os.symlink(target, link)
        except OSError:
            return False
        return os.path.islink(link)


#: for tests of what symlink-mode environments are: where none can be made
#: (Wine; Windows without Developer Mode) the fallback is tested instead
needs_symlinks = pytest.mark.skipif(
    not _symlinks_work(),
    reason=(
        "Wine 8 makes no symlinks (CreateSymbolicLinkW reports success and creates nothing)"
        if ON_WINE else "this process may not create symlinks (Windows: enable Developer Mode)"
    ),
)


@pytest.fixture(autouse=True)
def _fresh_linker_state() -> Iterator[None]:
    """Each test probes modes afresh (the state is per process by design)."""
    linker.reset_process_state()
    yield
    linker.reset_process_state()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def demo_wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "wheels", demo_spec())


@pytest.fixture
def make_wheel(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(spec: WheelSpec) -> Path:
        return build_wheel(tmp_path / "wheels" / uuid.uuid4().hex[:8], spec)

    return make


def make_venv(path: Path, python: str = sys.executable) -> Path:
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True)
    return path


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return make_venv(tmp_path / "venv")


def venv_python(venv: Path) -> str:
    return str(venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def run_pip(venv: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The running interpreter's real pip, aimed at the venv with --python."""
    return subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv_python(venv), "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """path -> (sha256, mode, mtime_ns) of every file below root, links not followed."""
    out: dict[str, tuple[str, int, int]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                digest = "link:" + os.readlink(p)
            else:
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (digest, st.st_mode, st.st_mtime_ns)
    return out


def site_packages(venv: Path) -> Path:
    if os.name == "nt":
        return venv / "Lib" / "site-packages"
    return next((venv / "lib").glob("python3.*/site-packages"))


def scripts_dir(venv: Path) -> Path:
    """Where a venv's console scripts live: ``bin`` (``Scripts`` on Windows)."""
    return venv / ("Scripts" if os.name == "nt" else "bin")


def script(venv: Path, name: str) -> Path:
    """A console script of a venv (a ``.exe`` launcher on Windows)."""
    return scripts_dir(venv) / (f"{name}.exe" if os.name == "nt" else name)


def record_path(venv: Path, path: Path) -> str:
    """How RECORD names ``path``: relative to site-packages, '/'-separated
    (``../../../bin/x`` on POSIX, ``../../Scripts/x.exe`` on Windows)."""
    return os.path.relpath(path, site_packages(venv)).replace(os.sep, "/")


# -- real filesystems ---------------------------------------------------------

class Mounts:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.points: dict[str, Path] = {}
        self.images: list[tuple[Path, Path]] = []

    def mount(self, name: str, mkfs: list[str], size_mb: int) -> Path:
        image = self.base / f"{name}.img"
        point = self.base / name
        point.mkdir()
        with open(image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(point)], check=True, capture_output=True)
        self.points[name] = point
        self.images.append((image, point))
        return point

    def close(self) -> None:
        for _image, point in reversed(self.images):
            subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _why_no_mounts() -> str | None:
    if sys.platform != "linux":
        return "loop-mounted filesystems are a Linux test facility"
    if not IS_ROOT:
        return "mounting loop images needs root"
    for tool in ("mkfs.xfs", "mkfs.btrfs", "mkfs.ext4", "filefrag"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install xfsprogs btrfs-progs e2fsprogs)"
    return None


@pytest.fixture(scope="session")
def mounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounts]:
    """XFS (reflink), btrfs and ext4 images, loop-mounted for the session."""
    why = _why_no_mounts()
    if why:
        pytest.skip(reason=why)
    m = Mounts(tmp_path_factory.mktemp("mounts"))
    try:
        m.mount("xfs", ["mkfs.xfs", "-q", "-m", "reflink=1"], 400)
        m.mount("btrfs", ["mkfs.btrfs", "-q"], 300)
        m.mount("ext4", ["mkfs.ext4", "-q", "-F"], 200)
        m.mount("ext4b", ["mkfs.ext4", "-q", "-F"], 64)
        yield m
    finally:
        m.close()


def shares_extents(path: Path) -> bool:
    """Does FIEMAP report every extent of ``path`` as shared (a reflink clone)?"""
    out = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and ":" in line]
    return bool(rows) and all("shared" in line for line in rows)


@pytest.fixture(scope="session")
def real_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A handful of real wheels from the package index (one per kind of wheel)."""
    dest = tmp_path_factory.mktemp("real-wheels")
    reqs = [
        "six==1.16.0",  # a single module
        "idna==3.10",  # a pure package
        "MarkupSafe==3.0.2",  # a compiled extension (platform wheel)
        "pyflakes==3.2.0",  # console scripts
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary", ":all:",
         "--no-deps", "-d", str(dest), *reqs],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot download real wheels from the package index:\n{proc.stderr}")
    return sorted(dest.glob("*.whl"))


# -- other interpreters ---------------------------------------------------------

ENV_PYTHONS = "PIP_LINKMODE_TEST_PYTHONS"


def _pyenv_root() -> Path:
    root = os.environ.get("PYENV_ROOT")
    if root:
        return Path(root)
    exe = shutil.which("pyenv")
    if exe:
        out = subprocess.run([exe, "root"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return Path.home() / ".pyenv"


def _version_of(python: str) -> str | None:
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


_PYTHONS: dict[str, str] | None = None


def supported_pythons() -> dict[str, str]:
    """Interpreters for 3.10-3.13 by minor version ("3.12" -> path): those
    listed in PIP_LINKMODE_TEST_PYTHONS (os.pathsep-separated; CI sets it from
    setup-python), then pyenv's (newest patch release of each)."""
    global _PYTHONS
    if _PYTHONS is None:
        found: dict[str, str] = {}
        for python in filter(None, os.environ.get(ENV_PYTHONS, "").split(os.pathsep)):
            version = _version_of(python)
            if version is not None:
                found.setdefault(version, python)
        exe = "python.exe" if os.name == "nt" else "bin/python"
        versions = _pyenv_root() / "versions"
        by_patch = sorted(versions.glob(f"3.1[0-3].*/{exe}"),
                          key=lambda p: [int(x) for x in re.findall(r"\d+", p.relative_to(versions).parts[0])])
        for python_path in by_patch:
            name = python_path.relative_to(versions).parts[0]
            if re.fullmatch(r"3\.1[0-3]\.\d+", name):
                found[".".join(name.split(".")[:2])] = str(python_path)  # newest patch wins
        _PYTHONS = {v: p for v, p in sorted(found.items())}
    return _PYTHONS


def other_pythons() -> list[str]:
    """The supported interpreters other than the running one's version."""
    running = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return [p for v, p in supported_pythons().items() if v != running]


def link_modes(*modes: object) -> list[object]:
    """``modes`` as parameters, symlink marked ``needs_symlinks``."""
    return [pytest.param(m, marks=needs_symlinks) if str(m) == "symlink" else m for m in modes]
