"""Environments for the opt-in, seeder and tool tests: pip-linkmode installed from
a wheel built from this tree (never the editable install running the tests),
into fresh venvs, with its dependencies and the tools from the package index."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: what pip prints when the index cannot be reached (or a name cannot be resolved)
_OFFLINE = (
    "NewConnectionError", "Temporary failure in name resolution", "Max retries exceeded",
    "Could not find a version that satisfies", "No matching distribution found",
    "Network is unreachable", "ConnectTimeoutError", "ReadTimeoutError",
)


def index_or_skip(proc: subprocess.CompletedProcess[str], what: str) -> None:
    """Fail on ``proc``'s error, or skip where it is the package index that cannot be reached."""
    if proc.returncode == 0:
        return
    text = proc.stderr + proc.stdout
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "")
    if any(marker in text for marker in _OFFLINE):
        pytest.skip(f"the package index cannot be reached ({what}): {last.strip()}")
    pytest.fail(f"{what} failed (exit status {proc.returncode}):\n{text}")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def build_wheelhouse(dest: Path) -> Path:
    """This project's wheel and its dependencies' wheels, in ``dest`` (built
    with build isolation: setuptools from the index, as a user's build)."""
    proc = run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "-w", str(dest), str(ROOT)])
    index_or_skip(proc, "building pip-linkmode's wheel")
    return dest


def own_wheel(wheelhouse: Path) -> Path:
    return next(wheelhouse.glob("pip_linkmode-*.whl"))


def bin_dir(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def python_of(env: Path) -> str:
    return str(bin_dir(env) / ("python.exe" if os.name == "nt" else "python"))


def site_of(env: Path) -> Path:
    out = run([python_of(env), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True)
    return Path(out.stdout.strip())


def fresh_venv(path: Path, wheelhouse: Path, *extra: str, with_linkmode: bool = True) -> Path:
    """``python -m venv PATH`` with pip-linkmode's wheel (its dependencies from
    ``wheelhouse``, offline) and ``extra`` requirements (from the index)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    wanted = ["pip-linkmode"] if with_linkmode else ["installer", "packaging", "filelock"]
    pip = [python_of(path), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    proc = run([*pip, "--no-index", "--find-links", str(wheelhouse), *wanted], env=clean_env())
    assert proc.returncode == 0, proc.stderr
    if extra:
        proc = run([*pip, *extra], env=clean_env())
        index_or_skip(proc, f"installing {' '.join(extra)} into a test venv")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any of our own or pip's opt-in settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIP_USE_FEATURE", "PIP_LINK_MODE", "PIP_LINKMODE_CACHE_DIR", "VIRTUALENV_SEEDER",
                        "PYTHONPATH")}
    env.update(extra)
    return env


def cache_twin(cache: Path, installed: Path, rel: str) -> Path | None:
    """The file in pip-linkmode's cache that ``installed`` (package-relative ``rel``) came from."""
    for path in cache.rglob(rel.split("/")[-1]):
        if path.as_posix().endswith("/" + rel) and path.is_file() and os.path.samefile(path, installed):
            return path
    return None
