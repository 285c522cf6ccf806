"""Plain ``pip install --use-feature=linkmode`` (issue 22, part 1), in venvs where
pip-linkmode is installed from its wheel, as a user installs it.

Each opt-in (the command line, ``PIP_USE_FEATURE``, ``use-feature`` in the
environment's pip.conf) links from the cache; without it pip is pip; an old
or changed pip gets one line and a plain install; uninstalling pip-linkmode
takes the hook away. Needs the package index (setuptools to build the wheel,
the dependencies, an old pip): skipped with the reason when it is unreachable.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolenv import (
    bin_dir,
    build_wheelhouse,
    cache_twin,
    clean_env,
    fresh_venv,
    index_or_skip,
    own_wheel,
    python_of,
    run,
    site_of,
)
from wheelmaker import build_wheel, demo_spec

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the opt-in tests run POSIX venvs (bin/) and inode checks")

#: our summary line, on stderr (stdout is pip's)
SUMMARY = re.compile(r"^Linked \d+ files \(", re.M)


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("demo"), demo_spec(long_paths=False))


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """One venv with pip-linkmode's wheel installed, shared by the tests that leave it as they found it."""
    return fresh_venv(tmp_path_factory.mktemp("hooked") / "env", wheelhouse)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def pip(env: Path, *args: str, cache: Path | None = None, module: bool = False,
        **extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [python_of(env), "-m", "pip"] if module else [str(bin_dir(env) / "pip")]
    more = {"PIP_LINKMODE_CACHE_DIR": str(cache)} if cache is not None else {}
    return run([*cmd, "--disable-pip-version-check", *args], env=clean_env(**more, **extra))


def linked_from(cache: Path, env: Path) -> bool:
    """Is the demo's core module in ``env`` the cache's file (same inode)?"""
    installed = site_of(env) / "demo" / "core.py"
    return installed.is_file() and cache_twin(cache, installed, "demo/core.py") is not None


@pytest.fixture
def uninstall_demo(hooked: Path) -> Iterator[None]:
    yield
    pip(hooked, "uninstall", "-y", "demo")


def test_the_wheel_records_the_hook_at_the_root(wheelhouse: Path) -> None:
    with zipfile.ZipFile(own_wheel(wheelhouse)) as zf:
        record = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))).decode()
        pth = zf.read("pip_linkmode_optin.pth").decode()
    rows = {line.split(",")[0] for line in record.splitlines()}
    assert {"pip_linkmode_optin.pth", "_pip_linkmode_optin.py"} <= rows
    assert "import pip" not in pth and "pip_linkmode." not in pth


def test_start_up_imports_nothing_and_registers_one_finder(hooked: Path) -> None:
    code = ("import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pip', 'installer', 'pip_linkmode', '_pip_linkmode_optin', 'packaging', 'filelock'))); "
            "print(sum(getattr(f, '__name__', '') == 'PipLinkmodeOptIn' for f in sys.meta_path))")
    for flags in ([], ["-I"]):
        out = run([python_of(hooked), *flags, "-c", code], check=True).stdout.split("\n")
        assert out[:2] == ["[]", "1"], flags


@pytest.mark.usefixtures("uninstall_demo")
@pytest.mark.parametrize("how", ["argv", "argv-split", "env", "site-config"])
def test_each_opt_in_links_from_the_cache(how: str, hooked: Path, demo: Path, cache: Path) -> None:
    args, extra, module = ["install", str(demo)], {}, False
    if how == "argv":
        args.append("--use-feature=linkmode")
    elif how == "argv-split":
        args[1:1] = ["--use-feature", "linkmode"]
        module = True  # python -m pip
    elif how == "env":
        extra["PIP_USE_FEATURE"] = "fast-deps linkmode"
    else:
        enabled = run([str(bin_dir(hooked) / "pip-linkmode"), "opt-in", "enable"], env=clean_env())
        assert enabled.returncode == 0, enabled.stderr
        assert (hooked / "pip.conf").read_text().split() == ["[global]", "use-feature", "=", "linkmode"]
    try:
        proc = pip(hooked, *args, cache=cache, module=module, **extra)
    finally:
        if how == "site-config":
            disabled = run([str(bin_dir(hooked) / "pip-linkmode"), "opt-in", "disable"], env=clean_env())
            assert disabled.returncode == 0, disabled.stderr
    assert proc.returncode == 0, proc.stderr
    assert "Successfully installed demo-1.0" in proc.stdout
    assert len(SUMMARY.findall(proc.stderr)) == 1, proc.stderr
    assert linked_from(cache, hooked)
    assert run([str(bin_dir(hooked) / "demo-hello")], check=True).stdout == "hello from core\n"
    gone = pip(hooked, "uninstall", "-y", "demo")
    assert gone.returncode == 0 and not (site_of(hooked) / "demo").exists()
    assert any(cache.rglob("core.py"))  # uninstalling never touches the cache


@pytest.mark.usefixtures("uninstall_demo")
def test_without_the_opt_in_pip_is_pip(hooked: Path, demo: Path, cache: Path, tmp_path: Path,
                                       wheelhouse: Path) -> None:
    plain_env = fresh_venv(tmp_path / "plain", wheelhouse, with_linkmode=False)
    ours = pip(hooked, "install", str(demo), cache=cache)
    theirs = pip(plain_env, "install", str(demo), cache=cache)
    assert ours.returncode == theirs.returncode == 0
    assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr)
    assert not cache.exists()
    assert os.stat(site_of(hooked) / "demo" / "core.py").st_nlink == 1
    # pip ran, and nothing of pip-linkmode was imported
    code = ("import sys; from pip._internal.cli.main import main; main(['list']); "
            "print(sorted(m for m in sys.modules if 'linkmode' in m))")
    out = run([python_of(hooked), "-c", code], env=clean_env(), check=True).stdout.splitlines()[-1]
    assert out == "['_pip_linkmode_optin']"


def test_opt_in_status_enable_disable(hooked: Path) -> None:
    tool = str(bin_dir(hooked) / "pip-linkmode")
    status = run([tool, "opt-in", "status"], env=clean_env(), check=True).stdout
    assert f"hook: installed ({site_of(hooked) / 'pip_linkmode_optin.pth'})" in status
    assert "plain `pip install` here: plain pip" in status
    (hooked / "pip.conf").write_text("[global]\nuse-feature = fast-deps\n")
    try:
        run([tool, "opt-in", "enable"], env=clean_env(), check=True)
        assert "use-feature = fast-deps linkmode" in (hooked / "pip.conf").read_text()
        status = run([tool, "opt-in", "status"], env=clean_env(), check=True).stdout
        assert "plain `pip install` here: links" in status
        assert f"site config ({hooked / 'pip.conf'}): use-feature = fast-deps linkmode (linkmode on)" in status
        run([tool, "opt-in", "disable"], env=clean_env(), check=True)
        assert "use-feature = fast-deps\n" in (hooked / "pip.conf").read_text()
        wrong = run([tool, "opt-in", "enable", "--everywhere"], env=clean_env())
        assert wrong.returncode == 2 and wrong.stderr.count("\n") == 2
    finally:
        (hooked / "pip.conf").unlink()


@pytest.mark.usefixtures("uninstall_demo")
def test_pip_linkmode_install_with_the_feature_on_hooks_once(hooked: Path, demo: Path, cache: Path) -> None:
    proc = run([str(bin_dir(hooked) / "pip-linkmode"), "install", "--use-feature=linkmode", str(demo)],
               env=clean_env(PIP_LINKMODE_CACHE_DIR=str(cache), PIP_USE_FEATURE="linkmode"))
    assert proc.returncode == 0, proc.stderr
    assert len(SUMMARY.findall(proc.stderr)) == 1, proc.stderr
    assert linked_from(cache, hooked)


@pytest.mark.usefixtures("uninstall_demo")
def test_no_cache_dir_with_the_opt_in_keeps_no_cache(hooked: Path, demo: Path, cache: Path) -> None:
    """As ``pip-linkmode install --no-cache-dir``: files linked from a cache
    made for this run and removed after it, nothing kept."""
    proc = pip(hooked, "install", "--no-cache-dir", "--use-feature=linkmode", str(demo), cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^Linked \d+ files \(\w+\) from a temporary cache \(--no-cache-dir: removed now\)",
                     proc.stderr, re.M), proc.stderr
    assert not cache.exists()
    assert not [p for p in hooked.iterdir() if p.name.startswith(".pip-linkmode-tmp-")]
    assert run([str(bin_dir(hooked) / "demo-hello")], check=True).stdout == "hello from core\n"


def test_opt_in_refuses_symlinks_into_a_cache_that_goes(hooked: Path, demo: Path, cache: Path) -> None:
    proc = pip(hooked, "install", "--no-cache-dir", "--use-feature=linkmode", str(demo), cache=cache,
               PIP_LINK_MODE="symlink")
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr == ("pip-linkmode: error: PIP_LINK_MODE=symlink needs a cache that stays; "
                           "drop --no-cache-dir (PIP_NO_CACHE_DIR) or pick another mode\n"), proc.stderr
    assert not (site_of(hooked) / "demo").exists()


def test_opt_in_says_an_unusable_cache_before_pip_resolves(hooked: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cache = tmp_path / "file" / "cache"
    # an index nothing listens on: had pip started, it would say "Collecting"
    proc = pip(hooked, "install", "--use-feature=linkmode", "--index-url", "http://127.0.0.1:9/simple", "six",
               cache=cache)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and str(cache) in proc.stderr and "--cache-dir" in proc.stderr, proc.stderr


@pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="no pip release below 23.1 runs on Python 3.12+ (their vendored pkg_resources uses "
    "pkgutil.ImpImporter, removed in 3.12); the moved-option test below covers the fallback there",
)
def test_an_unsupported_pip_gets_one_line_and_a_plain_install(tmp_path: Path, wheelhouse: Path, demo: Path,
                                                               cache: Path) -> None:
    env = fresh_venv(tmp_path / "old", wheelhouse)
    downgrade = pip(env, "install", "-q", "pip==23.0.1")
    index_or_skip(downgrade, "installing pip 23.0.1")
    proc = pip(env, "install", "--use-feature=linkmode", str(demo), cache=cache)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("pip-linkmode")]
    assert ours == ["pip-linkmode: pip 23.0.1 is outside the supported range 23.1 to 26.3; "
                    "installing with plain pip (no links)."]
    assert "Successfully installed demo-1.0" in proc.stdout and not SUMMARY.search(proc.stderr)
    assert os.stat(site_of(env) / "demo" / "core.py").st_nlink == 1


def test_a_pip_whose_option_moved_gets_one_line_and_a_plain_install(tmp_path: Path, wheelhouse: Path,
                                                                     demo: Path, cache: Path) -> None:
    """A pip whose ``--use-feature`` option is no longer made by a partial
    with a list of choices: there is no such pip yet, so this one is edited."""
    env = fresh_venv(tmp_path / "moved", wheelhouse)
    cmdoptions = site_of(env) / "pip" / "_internal" / "cli" / "cmdoptions.py"
    with open(cmdoptions, "a") as f:
        f.write("\n_moved = use_new_feature\n\ndef use_new_feature():\n    return _moved()\n")
    proc = pip(env, "install", "--use-feature=linkmode", str(demo), cache=cache)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("pip-linkmode")]
    assert len(ours) == 1 and ours[0].endswith("installing with plain pip (no links)."), proc.stderr
    assert "--use-feature option has no list of choices" in ours[0]
    assert os.stat(site_of(env) / "demo" / "core.py").st_nlink == 1


def test_uninstalling_pip_linkmode_takes_the_hook_away(tmp_path: Path, wheelhouse: Path, demo: Path) -> None:
    env = fresh_venv(tmp_path / "gone", wheelhouse)
    site = site_of(env)
    assert (site / "pip_linkmode_optin.pth").is_file()
    assert pip(env, "uninstall", "-y", "pip-linkmode").returncode == 0
    assert not (site / "pip_linkmode_optin.pth").exists() and not (site / "_pip_linkmode_optin.py").exists()
    finders = run([python_of(env), "-c", "import sys; print(sys.meta_path)"], check=True).stdout
    assert "PipLinkmodeOptIn" not in finders
    proc = pip(env, "install", "--use-feature=linkmode", str(demo))
    assert proc.returncode != 0 and "invalid choice: 'linkmode'" in proc.stderr  # plain pip's answer


@pytest.mark.parametrize("opt_in", [True, False], ids=["opt-in-on", "no-linkmode-opt-in"])
def test_a_seed_linkmode_venv_carries_the_hook(opt_in: bool, hooked: Path, tmp_path: Path, demo: Path,
                                               cache: Path) -> None:
    """``pip-linkmode venv --seed-linkmode``: the hook, and the opt-in on as the
    seeder turns it on (plain ``pip install`` links), unless
    ``--no-linkmode-opt-in`` (then only ``--use-feature=linkmode`` does)."""
    made = tmp_path / "seeded"
    proc = run([str(bin_dir(hooked) / "pip-linkmode"), "venv", "--seed-linkmode", "-q",
                *([] if opt_in else ["--no-linkmode-opt-in"]), str(made)],
               env=clean_env(PIP_LINKMODE_CACHE_DIR=str(cache)))
    assert proc.returncode == 0, proc.stderr
    site = site_of(made)
    record = next(site.glob("pip_linkmode-*.dist-info")).joinpath("RECORD").read_text()
    assert "pip_linkmode_optin.pth," in record and "_pip_linkmode_optin.py," in record
    assert ("pip_linkmode_optin.on," in record) is opt_in  # (pip uninstall pip-linkmode takes it)
    plain = pip(made, "install", str(demo), cache=cache)
    assert plain.returncode == 0, plain.stderr
    assert bool(SUMMARY.search(plain.stderr)) is opt_in and linked_from(cache, made) is opt_in, plain.stderr
    if not opt_in:
        assert pip(made, "uninstall", "-y", "demo").returncode == 0
        installed = pip(made, "install", "--use-feature=linkmode", str(demo), cache=cache)
        assert installed.returncode == 0, installed.stderr
        assert SUMMARY.search(installed.stderr) and linked_from(cache, made)


def test_enable_is_refused_where_there_is_no_hook() -> None:
    """An editable install (this suite's, as CI makes it) has no .pth: writing
    use-feature = linkmode there would make that pip refuse every command."""
    from pip_linkmode.optin import installed_hook

    if installed_hook() is not None:
        pytest.skip("this suite runs from a wheel install, which has the hook")
    conf = Path(sys.prefix) / ("pip.ini" if os.name == "nt" else "pip.conf")
    before = conf.read_bytes() if conf.exists() else None
    try:
        proc = run([sys.executable, "-m", "pip_linkmode", "opt-in", "enable"], env=clean_env())
        assert proc.returncode == 2
        assert proc.stderr.startswith("pip-linkmode opt-in: error: the hook is not installed")
        assert (conf.read_bytes() if conf.exists() else None) == before
    finally:
        if before is None:
            conf.unlink(missing_ok=True)
        else:
            conf.write_bytes(before)
