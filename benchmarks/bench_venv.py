"""Benchmark: seeded venv creation, pip-linkmode against the usual tools, side by side.

    python benchmarks/bench_venv.py [--runs 7] [--python PY] [--workdir DIR] [--out FILE] [--same-fs] [--recreate]

Every timed command creates a fresh environment with pip in it for the same
interpreter (created directories removed outside the timing):

* ``python -m venv DIR`` (ensurepip: pip, plus setuptools up to 3.11, compiled)
* ``virtualenv DIR`` (app-data, copies) and ``virtualenv --symlink-app-data DIR``
* ``uv venv --seed DIR``
* ``pip-linkmode venv DIR`` (auto link mode, cached .pyc linked), and with
  ``--no-compile``, ``--link-mode symlink``

plus two floors that seed nothing: ``python -c pass`` and
``python -m venv --without-pip``. One untimed warm-up run per command fills
every cache (pip-linkmode's and uv's in the work directory, virtualenv's
app-data there too; pip-linkmode's second warm-up replays the plan recorded
by its first); then ``--runs`` interleaved rounds, the order rotating
between rounds, each command started after ``sync`` so no run pays for the
previous one's writes. Each run makes its environment in a new directory,
and all are removed at the end: this machine's root filesystem is ext4
without a journal, where ext4 skips inodes freed in the last minute or so
when it allocates one (``recently_deleted`` in fs/ext4/ialloc.c), so a tool
that makes hundreds of directories right after another tool's environment
was removed paid for that removal (seen: ``mkdir`` at 160-240 us instead of
10). ``--recreate`` measures that case instead (one directory, removed
before each run, as ``tox -r`` does). The table gives median, min and max, and each median as a
ratio to the fastest competitor's. The commands run with bytecode writing on
(``PYTHONDONTWRITEBYTECODE`` removed) and without user pip/uv configuration.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class Tool:
    name: str
    argv: list[str]  # "{dir}" is replaced by the environment's directory
    competitor: bool = True
    seeds: bool = True
    times: list[float] = field(default_factory=list)


def _which_module(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def _ensure_tools(python: str) -> None:
    missing = [m for m in ("uv", "virtualenv") if not _which_module(sys.executable, m)]
    if missing:
        print(f"installing {', '.join(missing)} with pip ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def _uv_bin() -> str:
    import uv  # type: ignore[import-not-found]

    return str(uv.find_uv_bin())


def _pip_linkmode_cmd() -> list[str]:
    script = Path(sys.executable).with_name("pip-linkmode")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pip_linkmode"]


def build_tools(python: str, work: Path) -> list[Tool]:
    uv = _uv_bin()
    plm = _pip_linkmode_cmd()
    plm_cache = str(work / "plm-cache")
    same = os.path.realpath(python) == os.path.realpath(sys.executable)
    py_opt = [] if same else ["--python", python]
    return [
        Tool("python -c pass (floor)", [python, "-c", "pass"], competitor=False, seeds=False),
        Tool("python -m venv --without-pip (floor)", [python, "-m", "venv", "--without-pip", "{dir}"],
             competitor=False, seeds=False),
        Tool("python -m venv", [python, "-m", "venv", "{dir}"]),
        Tool("virtualenv", [sys.executable, "-m", "virtualenv", "-q", "-p", python, "{dir}"]),
        Tool("virtualenv --symlink-app-data",
             [sys.executable, "-m", "virtualenv", "-q", "--symlink-app-data", "-p", python, "{dir}"]),
        Tool("uv venv --seed", [uv, "venv", "-q", "--seed", "-p", python, "--cache-dir", str(work / "uv-cache"), "{dir}"]),
        Tool("pip-linkmode venv", [*plm, "venv", "-q", *py_opt, "--cache-dir", plm_cache, "{dir}"],
             competitor=False),
        Tool("pip-linkmode venv --no-compile",
             [*plm, "venv", "-q", *py_opt, "--no-compile", "--cache-dir", plm_cache, "{dir}"], competitor=False),
        Tool("pip-linkmode venv --link-mode symlink",
             [*plm, "venv", "-q", *py_opt, "--link-mode", "symlink", "--cache-dir", plm_cache, "{dir}"],
             competitor=False),
    ]


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUALENV_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env["VIRTUALENV_OVERRIDE_APP_DATA"] = str(work / "virtualenv-app-data")
    return env


def _remove(path: Path) -> None:
    if path.exists() or path.is_symlink():
        shutil.rmtree(path)


def run_once(tool: Tool, target: Path, env: dict[str, str]) -> float:
    _remove(target)
    # Flush the removal (with --recreate) and the previous run's writes
    # before timing: with the ``discard`` mount option, a removed tree's
    # commit otherwise lands in the next command's time.
    os.sync()
    argv = [str(target) if a == "{dir}" else a for a in tool.argv]
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{tool.name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    if tool.seeds and not (target / "bin" / "pip").exists():
        raise SystemExit(f"{tool.name} made no bin/pip in {target}")
    return elapsed


def table(tools: Sequence[Tool]) -> str:
    fastest = min((statistics.median(t.times) for t in tools if t.competitor), default=None)
    ours = next(statistics.median(t.times) for t in tools if t.name == "pip-linkmode venv")
    lines = [
        "| command | median s | min s | max s | vs fastest competitor | vs pip-linkmode venv |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in tools:
        med = statistics.median(t.times)
        rel = f"{med / fastest:.2f}x" if fastest else "-"
        lines.append(
            f"| `{t.name}` | {med:.3f} | {min(t.times):.3f} | {max(t.times):.3f} | {rel} | {med / ours:.2f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--python", default=None, help="the interpreter of the environments (default: this one)")
    ap.add_argument("--workdir", type=Path, default=HERE / ".work" / "venv", help="caches and environments")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    ap.add_argument("--same-fs", action="store_true",
                    help="run in --workdir as it is, not on a fresh loop-mounted ext4 (the default as root)")
    ap.add_argument("--recreate", action="store_true",
                    help="one environment directory, removed (and synced) before each run")
    args = ap.parse_args(argv)
    python = os.path.realpath(args.python or sys.executable)
    _ensure_tools(python)
    fresh = not args.same_fs and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None
    with contextlib.ExitStack() as stack:
        work = args.workdir.resolve()
        if fresh:
            work = stack.enter_context(_fresh_ext4(work.with_name(work.name + "-fs"))) / "venv"
        work.mkdir(parents=True, exist_ok=True)
        return _run(args, python, work, "a fresh loop-mounted ext4" if fresh else "the work directory as it is")


@contextlib.contextmanager
def _fresh_ext4(mnt: Path) -> Iterator[Path]:
    """A new 3 GB ext4 image mounted at ``mnt`` for this run, removed after it.

    Every tool then meets the same young filesystem. On an aged one, how
    long ``mkdir`` takes depends on which block group the environment's
    directory lands in (seen here: 9 us in one directory, 300 us in its
    sibling), which decides the result for the tools that create hundreds
    of directories (python -m venv, uv, pip-linkmode) and not for the
    symlink seeder, which creates a dozen links.
    """
    img = mnt.with_suffix(".img")
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
        subprocess.run(["umount", str(mnt)], check=True)
    img.unlink(missing_ok=True)
    subprocess.run(["truncate", "-s", "3G", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True)
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        img.unlink(missing_ok=True)


def _run(args: argparse.Namespace, python: str, work: Path, where: str) -> int:
    env = _env(work)
    tools = build_tools(python, work)
    envs = work / "envs"
    _remove(envs)
    envs.mkdir()
    made = iter(range(1_000_000))

    def target() -> Path:
        return envs / ("env" if args.recreate else f"env{next(made)}")

    print(f"warming up {len(tools)} commands ...", file=sys.stderr)
    for tool in tools:
        run_once(tool, target(), env)
        run_once(tool, target(), env)
    for i in range(args.runs):
        order = tools[i % len(tools):] + tools[: i % len(tools)]
        for tool in order:
            tool.times.append(run_once(tool, target(), env))
        print(f"round {i + 1}/{args.runs} done", file=sys.stderr)
    _remove(envs)
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    uv_version = subprocess.run([_uv_bin(), "--version"], capture_output=True, text=True).stdout.strip()
    venv_version = subprocess.run([sys.executable, "-m", "virtualenv", "--version"],
                                  capture_output=True, text=True).stdout.split()[1]
    report = (
        f"Seeded venv creation, Python {version} ({python}), {args.runs} interleaved rounds, warm caches; "
        f"{platform.platform()}, {os.cpu_count()} CPUs; {uv_version}, virtualenv {venv_version}; "
        f"caches and environments on {where} ({work}), "
        f"{'one environment directory removed before each run' if args.recreate else 'each run in a new directory'}"
        f"\n\n{table(tools)}\n"
    )
    print(report)
    if args.out:
        args.out.write_text(report, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
