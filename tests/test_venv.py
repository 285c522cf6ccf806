"""``pip-linkmode venv`` and ``pip_linkmode.venv``: real interpreters, real venvs, real pip."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import (
    CAN_SYMLINK,
    IS_ROOT,
    Mounts,
    link_modes,
    needs_symlinks,
    scripts_dir,
    shares_extents,
    site_packages,
    snapshot,
    supported_pythons,
)

from pip_linkmode import LinkMode, WheelCache
from pip_linkmode.venv import LinkedEnvBuilder, create, interpreter_info, main_venv

VERSIONS = ["3.10", "3.11", "3.12", "3.13"]


def pyenv_python(version: str) -> str:
    """The interpreter of a minor version (pyenv's, or PIP_LINKMODE_TEST_PYTHONS), or skip the test."""
    python = supported_pythons().get(version)
    if python is None:
        pytest.skip(reason=f"no Python {version} interpreter (pyenv, or PIP_LINKMODE_TEST_PYTHONS)")
    return python


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "venv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def bin_of(env: Path) -> Path:
    return scripts_dir(env)


def site_of(env: Path) -> Path:
    return site_packages(env)


def exe(env: Path, name: str) -> Path:
    """A venv's interpreter or console script by name (``.exe`` on Windows)."""
    return bin_of(env) / (f"{name}.exe" if os.name == "nt" else name)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc  # type: ignore[no-any-return]


def first_line(out: str) -> str:
    """The one line of a command's output, whatever its line end (pip 24.3's
    ``--version`` ends with "\\r\\r\\n" under Wine)."""
    lines = out.splitlines()
    assert lines and not any(line.strip() for line in lines[1:]), out
    return lines[0]


def record_of(site: Path, project: str) -> dict[str, tuple[str, str]]:
    (dist_info,) = site.glob(f"{project}-*.dist-info")
    rows = csv.reader((dist_info / "RECORD").read_text("utf-8").splitlines())
    return {r[0]: (r[1], r[2]) for r in rows if r}


def files_of(site: Path, pyc: bool = False) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(site):
        if not pyc:
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), site))
    return out


def file_hash(path: Path) -> str:
    import base64

    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def reference_venvs() -> dict[str, Path]:
    """``python -m venv`` environments (ensurepip), made once per interpreter (see below)."""
    return {}


def reference_venv(python: str, refs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # by the path as run, not its target: a venv's python and the base one
    # behind it make different venvs (3.13 names bin/python3.13 in scripts
    # when run from a venv)
    key = os.path.abspath(python)
    if key not in refs:
        env = tmp_path_factory.mktemp("ref") / "env"
        run([python, "-m", "venv", str(env)])
        refs[key] = env
    return refs[key]


def assert_like_ensurepip(ours: Path, ref: Path, pyc: bool) -> None:
    """Same files, scripts and RECORD as ``python -m venv`` made.

    ``pyc``: the .pyc files too (seeded with cached bytecode, which the engine
    compiles with the running interpreter, so only for its Python version).
    """
    # the interpreter's scripts directory: the same names (pip, pip3, pip3.X, activate...)
    assert sorted(p.name for p in bin_of(ours).iterdir()) == sorted(p.name for p in bin_of(ref).iterdir())
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in ref.iterdir())
    site, ref_site = site_of(ours), site_of(ref)
    assert files_of(site, pyc) == files_of(ref_site, pyc)
    projects = sorted({p.name.split("-")[0] for p in ref_site.glob("*.dist-info")})
    assert "pip" in projects
    for project in projects:
        mine = record_of(site, project)
        theirs = {p: v for p, v in record_of(ref_site, project).items() if pyc or "__pycache__/" not in p}
        assert sorted(mine) == sorted(theirs), project
        for path, row in mine.items():
            target = Path(os.path.normpath(site / path))
            if path.endswith(".dist-info/RECORD"):
                assert row == ("", "")
                continue
            if path.endswith(".dist-info/INSTALLER"):
                assert target.read_text() == "pip\n"
            if target.parent == bin_of(ours):
                # entry-point scripts: the engine's generator (installer's template,
                # double quotes) vs pip's (single quotes); same shebang and code
                assert row == (file_hash(target), str(target.stat().st_size))
                theirs_script = bin_of(ref) / target.name
                if target.suffix == ".exe":  # the same launcher, shebang and __main__.py
                    launcher, shebang, code = exe_launcher_parts(target)
                    their_launcher, their_shebang, their_code = exe_launcher_parts(theirs_script)
                    assert launcher[:2] == b"MZ" and launcher == their_launcher
                    assert shebang == their_shebang.replace(str(ref), str(ours))
                    assert code == their_code.replace("'", '"')
                else:
                    assert target.read_text() == theirs_script.read_text().replace(
                        str(ref), str(ours)
                    ).replace("'", '"')
                    assert os.access(target, os.X_OK)
                continue
            assert row == theirs[path], path
    for project in projects:
        dist_info = next(ref_site.glob(f"{project}-*.dist-info"))
        assert (site / dist_info.name / "REQUESTED").exists() == (dist_info / "REQUESTED").exists()
        assert not (site / dist_info.name / "direct_url.json").exists()


def exe_launcher_parts(path: Path) -> tuple[bytes, str, str]:
    """A Windows console-script launcher: (the .exe stub, its shebang line
    without the line end, the ``__main__.py`` of the zip appended after it).
    (The line end varies: the distlib in pip 24.0 writes "\\n\\r\\n".)"""
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        start = min(info.header_offset for info in zf.infolist())  # (offsets count from the file's start)
        code = zf.read("__main__.py").decode("utf-8")
    launcher, marker, shebang = data[:start].rpartition(b"#!")
    assert marker and launcher, f"{path} is not a launcher with a shebang"
    return launcher, (marker + shebang).decode("utf-8").rstrip("\r\n"), code


def pip_works(env: Path, wheel: Path, cache: Path) -> None:
    """The seeded pip runs, installs a local wheel and uninstalls it and itself; cache untouched."""
    python = str(exe(env, "python"))
    out = run([python, "-m", "pip", "--version"]).stdout
    assert str(site_of(env)) in out
    before = snapshot(cache)
    pip = [str(exe(env, "pip")), "--disable-pip-version-check", "--no-input"]
    run([*pip, "install", "--no-index", str(wheel)])
    assert run([python, "-c", "import demo; print(demo.hello())"]).stdout.strip() == "hello from core"
    run([*pip, "check"])
    run([*pip, "uninstall", "-y", "demo"])
    # (pip.exe refuses to modify pip on Windows: "To modify pip, please run ... -m pip")
    self_pip = [python, "-m", "pip", *pip[1:]] if os.name == "nt" else pip
    run([*self_pip, "uninstall", "-y", "pip"])
    assert not list(site_of(env).glob("pip*"))
    assert not list(bin_of(env).glob("pip*"))  # RECORD named every pip script
    assert snapshot(cache) == before


# -- against python -m venv, for each interpreter ------------------------------


def test_default_interpreter_matches_python_m_venv(
    tmp_path: Path, cache_dir: Path, reference_venvs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = tmp_path / "env"
    proc = run_cli(str(env), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert "seeded" in proc.stdout and "pip-" in proc.stdout
    ref = reference_venv(sys._base_executable, reference_venvs, tmp_path_factory)  # type: ignore[attr-defined]
    assert_like_ensurepip(env, ref, pyc=True)
    # the .pyc files are linked from the cache, compiled there once
    pyc = site_of(env) / "pip" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"
    assert pyc.stat().st_nlink > 1 or "hardlinked" not in proc.stdout
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert first_line(run([str(exe(env, f"pip{version}")), "--version"]).stdout).endswith(f"(python {version})")
    # the next environment from this cache (replayed from the recorded plan) looks the same
    again = tmp_path / "again"
    proc = run_cli(str(again), "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert list((cache_dir / "plans").glob("*.json"))
    assert_like_ensurepip(again, ref, pyc=True)
    assert first_line(run([str(exe(again, f"pip{version}")), "--version"]).stdout).endswith(f"(python {version})")


@pytest.mark.parametrize("version", VERSIONS)
def test_each_interpreter_matches_python_m_venv(
    version: str,
    tmp_path: Path,
    cache_dir: Path,
    pip_demo_wheel: Path,
    reference_venvs: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    python = pyenv_python(version)
    env = tmp_path / "env"
    proc = run_cli(str(env), "--python", python, "--cache-dir", str(cache_dir), "--link-mode", "hardlink")
    assert proc.returncode == 0, proc.stderr
    cfg = (env / "pyvenv.cfg").read_text()
    assert re.search(rf"^version(_info)? = {re.escape(version)}\.", cfg, re.M), cfg
    out = run([str(exe(env, "python")), "-c", "import sys; print(sys.prefix != sys.base_prefix)"]).stdout
    assert out.strip() == "True"
    ref = reference_venv(python, reference_venvs, tmp_path_factory)
    same = version == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert_like_ensurepip(env, ref, pyc=same)
    assert any(site_of(env).glob("pip/__pycache__/*.pyc")) == same
    # the bundled pip of *that* interpreter, under its own versioned name
    bundled = interpreter_info(python).wheels["pip"]
    pip_version = Path(bundled).name.split("-")[1]
    out = first_line(run([str(exe(env, f"pip{version}")), "--version"]).stdout)
    assert out.startswith(f"pip {pip_version} ") and out.endswith(f"(python {version})")
    pip_works(env, pip_demo_wheel, cache_dir)


# -- link modes ---------------------------------------------------------------


def _cache_file(cache: Path, member: str) -> Path:
    (hit,) = [p for p in (cache / "entries").glob(f"*/tree/{member}")]
    return hit


@pytest.mark.parametrize("mode", link_modes("hardlink", "symlink", "copy", "auto"))
def test_link_modes(mode: str, tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path) -> None:
    env = tmp_path / "env"
    proc = run_cli(str(env), "--link-mode", mode, "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    installed = site_of(env) / "pip" / "__init__.py"
    cached = _cache_file(cache_dir, "pip/__init__.py")
    if mode in ("hardlink", "auto"):  # auto: ext4/tmpfs cannot clone, so hardlink
        assert os.path.samefile(installed, cached) and not installed.is_symlink()
    elif mode == "symlink":
        assert installed.is_symlink() and os.path.samefile(installed, cached)
    else:
        assert not os.path.samefile(installed, cached) and not installed.is_symlink()
        assert installed.read_bytes() == cached.read_bytes()
    # per-environment files are never links into the cache
    record = next(site_of(env).glob("pip-*.dist-info")) / "RECORD"
    assert record.stat().st_nlink == 1 and not record.is_symlink()
    assert (exe(env, "pip")).stat().st_nlink == 1
    pip_works(env, pip_demo_wheel, cache_dir)


def test_clone_on_xfs(mounts: Mounts, pip_demo_wheel: Path, tmp_path: Path) -> None:
    xfs = mounts.points["xfs"]
    cache = xfs / "venv-cache"
    env = xfs / "venv-clone"
    try:
        proc = run_cli(str(env), "--link-mode", "clone", "--cache-dir", str(cache))
        assert proc.returncode == 0, proc.stderr
        assert "cloned" in proc.stdout and "copied" not in proc.stdout
        installed = site_of(env) / "pip" / "_internal" / "req" / "req_install.py"
        cached = _cache_file(cache, "pip/_internal/req/req_install.py")
        assert not os.path.samefile(installed, cached)
        assert shares_extents(installed)
        assert installed.read_bytes() == cached.read_bytes()
        pip_works(env, pip_demo_wheel, cache)
    finally:
        shutil.rmtree(env, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


# -- options --------------------------------------------------------------------


@pytest.mark.parametrize("other", [False, True], ids=["in-process", "--python"])
def test_prompt_system_site_packages_and_clear(other: bool, tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / "old-file").write_text("x")
    extra = ["--python", sys.executable] if other else []
    proc = run_cli(str(env), *extra, "--prompt", "hello", "--system-site-packages", "--clear", "-q",
                   "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert not (env / "old-file").exists()
    cfg = (env / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    assert "prompt = 'hello'" in cfg or "prompt = hello" in cfg
    assert (exe(env, "pip")).exists()


def test_without_pip(tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "env"
    proc = run_cli(str(env), "--without-pip", "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert not list(site_of(env).glob("pip*")) and not (exe(env, "pip")).exists()
    assert not cache_dir.exists()  # nothing needed from the cache


def test_seed_linkmode(tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "env"
    proc = run_cli(str(env), "--seed-linkmode", "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    for name in ("pip_linkmode", "installer", "packaging", "filelock"):
        assert (site_of(env) / name).is_dir(), name
    python = str(exe(env, "python"))
    code = "import pip_linkmode, installer, packaging, filelock, pip_linkmode.venv; print(pip_linkmode.__file__)"
    # (not from the work tree: run outside it, where '' on sys.path finds nothing)
    assert run([python, "-c", code], cwd=tmp_path).stdout.startswith(str(site_of(env)))
    tool = str(exe(env, "pip-linkmode"))
    assert run([tool, "--version"]).stdout.startswith("pip-linkmode ")
    run([python, "-m", "pip", "check"])
    # the seeded tool makes another environment, from its own copy
    inner = tmp_path / "inner"
    run([tool, "venv", str(inner), "--cache-dir", str(cache_dir), "--link-mode", "hardlink"])
    # its pip linked from the cache (the bundled pip: the same as env's,
    # unless that is older than pip-linkmode supports, as 3.10's 23.0.1,
    # when env got this environment's pip instead)
    cached = list(cache_dir.glob("entries/*/tree/pip/__init__.py"))
    assert any(os.path.samefile(site_of(inner) / "pip" / "__init__.py", c) for c in cached)
    assert any(os.path.samefile(site_of(env) / "pip" / "__init__.py", c) for c in cached)
    # a second seeding reuses the cache entries of the repacked wheels
    entries = _entries(cache_dir)
    proc = run_cli(str(tmp_path / "env2"), "--seed-linkmode", "--cache-dir", str(cache_dir))
    assert proc.returncode == 0, proc.stderr
    assert _entries(cache_dir) == entries


def _entries(cache: Path) -> list[tuple[str, str]]:
    import json

    return sorted((json.loads((p / "entry.json").read_text())["filename"], p.name) for p in (cache / "entries").iterdir())


@pytest.mark.parametrize("seeded", [False, True])
def test_packages_are_installed_through_the_pip_front_end(
    seeded: bool, tmp_path: Path, cache_dir: Path, demo_wheel: Path
) -> None:
    env = tmp_path / "env"
    req = tmp_path / "req.txt"
    req.write_text(f"{demo_wheel}\n")
    extra = ["--seed-linkmode"] if seeded else []
    proc = run_cli(str(env), *extra, "--cache-dir", str(cache_dir), "--link-mode", "hardlink", "-r", str(req))
    assert proc.returncode == 0, proc.stderr
    installed = site_of(env) / "demo" / "core.py"
    assert os.path.samefile(installed, _cache_file(cache_dir, "demo/core.py"))


# -- errors -----------------------------------------------------------------------


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_error_non_empty_directory(tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    (env / "keep.txt").write_text("mine")
    line = _one_error_line(run_cli(str(env), "--cache-dir", str(cache_dir)))
    assert "not empty" in line and "--clear" in line
    assert [p.name for p in env.iterdir()] == ["keep.txt"]


def test_empty_existing_directory_is_used(tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "env"
    env.mkdir()
    assert run_cli(str(env), "-q", "--cache-dir", str(cache_dir)).returncode == 0
    assert (exe(env, "pip")).exists()


@pytest.mark.parametrize("python", ["/no/such/python3", "python9.99", "9.99"])
def test_error_missing_interpreter(python: str, tmp_path: Path, cache_dir: Path) -> None:
    env = tmp_path / "deep" / "env"
    line = _one_error_line(run_cli(str(env), "--python", python, "--cache-dir", str(cache_dir)))
    assert "interpreter" in line
    assert not (tmp_path / "deep").exists()


@pytest.mark.skipif(os.name != "nt", reason="the py launcher is how Windows finds an interpreter by version")
def test_version_found_by_the_py_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--python 3.X`` on Windows: no ``python3.X`` on PATH, so ``py -3.X`` names it."""
    base = sys._base_executable  # type: ignore[attr-defined]
    tools = tmp_path / "tools"
    tools.mkdir()
    # a stand-in for py.exe that knows one version (the running interpreter, tagged 3.77)
    (tools / "py.bat").write_text(f'@echo off\nif not "%~1"=="-3.77" exit /b 103\n"{base}" %2 %3\n')
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    env = tmp_path / "env"
    proc = run_cli(str(env), "--python", "3.77", "--without-pip")
    assert proc.returncode == 0, proc.stderr
    assert f", {base})" in proc.stdout
    cfg = (env / "pyvenv.cfg").read_text()
    assert f"home = {os.path.dirname(base)}" in cfg, cfg
    line = _one_error_line(run_cli(str(tmp_path / "other"), "--python", "3.78", "--without-pip"))
    assert "no Python interpreter '3.78' found on PATH or by the py launcher" in line
    assert not (tmp_path / "other").exists()


def test_error_read_only_filesystem(tmp_path: Path, cache_dir: Path) -> None:
    if sys.platform != "linux":
        pytest.skip(reason="needs a read-only tmpfs mount, a Linux facility (Windows has no mount, "
                    "and a directory's read-only attribute does not stop writes there)")
    if not IS_ROOT:
        pytest.skip(reason="mounting a read-only filesystem needs root on Linux")
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        line = _one_error_line(run_cli(str(ro / "env"), "--cache-dir", str(cache_dir)))
        assert "Read-only file system" in line and str(ro / "env") in line
        assert list(ro.iterdir()) == []
        # and with --python, the same
        line = _one_error_line(run_cli(str(ro / "a" / "env"), "--python", sys.executable))
        assert "Read-only file system" in line
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("other", [False, True], ids=["in-process", "--python"])
def test_failure_after_creation_removes_everything(other: bool, tmp_path: Path) -> None:
    """A cache that cannot be used fails the seeding: the half-made environment goes."""
    bad_cache = tmp_path / "cache-is-a-file"
    bad_cache.write_text("")
    env = tmp_path / "new" / "env"
    extra = ["--python", sys.executable] if other else []
    line = _one_error_line(run_cli(str(env), *extra, "--cache-dir", str(bad_cache)))
    assert "cache" in line
    assert not (tmp_path / "new").exists()
    # an existing empty directory is emptied again, not removed
    env.parent.mkdir()
    env.mkdir()
    _one_error_line(run_cli(str(env), *extra, "--cache-dir", str(bad_cache)))
    assert env.is_dir() and list(env.iterdir()) == []


def test_usage_errors(tmp_path: Path) -> None:
    line = _one_error_line(run_cli(str(tmp_path / "e"), "--without-pip", "--seed-linkmode"))
    assert "--seed-linkmode" in line
    line = _one_error_line(run_cli(str(tmp_path / "e"), "--no-linkmode-opt-in"))
    assert "--no-linkmode-opt-in is for --seed-linkmode" in line
    proc = run_cli(str(tmp_path / "e"), "--link-mode", "teleport")
    assert proc.returncode == 2 and "unknown link mode" in proc.stderr
    assert not (tmp_path / "e").exists()
    assert main_venv(["--help"]) == 0


# -- the Python API -------------------------------------------------------------------


@pytest.mark.parametrize("symlinks", [pytest.param(True, marks=needs_symlinks), False], ids=["symlinks", "copies"])
def test_linked_env_builder(
    symlinks: bool, tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ensurepip

    def no_ensurepip(*args: object, **kwargs: object) -> None:
        raise AssertionError("ensurepip must not run")

    monkeypatch.setattr(ensurepip, "bootstrap", no_ensurepip)
    monkeypatch.setattr(ensurepip, "_bootstrap", no_ensurepip)
    monkeypatch.setattr(subprocess, "check_output", no_ensurepip)  # EnvBuilder's ensurepip call
    env = tmp_path / "env"
    builder = LinkedEnvBuilder(with_pip=True, symlinks=symlinks, prompt="api", link_mode="hardlink", cache_dir=cache_dir)
    builder.create(env)
    assert builder.seed_result is not None
    assert any(i.startswith("pip-") for i in builder.seed_result.installed)
    assert builder.seed_result.report.links.counts[LinkMode.HARDLINK] > 500
    assert (exe(env, "python")).is_symlink() == symlinks
    assert "prompt = 'api'" in (env / "pyvenv.cfg").read_text()
    assert os.path.samefile(site_of(env) / "pip" / "__init__.py", _cache_file(cache_dir, "pip/__init__.py"))
    monkeypatch.undo()
    pip_works(env, pip_demo_wheel, cache_dir)


def test_create_function(tmp_path: Path, cache_dir: Path) -> None:
    cache = WheelCache(cache_dir)
    result = create(tmp_path / "a", link_mode=LinkMode.COPY, cache_dir=cache)
    assert result is not None and result.report.links.counts[LinkMode.COPY] > 500
    assert not (exe(tmp_path / "a", "python")).is_symlink()  # venv.create's default: copies
    assert (exe(tmp_path / "a", "pip")).exists()
    assert create(tmp_path / "b", with_pip=False, cache_dir=cache) is None
    assert not list(site_of(tmp_path / "b").glob("pip*"))
    # clear=True replaces an environment, as venv.create does (symlinks=True
    # where symlinks can be made: under Wine the venv would get no python.exe)
    (tmp_path / "a" / "junk").write_text("x")
    create(tmp_path / "a", clear=True, symlinks=CAN_SYMLINK, cache_dir=cache)
    assert not (tmp_path / "a" / "junk").exists() and (exe(tmp_path / "a", "pip3")).exists()
    assert (exe(tmp_path / "a", "python")).is_symlink() == CAN_SYMLINK
    out = run([str(exe(tmp_path / "a", "python")), "-m", "pip", "--version"]).stdout
    assert out.startswith("pip ")
