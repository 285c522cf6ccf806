"""Benchmark: the first install, with every cache cold, against uv.

    python benchmarks/bench_cold.py [--runs 3] [--pip 26.3] [--no-api]

Each timed command installs the pinned corpus into a fresh venv with a new,
empty cache of its own, hardlink mode, both on a new loop-mounted ext4 image
made for that run (as root; ``--same-fs`` uses ``benchmarks/.work``'s
filesystem instead). The wheel files stay in ``benchmarks/.work/wheels``.

* ``uv pip install --offline --no-index --find-links DIR -r CORPUS
  --link-mode hardlink`` with and without ``--compile-bytecode``;
* ``pip-linkmode install`` with the same arguments, compiling (pip's
  default) and with ``--no-compile``;
* the library's ``install_wheels`` over the wheel files
  (``lib_install.py``), with and without ``compile_bytecode``.

Configurations run interleaved (the order rotating between runs); the table
gives the median with min and max, and each pip-linkmode median divided by
uv's with the same bytecode setting. Issue 5's target: the first, compiling
install no slower than uv's. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as harness  # noqa: E402  (the harness's helpers: corpus, tools, timing)


@dataclass
class Cold:
    name: str
    tool: str  # uv, pip-linkmode, api
    compile: bool
    argv: Callable[[Path, Path, Path], list[str]]  # (venv, venv python, cache) -> command
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def configs(py: str, uv: str, corpus: Path, wheel_dir: Path, api: bool) -> list[Cold]:
    wdir = str(wheel_dir)

    def uv_argv(compile_: bool) -> Callable[[Path, Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path, cache: Path) -> list[str]:
            a = [uv, "pip", "install", "--offline", "--no-index", "--no-deps", "--python", str(vpy),
                 "--link-mode", "hardlink", "--cache-dir", str(cache), "--find-links", wdir, "-r", str(corpus)]
            return [*a, "--compile-bytecode"] if compile_ else a
        return argv

    def ours_argv(compile_: bool) -> Callable[[Path, Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path, cache: Path) -> list[str]:
            a = [py, "-m", "pip_linkmode", "install", "--python", str(vpy), "--link-mode", "hardlink",
                 "--cache-dir", str(cache), "--no-index", "--find-links", wdir, "--no-deps", "-r", str(corpus)]
            return a if compile_ else [*a, "--no-compile"]
        return argv

    def api_argv(compile_: bool) -> Callable[[Path, Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path, cache: Path) -> list[str]:
            a = [py, str(HERE / "lib_install.py"), str(venv), "hardlink", str(cache), wdir]
            return [*a, "--compile"] if compile_ else a
        return argv

    out = []
    for compile_ in (True, False):
        suffix = " --compile-bytecode" if compile_ else ""
        out.append(Cold(f"uv pip install{suffix}", "uv", compile_, uv_argv(compile_)))
        out.append(Cold("pip-linkmode install" + ("" if compile_ else " --no-compile"), "pip-linkmode",
                        compile_, ours_argv(compile_)))
        if api:
            out.append(Cold("install_wheels" + (" compile_bytecode" if compile_ else ""), "api",
                            compile_, api_argv(compile_)))
    return out


@contextlib.contextmanager
def fresh_ext4(work: Path, size: str) -> Iterator[Path]:
    """A new loop-mounted ext4 filesystem for one run, removed after it.

    Deleting a cache of 20,000 files and unpacking a new one where it was
    makes ext4 skip the recently freed inodes one by one for minutes
    afterwards (``recently_deleted`` in its inode allocator): with every
    run on one filesystem, a run's time depends on what the previous run
    deleted. A fresh filesystem per run gives each tool the same start.
    """
    img, mnt = work / "cold-ext4.img", work / "cold-mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
        harness.check_call(["umount", str(mnt)])
    img.unlink(missing_ok=True)
    harness.check_call(["truncate", "-s", size, str(img)])
    harness.check_call(["mkfs.ext4", "-q", "-F", str(img)])
    harness.check_call(["mount", "-o", "loop", str(img), str(mnt)])
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        img.unlink(missing_ok=True)


def measure(cfg: Cold, work: Path, expected: int, fresh_fs: bool) -> None:
    with fresh_ext4(work, "6G") if fresh_fs else contextlib.nullcontext(work) as root:
        _measure(cfg, root, expected)


def _measure(cfg: Cold, work: Path, expected: int) -> None:
    venv, cache = work / "cold-venv", work / "cold-cache"
    for d in (venv, cache):
        shutil.rmtree(d, ignore_errors=True)
    vpy = harness.new_venv(venv)
    os.sync()
    time.sleep(1)
    try:
        out = harness.run_timed(cfg.argv(venv, vpy, cache))
        problem = (f"exit {out.returncode}: {out.stderr.strip()[-400:]}" if out.returncode
                   else harness.verify_venv(venv, expected, cfg.compile))
        if problem:
            cfg.errors.append(problem)
            harness.log(f"{cfg.name}: FAILED {problem}")
        else:
            cfg.times.append(out.wall_s)
            harness.log(f"{cfg.name}: {out.wall_s:.2f} s")
    finally:
        for d in (venv, cache):
            shutil.rmtree(d, ignore_errors=True)


def table(results: list[Cold], runs: int, versions: dict[str, str], fresh: bool) -> str:
    med = {c.name: statistics.median(c.times) for c in results if c.times}
    uv_of = {c.compile: c.name for c in results if c.tool == "uv"}
    lines = [
        "# Cold caches: the first install (hardlink, fresh venv, empty cache)",
        "",
        f"- command: `python benchmarks/bench_cold.py --runs {runs}`",
        f"- {versions['machine']}; Python {versions['python']}; {versions['pip']}; {versions['uv']}",
        "- venv and cache: " + ("a fresh loop-mounted ext4 (6 GB) per run" if fresh else "the work directory"),
        "",
        "| configuration | median s | min–max s | time ÷ uv |",
        "|---|---:|---:|---:|",
    ]
    for c in results:
        if not c.times:
            lines.append(f"| {c.name} | failed | {'; '.join(c.errors)[:80]} | - |")
            continue
        uv = med.get(uv_of.get(c.compile, ""))
        ratio = f"{med[c.name] / uv:.2f}" if uv and c.tool != "uv" else "-"
        lines.append(f"| {c.name} | {med[c.name]:.2f} | {min(c.times):.2f}–{max(c.times):.2f} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--pip", default="26.3", metavar="VERSION", help="the pip pip-linkmode runs (as run.py)")
    p.add_argument("--no-api", action="store_true", help="skip the library's install_wheels rows")
    p.add_argument("--same-fs", action="store_true",
                   help="run on the work directory's filesystem instead of a fresh loop-mounted ext4 per run")
    p.add_argument("--corpus", type=Path, default=harness.DEFAULT_CORPUS)
    p.add_argument("--work", type=Path, default=HERE / ".work")
    p.add_argument("--out", type=Path, default=HERE / "results" / "cold.md")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    wheel_dir = args.work / "wheels"
    wheels = harness.prepare_corpus(args.corpus, wheel_dir)
    py = harness.tools_python(args.work, args.pip)
    harness.PY = py  # new_venv and tool_versions use the harness's interpreter
    uv = harness.ensure_uv()
    results = configs(py, uv, args.corpus, wheel_dir, not args.no_api)
    fresh = not args.same_fs and os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None
    harness.log("a fresh loop-mounted ext4 per run" if fresh else "runs on the work directory's filesystem")
    for i in range(args.runs):
        shift = i % len(results)
        for cfg in results[shift:] + results[:shift]:
            measure(cfg, args.work, len(wheels), fresh)
    text = table(results, args.runs, harness.tool_versions(uv), fresh)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0 if all(c.times for c in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
