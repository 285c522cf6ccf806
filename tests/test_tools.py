"""The ``linkmode`` virtualenv seeder, and real tox 4 and nox using it (issue 22, parts 2 and 3).

The tools come from the package index into a fresh venv beside pip-linkmode's
own wheel; tox and nox are run with ``VIRTUALENV_SEEDER=linkmode`` and
``PIP_USE_FEATURE=linkmode`` and nothing else changed (the cache and
virtualenv's app-data are pointed into the test's directory). Skipped with the
reason when the index cannot be reached.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from toolenv import (
    bin_dir,
    build_wheelhouse,
    cache_twin,
    clean_env,
    fresh_venv,
    index_or_skip,
    python_of,
    run,
    site_of,
)
from wheelmaker import build_wheel, demo_spec

pytestmark = pytest.mark.skipif(os.name == "nt", reason="these tests run POSIX venvs (bin/) and inode checks")

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with pip-linkmode (from its wheel), virtualenv, tox and nox (from the index)."""
    wheelhouse = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
    return fresh_venv(tmp_path_factory.mktemp("tools") / "env", wheelhouse, "virtualenv", "tox>=4", "nox")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The cache and virtualenv's app-data, in this module's directory."""
    base = tmp_path_factory.mktemp("shared")
    return {"PIP_LINKMODE_CACHE_DIR": str(base / "cache"), "VIRTUALENV_OVERRIDE_APP_DATA": str(base / "app-data")}


def same_file_everywhere(cache: Path, envs: list[Path], rel: str) -> None:
    """``rel`` (site-packages relative) in every env is one inode, the cache's."""
    files = [site_of(env) / rel for env in envs]
    inodes = {(os.stat(f).st_dev, os.stat(f).st_ino) for f in files}
    assert len(inodes) == 1, f"{rel}: {inodes}"
    assert cache_twin(cache, files[0], rel) is not None, f"{rel} is not the cache's file"


def test_virtualenv_seeder_linkmode(tools: Path, shared: dict[str, str], tmp_path: Path) -> None:
    env = tmp_path / "env"
    made = run([str(bin_dir(tools) / "virtualenv"), "--seeder", "linkmode", str(env)], env=clean_env(**shared))
    assert made.returncode == 0, made.stderr
    assert "LinkmodeSeeder" in made.stdout
    site = site_of(env)
    cache = Path(shared["PIP_LINKMODE_CACHE_DIR"])
    assert cache_twin(cache, site / "pip" / "__init__.py", "pip/__init__.py") is not None
    # setuptools where virtualenv adds it (before Python 3.12), pip-linkmode and the opt-in
    assert any(site.glob("setuptools-*.dist-info")) == (sys.version_info < (3, 12))
    assert (site / "pip_linkmode_optin.pth").is_file() and (site / "pip_linkmode_optin.on").is_file()
    assert not (env / "pip.conf").exists()
    pip = str(bin_dir(env) / "pip")
    check = run([pip, "check"], env=clean_env(**shared))
    assert check.returncode == 0, check.stdout + check.stderr
    demo = build_wheel(tmp_path / "wheels", demo_spec(long_paths=False))
    installed = run([pip, "install", str(demo)], env=clean_env(**shared))
    assert installed.returncode == 0, installed.stderr
    assert re.search(r"^Linked \d+ files \(", installed.stderr, re.M), installed.stderr
    assert cache_twin(cache, site / "demo" / "core.py", "demo/core.py") is not None
    assert run([pip, "uninstall", "-y", "demo"], env=clean_env(**shared)).returncode == 0
    assert not (site / "demo").exists()
    upgrade = run([python_of(env), "-m", "pip", "install", "pip==26.2.1"], env=clean_env(**shared))
    index_or_skip(upgrade, "installing pip 26.2.1 over the seeded pip")
    assert re.search(r"^Linked \d+ files \(", upgrade.stderr, re.M), upgrade.stderr
    version = run([pip, "--version"], env=clean_env(), check=True).stdout
    assert version.startswith("pip 26.2.1 ")
    check = run([pip, "check"], env=clean_env(**shared))
    assert check.returncode == 0, check.stdout + check.stderr
    # without pip-linkmode, plain pip: the opt-in went with it
    assert run([pip, "uninstall", "-y", "pip-linkmode"], env=clean_env(**shared)).returncode == 0
    assert not (site / "pip_linkmode_optin.on").exists() and not (site / "pip_linkmode_optin.pth").exists()
    plain = run([pip, "install", str(demo)], env=clean_env(**shared))
    assert plain.returncode == 0, plain.stderr
    assert "pip-linkmode" not in plain.stdout + plain.stderr
    assert os.stat(site / "demo" / "core.py").st_nlink == 1


def test_virtualenv_seeder_options(tools: Path, shared: dict[str, str], tmp_path: Path) -> None:
    """VIRTUALENV_SEEDER picks it; --no-setuptools, --no-linkmode-opt-in, --no-pip are honoured."""
    env = tmp_path / "env"
    made = run([str(bin_dir(tools) / "virtualenv"), "--no-setuptools", "--no-linkmode-opt-in", str(env)],
               env=clean_env(VIRTUALENV_SEEDER="linkmode", **shared))
    assert made.returncode == 0, made.stderr
    site = site_of(env)
    assert not any(site.glob("setuptools*")) and any(site.glob("pip-*.dist-info"))
    assert (site / "pip_linkmode_optin.pth").is_file() and not (site / "pip_linkmode_optin.on").exists()
    bare = tmp_path / "bare"
    made = run([str(bin_dir(tools) / "virtualenv"), "--no-pip", "--no-setuptools", str(bare)],
               env=clean_env(VIRTUALENV_SEEDER="linkmode", **shared))
    assert made.returncode == 0, made.stderr
    assert not any(site_of(bare).glob("pip*"))


TOX_INI = """\
[tox]
env_list = a, b, c

[testenv]
skip_install = true
deps =
    requests
    rich
    pytest
commands =
    python -c "import requests, rich, pytest; print('ok', requests.__version__)"
    pip check
"""


def test_tox_three_environments(tools: Path, shared: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tox.ini").write_text(TOX_INI)
    env = clean_env(VIRTUALENV_SEEDER="linkmode", PIP_USE_FEATURE="linkmode", **shared)
    proc = run([str(bin_dir(tools) / "tox"), "run"], cwd=project, env=env)
    index_or_skip(proc, "tox run (requests, rich, pytest from the index)")
    assert proc.stdout.count("ok ") >= 3, proc.stdout
    for name in ("a", "b", "c"):
        assert f"  {name}: OK" in proc.stdout, proc.stdout
    envs = [project / ".tox" / name for name in ("a", "b", "c")]
    cache = Path(shared["PIP_LINKMODE_CACHE_DIR"])
    for rel in ("requests/api.py", "rich/console.py", "_pytest/main.py", "pip/__init__.py"):
        same_file_everywhere(cache, envs, rel)


NOXFILE = """\
import nox


@nox.session(venv_backend="virtualenv")
def one(session):
    session.install("requests", "rich")
    session.run("python", "-c", "import requests, rich; print('ok one')")


@nox.session(venv_backend="virtualenv")
def two(session):
    session.install("requests", "rich")
    session.run("python", "-c", "import requests, rich; print('ok two')")
"""


def test_nox_two_sessions(tools: Path, shared: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "noxfile.py").write_text(NOXFILE)
    env = clean_env(VIRTUALENV_SEEDER="linkmode", PIP_USE_FEATURE="linkmode", **shared)
    proc = run([str(bin_dir(tools) / "nox")], cwd=project, env=env)
    index_or_skip(proc, "nox (requests, rich from the index)")
    out = proc.stdout + proc.stderr
    assert "ok one" in out and "ok two" in out, out
    envs = [project / ".nox" / name for name in ("one", "two")]
    cache = Path(shared["PIP_LINKMODE_CACHE_DIR"])
    for rel in ("requests/api.py", "rich/console.py", "pip/__init__.py"):
        same_file_everywhere(cache, envs, rel)
