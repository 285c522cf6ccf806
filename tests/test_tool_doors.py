"""Real poetry and real pdm installing wheels with their own code, before and
after the one line of ``examples/poetry_links.py`` / ``examples/pdm_links.py``
(issue 23, "One swap for code you do not control").

Each tool is installed from the package index into a venv of its own (with
pip-linkmode, editable), once per session; the examples then run in that
venv and install the same wheels into two fresh venvs, ``env-plain`` (the
tool unchanged) and ``env-links`` (after the one line).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from wheelmaker import WheelSpec, build_wheel

pytestmark = pytest.mark.skipif(
    os.name == "nt", reason="the tool venvs are driven through POSIX paths (bin/python) and compared by inode; not ported to Windows yet"
)

ROOT = Path(__file__).resolve().parent.parent
TOOLS = {"poetry": "poetry>=2,<3", "pdm": "pdm>=2,<3"}
#: what pip says when the index cannot be reached
_OFFLINE = ("NewConnectionError", "ConnectTimeout", "Network is unreachable", "Temporary failure in name resolution",
            "Could not fetch URL", "No matching distribution found", "ProxyError")
#: files ``venv`` makes: no tool installs them
_VENV_OWN = ("pyvenv.cfg", "bin/activate", "bin/activate.csh", "bin/activate.fish", "bin/Activate.ps1",
             "bin/python", "bin/python3", f"bin/python3.{sys.version_info[1]}")

PKGUTIL_INIT = b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"


def _wheels(directory: Path) -> list[Path]:
    """Two wheels that ship one pkgutil-style namespace package ``ns`` (the
    same ``ns/__init__.py``), a top-level .pth file, console and gui
    scripts, and ``.data/scripts`` (one ``#!python``) and ``.data/data``."""
    alpha = WheelSpec(
        name="ns-alpha",
        files={
            "ns/__init__.py": PKGUTIL_INIT,
            "ns/alpha/__init__.py": b"A = 1\n\ndef main():\n    print('alpha', A)\n",
            "ns_alpha-1.0.data/scripts/alpha-tool": (b"#!python\nimport ns.alpha\nns.alpha.main()\n", 0o755),
            "ns_alpha-1.0.data/scripts/alpha.sh": (b"#!/bin/sh\necho alpha.sh\n", 0o755),
            "ns_alpha-1.0.data/data/share/alpha/readme.txt": b"alpha data\n",
        },
        entry_points="[console_scripts]\nalpha = ns.alpha:main\n",
    )
    beta = WheelSpec(
        name="ns-beta",
        files={
            "ns/__init__.py": PKGUTIL_INIT,
            "ns/beta/__init__.py": b"B = 2\n\ndef main():\n    print('beta', B)\n",
            "ns_beta.pth": b"import os; os.environ.setdefault('NS_BETA_PTH', 'loaded')\n",
        },
        entry_points="[console_scripts]\nbeta = ns.beta:main\n[gui_scripts]\nbeta-gui = ns.beta:main\n",
    )
    return [build_wheel(directory, alpha), build_wheel(directory, beta)]


@pytest.fixture(scope="session")
def tool_python(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """tool -> the python of a venv with that tool and pip-linkmode (both
    venvs are installed at once, on first use)."""
    made: dict[str, Path | str] = {}

    def get(tool: str) -> Path:
        if not made:
            started = {}
            for name, requirement in TOOLS.items():
                env = tmp_path_factory.mktemp(f"{name}-venv")
                subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
                command = [str(env / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                           "-q", "--no-compile", requirement, "-e", str(ROOT)]
                started[name] = (env, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                       text=True))
            for name, (env, proc) in started.items():
                _, err = proc.communicate()
                made[name] = env / "bin" / "python" if proc.returncode == 0 else err
        found = made[tool]
        if isinstance(found, Path):
            return found
        last = (found.strip().splitlines() or ["(no output)"])[-1]
        if any(word in found for word in _OFFLINE):
            pytest.skip(reason=f"cannot install {TOOLS[tool]} from the package index: {last}")
        pytest.fail(f"pip could not install {TOOLS[tool]} and pip-linkmode:\n{found}")

    return get


@pytest.fixture(scope="session")
def tool_run(tmp_path_factory: pytest.TempPathFactory, tool_python: Callable[[str], Path]) -> Callable[[str], Path]:
    """The tool's example, run once per session: its work dir (env-plain,
    env-links, cache)."""
    done: dict[str, Path] = {}

    def run(tool: str) -> Path:
        if tool not in done:
            work = tmp_path_factory.mktemp(f"{tool}-run")
            wheels = _wheels(work / "wheels")
            env = {**os.environ, "PIP_LINKMODE_CACHE_DIR": str(work / "cache"), "PIP_LINK_MODE": "hardlink"}
            proc = subprocess.run(
                [str(tool_python(tool)), str(ROOT / "examples" / f"{tool}_links.py"), *map(str, wheels),
                 "--work", str(work)],
                capture_output=True, text=True, env=env,
            )
            assert proc.returncode == 0, proc.stderr
            assert "env-links:" in proc.stdout, proc.stdout
            done[tool] = work
        return done[tool]

    return run


def _installed(env: Path) -> dict[str, tuple[int, bytes]]:
    """Every file the tool put in ``env``: its mode and bytes, with the env's
    own path (in script shebangs and in a .pyc's co_filename) replaced and a
    .pyc's recorded source mtime left out. A RECORD is checked against the
    files first; the hash of a file that holds the env's path is left out."""
    out = {}
    for path in sorted(env.rglob("*")):
        rel = path.relative_to(env).as_posix()
        if rel in _VENV_OWN or path.is_dir() or path.is_symlink():
            continue
        data = path.read_bytes()
        if path.name == "RECORD":
            data = _record_checked(path, os.fsencode(env))
        data = data.replace(os.fsencode(env), b"<env>")
        if path.suffix == ".pyc":
            data = data[:8] + data[12:]  # (bytes 8-12: the source's mtime, the time the tool wrote it)
        out[rel] = (stat.S_IMODE(path.stat().st_mode), data)
    return out


def _record_checked(record: Path, env: bytes) -> bytes:
    """RECORD's bytes, each hash first checked against its file; the hash of
    a file that holds ``env`` (a script's shebang) written as ``<hash>``."""
    lines = []
    for row in csv.reader(record.read_text().splitlines()):
        name, digest, _ = row
        if digest:
            data = (record.parent.parent / name).read_bytes()
            algorithm, _, value = digest.partition("=")
            real = base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()
            assert value == real, f"{record}: {name}"
            if env in data:
                row[1] = "<hash>"
        lines.append(",".join(row) + "\n")
    return "".join(lines).encode()


def _site(env: Path) -> Path:
    return env / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_the_one_line_gives_the_same_tree(tool: str, tool_run: Callable[[str], Path]) -> None:
    """Files, bytes, modes and RECORD are what the tool itself installs;
    the only differences allowed are the venv's own path and a .pyc's
    source mtime (the tool writes these differently on every run)."""
    work = tool_run(tool)
    plain, links = _installed(work / "env-plain"), _installed(work / "env-links")
    assert plain == links
    site = _site(Path()).as_posix()
    wanted = [f"{site}/ns/__init__.py", f"{site}/ns/alpha/__init__.py", f"{site}/ns/beta/__init__.py",
              f"{site}/ns_beta.pth", f"{site}/ns_alpha-1.0.dist-info/RECORD", f"{site}/ns_beta-1.0.dist-info/RECORD",
              "bin/alpha", "bin/beta", "bin/beta-gui", "bin/alpha-tool", "bin/alpha.sh", "share/alpha/readme.txt"]
    if tool == "poetry":  # (pdm compiles no bytecode when it installs)
        wanted.append(f"{site}/ns/alpha/__pycache__/__init__.cpython-{sys.version_info[0]}{sys.version_info[1]}.pyc")
    assert [name for name in wanted if name not in links] == []
    assert links["bin/alpha-tool"][1].startswith(b"#!<env>/bin/python\n")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_the_linked_env_works(tool: str, tool_run: Callable[[str], Path]) -> None:
    env = tool_run(tool) / "env-links"
    for script, said in (("alpha", "alpha 1"), ("beta", "beta 2"), ("alpha-tool", "alpha 1"), ("alpha.sh", "alpha.sh")):
        proc = subprocess.run([str(env / "bin" / script)], capture_output=True, text=True, check=True)
        assert proc.stdout.strip() == said, script
    proc = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import os, ns.alpha, ns.beta; print(os.environ.get('NS_BETA_PTH'))"],
        capture_output=True, text=True, check=True,
    )
    assert proc.stdout.strip() == "loaded"


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_the_one_line_links_package_files_to_the_cache(tool: str, tool_run: Callable[[str], Path]) -> None:
    work = tool_run(tool)
    cached = {(st.st_dev, st.st_ino) for p in (work / "cache").rglob("*") if p.is_file() and (st := p.lstat())}
    site = _site(work / "env-links")
    package_files = [site / "ns" / "__init__.py", site / "ns" / "alpha" / "__init__.py", site / "ns_beta.pth",
                     work / "env-links" / "share" / "alpha" / "readme.txt"]
    unlinked = [str(p) for p in package_files if (p.stat().st_dev, p.stat().st_ino) not in cached]
    assert unlinked == []


_OVER_A_LINK = """
import os, sys, venv
from pathlib import Path
from installer.destinations import SchemeDictionaryDestination
from poetry.installation import wheel_installer
from poetry.utils.env import VirtualEnv
from pip_linkmode import WheelCache, installer_api

first, second, work = map(Path, sys.argv[1:])
venv.create(work / "env", with_pip=False)
env = VirtualEnv(work / "env")
cache = WheelCache(os.environ["PIP_LINKMODE_CACHE_DIR"])
dest = SchemeDictionaryDestination(env.scheme_dict, str(env.python), "posix")
installer_api.install(first, dest, {"INSTALLER": b"linked"}, cache=cache)  # ns/__init__.py: a hardlink
wheel_installer.install = installer_api.install  # the one line
wheel_installer.WheelInstaller(env).install(second)  # ships ns/__init__.py too
print(cache.get(first).path_of("ns/__init__.py").read_text(), end="")
"""


def test_poetry_writing_over_a_linked_file_leaves_the_cache_alone(
    tmp_path: Path, tool_python: Callable[[str], Path]
) -> None:
    first = build_wheel(tmp_path / "w", WheelSpec(name="ns-a", files={"ns/__init__.py": b"# a\n", "ns/a.py": b""}))
    second = build_wheel(tmp_path / "w", WheelSpec(name="ns-b", files={"ns/__init__.py": b"# b\n", "ns/b.py": b""}))
    env = {**os.environ, "PIP_LINKMODE_CACHE_DIR": str(tmp_path / "cache"), "PIP_LINK_MODE": "hardlink"}
    proc = subprocess.run(
        [str(tool_python("poetry")), "-c", _OVER_A_LINK, str(first), str(second), str(tmp_path)],
        capture_output=True, text=True, env=env, check=True,
    )
    assert (_site(tmp_path / "env") / "ns" / "__init__.py").read_bytes() == b"# b\n"
    assert proc.stdout == "# a\n"  # the cache entry of the first wheel is as it was unpacked
