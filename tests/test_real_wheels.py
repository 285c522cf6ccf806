"""Real wheels from the package index, installed in every mode into real venvs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    Mounts,
    file_tree,
    make_venv,
    run_pip,
    run_script,
    script,
    shares_extents,
    site_packages,
    snapshot,
    venv_python,
)

from pip_linkmode import LinkMode, install_wheels

IMPORTS = "import six, idna, markupsafe, pyflakes; print(markupsafe.escape('<a>'), idna.encode('ex.com'))"


def _check_env(venv: Path, cache: Path) -> None:
    out = subprocess.run([venv_python(venv), "-c", IMPORTS], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "&lt;a&gt; b'ex.com'"
    # the console script of a real wheel runs
    assert "3.2.0" in run_script(venv, "pyflakes", "--version").stdout
    assert "No broken requirements" in run_pip(venv, "check").stdout
    frozen = run_pip(venv, "freeze").stdout
    for line in ("six==1.16.0", "idna==3.10", "MarkupSafe==3.0.2", "pyflakes==3.2.0"):
        assert line in frozen
    before = snapshot(cache)
    run_pip(venv, "uninstall", "-y", "six", "idna", "MarkupSafe", "pyflakes")
    assert snapshot(cache) == before
    leftover = [p.name for p in site_packages(venv).iterdir() if p.name not in ("__pycache__", "_distutils_hack", "distutils-precedence.pth")]
    assert leftover == [], leftover


@pytest.mark.parametrize("mode", [LinkMode.AUTO, LinkMode.HARDLINK, LinkMode.SYMLINK, LinkMode.COPY])
def test_real_wheels_each_mode(mode: LinkMode, real_wheels: list[Path], tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "venv")
    cache = tmp_path / "cache"
    report = install_wheels(real_wheels, venv=venv, link_mode=mode, cache=cache)
    assert sorted(report.installed) == ["MarkupSafe-3.0.2", "idna-3.10", "pyflakes-3.2.0", "six-1.16.0"]
    assert sum(report.links.counts.values()) > 50
    _check_env(venv, cache)


def test_real_wheels_cloned_on_xfs(mounts: Mounts, real_wheels: list[Path], tmp_path: Path) -> None:
    root = mounts.points["xfs"] / f"real-{tmp_path.name}"
    venv = make_venv(root / "venv")
    cache = root / "cache"
    report = install_wheels(real_wheels, venv=venv, link_mode="clone", cache=cache)
    assert set(report.links.modes_used) == {LinkMode.CLONE}
    os.sync()
    so = next(site_packages(venv).glob("markupsafe/_speedups*.so"))
    assert so.stat().st_size > 8192 and shares_extents(so)
    _check_env(venv, cache)


@pytest.mark.parametrize("mode", ["auto", "hardlink", "copy"])
def test_pip_linkmode_install_leaves_what_plain_pip_leaves(mode: str, real_wheels: list[Path], tmp_path: Path) -> None:
    """Real wheels through ``pip-linkmode install`` (real pip, --python),
    after plain pip into a venv at the same path: the same files with the
    same bytes and modes, RECORDs included (the console script's launcher
    on Windows embeds the venv's path); the extension module linked or
    copied as asked; then everything runs, and pip's own commands agree."""
    target, cache = tmp_path / "env", tmp_path / "cache"
    args = ["--disable-pip-version-check", "--no-index", "--find-links", str(real_wheels[0].parent),
            "six", "idna", "MarkupSafe", "pyflakes"]
    make_venv(target)
    run_pip(target, "install", *args)
    plain = target.rename(tmp_path / "plain")
    make_venv(target)
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(target), "--link-mode", mode,
         "--cache-dir", str(cache), "-v", *args],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    done = {"auto": r"(cloned|hardlinked)", "hardlink": "hardlinked", "copy": "copied"}[mode]
    # the summary is ours, on stderr (stdout is pip's); -v adds the long form
    assert re.search(rf"^pip-linkmode: files \d+ {done} \(link mode \w+, requested {mode}[);]", proc.stderr, re.M), proc.stderr
    assert "pip's own per-file loop" not in proc.stderr, proc.stderr  # every one by the linked install

    ours, theirs = file_tree(target), file_tree(plain)
    assert sorted(ours) == sorted(theirs)
    assert {k for k in ours if ours[k] != theirs[k]} == set()
    extension = next(p for p in site_packages(target).glob("markupsafe/_speedups*") if p.suffix in (".so", ".pyd"))
    assert (extension.stat().st_nlink == 1) is (mode == "copy")
    assert script(target, "pyflakes").stat().st_nlink == 1  # made for this venv, never linked
    _check_env(target, cache)
