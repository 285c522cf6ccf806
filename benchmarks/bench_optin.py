"""Benchmark: what the ``--use-feature=linkmode`` opt-in and the ``linkmode`` seeder cost and save.

    python benchmarks/bench_optin.py startup [--runs 20]
    python benchmarks/bench_optin.py seeder [--runs 9]
    python benchmarks/bench_optin.py tox [--runs 3]

``startup``: ``ENV/bin/python -c pass`` (and ``-I -c pass``) in two venvs
made alike, one with pip-linkmode installed from its wheel (so its
``pip_linkmode_optin.pth`` runs at every start) and one with only its
dependencies; runs interleaved, medians.

``seeder``: ``virtualenv ENV`` with the default app-data seeder (copies, and
``--symlink-app-data``) against ``virtualenv --seeder linkmode ENV``, each a
whole process, one untimed warm-up each (app-data and our cache filled),
runs interleaved, medians; the new directory is removed outside the timing.

``tox``: ``tox run -e a,b,c`` (three environments, the same requests, rich,
pytest) from a clean ``.tox``, stock against ``VIRTUALENV_SEEDER=linkmode
PIP_USE_FEATURE=linkmode``; medians of the whole run and of each
environment's setup as tox reports it. Needs the package index.

Everything is made under ``benchmarks/.work/optin`` (or ``--workdir``).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def _timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    return time.perf_counter() - start


def _wheel(work: Path) -> Path:
    out = work / "dist"
    shutil.rmtree(out, ignore_errors=True)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)])
    return next(out.glob("pip_linkmode-*.whl"))


def _venv(path: Path, *packages: str) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(path)])
    python = path / "bin" / "python"
    if packages:
        _run([str(python), "-m", "pip", "install", "-q", *packages])
    return python


def _table(rows: dict[str, list[float]], unit: float = 1000.0, label: str = "ms") -> str:
    width = max(len(k) for k in rows)
    lines = [f"{'command':<{width}}  median {label}  min     max"]
    for name, times in rows.items():
        t = [x * unit for x in times]
        lines.append(f"{name:<{width}}  {statistics.median(t):9.2f}  {min(t):6.2f}  {max(t):6.2f}")
    return "\n".join(lines)


def bench_startup(work: Path, runs: int) -> str:
    wheel = _wheel(work)
    with_hook = _venv(work / "with", str(wheel))
    without = _venv(work / "without", "installer", "packaging", "filelock")
    cmds = {
        "with pip-linkmode: python -c pass": [str(with_hook), "-c", "pass"],
        "without:           python -c pass": [str(without), "-c", "pass"],
        "with pip-linkmode: python -I -c pass": [str(with_hook), "-I", "-c", "pass"],
        "without:           python -I -c pass": [str(without), "-I", "-c", "pass"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        _timed(cmd)  # warm-up
    for i in range(runs):
        order = list(cmds.items())
        order = order[i % len(order):] + order[: i % len(order)]
        for name, cmd in order:
            times[name].append(_timed(cmd))
    return f"python -c pass, {runs} runs each, interleaved ({sys.version.split()[0]})\n" + _table(times)


def bench_seeder(work: Path, runs: int) -> str:
    wheel = _wheel(work)
    tools = _venv(work / "tools", "virtualenv", str(wheel))
    virtualenv = str(tools.parent / "virtualenv")
    env = dict(os.environ, VIRTUALENV_OVERRIDE_APP_DATA=str(work / "app-data"),
               PIP_LINKMODE_CACHE_DIR=str(work / "cache"))
    target = work / "env"
    cmds = {
        "virtualenv (app-data, copies)": [virtualenv, "-q", str(target)],
        "virtualenv --symlink-app-data": [virtualenv, "-q", "--symlink-app-data", str(target)],
        "virtualenv --seeder linkmode": [virtualenv, "-q", "--seeder", "linkmode", str(target)],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        shutil.rmtree(target, ignore_errors=True)
        _timed(cmd, env=env)
    for i in range(runs):
        order = list(cmds.items())
        order = order[i % len(order):] + order[: i % len(order)]
        for name, cmd in order:
            shutil.rmtree(target, ignore_errors=True)
            times[name].append(_timed(cmd, env=env))
    shutil.rmtree(target, ignore_errors=True)
    return f"virtualenv ENV, whole process, {runs} runs each, interleaved\n" + _table(times)


TOX_INI = """\
[tox]
env_list = a, b, c
skipsdist = true

[testenv]
deps =
    requests
    rich
    pytest
commands = python -c "import requests, rich, pytest"
"""


def bench_tox(work: Path, runs: int) -> str:
    wheel = _wheel(work)
    tools = _venv(work / "tox-tools", "tox", "virtualenv", str(wheel))
    tox = str(tools.parent / "tox")
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "tox.ini").write_text(TOX_INI)
    base = dict(os.environ, VIRTUALENV_OVERRIDE_APP_DATA=str(work / "app-data"),
                PIP_LINKMODE_CACHE_DIR=str(work / "cache"))
    linked = dict(base, VIRTUALENV_SEEDER="linkmode", PIP_USE_FEATURE="linkmode")
    configs = {"stock tox": base, "VIRTUALENV_SEEDER=linkmode PIP_USE_FEATURE=linkmode": linked}
    times: dict[str, list[float]] = {}
    for env in configs.values():  # warm-up: pip's HTTP and wheel caches, app-data, our cache
        shutil.rmtree(project / ".tox", ignore_errors=True)
        _run([tox, "run", "-e", "a,b,c"], env=env, cwd=project)
    for i in range(runs):
        order = list(configs.items())
        if i % 2:
            order.reverse()
        for name, env in order:
            shutil.rmtree(project / ".tox", ignore_errors=True)
            start = time.perf_counter()
            out = _run([tox, "run", "-e", "a,b,c"], env=env, cwd=project).stdout
            times.setdefault(f"{name}: whole run", []).append(time.perf_counter() - start)
            # tox's own line per environment: "  a: OK (4.10=setup[3.50]+cmd[0.60] seconds)"
            for m in re.finditer(r"^\s+(\w+): OK \(([\d.]+)=setup\[([\d.]+)\]", out, re.M):
                times.setdefault(f"{name}: env {m.group(1)} setup", []).append(float(m.group(3)))
    return (f"tox run -e a,b,c (requests, rich, pytest in each) from a clean .tox, {runs} runs each\n"
            + _table(dict(sorted(times.items())), 1.0, "s"))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["startup", "seeder", "tox"])
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--workdir", type=Path, default=HERE / ".work" / "optin")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = args.workdir.resolve()
    if args.what == "startup":
        print(bench_startup(work, args.runs or 20))
    elif args.what == "seeder":
        print(bench_seeder(work, args.runs or 9))
    else:
        print(bench_tox(work, args.runs or 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
