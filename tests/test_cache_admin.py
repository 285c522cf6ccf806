"""`pip-linkmode cache`: info, list, verify, clean, prune, on caches filled by real installs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import make_venv, needs_symlinks, site_packages, venv_python
from wheelmaker import WheelSpec, build_wheel

from pip_linkmode import WheelCache, install_wheel

ROOT = Path(__file__).resolve().parent.parent


def cli(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip_linkmode", "cache", "--cache-dir", str(cache), *args],
                          capture_output=True, text=True)


@pytest.fixture
def filled(tmp_path: Path, demo_wheel: Path) -> tuple[Path, Path, Path]:
    """A cache filled by a hardlink install and a symlink install of two wheels."""
    cache = tmp_path / "cache"
    other = build_wheel(tmp_path / "w2", WheelSpec(name="other", files={"other/__init__.py": b"X = 1\n"}))
    hard = make_venv(tmp_path / "hard")
    sym = make_venv(tmp_path / "sym")
    install_wheel(demo_wheel, venv=hard, link_mode="hardlink", cache=cache)
    install_wheel(other, venv=sym, link_mode="symlink", cache=cache)
    return cache, hard, sym


def test_dir_info_list(filled: tuple[Path, Path, Path]) -> None:
    cache, _hard, _sym = filled
    assert cli(cache, "dir").stdout.strip() == str(cache)
    out = cli(cache, "info").stdout
    assert f"Location: {cache}" in out and "Entries: 2" in out
    assert "Shared with environments by hardlinks:" in out and "Shared with environments by hardlinks: 0 B" not in out
    lines = cli(cache, "list").stdout.splitlines()
    assert len(lines) == 2
    demo = next(line for line in lines if line.startswith("demo 1.0 "))
    assert "py3-none-any" in demo and "last-used:" in demo and "bytecode:-" in demo
    assert cli(cache, "list", "other").stdout.startswith("other 1.0 ")


def test_verify_finds_an_edit_through_a_hardlink_and_repairs_it(filled: tuple[Path, Path, Path], demo_wheel: Path) -> None:
    cache, hard, _sym = filled
    assert cli(cache, "verify").returncode == 0
    # An in-place edit in one venv reaches the cache through the shared inode.
    with open(site_packages(hard) / "demo/core.py", "a") as f:
        f.write("# edited in place\n")
    result = cli(cache, "verify")
    assert result.returncode == 1
    assert "modified: " in result.stdout and f"{os.path.join('demo', 'core.py')} (entry demo 1.0" in result.stdout
    repaired = cli(cache, "verify", "--repair")
    assert "re-created demo 1.0 from " + str(demo_wheel) in repaired.stdout
    assert cli(cache, "verify").returncode == 0
    entry = WheelCache(cache).get(demo_wheel)
    assert b"edited" not in (entry.tree / "demo/core.py").read_bytes()


@needs_symlinks
def test_clean_refuses_to_break_symlink_envs_then_force(filled: tuple[Path, Path, Path]) -> None:
    cache, _hard, sym = filled
    refused = cli(cache, "clean", "other")
    assert refused.returncode == 1
    assert f"used by symlink-mode environment(s) {sym}" in refused.stderr and "--force" in refused.stderr
    assert cli(cache, "list", "other").stdout  # still there
    forced = cli(cache, "clean", "--force", "other")
    assert forced.returncode == 0 and "removed other 1.0" in forced.stdout
    assert cli(cache, "list", "other").stdout == ""


@needs_symlinks
def test_clean_all_after_symlink_env_is_gone(filled: tuple[Path, Path, Path]) -> None:
    cache, hard, sym = filled
    import shutil

    shutil.rmtree(sym)
    result = cli(cache, "clean")
    assert result.returncode == 0 and "removed demo 1.0" in result.stdout and "removed other 1.0" in result.stdout
    # hardlink environments never depend on the cache
    out = subprocess.run([venv_python(hard), "-c", "import demo; print(demo.hello())"], capture_output=True, text=True)
    assert out.stdout.strip() == "hello from core"


@needs_symlinks
def test_clean_never_follows_a_planted_symlink(filled: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cache, _hard, _sym = filled
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    entry_dir = next((cache / "entries").iterdir())
    os.symlink(outside, entry_dir / "tree" / "planted", target_is_directory=True)
    # read-only parts must not stop removal
    ro = entry_dir / "tree"
    os.chmod(ro, 0o555)
    result = cli(cache, "clean", "--force")
    assert result.returncode == 0, result.stderr
    assert (outside / "keep.txt").read_text() == "keep me"
    assert list((cache / "entries").iterdir()) == []


def test_prune_removes_leftovers_of_a_killed_unpack(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    files = {f"big/f{i:04d}.bin": os.urandom(64 * 1024) for i in range(600)}
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="big", files=files))
    code = "import sys; from pip_linkmode import WheelCache; WheelCache(sys.argv[1]).get(sys.argv[2])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(cache), str(wheel)], env={**os.environ, "PYTHONPATH": str(ROOT)})
    tmp = cache / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if tmp.exists() and list(tmp.glob("*/tree/big/*")):
            break
        time.sleep(0.005)
    else:
        proc.kill()
        pytest.fail("the unpack never started")
    proc.kill()  # SIGKILL; TerminateProcess on Windows
    proc.wait()
    assert list((cache / "tmp").iterdir())
    result = cli(cache, "prune")
    assert result.returncode == 0 and "removed leftover " in result.stdout
    assert list((cache / "tmp").iterdir()) == [] and list((cache / "entries").iterdir()) == []


@needs_symlinks
def test_prune_older_than(filled: tuple[Path, Path, Path]) -> None:
    cache, _hard, _sym = filled
    assert "removed" not in cli(cache, "prune", "--older-than", "1").stdout
    old = time.time() - 3 * 86400
    for entry_dir in (cache / "entries").iterdir():
        os.utime(entry_dir / "last-used", (old, old))
    result = cli(cache, "prune", "--older-than", "2")
    assert "removed demo 1.0" in result.stdout
    assert "kept other 1.0" in result.stderr  # its symlink env still uses it


def test_clean_beside_an_install_waits_for_it(tmp_path: Path, demo_wheel: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    entry = cache.get(demo_wheel)
    venv = make_venv(tmp_path / "v")
    holder = WheelCache(tmp_path / "cache")
    held = threading.Event()
    release = threading.Event()

    def install_in_progress() -> None:
        with holder.lock(entry.key):  # what an install holds while it links
            held.set()
            release.wait(10)

    t = threading.Thread(target=install_in_progress)
    t.start()
    held.wait(10)
    proc = subprocess.Popen([sys.executable, "-m", "pip_linkmode", "cache", "--cache-dir", str(cache.root), "clean"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert proc.poll() is None  # clean is waiting for the install
    assert entry.root.exists()
    release.set()
    t.join()
    out, _ = proc.communicate(timeout=30)
    assert "removed demo 1.0" in out and not entry.root.exists()
    # and a later install unpacks again and works
    install_wheel(demo_wheel, venv=venv, link_mode="hardlink", cache=cache.root)
    assert (site_packages(venv) / "demo/core.py").exists()


def test_clean_forgets_indexed_wheels_and_a_later_get_unpacks_again(tmp_path: Path, demo_wheel: Path) -> None:
    from pip_linkmode import cache_admin

    cache = WheelCache(tmp_path / "cache")
    first = cache.get(demo_wheel)
    assert len(list(cache.index_dir.iterdir())) == 1
    cache_admin.clean(cache)
    assert list(cache.index_dir.iterdir()) == []  # nothing points at a removed entry
    again = WheelCache(tmp_path / "cache")
    assert again.get(demo_wheel).key == first.key
    assert again.unpacked == [first.key]  # unpacked afresh, not trusted from a stale index
