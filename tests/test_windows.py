"""Windows for real: run by the Windows suite (``.ci/windows``, a Windows
CPython under Wine here, and the GitHub Actions Windows runners).

What Wine cannot do (symlink creation, junctions, block cloning, MAX_PATH
errors) is covered with injected calls in ``test_platforms_injected.py``;
everything here uses the real system calls.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_venv, script, site_packages
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import LinkMode, WheelCache, install_wheel
from pip_linkmode._platform import current
from pip_linkmode.linker import Linker, LinkJob

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="Windows only: run by the Windows suite (.ci/windows)")


def _dll() -> bytes:
    """A real DLL's bytes (one the interpreter ships), to stand in for a .pyd."""
    for name in ("_bz2.pyd", "_lzma.pyd", "_ctypes.pyd", "_socket.pyd"):
        path = Path(sys.base_prefix) / "DLLs" / name
        if path.is_file():
            return path.read_bytes()
    raise AssertionError(f"no extension module under {sys.base_prefix}\\DLLs")


@pytest.mark.parametrize("mode", ["hardlink", "copy", "auto"])
def test_text_stays_bytes_and_record_has_no_carriage_returns(mode: str, tmp_path: Path) -> None:
    """Files opened without O_BINARY on Windows turn \\n into \\r\\n: the
    cache, the environment and RECORD keep the wheel's bytes exactly."""
    body = b"line one\nline two\n\nlast\n" * 50
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="texty", files={"texty/__init__.py": body, "texty/data.bin": bytes(range(256))}))
    venv = make_venv(tmp_path / "v")
    cache = WheelCache(tmp_path / "c")
    report = install_wheel(wheel, venv=venv, cache=cache, link_mode=mode)
    entry = cache.get(wheel)
    sp = site_packages(venv)
    assert (entry.tree / "texty" / "__init__.py").read_bytes() == body
    assert (sp / "texty" / "__init__.py").read_bytes() == body
    assert (sp / "texty" / "data.bin").read_bytes() == bytes(range(256))
    record = (sp / "texty-1.0.dist-info" / "RECORD").read_bytes()
    assert b"\r" not in record and b"texty/__init__.py," in record
    expected = LinkMode.COPY if mode == "copy" else LinkMode.HARDLINK
    assert report.links.counts[expected] >= 2, report.links.summary()
    if mode != "copy":
        assert (sp / "texty" / "__init__.py").stat().st_nlink >= 2


def test_exe_launcher_runs_also_through_a_hardlink_elsewhere(tmp_path: Path) -> None:
    """The console script's .exe launcher is generated per environment (never
    linked), runs, and still runs through a hardlink to it placed elsewhere."""
    wheel = build_wheel(tmp_path / "w", demo_spec())
    venv = make_venv(tmp_path / "v")
    install_wheel(wheel, venv=venv, cache=tmp_path / "c", link_mode="hardlink")
    exe = script(venv, "demo-hello")
    assert exe.read_bytes()[:2] == b"MZ" and exe.stat().st_nlink == 1
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hello from core"
    elsewhere = tmp_path / "tools" / "hello.exe"
    elsewhere.parent.mkdir()
    os.link(exe, elsewhere)
    out = subprocess.run([str(elsewhere)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hello from core"
    rows = (site_packages(venv) / "demo-1.0.dist-info" / "RECORD").read_text()
    assert str(exe).replace(os.sep, "/") + ",sha256=" in rows  # (installer records it by absolute path here)


def test_paths_over_260_characters(tmp_path: Path) -> None:
    """A member whose installed path is far over MAX_PATH is linked and
    recorded (every system call gets a \\\\?\\ path)."""
    deep = "/".join(["nested-directory-level"] * 14)
    name = f"longy/{deep}/module_{'m' * 40}.py"
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="longy", files={"longy/__init__.py": b"", name: b"X = 1\n"}))
    venv = make_venv(tmp_path / "v")
    report = install_wheel(wheel, venv=venv, cache=tmp_path / "c", link_mode="hardlink")
    target = site_packages(venv) / name
    assert len(str(target)) > 300
    long_target = "\\\\?\\" + str(target).replace("/", "\\")
    with open(long_target, "rb") as f:
        assert f.read() == b"X = 1\n"
    assert os.stat(long_target).st_nlink >= 2
    assert report.links.counts[LinkMode.HARDLINK] >= 2
    assert name + "," in (site_packages(venv) / "longy-1.0.dist-info" / "RECORD").read_text()


def test_replacing_a_loaded_pyd_moves_it_aside_and_a_later_install_removes_it(tmp_path: Path) -> None:
    """A running process has the extension mapped: Windows refuses to
    replace it, so it is renamed aside (``.ext.pyd.HEX.plm-old``) and the new
    file takes its place; once the process is gone, the next install that
    replaces a file there removes the aside file."""
    dll = _dll()
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "c"

    def install(version: str, payload: bytes) -> None:
        spec = WheelSpec(name="ext", version=version, files={"ext/__init__.py": version.encode(), "ext/ext.pyd": payload})
        install_wheel(build_wheel(tmp_path / f"w{version}", spec), venv=venv, cache=cache, link_mode="copy")

    install("1.0", dll)
    pyd = site_packages(venv) / "ext" / "ext.pyd"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import ctypes, sys; ctypes.WinDLL(sys.argv[1]); print('loaded', flush=True); sys.stdin.read()", str(pyd)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "loaded"
        other = tmp_path / "other.pyd"
        other.write_bytes(b"other")
        with pytest.raises(PermissionError):
            os.replace(other, pyd)  # Windows refuses while it is mapped: the case is real
        install("2.0", dll + b"\0v2")
        assert pyd.read_bytes() == dll + b"\0v2"
        aside = [p.name for p in pyd.parent.iterdir() if p.name.endswith(".plm-old")]
        assert len(aside) == 1 and aside[0].startswith(".ext.pyd."), aside
    finally:
        holder.communicate("")
    install("3.0", dll + b"\0v3")
    assert pyd.read_bytes() == dll + b"\0v3"
    assert sorted(p.name for p in pyd.parent.iterdir()) == ["__init__.py", "ext.pyd"]


def test_symlink_mode_without_a_usable_symlink_falls_back_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Symlinks need a privilege (error 1314), and Wine reports them made
    while making nothing: either way symlink mode falls back to copies with
    one warning naming the remedy; where symlinks do work, they are real."""
    src_dir = tmp_path / "cache"
    src_dir.mkdir()
    jobs = []
    for i in range(5):
        (src_dir / f"m{i}.py").write_bytes(b"x = %d\n" % i)
        jobs.append(LinkJob(str(src_dir / f"m{i}.py"), str(tmp_path / "env" / f"m{i}.py"), 6))
    probe = tmp_path / "probe"
    try:
        os.symlink(src_dir / "m0.py", probe)
        works = os.path.islink(probe)
    except OSError:
        works = False
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        report = Linker(LinkMode.SYMLINK, current()).run(jobs)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if works:
        assert report.counts[LinkMode.SYMLINK] == 5 and warnings == []
        assert all(os.path.islink(j.dst) for j in jobs)
        return
    assert report.counts[LinkMode.COPY] == 5
    assert len(warnings) == 1 and "Developer Mode" in warnings[0] and "falling back to copy" in warnings[0], warnings
    where = warnings[0].split(" from the cache ", 1)[1].split(": ", 1)[0]
    assert "/" not in where, where  # one kind of separator
    for job in jobs:
        assert not os.path.islink(job.dst) and Path(job.dst).read_bytes() == Path(job.src).read_bytes()
