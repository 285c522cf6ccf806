"""`pip-linkmode install` against real pip releases, compared with plain pip."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import (
    Mounts,
    file_tree,
    link_modes,
    make_venv,
    record_path,
    run_script,
    script,
    scripts_dir,
    shares_extents,
    site_packages,
    snapshot,
    venv_python,
    without_launcher_times,
)
from wheelmaker import build_wheel, demo_spec

from pip_linkmode import WheelCache

ROOT = Path(__file__).resolve().parent.parent
# The newest release of each supported line.
PIP_VERSIONS = ["23.3.2", "24.3.1", "25.3", "26.3"]
#: On Windows, the oldest and the newest of them: a run of pip there takes
#: ten times as long (Wine), and what lies between pip-version-wise is
#: platform-independent and runs on Linux.
PIP_VERSION_PARAMS = [
    pytest.param(v, marks=pytest.mark.skipif(
        os.name == "nt" and v not in (PIP_VERSIONS[0], PIP_VERSIONS[-1]),
        reason="on Windows, the oldest and the newest pip: the releases between run on Linux (suite time)"))
    for v in PIP_VERSIONS
]
# console scripts; .data files with paths over 260 characters; an sdist pip must build
PACKAGES = ["pyflakes==3.2.0", "jupyterlab-widgets==3.0.16", "docopt==0.6.2"]
DISTS = ["pyflakes", "jupyterlab_widgets", "docopt"]


def _env_with_pip(path: Path, pip_version: str, ours: bool) -> Path:
    venv = make_venv(path)
    extra = ["installer", "filelock", "packaging"] if ours else []
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv_python(venv), "install", "-q",
         "--disable-pip-version-check", f"pip=={pip_version}", *extra],
        check=True, capture_output=True,
    )
    if ours:  # the project under test, importable in that venv
        (site_packages(venv) / "pip_linkmode_dev.pth").write_text(str(ROOT) + "\n")
    return venv


def _run(venv: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([venv_python(venv), *args], capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _installed_files(venv: Path) -> dict[str, bytes]:
    """Every file the test dists' RECORDs list, content with the venv path normalised."""
    sp = site_packages(venv)
    out: dict[str, bytes] = {}
    for dist_info in sorted(sp.glob("*.dist-info")):
        if dist_info.name.split("-")[0].lower() not in DISTS:
            continue
        for line in (dist_info / "RECORD").read_text().splitlines():
            rel = line.rsplit(",", 2)[0]
            if rel.endswith(".dist-info/RECORD"):
                continue  # compared row by row below (script hashes embed the venv path)
            path = (sp / rel).resolve() if not rel.startswith("..") else Path(os.path.normpath(sp / rel))
            # (a Windows launcher's zip times are the install's moment)
            out[rel] = without_launcher_times(path.read_bytes()).replace(str(venv).encode(), b"VENV")
    return out


def _record_rows(venv: Path) -> dict[str, str]:
    sp = site_packages(venv)
    rows = {}
    for dist_info in sorted(sp.glob("*.dist-info")):
        if dist_info.name.split("-")[0].lower() in DISTS:
            for line in (dist_info / "RECORD").read_text().splitlines():
                rel, h, size = line.rsplit(",", 2)
                rows[rel] = f"{h},{size}"
    return rows


@pytest.mark.parametrize("pip_version", PIP_VERSION_PARAMS)
def test_real_pip_release(pip_version: str, tmp_path: Path) -> None:
    ours = _env_with_pip(tmp_path / "ours", pip_version, ours=True)
    plain = _env_with_pip(tmp_path / "plain", pip_version, ours=False)
    cache = tmp_path / "cache"
    args = ["--disable-pip-version-check", "--no-compile", *PACKAGES]
    result = _run(ours, "-m", "pip_linkmode", "install", "--link-mode", "hardlink", "--cache-dir", str(cache), *args)
    _run(plain, "-m", "pip", "install", *args)
    assert "Successfully installed" in result.stdout and "Linked" not in result.stdout  # stdout is pip's
    assert re.fullmatch(r"Linked \d+ files \(hardlink\) from the cache; [\d.]+ [kM]B not written", result.stderr.splitlines()[-1])
    assert _run(ours, "-m", "pip", "--version").stdout.startswith(f"pip {pip_version} ")

    # Same files, same bytes, same RECORD: only link relations differ (INSTALLER is pip's here).
    ours_files, plain_files = _installed_files(ours), _installed_files(plain)
    assert set(ours_files) == set(plain_files)
    assert ours_files == plain_files
    ours_rows, plain_rows = _record_rows(ours), _record_rows(plain)
    scripts = {r for r in ours_rows if r.startswith(record_path(ours, scripts_dir(ours)) + "/")}
    assert {r: v for r, v in ours_rows.items() if r not in scripts} == {r: v for r, v in plain_rows.items() if r not in scripts}
    sp = site_packages(ours)
    assert os.stat(sp / "pyflakes/checker.py").st_nlink >= 2  # hardlinked from the cache
    long = [p for p in (ours / "share/jupyter/labextensions").rglob("*") if p.is_file() and len(str(p)) > 200]
    assert long

    # pip's own commands agree, and uninstalling leaves the cache intact.
    assert "No broken requirements" in _run(ours, "-m", "pip", "check").stdout
    shown = _run(ours, "-m", "pip", "show", "-f", "pyflakes").stdout
    assert "Name: pyflakes" in shown and os.path.join("pyflakes", "checker.py") in shown  # (pip shows system paths)
    frozen = _run(ours, "-m", "pip", "freeze").stdout
    assert "pyflakes==3.2.0" in frozen and "docopt==0.6.2" in frozen and "jupyterlab_widgets==3.0.16" in frozen
    assert "3.2.0" in run_script(ours, "pyflakes", "--version").stdout
    before = snapshot(cache)
    _run(ours, "-m", "pip", "uninstall", "-y", "pyflakes", "jupyterlab-widgets", "docopt")
    assert snapshot(cache) == before
    assert not (sp / "pyflakes").exists() and not script(ours, "pyflakes").exists()


def test_pip_commands_pass_through(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip_linkmode", "list", "--format=freeze"], capture_output=True, text=True, check=True)
    assert "pip==" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "pip_linkmode", "show", "pip"], capture_output=True, text=True, check=True)
    assert "Name: pip" in proc.stdout


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="no pip release below 23.1 runs on Python 3.12+ (their vendored pkg_resources uses pkgutil.ImpImporter, removed in 3.12)",
)
def test_unsupported_pip_falls_back_with_one_line(tmp_path: Path) -> None:
    old = _env_with_pip(tmp_path / "old", "22.3.1", ours=True)
    result = _run(old, "-m", "pip_linkmode", "install", "--disable-pip-version-check", "--cache-dir", str(tmp_path / "c"), "six==1.16.0")
    notes = [line for line in result.stderr.splitlines() if line.startswith("pip-linkmode:")]
    assert notes == ["pip-linkmode: pip 22.3.1 is outside the supported range 23.1 to 26.3; installing with plain pip (no links)."]
    assert "Traceback" not in result.stderr and "Successfully installed six-1.16.0" in result.stdout
    assert os.stat(site_packages(old) / "six.py").st_nlink == 1
    assert not (tmp_path / "c" / "entries").exists()


def test_bad_link_mode_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip_linkmode", "install", "--link-mode", "teleport", "six"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown link mode 'teleport'" in proc.stderr
    env = {**os.environ, "PIP_LINK_MODE": "nope"}
    proc = subprocess.run([sys.executable, "-m", "pip_linkmode", "install", "six"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "PIP_LINK_MODE" in proc.stderr


@pytest.fixture(scope="module")
def six_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("six")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(dest),
                    "six==1.16.0"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", str(dest),
                    "six==1.17.0"], check=True)
    return dest


def _ours(venv: Path, cache: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--disable-pip-version-check",
         "--cache-dir", str(cache), *args],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upgrade_downgrade_and_force_reinstall_keep_cache(six_wheels: Path, tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "cache"
    links = ["--no-index", "--find-links", str(six_wheels)]
    _ours(venv, cache, "--link-mode", "hardlink", *links, "six==1.16.0")
    sp = site_packages(venv)
    assert "1.16.0" in (sp / "six.py").read_text()
    _ours(venv, cache, "--link-mode", "hardlink", *links, "--upgrade", "six==1.17.0")
    assert "1.17.0" in (sp / "six.py").read_text() and not list(sp.glob("six-1.16.0.dist-info"))
    _ours(venv, cache, "--link-mode", "hardlink", *links, "six==1.16.0")
    assert "1.16.0" in (sp / "six.py").read_text() and not list(sp.glob("six-1.17.0.dist-info"))
    before = snapshot(cache)
    out = _ours(venv, cache, "--link-mode", "hardlink", *links, "--force-reinstall", "six==1.16.0")
    assert "Successfully installed six-1.16.0" in out.stdout
    assert snapshot(cache) == before
    assert os.stat(sp / "six.py").st_nlink == 2
    # PIP_LINK_MODE does what --link-mode does
    env = {**os.environ, "PIP_LINK_MODE": "copy"}
    out = _ours(venv, cache, *links, "--force-reinstall", "six==1.16.0", env=env)
    assert re.search(r"^Copied \d+ files from the cache$", out.stderr, re.M), out.stderr
    assert os.stat(sp / "six.py").st_nlink == 1
    assert snapshot(cache) == before


@pytest.mark.parametrize("mode", link_modes("symlink", "hardlink"))
@pytest.mark.parametrize("option", ["--target", "--prefix"])
def test_target_and_prefix(option: str, mode: str, six_wheels: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dest = tmp_path / "dest"
    # Run in a venv of its own: pip with --prefix uninstalls a different
    # version of the package from the running environment (as plain pip
    # does), which here would be the test runner's own six.
    venv = make_venv(tmp_path / "runner")
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", mode,
         "--cache-dir", str(cache), "--disable-pip-version-check", "--no-index", "--find-links", str(six_wheels),
         option, str(dest), "six==1.16.0"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^Linked \d+ files \({mode}\) from the cache", proc.stderr, re.M), proc.stderr
    six_py = next(dest.rglob("six.py"))
    if mode == "symlink":
        assert six_py.is_symlink() and Path(os.readlink(six_py)).is_relative_to(cache)
    else:
        assert not six_py.is_symlink() and six_py.stat().st_nlink == 2
        with zipfile.ZipFile(six_wheels / "six-1.16.0-py2.py3-none-any.whl") as wheel:
            assert six_py.read_bytes() == wheel.read("six.py")
    if option == "--prefix":
        assert six_py.parent == site_packages(dest)  # the prefix's own scheme (Lib\site-packages on Windows)
    env = {**os.environ, "PYTHONPATH": str(six_py.parent)}
    out = subprocess.run([sys.executable, "-c", "import six; print(six.__version__)"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.stdout.strip() == "1.16.0"


def test_console_script_is_installed() -> None:
    import shutil

    # the script of the environment running the suite, else the one on PATH
    # (a pyenv shim may front another interpreter's)
    exe = str(script(Path(sys.prefix), "pip-linkmode"))
    if not os.path.exists(exe):
        exe = shutil.which("pip-linkmode") or exe
    if not os.path.exists(exe):
        pytest.fail("the pip-linkmode console script is missing: install the project (pip install -e .)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("pip-linkmode ")
    usage = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "install [--link-mode MODE]" in usage and "cache dir|info|list|verify|clean|prune" in usage


def test_parallel_bytecode_under_pip_26_3_import_guard(tmp_path: Path) -> None:
    # pip 26.3 refuses imports while installing; the compile workers must not need any.
    import sys as _sys

    sys_path = str(Path(__file__).parent)
    if sys_path not in _sys.path:
        _sys.path.insert(0, sys_path)
    from wheelmaker import WheelSpec, build_wheel

    wheel = build_wheel(tmp_path / "w", WheelSpec(name="many", files={f"many/m{i}.py": f"X = {i}\n".encode() for i in range(300)}))
    venv = _env_with_pip(tmp_path / "v", "26.3", ours=True)
    result = _run(venv, "-m", "pip_linkmode", "install", "--disable-pip-version-check", "--cache-dir", str(tmp_path / "c"),
                  "--no-index", str(wheel))
    assert "Successfully installed many-1.0" in result.stdout
    pycs = list((site_packages(venv) / "many" / "__pycache__").glob("*.pyc"))
    assert len(pycs) == 300 and all(p.stat().st_nlink >= 2 for p in pycs)


@pytest.mark.parametrize("route", ["linked", "pip-loop"])
def test_a_file_placed_by_a_worker_thread_that_fails_stops_pip_before_record(route: str, tmp_path: Path) -> None:
    """Package files are placed by the linker's threads while pip goes on;
    one that cannot be placed (a directory in the way, far into a big wheel)
    still stops pip before it writes the wheel's RECORD, and names the file:
    in the linked install and in pip's own loop (which a setuptools wrapper
    of an entry point in .data/scripts sends the wheel through)."""
    from wheelmaker import WheelSpec, build_wheel

    files: dict[str, bytes | tuple[bytes, int]] = {"many/__init__.py": b"def main():\n    return 0\n"}
    files.update({f"many/data/f{i:04d}.txt": f"{i}\n".encode() for i in range(1500)})
    entry_points = None
    if route == "pip-loop":
        files["many-1.0.data/scripts/many-cli"] = (b"#!python\nfrom many import main\n", 0o755)
        entry_points = "[console_scripts]\nmany-cli = many:main\n"
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="many", files=files, entry_points=entry_points))
    venv = make_venv(tmp_path / "venv")
    blocker = site_packages(venv) / "many" / "data" / "f1200.txt"
    (blocker / "occupied").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink",
         "--cache-dir", str(tmp_path / "cache"), "--no-index", "--no-deps", "--no-compile", str(wheel)],
        capture_output=True, text=True, env=env,
    )
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr and "directory is in the way" in proc.stderr, proc.stderr
    assert not (site_packages(venv) / "many-1.0.dist-info").exists()  # never recorded as installed
    left = sorted(p.name for p in (site_packages(venv) / "many" / "data").iterdir())
    assert left == ["f1200.txt"]  # what we placed is removed again; the blocker stays
    assert sorted(p.name for p in (site_packages(venv) / "many").iterdir()) == ["data"]
    assert not script(venv, "many-cli").exists()


def test_cached_pycs_placed_together_and_one_that_fails_stops_pip(tmp_path: Path) -> None:
    """With compiling, a wheel's cached pycs are all placed at pip's first
    compile call, by the linker's threads: each gets its RECORD row as pip
    compiles its source, and one that cannot be placed stops pip before it
    records the wheel, naming the file."""
    from wheelmaker import WheelSpec, build_wheel

    tag = sys.implementation.cache_tag
    files: dict[str, bytes | tuple[bytes, int]] = {"many/__init__.py": b""}
    files.update({f"many/m{i:03d}.py": f"X = {i}\n".encode() for i in range(300)})
    files["many/broken.py"] = b"def (:\n"  # does not compile: no pyc, no row
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="many", files=files))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cache = tmp_path / "cache"

    def install(venv: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode",
             "hardlink", "--cache-dir", str(cache), "--no-index", "--no-deps", str(wheel)],
            capture_output=True, text=True, env=env,
        )

    good = make_venv(tmp_path / "good")
    proc = install(good)
    assert proc.returncode == 0, proc.stderr
    sp = site_packages(good)
    record = (sp / "many-1.0.dist-info" / "RECORD").read_text()
    pycs = sorted(p.name for p in (sp / "many" / "__pycache__").iterdir())
    assert len(pycs) == 301 and f"broken.{tag}.pyc" not in pycs
    assert all(f"many/__pycache__/{name},," in record for name in pycs)
    assert (sp / f"many/__pycache__/m250.{tag}.pyc").stat().st_nlink >= 2  # the cache's own

    bad = make_venv(tmp_path / "bad")
    blocker = site_packages(bad) / "many" / "__pycache__" / f"m250.{tag}.pyc"
    (blocker / "occupied").mkdir(parents=True)
    proc = install(bad)
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr and "directory is in the way" in proc.stderr, proc.stderr
    # nothing of the wheel is left, not even the archive's RECORD pip saved itself
    assert not (site_packages(bad) / "many-1.0.dist-info").exists()
    assert sorted(p.name for p in (site_packages(bad) / "many" / "__pycache__").iterdir()) == [blocker.name]
    assert sorted(p.name for p in (site_packages(bad) / "many").iterdir()) == ["__pycache__"]


def test_clones_by_helper_processes_under_pip_26_3(mounts: Mounts, tmp_path: Path) -> None:
    """A clone install big enough for the linker's helper processes, through
    pip 26.3 (which refuses imports once it installs): every file in place;
    and a file that cannot be placed far into the wheel still stops pip
    before it records the wheel, naming the file, with the rest removed."""
    from wheelmaker import WheelSpec, build_wheel

    root = mounts.points["xfs"] / tmp_path.name
    files: dict[str, bytes | tuple[bytes, int]] = {"many/__init__.py": b""}
    files.update({f"many/data/f{i:04d}.txt": f"{i}\n".encode() for i in range(1500)})
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="many", files=files))
    tools = _env_with_pip(tmp_path / "tools", "26.3", ours=True)
    args = ["--link-mode", "clone", "--cache-dir", str(root / "cache"), "--disable-pip-version-check",
            "--no-index", "--no-deps", "--no-compile", str(wheel)]
    good = make_venv(root / "good")
    result = _run(tools, "-m", "pip_linkmode", "install", "--python", venv_python(good), *args)
    assert "Successfully installed many-1.0" in result.stdout
    assert "Linked 1503 files (clone) from the cache" in result.stderr  # 1501 files, METADATA, WHEEL
    data = site_packages(good) / "many" / "data"
    assert len(list(data.iterdir())) == 1500 and (data / "f1499.txt").read_bytes() == b"1499\n"
    bad = make_venv(root / "bad")
    blocker = site_packages(bad) / "many" / "data" / "f1200.txt"
    (blocker / "occupied").mkdir(parents=True)
    proc = _run(tools, "-m", "pip_linkmode", "install", "--python", venv_python(bad), *args, check=False)
    assert proc.returncode != 0
    assert str(blocker) in proc.stderr and "directory is in the way" in proc.stderr, proc.stderr
    assert not (site_packages(bad) / "many-1.0.dist-info" / "RECORD").exists()
    assert sorted(p.name for p in (site_packages(bad) / "many" / "data").iterdir()) == ["f1200.txt"]


def _fast_path_wheels(directory: Path) -> list[Path]:
    """Wheels whose every rule the linked install reproduces: scripts with a
    #!python line to rewrite, a plain one, data, headers, long paths, console
    and GUI entry points, a platlib root with .data/purelib sources, a file
    that does not compile, an executable library file."""
    from wheelmaker import WheelSpec, build_wheel, demo_spec

    demo = demo_spec()
    demo.entry_points = (demo.entry_points or "") + "[gui_scripts]\ndemo-gui = demo.core:main\n"
    plat = WheelSpec(
        name="platty",
        purelib=False,
        files={
            "platty/__init__.py": b"from .fast import f\n",
            "platty/fast.py": b"def f():\n    return 1\n",
            "platty/broken.py": b"def (:\n",
            "platty-1.0.dist-info/INSTALLER": b"not-pip\n",  # pip writes its own over it
            "platty-1.0.data/purelib/platty_pure/__init__.py": b"X = 1\n",
            "platty-1.0.data/scripts/platty-run": (b"#!pythonw\r\nprint('crlf')\r\n", 0o755),
            "platty/_speed.so": (b"\x7fELF (not really)\n", 0o755),  # executable, not a script
        },
    )
    # a data file where pip's script maker then writes an entry point's script
    clash = WheelSpec(
        name="clash",
        files={
            "clash/__init__.py": b"def main():\n    return 0\n",
            # (on Windows the scripts go to Scripts\ and a console script is an .exe)
            "clash-1.0.data/data/" + ("Scripts/clash-cli.exe" if os.name == "nt" else "bin/clash-cli"):
                (b"#!/bin/sh\necho data file\n", 0o755),
        },
        entry_points="[console_scripts]\nclash-cli = clash:main\n",
    )
    return [build_wheel(directory, demo), build_wheel(directory, plat), build_wheel(directory, clash)]


def _loop_wheels(directory: Path) -> list[Path]:
    """Wheels pip's own loop installs: a setuptools wrapper of an entry
    point in .data/scripts (pip leaves it out) and a .py under .data/data
    (pip compiles it, the cache does not); a file at the root and again
    under .data/purelib (pip writes both, the last one stays); a .data
    directory named for another project."""
    from wheelmaker import WheelSpec, build_wheel

    dupe = build_wheel(directory, WheelSpec(
        name="dupe",
        files={"dupe.py": b"WHERE = 'root'\n", "dupe-1.0.data/purelib/dupe.py": b"WHERE = 'data'\n"},
    ))
    # a top-level .data directory not named for the wheel: pip routes it too
    other = build_wheel(directory, WheelSpec(
        name="otherdata",
        files={"otherdata/__init__.py": b"", "elsewhere.data/purelib/zz_other.py": b"Z = 3\n"},
    ))
    return [dupe, other, build_wheel(directory, WheelSpec(
        name="loopy",
        files={
            "loopy/__init__.py": b"def main():\n    return 0\n",
            "loopy-1.0.data/scripts/loopy-cli": (b"#!python\nfrom loopy import main\nmain()\n", 0o755),
            "loopy-1.0.data/data/share/loopy/helper.py": b"Y = 2\n",
        },
        entry_points="[console_scripts]\nloopy-cli = loopy:main\n",
    ))]


@pytest.mark.parametrize("compiling", [True, False], ids=["compile", "no-compile"])
def test_clones_get_the_modes_plain_pip_gives_under_a_strict_umask(
    compiling: bool, mounts: Mounts, tmp_path: Path
) -> None:
    """On XFS, with umask 027 (pip then gives an executable file 0o751, its
    other files 0o640), cloned files get pip's modes, not the cache file's:
    the cache was filled under umask 022, and one of its files has been
    chmod-ed since (as through a hardlinked venv). Plain pip, then
    pip-linkmode --link-mode clone, into a venv at the same path."""
    root = mounts.points["xfs"] / tmp_path.name
    wheels = tmp_path / "wheels"
    fast = _fast_path_wheels(wheels)
    tools = _env_with_pip(tmp_path / "tools", PIP_VERSIONS[-1], ours=True)
    cache = root / "cache"
    args = ["--disable-pip-version-check", "--no-index", "--find-links", str(wheels), *map(str, fast),
            *([] if compiling else ["--no-compile"])]
    entry = [WheelCache(cache).get(wheel).tree for wheel in fast][1]  # filled under this process's umask 022
    (entry / "platty" / "fast.py").chmod(0o600)
    target = root / "env"
    old = os.umask(0o027)
    try:
        make_venv(target)
        _run(tools, "-m", "pip", "--python", venv_python(target), "install", *args)
        plain = target.rename(root / "plain")
        make_venv(target)
        result = _run(tools, "-m", "pip_linkmode", "install", "--python", venv_python(target), "--link-mode", "clone",
                      "--cache-dir", str(cache), "-v", *args)
    finally:
        os.umask(old)
    assert "went through pip's own per-file loop" not in result.stderr, result.stderr  # (said under -v)
    assert "cloned" in result.stderr, result.stderr
    ours, theirs = file_tree(target), file_tree(plain)
    assert sorted(ours) == sorted(theirs)
    assert {k for k in ours if ours[k] != theirs[k]} == set()
    sp = site_packages(target)
    assert (sp / "platty" / "_speed.so").stat().st_mode & 0o777 == 0o751
    assert (sp / "platty" / "fast.py").stat().st_mode & 0o777 == 0o640
    assert (sp / "platty" / "fast.py").stat().st_ino != (entry / "platty" / "fast.py").stat().st_ino
    assert shares_extents(sp / "platty" / "__init__.py")


@pytest.mark.parametrize("pip_version", PIP_VERSION_PARAMS)
@pytest.mark.parametrize("compiling", [True, False], ids=["compile", "no-compile"])
def test_linked_install_leaves_the_tree_plain_pip_leaves(pip_version: str, compiling: bool, tmp_path: Path) -> None:
    """Plain pip, then pip-linkmode, into a venv at the same path: the same
    files with the same bytes and modes, the same RECORDs byte for byte
    (scripts embed the venv's path, so it must be the same path). Bytecode
    differs only in what #5 designs in: the source mtime in the header and
    the cache path as co_filename (the import system corrects it)."""
    wheels = tmp_path / "wheels"
    fast = _fast_path_wheels(wheels)
    _loop_wheels(wheels)
    tools = _env_with_pip(tmp_path / "tools", pip_version, ours=True)
    target = tmp_path / "env"
    # by path (direct_url.json, REQUESTED) and by name from --find-links
    args = ["--disable-pip-version-check", "--no-index", "--find-links", str(wheels), str(fast[0]), "platty", "clash", "loopy", "dupe", "otherdata",
            *([] if compiling else ["--no-compile"])]

    make_venv(target)
    _run(tools, "-m", "pip", "--python", venv_python(target), "install", *args)
    plain = target.rename(tmp_path / "plain")
    make_venv(target)
    result = _run(tools, "-m", "pip_linkmode", "install", "--python", venv_python(target), "--link-mode", "hardlink",
                  "--cache-dir", str(tmp_path / "cache"), "-v", *args)
    assert "pip-linkmode: 3 of 6 wheels went through pip's own per-file loop" in result.stderr, result.stderr

    ours, theirs = file_tree(target), file_tree(plain)
    assert sorted(ours) == sorted(theirs)
    assert {k for k in ours if ours[k] != theirs[k]} == set()
    sp = site_packages(target)
    tag = sys.implementation.cache_tag
    assert (sp / "demo" / "core.py").stat().st_nlink >= 2
    record = (sp / "platty-1.0.dist-info" / "RECORD").read_bytes()
    assert b"\r\n" in record and b"platty/broken.py," in record
    assert (f"platty/__pycache__/fast.{tag}.pyc,,".encode() in record) is compiling
    helper = record_path(target, target / "share" / "loopy" / "helper.py")  # ../../../share/... (../../share/... on Windows)
    assert f"{helper},".encode() in (sp / "loopy-1.0.dist-info" / "RECORD").read_bytes()
    assert (scripts_dir(target) / "platty-run").read_bytes().startswith(f"#!{venv_python(target)}{os.linesep}".encode())
    loopy = script(target, "loopy-cli").read_bytes()  # pip's own (on Windows a launcher: its zip is stored)
    assert b"from loopy import main\n" in loopy and b"from loopy import main\nmain()" not in loopy
    if os.name == "nt":  # and the wheel's wrapper of the entry point left out
        assert not (scripts_dir(target) / "loopy-cli").exists()
    if compiling:
        assert (sp / "platty_pure" / "__pycache__" / f"__init__.{tag}.pyc").stat().st_nlink >= 2
    # the installed code runs, its scripts too
    out = subprocess.run([str(script(target, "demo-hello"))], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "hello from core"
    assert _run(target, "-c", "import platty, platty_pure; print(platty.f() + platty_pure.X)").stdout.strip() == "2"
    assert _run(target, "-c", "import dupe; print(dupe.WHERE)").stdout.strip() == "data"
    assert _run(target, "-c", "import zz_other; print(zz_other.Z)").stdout.strip() == "3"
    assert b"data file" not in script(target, "clash-cli").read_bytes()  # pip's script, not the data file
    assert script(target, "clash-cli").stat().st_nlink == 1


def test_python_reexec_needs_no_directory_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The --python re-exec makes our packages importable in the other
    interpreter with no link at all: with symlinks and junctions refused
    outright (Windows without privilege), it still installs."""
    from pip_linkmode import _reexec

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(None, "directory links are refused in this test", None, 1314)

    monkeypatch.setattr(os, "symlink", refused)
    if sys.platform == "win32":
        import _winapi

        monkeypatch.setattr(_winapi, "CreateJunction", refused, raising=False)
    wheel = build_wheel(tmp_path / "w", demo_spec())
    venv = make_venv(tmp_path / "v")
    status = _reexec._reexec_with(
        venv_python(venv),
        ["--link-mode", "hardlink", "--cache-dir", str(tmp_path / "c"), "--no-index", "--disable-pip-version-check", str(wheel)],
    )
    assert status == 0
    out = subprocess.run([venv_python(venv), "-c", "import demo.core; print(demo.core.__file__)"], capture_output=True, text=True, check=True)
    assert str(site_packages(venv)) in out.stdout
    assert script(venv, "demo-hello").is_file()


def test_python_option_takes_a_venv_directory(tmp_path: Path) -> None:
    """``--python`` names an interpreter or, as pip reads it, a virtual
    environment's directory; a path with neither is a one-line error."""
    wheel = build_wheel(tmp_path / "w", demo_spec())
    venv = make_venv(tmp_path / "v")
    base = [sys.executable, "-m", "pip_linkmode", "install", "--link-mode", "hardlink", "--cache-dir", str(tmp_path / "c"),
            "--no-index", "--disable-pip-version-check"]
    proc = subprocess.run([*base, "--python", str(venv), str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Successfully installed demo-1.0" in proc.stdout and script(venv, "demo-hello").is_file()
    assert (site_packages(venv) / "demo" / "core.py").stat().st_nlink >= 2
    missing = tmp_path / "nowhere"
    proc = subprocess.run([*base, f"--python={missing}", str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == f"pip-linkmode: no Python interpreter at {missing}\n", proc.stderr
