"""Shared fixtures: wheels built here, real venvs, real loop-mounted filesystems."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import itertools
import os
import re
import shutil
import struct
import subprocess
import sys
import uuid
import zipfile
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


# Wine's spurious CreateProcess failures are retried in every process of the
# suite, not only this one: .ci/windows installs .ci/wine-sitecustomize.py.


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


#: can this process make symlinks (not under Wine; Windows: with Developer Mode)?
CAN_SYMLINK = _symlinks_work()

#: for tests of what symlink-mode environments are: where none can be made
#: (Wine; Windows without Developer Mode) the fallback is tested instead
needs_symlinks = pytest.mark.skipif(
    not CAN_SYMLINK,
    reason=(
        "Wine 8 makes no symlinks (CreateSymbolicLinkW reports success and creates nothing)"
        if ON_WINE else "this process may not create symlinks (Windows: enable Developer Mode)"
    ),
)


@pytest.fixture(autouse=True)
def _fresh_linker_state() -> Iterator[None]:
    """Each test probes modes afresh (the state is per process by design),
    and starts with no shared helper processes (a test that kills one
    leaves the next a fresh set)."""
    from pip_linkmode.linker.helpers import stop_idle_helpers

    linker.reset_process_state()
    yield
    linker.reset_process_state()
    stop_idle_helpers()


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def demo_wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "wheels", demo_spec())


@pytest.fixture
def pip_demo_wheel(tmp_path: Path) -> Path:
    """The demo wheel for pip itself to install and uninstall. Under Wine
    without its paths over 260 characters: Wine's GetFinalPathNameByHandleW
    fails for them (error 234), so pip's own uninstall cannot realpath them."""
    return build_wheel(tmp_path / "pip-wheels", demo_spec(long_paths=not ON_WINE))


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


def run_script(venv: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a venv's console script; a failure is an AssertionError naming
    its exit status and quoting its stderr (the launcher's own "Unable to
    create process" under Wine included, which .ci/windows reruns)."""
    proc = subprocess.run([str(script(venv, name)), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"{name} {' '.join(args)}: exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def record_path(venv: Path, path: Path) -> str:
    """How RECORD names ``path``: relative to site-packages, '/'-separated
    (``../../../bin/x`` on POSIX, ``../../Scripts/x.exe`` on Windows)."""
    return os.path.relpath(path, site_packages(venv)).replace(os.sep, "/")


def without_launcher_times(data: bytes) -> bytes:
    """A Windows console-script launcher (an ``.exe`` stub, the ``#!`` line,
    then a zip holding ``__main__.py``) with its zip's member times zeroed:
    pip's script maker stamps them with the moment of the install. Any
    other bytes are returned unchanged."""
    if not data.startswith(b"MZ"):
        return data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos, at = zf.infolist(), zf.start_dir
    except zipfile.BadZipFile:
        return data
    out = bytearray(data)
    for info in infos:  # local headers: time and date at 10..14
        head = info.header_offset
        assert out[head : head + 4] == b"PK\x03\x04", "a launcher's zip member without its local header"
        out[head + 10 : head + 14] = bytes(4)
    for _ in infos:  # central directory entries: time and date at 12..16
        assert out[at : at + 4] == b"PK\x01\x02", "a launcher's zip without its central directory"
        out[at + 12 : at + 16] = bytes(4)
        name, extra, comment = struct.unpack("<HHH", out[at + 28 : at + 34])
        at += 46 + name + extra + comment
    return bytes(out)


def _launcher_rows_checked(record: Path, data: bytes) -> bytes:
    """A RECORD's bytes with the hash of each launcher ``.exe`` it lists
    replaced by a placeholder where it is the file's: the hash covers the
    launcher's zip times (``without_launcher_times``). Another row of that
    path stays as it is (pip keeps the row of a wheel's own file that its
    script maker then wrote over). pip sorts rows by path, then hash: the
    rows of one path are put in order again."""
    rows: list[tuple[str, bytes]] = []
    for line in data.splitlines(keepends=True):
        path, hash_, size = next(csv.reader([line.decode("utf-8")]))
        target = Path(path) if os.path.isabs(path) else record.parent.parent / path
        content = target.read_bytes() if path.lower().endswith(".exe") and target.is_file() else b""
        if content.startswith(b"MZ"):
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
            if (hash_, size) == (f"sha256={digest}", str(len(content))):
                line = line.replace(hash_.encode(), b"sha256=<launcher>")
        rows.append((path, line))
    out: list[bytes] = []
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        out.extend(sorted(line for _, line in group))
    return b"".join(out)


def file_tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: its mode and bytes (a .pyc's bytes left out:
    its header's mtime and its co_filename differ by #5's design; a
    launcher's zip times, and so its hash in RECORD, left out)."""
    out = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = b"" if path.suffix == ".pyc" else without_launcher_times(path.read_bytes())
            if path.name == "RECORD" and path.parent.suffix == ".dist-info":
                data = _launcher_rows_checked(path, data)
            out[str(path.relative_to(root))] = (path.stat().st_mode, data)
    return out


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
