"""Attacks on the cache's integrity (issue 24): tampering is detected, damaged
entries are reported and never opened, symlink-mode users are found whatever
the path, and ages are checked. Each test reproduces the attack."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import IS_ROOT, make_venv, needs_symlinks, site_packages, venv_python

from pip_linkmode import WheelCache, install_wheel, plan
from pip_linkmode._cachecore import ENV_CACHE_DIR

ROOT = Path(__file__).resolve().parent.parent
TAG = sys.implementation.cache_tag


def cli(cache: Path | str, *args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "cache", "--cache-dir", str(cache), *args],
        capture_output=True, text=True, timeout=timeout, **kwargs,  # type: ignore[call-overload]
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode not in (0, 1), result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pip-linkmode cache: "), lines
    return lines[0]


def hello(venv: Path) -> str:
    out = subprocess.run([venv_python(venv), "-c", "import demo; print(demo.hello())"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or out.stderr


def entry_root(cache: Path) -> Path:
    (root,) = (cache / "entries").iterdir()
    return root


def tampered_pyc(pyc: Path, size: int | None = None) -> bytes:
    """The cached .pyc of demo/core.py with the same header (so the import
    system takes it for the source it was compiled from) and a new code
    object; padded to ``size`` (the loader ignores what follows the code)."""
    header = pyc.read_bytes()[:16]
    code = compile("def hello():\n    return 'tampered'\n", "core.py", "exec")
    data = header + marshal.dumps(code)
    if size is not None:
        assert len(data) <= size
        data += b"\0" * (size - len(data))
    return data


def replace_file(path: Path, data: bytes) -> None:
    """Rewrite a cache file as an attacker would: a new file renamed over it
    (the environments that link the old inode keep it)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@pytest.fixture
def compiled(tmp_path: Path, demo_wheel: Path) -> tuple[Path, Path]:
    """A cache holding demo with bytecode, filled by a hardlink install."""
    cache = tmp_path / "cache"
    install_wheel(demo_wheel, venv=make_venv(tmp_path / "first"), link_mode="hardlink",
                  cache=cache, compile_bytecode=True)
    pyc = entry_root(cache) / "tree" / "demo" / "__pycache__" / f"core.{TAG}.pyc"
    assert pyc.is_file()
    return cache, pyc


# -- 1. tampering is detected ---------------------------------------------------------

def test_verify_finds_a_rewritten_pyc_and_repair_recompiles_it(
    compiled: tuple[Path, Path], demo_wheel: Path, tmp_path: Path
) -> None:
    cache, pyc = compiled
    assert cli(cache, "verify").returncode == 0
    # Same size, mtime set back: the cheap self-check cannot see it, the hash does.
    st = pyc.stat()
    replace_file(pyc, tampered_pyc(pyc, st.st_size))
    os.utime(pyc, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = cli(cache, "verify")
    assert result.returncode == 1, result
    assert f"modified: {pyc} (entry demo 1.0" in result.stdout
    repaired = cli(cache, "verify", "--repair")
    assert repaired.returncode == 0, repaired
    assert "recompiled bytecode of demo 1.0" in repaired.stdout
    assert cli(cache, "verify").returncode == 0
    venv = make_venv(tmp_path / "after")
    install_wheel(demo_wheel, venv=venv, link_mode="hardlink", cache=cache, compile_bytecode=True)
    assert hello(venv) == "hello from core"


def test_verify_checks_every_file_the_cache_produced(
    compiled: tuple[Path, Path], demo_wheel: Path, tmp_path: Path
) -> None:
    cache, _pyc = compiled
    root = entry_root(cache)
    from pip_linkmode.placement import load_layout
    from pip_linkmode.source import CachedWheelSource

    wc = WheelCache(cache)
    load_layout(CachedWheelSource(wc.get(demo_wheel), wc))  # the layout an install from pip uses
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "made.txt").write_text("generated\n")
    assert plan.record(str(cache), "k1", str(env), str(env / "bin" / "python"), [], set(), ["x-1"])
    assert cli(cache, "verify").returncode == 0

    # The layout: a RECORD line rewritten (still valid JSON).
    layout = root / "layout.json"
    replace_file(layout, layout.read_bytes().replace(b"demo/core.py,sha256=", b"demo/core.py,sha256=X"))
    # A plan: a generated file's content changed.
    plan_file = cache / "plans" / "k1.json"
    recorded = json.loads(plan_file.read_bytes())
    recorded["generated"][0]["data"] = "cHduZWQK"
    replace_file(plan_file, json.dumps(recorded).encode())
    # A file planted in the tree (a whole-directory clone would carry it along).
    planted = root / "tree" / "demo" / "planted.py"
    planted.write_text("import os\n")
    result = cli(cache, "verify")
    assert result.returncode == 1, result
    assert f"modified: {layout} (entry demo 1.0" in result.stdout
    assert f"modified: {plan_file} (recorded plan)" in result.stdout
    assert f"unexpected: {planted} (entry demo 1.0" in result.stdout
    repaired = cli(cache, "verify", "--repair")
    assert repaired.returncode == 0, repaired
    assert f"rebuilt {layout}" in repaired.stdout
    assert f"removed {plan_file}" in repaired.stdout and f"removed {planted}" in repaired.stdout
    assert not plan_file.exists() and not planted.exists()
    assert b"sha256=X" not in layout.read_bytes()
    assert cli(cache, "verify").returncode == 0, cli(cache, "verify").stdout


def test_verify_finds_a_source_changed_with_its_manifest(compiled: tuple[Path, Path], demo_wheel: Path) -> None:
    """The file and the manifest's hash of it changed together: the
    manifest's recorded hash no longer matches."""
    cache, _pyc = compiled
    root = entry_root(cache)
    core = root / "tree" / "demo" / "core.py"
    evil = b"def hello():\n    return 'tampered'\n"
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(evil).digest()).rstrip(b"=").decode()
    manifest = json.loads((root / "entry.json").read_bytes())
    for row in manifest["files"]:
        if row[0] == "demo/core.py":
            row[1], row[2] = f"sha256={digest}", len(evil)
    replace_file(core, evil)
    replace_file(root / "entry.json", json.dumps(manifest).encode())
    result = cli(cache, "verify")
    assert result.returncode == 1, result
    assert f"modified: {root / 'entry.json'}" in result.stdout
    repaired = cli(cache, "verify", "--repair")
    assert f"re-created demo 1.0 from {demo_wheel}" in repaired.stdout, repaired
    assert cli(cache, "verify").returncode == 0
    assert b"tampered" not in core.read_bytes()


# -- 2. the self-check before linking catches a changed .pyc ----------------------------

def test_an_install_never_links_a_pyc_changed_since_it_was_compiled(
    compiled: tuple[Path, Path], demo_wheel: Path, tmp_path: Path
) -> None:
    cache, pyc = compiled
    bad = tampered_pyc(pyc, pyc.stat().st_size)  # same size: the new mtime gives it away
    time.sleep(0.01)
    replace_file(pyc, bad)
    venv = make_venv(tmp_path / "second")
    install_wheel(demo_wheel, venv=venv, link_mode="hardlink", cache=cache, compile_bytecode=True)
    linked = site_packages(venv) / "demo" / "__pycache__" / f"core.{TAG}.pyc"
    assert linked.read_bytes() != bad
    assert hello(venv) == "hello from core"
    assert pyc.read_bytes() != bad  # compiled again in the cache
    assert cli(cache, "verify").returncode == 0


# -- 3. verify reports what it cannot check, never opens what is not a file --------------

def test_verify_without_a_cache_says_so(tmp_path: Path) -> None:
    line = one_line_error(cli(tmp_path / "nowhere", "verify"))
    assert f"no cache at {tmp_path / 'nowhere'}" in line
    a_file = tmp_path / "file"
    a_file.write_text("x")
    line = one_line_error(cli(a_file, "verify"))
    assert f"{a_file} is a file" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "is not a pip-linkmode cache" in one_line_error(cli(empty, "verify"))


def _special_files() -> list[str]:
    kinds = ["directory"]
    if hasattr(os, "mkfifo"):
        kinds.append("fifo")
    if hasattr(os, "mknod") and IS_ROOT:
        kinds.append("device")
    return kinds


@pytest.mark.parametrize("kind", _special_files())
def test_a_cached_file_replaced_by_a_non_file_is_damaged_never_opened(
    kind: str, tmp_path: Path, demo_wheel: Path
) -> None:
    cache = tmp_path / "cache"
    entry = WheelCache(cache).get(demo_wheel)
    target = entry.tree / "demo" / "core.py"
    target.unlink()
    if kind == "directory":
        target.mkdir()
        expected = "a directory"
    elif kind == "fifo":
        os.mkfifo(target)
        expected = "a FIFO"
    else:
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's
        expected = "a character device"
    result = cli(cache, "verify", timeout=60)  # (a FIFO opened for reading waits for ever)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert f"damaged ({expected} where a file should be): {target} (entry demo 1.0" in result.stdout
    repaired = cli(cache, "verify", "--repair", timeout=60)
    assert f"re-created demo 1.0 from {demo_wheel}" in repaired.stdout, repaired
    assert target.is_file() and cli(cache, "verify").returncode == 0


@pytest.fixture
def other_user() -> Iterator[str]:
    """A second, unprivileged user, made for this test and removed after."""
    if os.name == "nt":
        pytest.skip("a second user's rights are POSIX permissions here (Windows: ACLs, not checked by the cache)")
    if not IS_ROOT:
        pytest.skip("creating a second user needs root")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("useradd/userdel are not installed")
    name = f"plm{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def test_a_cache_the_user_cannot_read_is_one_line(other_user: str, demo_wheel: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": "/"}

    def usable(python: str | None) -> bool:
        try:
            return python is not None and subprocess.run(
                [python, "-c", "import pip_linkmode.cache_admin"], user=other_user, env=env, cwd="/",
                capture_output=True, timeout=60,
            ).returncode == 0
        except OSError:  # (an interpreter in root's home: not even executable)
            return False

    python = next((p for p in (sys.executable, shutil.which("python3", path="/usr/local/bin:/usr/bin")) if usable(p)), None)
    if python is None:
        pytest.skip(f"no interpreter that {other_user} may run can import pip_linkmode")
    top = Path(tempfile.mkdtemp(prefix="plm-unreadable-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        cache = top / "cache"
        WheelCache(cache).get(demo_wheel)
        os.chmod(cache, 0o700)  # a private cache: root's alone
        result = subprocess.run([python, "-m", "pip_linkmode", "cache", "--cache-dir", str(cache), "verify"],
                                user=other_user, env=env, cwd="/", capture_output=True, text=True, timeout=60)
        line = one_line_error(result)
        assert f"cannot read the cache {cache} (owned by root): Permission denied" in line, line
    finally:
        shutil.rmtree(top)


# -- 4. symlink-mode users are found whatever the path ----------------------------------

@pytest.fixture
def symlink_env(tmp_path: Path, demo_wheel: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A symlink-mode environment installed with the cache reached through an
    alias (``PIP_LINKMODE_CACHE_DIR=<alias>``); returns (real cache, env)."""
    real = tmp_path / "real"
    real.mkdir()
    alias = tmp_path / "alias"
    os.symlink(real, alias, target_is_directory=True)
    venv = make_venv(tmp_path / "envs" / "sym")
    with monkeypatch.context() as m:
        m.setenv(ENV_CACHE_DIR, str(alias))
        install_wheel(demo_wheel, venv=venv, link_mode="symlink")
    assert os.readlink(site_packages(venv) / "demo" / "core.py").startswith(str(alias))
    return real, venv


@needs_symlinks
def test_clean_through_the_real_path_keeps_an_entry_used_through_an_alias(symlink_env: tuple[Path, Path]) -> None:
    real, venv = symlink_env
    result = cli(real, "clean")
    assert result.returncode == 1, result
    assert f"kept demo 1.0: used by symlink-mode environment(s) {venv}" in result.stderr
    assert hello(venv) == "hello from core"
    assert cli(real, "clean", "--force").returncode == 0


@needs_symlinks
def test_clean_keeps_an_entry_used_by_a_moved_environment(symlink_env: tuple[Path, Path], tmp_path: Path) -> None:
    real, venv = symlink_env
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "moved"
    os.rename(venv, moved)  # its old path no longer exists
    assert hello(moved) == "hello from core"
    result = cli(real, "clean")
    assert result.returncode == 1, result
    assert f"kept demo 1.0: used by symlink-mode environment(s) {venv} (moved;" in result.stderr
    assert hello(moved) == "hello from core"
    shutil.rmtree(moved)  # gone for good: the entry is free
    result = cli(real, "clean")
    assert result.returncode == 0 and "removed demo 1.0" in result.stdout, result


@needs_symlinks
def test_an_environment_renamed_in_place_is_found_by_its_inode(symlink_env: tuple[Path, Path]) -> None:
    real, venv = symlink_env
    renamed = venv.with_name("renamed")
    os.rename(venv, renamed)
    for token in (real / "users").glob("*/*.link"):
        token.unlink()  # as where the cache and the environment are on different filesystems
    result = cli(real, "prune", "--older-than", "0")
    assert result.returncode == 1, result
    assert f"used by symlink-mode environment(s) {renamed} (moved from {venv})" in result.stderr
    assert hello(renamed) == "hello from core"


# -- 5. ages ------------------------------------------------------------------------

@pytest.mark.parametrize("age", ["-5", "nan"])
def test_prune_refuses_a_negative_age(tmp_path: Path, demo_wheel: Path, age: str) -> None:
    cache = tmp_path / "cache"
    WheelCache(cache).get(demo_wheel)
    line = one_line_error(cli(cache, "prune", "--older-than", age))
    assert "--older-than takes a number of days, zero or more" in line
    assert len(list((cache / "entries").iterdir())) == 1


@needs_symlinks
def test_an_install_through_installer_registers_its_symlink_user(
    tmp_path: Path, demo_wheel: Path
) -> None:
    """The library door (``installer.install`` with a cached source and
    ``LinkingDestination``) hands its files to the same Placement executor
    as every door: a symlink-mode environment made that way is a user of
    its entry, and ``cache clean`` keeps the entry for it."""
    import installer

    from pip_linkmode import LinkingDestination
    from pip_linkmode.install import target_for_venv

    cache = WheelCache(tmp_path / "cache")
    venv = make_venv(tmp_path / "env")
    target = target_for_venv(venv)
    with cache.open(demo_wheel) as source:
        destination = LinkingDestination(
            scheme_dict=target.scheme_for("demo"),
            interpreter=target.interpreter,
            script_kind="posix",
            link_mode="symlink",
        )
        installer.install(source, destination, {"INSTALLER": b"test\n"})
    assert os.path.islink(site_packages(venv) / "demo" / "core.py")
    result = cli(cache.root, "clean")
    assert result.returncode == 1, result
    assert f"kept demo 1.0: used by symlink-mode environment(s) {venv}" in result.stderr
    assert hello(venv) == "hello from core"
