"""macOS and Windows code paths, run here with their system calls injected.

The calls are replaced behind the same small interface the real code uses
(``DarwinCalls``, ``WindowsCalls``); the files themselves are real.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path

import installer
import pytest
from wheelmaker import WheelSpec, build_wheel

from pip_linkmode import LinkMode, WheelCache
from pip_linkmode._platform import set_current
from pip_linkmode._platform.darwin import DarwinPlatform
from pip_linkmode._platform.windows import WindowsPlatform, extended_path
from pip_linkmode.destination import LinkingDestination
from pip_linkmode.linker import Linker, LinkJob


def win_error(code: int, message: str = "injected") -> OSError:
    exc = OSError(None, message)
    exc.winerror = code  # type: ignore[attr-defined]
    return exc


class FakeWindowsCalls:
    """Does the real file operation on this machine, records every path it was given,
    and fails where a test says Windows would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.fail: dict[str, OSError] = {}
        self.locked: set[str] = set()  # paths "mapped by a running process"

    def _do(self, name: str, *paths: str) -> None:
        self.calls.append((name, paths))
        if name in self.fail:
            raise self.fail[name]

    def link(self, src: str, dst: str) -> None:
        self._do("link", src, dst)
        os.link(src, dst)

    def symlink(self, src: str, dst: str) -> None:
        self._do("symlink", src, dst)
        os.symlink(src, dst)

    def copy_file(self, src: str, dst: str) -> None:
        self._do("copy_file", src, dst)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", dst)
        shutil.copy2(src, dst)

    def duplicate_extents(self, src: str, dst: str) -> None:
        self._do("duplicate_extents", src, dst)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", dst)
        shutil.copy2(src, dst)

    def replace(self, src: str, dst: str) -> None:
        self._do("replace", src, dst)
        if dst in self.locked:
            exc = PermissionError(errno.EACCES, "Access is denied")
            exc.winerror = 5  # type: ignore[attr-defined]
            raise exc
        os.replace(src, dst)

    def rename(self, src: str, dst: str) -> None:
        self._do("rename", src, dst)
        if "rename" in self.fail:
            raise self.fail["rename"]
        os.rename(src, dst)
        self.locked.discard(src)

    def unlink(self, path: str) -> None:
        self._do("unlink", path)
        os.unlink(path)

    def create_junction(self, target: str, link: str) -> None:
        self._do("create_junction", target, link)


def _jobs(tmp_path: Path, n: int = 4) -> list[LinkJob]:
    wheel = build_wheel(tmp_path / "w", WheelSpec(files={f"pkg/m{i}.py": b"x" * (i + 1) for i in range(n)}))
    entry = WheelCache(tmp_path / "cache").get(wheel)
    return [LinkJob(str(entry.tree / f.path), str(tmp_path / "t" / f.path), f.size) for f in entry.files]


# -- Windows -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("C:\\Users\\me\\venv\\x.py", "\\\\?\\C:\\Users\\me\\venv\\x.py"),
        ("C:/Users/me/../me/x.py", "\\\\?\\C:\\Users\\me\\x.py"),
        ("\\\\server\\share\\x.py", "\\\\?\\UNC\\server\\share\\x.py"),
        ("\\\\?\\C:\\already", "\\\\?\\C:\\already"),
        ("relative\\x.py", "relative\\x.py"),
    ],
)
def test_extended_paths(given: str, expected: str) -> None:
    assert extended_path(given) == expected


def test_long_paths_reach_the_system_call_prefixed() -> None:
    calls = FakeWindowsCalls()
    calls.fail["link"] = win_error(5)  # stop before touching the (fake) disk
    long_dst = "C:\\envs\\" + "\\".join(["nested-directory-level"] * 14) + "\\remoteEntry.js"
    assert len(long_dst) > 260
    with pytest.raises(OSError):
        WindowsPlatform(calls).hardlink("C:\\cache\\a.js", long_dst)
    assert calls.calls[-1] == ("link", ("\\\\?\\C:\\cache\\a.js", "\\\\?\\" + long_dst))


def test_symlink_without_privilege_falls_back_with_one_clear_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = FakeWindowsCalls()
    calls.fail["symlink"] = win_error(1314, "A required privilege is not held by the client")
    jobs = _jobs(tmp_path)
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        report = Linker(LinkMode.SYMLINK, WindowsPlatform(calls)).run(jobs)
    assert report.counts[LinkMode.COPY] == len(jobs)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Developer Mode" in warnings[0] and "--link-mode=hardlink" in warnings[0]
    assert "elevated shell" in warnings[0] and "--link-mode=copy" in warnings[0]
    assert all(Path(j.dst).read_bytes() == Path(j.src).read_bytes() for j in jobs)


def test_auto_on_ntfs_picks_hardlink_and_never_symlink(tmp_path: Path) -> None:
    calls = FakeWindowsCalls()
    calls.fail["duplicate_extents"] = win_error(87, "The parameter is incorrect")  # NTFS: no block cloning
    calls.fail["symlink"] = win_error(1314)
    jobs = _jobs(tmp_path)
    report = Linker(LinkMode.AUTO, WindowsPlatform(calls)).run(jobs)
    assert report.counts[LinkMode.HARDLINK] == len(jobs)
    assert "auto chose hardlink: clone not possible" in report.summary()
    assert not [c for c in calls.calls if c[0] == "symlink"]


def test_auto_on_refs_clones_file_by_file(tmp_path: Path) -> None:
    calls = FakeWindowsCalls()
    jobs = _jobs(tmp_path)
    job_trees = [LinkJob(j.src, j.dst, j.size, (os.path.dirname(j.src), os.path.dirname(j.dst))) for j in jobs]
    report = Linker(LinkMode.AUTO, WindowsPlatform(calls)).run(job_trees)
    assert report.counts[LinkMode.CLONE] == len(jobs)
    # ReFS cannot clone a directory: one duplicate-extents call per file
    assert len([c for c in calls.calls if c[0] == "duplicate_extents"]) == len(jobs)


def test_explicit_clone_on_ntfs_explains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = FakeWindowsCalls()
    calls.fail["duplicate_extents"] = win_error(87)
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        report = Linker(LinkMode.CLONE, WindowsPlatform(calls)).run(_jobs(tmp_path))
    assert report.counts[LinkMode.COPY] > 0
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "does not support this kind of link" in warning


def test_replacing_a_loaded_pyd_renames_it_aside(tmp_path: Path) -> None:
    calls = FakeWindowsCalls()
    jobs = _jobs(tmp_path, 1)
    Linker(LinkMode.COPY, WindowsPlatform(calls)).run(jobs)
    dst = jobs[0].dst
    calls.locked.add(extended_path(dst))  # as if a running interpreter had the .pyd mapped
    Linker(LinkMode.COPY, WindowsPlatform(calls)).run(jobs)
    names = [c[0] for c in calls.calls]
    assert "rename" in names  # moved aside, then replaced
    assert Path(dst).read_bytes() == Path(jobs[0].src).read_bytes()
    assert not [p for p in Path(dst).parent.iterdir() if "plm-" in p.name]


def test_replacing_when_even_rename_aside_fails_says_so(tmp_path: Path) -> None:
    calls = FakeWindowsCalls()
    jobs = _jobs(tmp_path, 1)
    Linker(LinkMode.COPY, WindowsPlatform(calls)).run(jobs)
    calls.locked.add(extended_path(jobs[0].dst))
    calls.fail["rename"] = win_error(32, "The process cannot access the file")
    with pytest.raises(OSError, match="in use by a running process .* close the programs"):
        Linker(LinkMode.COPY, WindowsPlatform(calls)).run(jobs)


def test_directory_links_are_junctions() -> None:
    calls = FakeWindowsCalls()
    WindowsPlatform(calls).dir_link("C:\\cache\\pkg", "D:\\env\\pkg")
    assert calls.calls == [("create_junction", ("\\\\?\\C:\\cache\\pkg", "\\\\?\\D:\\env\\pkg"))]


# -- macOS -------------------------------------------------------------------

class FakeDarwinCalls:
    """clonefile(2) done as a real copy (files or whole trees), or refused."""

    def __init__(self, refuse_dirs: bool = False, refuse_all: bool = False) -> None:
        self.calls: list[str] = []
        self.refuse_dirs = refuse_dirs
        self.refuse_all = refuse_all

    def clonefile(self, src: str, dst: str) -> None:
        kind = "dir" if os.path.isdir(src) else "file"
        self.calls.append(kind)
        if self.refuse_all or (kind == "dir" and self.refuse_dirs):
            raise OSError(errno.ENOTSUP, "Operation not supported", src)
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "File exists", dst)
        if kind == "dir":
            shutil.copytree(src, dst, copy_function=shutil.copy2)
        else:
            shutil.copy2(src, dst)


def _install_demo(tmp_path: Path, platform: DarwinPlatform, mode: LinkMode) -> LinkingDestination:
    files = {f"pkg/m{i}.py": b"x = 1\n" for i in range(5)}
    files.update({"pkg/sub/a.py": b"", "other/b.py": b"b = 2\n", "other/c.py": b""})
    wheel = build_wheel(tmp_path / "w", WheelSpec(files=files))
    previous = set_current(platform)
    try:
        dest = LinkingDestination(
            {k: str(tmp_path / "env" / k) for k in ("purelib", "platlib", "headers", "scripts", "data")},
            "/usr/bin/python3", "posix", link_mode=mode,
        )
        with WheelCache(tmp_path / "cache").open(wheel) as source:
            installer.install(source, dest, {"INSTALLER": b"x\n"})
    finally:
        set_current(previous)
    assert (tmp_path / "env/purelib/pkg/sub/a.py").exists()
    assert (tmp_path / "env/purelib/other/b.py").read_bytes() == b"b = 2\n"
    return dest


def test_macos_clones_each_package_directory_in_one_call(tmp_path: Path) -> None:
    calls = FakeDarwinCalls()
    dest = _install_demo(tmp_path, DarwinPlatform(calls), LinkMode.AUTO)
    assert calls.calls.count("dir") == 2  # pkg/ and other/; dist-info holds RECORD, so per file
    assert dest.report.counts[LinkMode.CLONE] == 10  # 8 package files + METADATA + WHEEL


def test_macos_whole_directory_clone_gets_fresh_mtimes(tmp_path: Path) -> None:
    """clonefile keeps the cache directory's mtime; the package directory and
    site-packages get a fresh one, so a running interpreter's import cache
    (keyed by directory mtimes) sees the new package."""
    _install_demo(tmp_path, DarwinPlatform(FakeDarwinCalls()), LinkMode.AUTO)  # fills the cache
    shutil.rmtree(tmp_path / "env")
    (entry,) = (tmp_path / "cache" / "entries").iterdir()
    for d in (entry / "tree" / "pkg", entry / "tree" / "other"):
        os.utime(d, ns=(10**18, 10**18))  # old, distinctive mtimes the fake clonefile copies
    started = time.time_ns() - 10**9
    calls = FakeDarwinCalls()
    _install_demo(tmp_path, DarwinPlatform(calls), LinkMode.AUTO)
    assert calls.calls.count("dir") == 2  # both cloned whole
    for d in ("pkg", "other", ""):
        mtime = os.stat(tmp_path / "env/purelib" / d).st_mtime_ns
        assert mtime != 10**18 and mtime >= started, d


def test_macos_directory_refused_is_cloned_file_by_file(tmp_path: Path) -> None:
    calls = FakeDarwinCalls(refuse_dirs=True)
    dest = _install_demo(tmp_path, DarwinPlatform(calls), LinkMode.CLONE)
    assert calls.calls.count("dir") == 2 and calls.calls.count("file") == 10
    assert dest.report.counts[LinkMode.CLONE] == 10
    assert any("file by file" in n for n in dest.report.notes)


def test_macos_without_apfs_auto_falls_back(tmp_path: Path) -> None:
    calls = FakeDarwinCalls(refuse_all=True)
    dest = _install_demo(tmp_path, DarwinPlatform(calls), LinkMode.AUTO)
    assert dest.report.counts[LinkMode.HARDLINK] == 10


def test_an_auto_install_failing_later_names_the_mode_it_chose(tmp_path: Path) -> None:
    """auto resolved to clone, then a clone fails: the remedy is the one for
    clones, not one for a mode called "auto" ("does not support autos")."""
    from pip_linkmode.linker.policy import ModePolicy

    error = ModePolicy(LinkMode.AUTO, WindowsPlatform(FakeWindowsCalls())).error(
        win_error(50), "clone", str(tmp_path / "t" / "m.py"), str(tmp_path / "c" / "m.py")
    )
    assert "cannot clone blocks" in str(error) and "autos" not in str(error)
    assert str(error).startswith("clone failed for ")
