"""Benchmark harness: pip-linkmode against pip and uv, side by side (issue 6).

    python benchmarks/run.py [--runs 3] [--slow-runs N] [--only install-step,end-to-end]
                             [--profile] [--no-xfs]

Scenarios (each run is round-robin over every configuration, fresh venvs,
each set aside after its run and removed at the end: see ``_discard``):

* ``end-to-end``: ``pip install`` (with and without ``--no-compile``),
  ``uv pip install`` (per link mode, with and without ``--compile-bytecode``)
  and ``python -m pip_linkmode install`` (per link mode, with and without
  ``--no-compile``), all with ``--no-index --find-links --no-deps -r corpus``;
* ``install-step``: ``install_wheels()`` of the 111 wheel files (the call
  alone and the whole process) against ``uv pip install --no-deps`` of the
  same wheel files, per link mode, with and without bytecode.

Clone is measured on a loop-mounted reflink XFS image (root only), with the
venvs and both caches on it; the other modes on the work directory's own
filesystem, or with ``--fresh-ext4 SIZE`` on a new loop-mounted ext4 (the
work directory's own is aged by every venv the harness ever made there).
Results go to ``benchmarks/results/latest.{md,json,png}``; ``--profile``
writes ``benchmarks/results/profile.txt``.

Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CORPUS = Path("/work/shared/bench/corpus.txt")
SCENARIOS = ("install-step", "end-to-end")
PY = sys.executable
WORK = HERE / ".work"  # --work


# -- small helpers ------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment of every timed command: no user pip/uv configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        UV_NO_CONFIG="1",
        UV_NO_PROGRESS="1",
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


@dataclass
class Outcome:
    wall_s: float
    maxrss_kb: int
    returncode: int
    stdout: str
    stderr: str


def run_timed(argv: Sequence[str], cwd: Path = REPO) -> Outcome:
    """Run a command; its wall time and peak RSS (``ru_maxrss`` from wait4,
    i.e. the RUSAGE_CHILDREN figure of this one child and its descendants)."""
    out_path = WORK / "last-stdout.tmp"
    err_path = WORK / "last-stderr.tmp"
    with open(out_path, "w+b") as out, open(err_path, "w+b") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=child_env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Outcome(
            wall,
            int(usage.ru_maxrss),
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def check_call(argv: Sequence[str], **kwargs: Any) -> None:
    subprocess.run(list(argv), check=True, **kwargs)


def new_venv(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    check_call([PY, "-m", "venv", "--without-pip", str(path)])
    return path / "bin" / "python"


def site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def verify_venv(venv: Path, expected: int, compiled: bool) -> str | None:
    """Why the install in ``venv`` looks wrong, or None."""
    sp = site_packages(venv)
    dists = sum(1 for n in os.listdir(sp) if n.endswith(".dist-info"))
    if dists != expected:
        return f"{dists} dist-info directories, expected {expected}"
    pyc = sp / "__pycache__" / f"six.{sys.implementation.cache_tag}.pyc"
    if (sp / "six.py").exists() and pyc.exists() != compiled:
        return f"six.py {'not ' if compiled else ''}compiled, expected {'' if compiled else 'not '}compiled"
    return None


# -- corpus and tools ---------------------------------------------------------


def corpus_names(corpus: Path) -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in corpus.read_text().splitlines()]
    return [ln for ln in lines if ln]


def prepare_corpus(corpus: Path, wheel_dir: Path) -> list[Path]:
    expected = len(corpus_names(corpus))
    wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
    if len(wheels) < expected:
        log(f"downloading the corpus ({expected} wheels) into {wheel_dir}")
        wheel_dir.mkdir(parents=True, exist_ok=True)
        check_call(
            [PY, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps",
             "-r", str(corpus), "-d", str(wheel_dir), "-q"]
        )
        wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != expected:
        raise SystemExit(f"{wheel_dir} holds {len(wheels)} wheels, the corpus lists {expected}")
    return wheels


def tools_python(work: Path, pip_version: str) -> str:
    """An interpreter with the pip under test (the same one for plain pip and
    for pip-linkmode's front end) and pip-linkmode's dependencies with its
    ``fast`` extra (zlib-ng), importing pip_linkmode from this repository
    through a .pth file."""
    if not pip_version:
        return _with_bytecode(sys.executable)
    venv = work / f"tools-pip-{pip_version}"
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating {venv} with pip {pip_version}")
        check_call([sys.executable, "-m", "venv", str(venv)])
        check_call([str(py), "-m", "pip", "install", "-q", f"pip=={pip_version}",
                    "installer", "filelock", "packaging", "zlib-ng"])
        site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        Path(site, "pip_linkmode_repo.pth").write_text(str(REPO) + "\n")
    elif subprocess.run([str(py), "-c", "import zlib_ng"], capture_output=True).returncode:
        check_call([str(py), "-m", "pip", "install", "-q", "zlib-ng"])  # (made before the fast extra)
    return _with_bytecode(str(py))


def _with_bytecode(py: str) -> str:
    """``py``, with the repository's package compiled for it, as an
    installed copy is: where PYTHONDONTWRITEBYTECODE is set, every timed
    run would otherwise compile the modules a change has touched."""
    check_call([py, "-m", "compileall", "-q", str(REPO / "pip_linkmode")])
    return py


def ensure_uv() -> str:
    try:
        import uv  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        log("installing uv into the running interpreter")
        check_call([sys.executable, "-m", "pip", "install", "-q", "uv"])
        import uv  # type: ignore[import-not-found,import-untyped,unused-ignore]
    return str(uv.find_uv_bin())


def tool_versions(uv_bin: str) -> dict[str, str]:
    def out(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, env=child_env()).stdout.strip()

    return {
        "python": platform.python_version(),
        "pip": out([PY, "-m", "pip", "--version"]).split(" from ")[0],
        "uv": out([uv_bin, "--version"]),
        "pip-linkmode": out([PY, "-m", "pip_linkmode", "--version"]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }


# -- filesystems --------------------------------------------------------------


@dataclass
class Place:
    """A filesystem under test: where venvs and both caches live."""

    label: str
    root: Path

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def cache_ours(self) -> Path:
        return self.root / "cache-pip-linkmode"

    @property
    def cache_uv(self) -> Path:
        return self.root / "cache-uv"

    def setup(self) -> None:
        for d in (self.venvs, self.cache_ours, self.cache_uv):
            d.mkdir(parents=True, exist_ok=True)


def fs_type(path: Path) -> str:
    res = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True)
    return res.stdout.strip() or "?"


@contextlib.contextmanager
def loop_image(work: Path, fs: str, size: str) -> Iterator[Path | None]:
    """A new loop-mounted filesystem image (``xfs``: with reflink), or None
    when it cannot be had (not root, no mkfs)."""
    mkfs = {"xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"], "ext4": ["mkfs.ext4", "-q", "-F"]}[fs]
    if os.geteuid() != 0 or shutil.which(mkfs[0]) is None:
        log(f"not root or no {mkfs[0]}: no {fs} image")
        yield None
        return
    img, mnt = work / f"{fs}.img", work / f"{fs}-mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mountpoint", "-q", str(mnt)]).returncode == 0:
        check_call(["umount", str(mnt)])
    img.unlink(missing_ok=True)
    check_call(["truncate", "-s", size, str(img)])
    check_call([*mkfs, str(img)])
    check_call(["mount", "-o", "loop", str(img), str(mnt)])
    log(f"mounted a new {fs} image at {mnt}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        img.unlink(missing_ok=True)
        log(f"unmounted the {fs} image")


# -- configurations -----------------------------------------------------------


@dataclass
class Config:
    scenario: str
    tool: str  # pip, uv, pip-linkmode, api (install_wheels), door (installer.install), batch (door in a LinkBatch)
    place: Place
    mode: str  # link mode, "-" for pip
    compile: bool
    argv: Callable[[Path, Path], list[str]]  # (venv dir, venv python) -> argv
    warmup: bool
    max_runs: int

    @property
    def name(self) -> str:
        if self.tool == "pip":
            return "pip" if self.compile else "pip --no-compile"
        if self.tool == "uv":
            return f"uv {self.mode}" + (" --compile-bytecode" if self.compile else "")
        if self.tool == "api":
            return f"install_wheels {self.mode}" + (" compile" if self.compile else "")
        if self.tool in ("door", "batch"):
            return f"installer door {'batch ' if self.tool == 'batch' else ''}{self.mode}" + (
                " compile" if self.compile else "")
        return f"pip-linkmode {self.mode}" + ("" if self.compile else " --no-compile")


@dataclass
class Sample:
    wall_s: float
    maxrss_kb: int
    call_s: float | None = None  # API: the install_wheels call alone
    child_maxrss_kb: int | None = None


@dataclass
class Result:
    scenario: str
    name: str
    tool: str
    fs: str
    mode: str
    compile: bool
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def build_configs(
    scenarios: Sequence[str],
    places: Sequence[Place],
    clone_place: Place | None,
    uv_bin: str,
    corpus: Path,
    wheel_dir: Path,
    wheels: Sequence[Path],
    runs: int,
    slow_runs: int,
    step_compile: bool,
) -> list[Config]:
    configs: list[Config] = []
    wdir = str(wheel_dir)
    wheel_args = [str(w) for w in wheels]

    def pip_argv(compile_: bool) -> Callable[[Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path) -> list[str]:
            a = [PY, "-m", "pip", "--python", str(vpy), "install", "--no-index",
                 "--find-links", wdir, "--no-deps", "-r", str(corpus)]
            return a if compile_ else [*a, "--no-compile"]
        return argv

    def uv_argv(place: Place, mode: str, compile_: bool, files: bool) -> Callable[[Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path) -> list[str]:
            a = [uv_bin, "pip", "install", "--offline", "--no-index", "--no-deps", "--python", str(vpy),
                 "--link-mode", mode, "--cache-dir", str(place.cache_uv)]
            a += wheel_args if files else ["--find-links", wdir, "-r", str(corpus)]
            return [*a, "--compile-bytecode"] if compile_ else a
        return argv

    def ours_argv(place: Place, mode: str, compile_: bool) -> Callable[[Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path) -> list[str]:
            a = [PY, "-m", "pip_linkmode", "install", "--python", str(vpy), "--link-mode", mode,
                 "--cache-dir", str(place.cache_ours), "--no-index", "--find-links", wdir,
                 "--no-deps", "-r", str(corpus)]
            return a if compile_ else [*a, "--no-compile"]
        return argv

    def api_argv(place: Place, mode: str, compile_: bool) -> Callable[[Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path) -> list[str]:
            a = [PY, str(HERE / "lib_install.py"), str(venv), mode, str(place.cache_ours), wdir]
            return [*a, "--compile"] if compile_ else a
        return argv

    def door_argv(place: Place, mode: str, compile_: bool, door: str = "installer") -> Callable[[Path, Path], list[str]]:
        def argv(venv: Path, vpy: Path) -> list[str]:
            return [*api_argv(place, mode, compile_)(venv, vpy), "--door", door]
        return argv

    def modes_for(place: Place, ours: bool) -> list[str]:
        if place is clone_place:
            return ["clone"]
        return ["auto", "hardlink", "copy"] if ours else ["hardlink", "copy"]

    all_places = [*places, *([clone_place] if clone_place else [])]
    # uv --compile-bytecode compiles into each venv (nothing cached): its
    # cache is warmed by the same place's run without it, and it counts as slow.
    if "install-step" in scenarios:
        for place in all_places:
            for compile_ in (False, True) if step_compile else (False,):
                for mode in modes_for(place, ours=True):
                    configs.append(Config("install-step", "api", place, mode, compile_,
                                          api_argv(place, mode, compile_), True, runs))
                for mode in modes_for(place, ours=False):
                    configs.append(Config("install-step", "door", place, mode, compile_,
                                          door_argv(place, mode, compile_), True, runs))
                    configs.append(Config("install-step", "batch", place, mode, compile_,
                                          door_argv(place, mode, compile_, "installer-batch"), True, runs))
                for mode in modes_for(place, ours=False):
                    configs.append(Config("install-step", "uv", place, mode, compile_,
                                          uv_argv(place, mode, compile_, True), not compile_,
                                          slow_runs if compile_ else runs))
    if "end-to-end" in scenarios:
        for compile_ in (False, True):
            configs.append(Config("end-to-end", "pip", places[0], "-", compile_, pip_argv(compile_),
                                  False, slow_runs if compile_ else runs))
        for place in all_places:
            for compile_ in (False, True):
                for mode in modes_for(place, ours=True):
                    configs.append(Config("end-to-end", "pip-linkmode", place, mode, compile_,
                                          ours_argv(place, mode, compile_), True, runs))
                for mode in modes_for(place, ours=False):
                    configs.append(Config("end-to-end", "uv", place, mode, compile_,
                                          uv_argv(place, mode, compile_, False), not compile_,
                                          slow_runs if compile_ else runs))
    return configs


# -- running ------------------------------------------------------------------


def measure(cfg: Config, expected: int, tag: str) -> tuple[Sample | None, str | None]:
    venv = cfg.place.venvs / f"{tag}"
    vpy = new_venv(venv)
    # Flush what earlier runs left dirty (a copy-mode install writes 0.5 GB)
    # so its writeback does not land in this run's time.
    os.sync()
    try:
        out = run_timed(cfg.argv(venv, vpy))
        if out.returncode != 0:
            return None, f"exit {out.returncode}: {out.stderr.strip()[-600:]}"
        problem = verify_venv(venv, expected, cfg.compile)
        if problem:
            return None, problem
        sample = Sample(out.wall_s, out.maxrss_kb)
        if cfg.tool in ("api", "door", "batch"):
            data = json.loads(out.stdout.strip().splitlines()[-1])
            sample.call_s = float(data["call_s"])
            sample.child_maxrss_kb = int(data["maxrss_kb"])
        return sample, None
    finally:
        _discard(cfg.place, venv)


#: a place's set-aside environments are removed when it has less free space
_TRASH_FREE_BYTES = 4 * 1024**3


def _discard(place: Place, venv: Path) -> None:
    """Set a measured environment aside, removed at the end (``empty_trash``).

    Removing it at once put the next run at a disadvantage: on ext4 without
    a journal (this machine's root filesystem) an inode freed in the last
    minute is skipped, one by one, when a new one is allocated
    (``recently_deleted`` in fs/ext4/ialloc.c), so every ``mkdir`` of the
    next install scanned past the thousands of directories just removed.
    Where space runs short, the set-aside environments go at once.
    """
    trash = place.root / "trash"
    trash.mkdir(exist_ok=True)
    try:
        venv.rename(trash / f"{venv.name}-{time.monotonic_ns()}")
    except OSError:
        shutil.rmtree(venv, ignore_errors=True)
    if shutil.disk_usage(place.root).free < _TRASH_FREE_BYTES:
        empty_trash(place)


def empty_trash(place: Place) -> None:
    shutil.rmtree(place.root / "trash", ignore_errors=True)


def run_all(configs: Sequence[Config], runs: int, expected: int) -> list[Result]:
    results = {id(c): Result(c.scenario, c.name, c.tool, c.place.label, c.mode, c.compile) for c in configs}
    warmed: set[tuple[str, str, str, bool]] = set()
    for cfg in configs:
        # one warm-up per cache (and bytecode setting, for pip-linkmode's pyc cache)
        cache = "uv" if cfg.tool == "uv" else "ours"
        key = (cfg.scenario if cache == "uv" else "", cache, cfg.place.label, cfg.compile and cache == "ours")
        if cfg.warmup and key not in warmed:
            warmed.add(key)
            log(f"warm-up {cfg.scenario}: {cfg.name} on {cfg.place.label}")
            _, err = measure(cfg, expected, "warmup")
            if err:
                log(f"  warm-up failed: {err}")
    for i in range(runs):
        active = [c for c in configs if i < c.max_runs]
        shift = i % len(active) if active else 0
        for cfg in active[shift:] + active[:shift]:  # rotate the order between runs
            sample, err = measure(cfg, expected, f"run{i}")
            res = results[id(cfg)]
            if sample is None:
                res.errors.append(err or "?")
                log(f"run {i + 1}/{runs} {cfg.scenario} {cfg.name} [{cfg.place.label}]: FAILED {err}")
                continue
            res.samples.append(sample)
            extra = f" (call {sample.call_s:.3f} s)" if sample.call_s is not None else ""
            log(f"run {i + 1}/{runs} {cfg.scenario} {cfg.name} [{cfg.place.label}]: {sample.wall_s:.3f} s{extra}")
    for place in {id(c.place): c.place for c in configs}.values():
        empty_trash(place)
    return list(results.values())


# -- reporting ----------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    label: str
    fs: str
    tool: str
    mode: str
    compile: bool
    times: list[float]
    rss_mb: float | None
    n_errors: int

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


def rows_of(results: Sequence[Result]) -> list[Row]:
    rows: list[Row] = []
    for r in results:
        rss = statistics.median(s.maxrss_kb for s in r.samples) / 1024 if r.samples else None
        if r.tool in ("api", "door", "batch"):
            rows.append(Row(r.scenario, f"{r.name} (call)", r.fs, r.tool, r.mode, r.compile,
                            [s.call_s for s in r.samples if s.call_s is not None], rss, len(r.errors)))
            rows.append(Row(r.scenario, f"{r.name} (process)", r.fs, r.tool, r.mode, r.compile,
                            [s.wall_s for s in r.samples], rss, len(r.errors)))
        else:
            rows.append(Row(r.scenario, r.name, r.fs, r.tool, r.mode, r.compile,
                            [s.wall_s for s in r.samples], rss, len(r.errors)))
    return rows


def uv_peer(row: Row, rows: Sequence[Row]) -> Row | None:
    """uv with the same link mode (auto: uv's Linux default, hardlink) and bytecode setting."""
    mode = {"auto": "hardlink" if row.fs != "xfs" else "clone"}.get(row.mode, row.mode)
    for r in rows:
        if r.scenario == row.scenario and r.tool == "uv" and r.mode == mode and r.compile == row.compile and r.fs == row.fs:
            return r
    return None


def pip_peer(row: Row, rows: Sequence[Row]) -> Row | None:
    for r in rows:
        if r.tool == "pip" and r.compile == row.compile:
            return r
    return None


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b and a == a and b == b else "-"


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    out = ["# pip-linkmode benchmarks", ""]
    out.append(f"Run {meta['date']}; command `{meta['command']}`.")
    out.append("")
    for k, v in meta["versions"].items():
        out.append(f"- {k}: {v}")
    out.append(f"- corpus: {meta['corpus']} ({meta['wheels']} wheels); filesystems: {meta['filesystems']}")
    out.append(f"- runs: {meta['runs']} per configuration (compiling pip and uv --compile-bytecode: {meta['slow_runs']}), "
               "round-robin within each run, fresh `python -m venv --without-pip` venv per run, "
               "warm caches (one untimed warm-up per uv / pip-linkmode configuration)")
    out.append("- pip runs as `python -m pip --python VENV/bin/python` from the harness interpreter; "
               "pip-linkmode as `python -m pip_linkmode install --python VENV/bin/python` (re-runs in the venv)")
    out.append("- time ÷ uv: this row's median over uv's with the same link mode and bytecode setting "
               "(below 1 = faster than uv); pip ÷ time: how many times faster than pip with the same "
               "bytecode setting; RSS: median peak RSS of the process tree")
    out.append("")
    native = meta["native"]
    whole = [r for r in rows if r.fs == native and not r.label.endswith("(call)")]
    tables = (
        (f"Whole processes on {native}", whole),
        ("In-call times (the install call alone, same runs)", [r for r in rows if r.label.endswith("(call)")]),
        ("Whole processes on other filesystems", [r for r in rows if r.fs != native and not r.label.endswith("(call)")]),
    )
    for title, trows in tables:
        if not trows:
            continue
        out.append(f"## {title}")
        out.append("")
        out.append("| scenario | configuration | fs | median s | min–max s | pip ÷ time | time ÷ uv | peak RSS MB |")
        out.append("|---|---|---|---:|---:|---:|---:|---:|")
        for r in trows:
            if not r.times:
                out.append(f"| {r.scenario} | {r.label} | {r.fs} | failed ({r.n_errors}) | | | | |")
                continue
            pip = pip_peer(r, rows)
            uvr = uv_peer(r, rows)
            pip_ratio = fmt_ratio(pip.median, r.median) if pip and pip.times and r.tool != "pip" else "-"
            uv_ratio = fmt_ratio(r.median, uvr.median) if uvr and uvr.times and r.tool != "uv" else "-"
            rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
            errs = f" ({r.n_errors} failed)" if r.n_errors else ""
            out.append(f"| {r.scenario} | {r.label}{errs} | {r.fs} | {r.median:.3f} | {min(r.times):.3f}–{max(r.times):.3f} "
                       f"| {pip_ratio} | {uv_ratio} | {rss} |")
        out.append("")
    out.extend(targets(rows))
    return "\n".join(out) + "\n"


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's targets, checked against this run."""
    def find(scenario: str, tool: str, mode: str, compile_: bool, fs: str | None = None,
             suffix: str = "") -> Row | None:
        for r in rows:
            if (r.scenario == scenario and r.tool == tool and r.mode == mode and r.compile == compile_
                    and (fs is None or r.fs == fs) and r.label.endswith(suffix) and r.times):
                return r
        return None

    lines = ["## Targets", "", "| target | ours s | reference s | factor | met |", "|---|---:|---:|---:|---|"]

    def add(text: str, ours: Row | None, ref: Row | None, need: float) -> None:
        if ours is None or ref is None:
            lines.append(f"| {text} | - | - | - | not measured |")
            return
        factor = ref.median / ours.median
        lines.append(f"| {text} | {ours.median:.3f} | {ref.median:.3f} | {factor:.2f}x faster "
                     f"| {'yes' if factor >= need else 'NO'} |")

    for mode in ("hardlink", "clone"):
        uv_step = find("install-step", "uv", mode, False)
        if uv_step is not None:
            uv_step = Row(uv_step.scenario, uv_step.label, uv_step.fs, uv_step.tool, uv_step.mode, uv_step.compile,
                          [t * 1.25 for t in uv_step.times], uv_step.rss_mb, uv_step.n_errors)
        add(f"installer door {mode} (process) within 1.25x of uv {mode}",
            find("install-step", "door", mode, False, suffix="(process)"), uv_step, 1.0)
        add(f"installer door in a LinkBatch {mode} (process) within 1.25x of uv {mode}",
            find("install-step", "batch", mode, False, suffix="(process)"), uv_step, 1.0)
    for mode in ("hardlink", "clone", "copy"):
        add(f"install step, install_wheels {mode} (call) no slower than uv {mode}",
            find("install-step", "api", mode, False, suffix="(call)"),
            find("install-step", "uv", mode, False), 1.0)
        add(f"install step, install_wheels {mode} (process) no slower than uv {mode}",
            find("install-step", "api", mode, False, suffix="(process)"),
            find("install-step", "uv", mode, False), 1.0)
    pip_nc = find("end-to-end", "pip", "-", False)
    pip_c = find("end-to-end", "pip", "-", True)
    for mode in ("auto", "hardlink", "clone"):
        add(f"end to end {mode} --no-compile ≥3x faster than pip --no-compile",
            find("end-to-end", "pip-linkmode", mode, False), pip_nc, 3.0)
        add(f"end to end {mode} (compiling) ≥10x faster than pip (compiling)",
            find("end-to-end", "pip-linkmode", mode, True), pip_c, 10.0)
        uvmode = "hardlink" if mode == "auto" else mode
        add(f"end to end {mode} (compiling) faster than uv {uvmode} --compile-bytecode",
            find("end-to-end", "pip-linkmode", mode, True), find("end-to-end", "uv", uvmode, True), 1.0)
    return [*lines, ""]


def rows_native(rows: Sequence[Row]) -> str:
    """The filesystem of the first table: where every configuration ran (not the clone image)."""
    found = {r.fs for r in rows if r.tool == "pip"} or {r.fs for r in rows if r.mode == "hardlink"}
    return sorted(found)[0] if found else ""


def chart(rows: Sequence[Row], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        log("installing matplotlib into the running interpreter")
        check_call([sys.executable, "-m", "pip", "install", "-q", "matplotlib"])
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    native = rows_native(rows)
    rows = [r for r in rows if r.fs == native and not r.label.endswith("(call)")]  # the report's first table
    scenarios = [s for s in SCENARIOS if any(r.scenario == s and r.times for r in rows)]
    if not scenarios:
        return
    colors = {"pip": "#888888", "uv": "#de5fe9", "pip-linkmode": "#2b7bba", "api": "#2b7bba", "door": "#5aa0d8", "batch": "#7fb8e6"}
    heights = [sum(1 for r in rows if r.scenario == s and r.times) for s in scenarios]
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 0.32 * sum(heights) + 2.0 * len(scenarios)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        srows = [r for r in rows if r.scenario == scenario and r.times][::-1]
        med = [r.median for r in srows]
        lo = [r.median - min(r.times) for r in srows]
        hi = [max(r.times) - r.median for r in srows]
        ax.barh([f"{r.label} [{r.fs}]" for r in srows], med, xerr=[lo, hi],
                color=[colors.get(r.tool, "#2b7bba") for r in srows], capsize=2)
        for y, m in enumerate(med):
            ax.text(m, y, f" {m:.2f}s", va="center", fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("seconds (median, min/max bars, log scale)")
        ax.set_title(f"{scenario}: whole processes on {native}")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- profile ------------------------------------------------------------------


def profile(places: Sequence[Place], clone_place: Place | None, wheel_dir: Path, out: Path, expected: int) -> None:
    cases: list[tuple[Place, str, bool]] = [(places[0], "hardlink", False), (places[0], "hardlink", True)]
    if clone_place is not None:
        cases.append((clone_place, "clone", False))
    text: list[str] = ["pip-linkmode install step profile (install_wheels, 111 wheels, warm cache)", ""]
    for place, mode, compile_ in cases:
        name = f"{mode}{' compile' if compile_ else ''} on {place.label}"
        base = [PY, str(HERE / "lib_install.py")]
        phase_runs: list[dict[str, Any]] = []
        for i in range(3):  # median of 3 phase-timed runs
            venv = place.venvs / f"profile{i}"
            new_venv(venv)
            argv = [*base, str(venv), mode, str(place.cache_ours), str(wheel_dir), "--phases"]
            res = run_timed([*argv, "--compile"] if compile_ else argv)
            shutil.rmtree(venv, ignore_errors=True)
            if res.returncode != 0:
                text.append(f"{name}: failed: {res.stderr[-800:]}")
                break
            phase_runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        if not phase_runs:
            continue
        venv = place.venvs / "profile-cp"
        new_venv(venv)
        stats_file = HERE / ".work" / "profile.pstats"
        argv = [*base, str(venv), mode, str(place.cache_ours), str(wheel_dir), "--cprofile", str(stats_file)]
        res = run_timed([*argv, "--compile"] if compile_ else argv)
        shutil.rmtree(venv, ignore_errors=True)
        call = statistics.median(p["call_s"] for p in phase_runs)
        text.append(f"== {name}: install_wheels call median {call:.3f} s "
                    f"(import pip_linkmode {statistics.median(p['import_s'] for p in phase_runs):.3f} s)")
        text.append(f"   {phase_runs[0]['summary']}")
        if phase_runs[0].get("phases_missing"):
            text.append(f"   (phase hooks not found: {', '.join(phase_runs[0]['phases_missing'])})")
        text.append("")
        text.append(f"   {'phase (exclusive wall time, main thread)':52} {'median s':>9} {'share':>6} {'calls':>7}")
        phases = sorted({k for p in phase_runs for k in p["phases"]},
                        key=lambda k: -statistics.median(p["phases"].get(k, 0.0) for p in phase_runs))
        accounted = 0.0
        for ph in phases:
            t = statistics.median(p["phases"].get(ph, 0.0) for p in phase_runs)
            accounted += t
            calls = phase_runs[0]["phase_calls"].get(ph, 0)
            text.append(f"   {ph:52} {t:9.3f} {100 * t / call:5.1f}% {calls:7d}")
        other = call - accounted
        text.append(f"   {'(outside the hooked functions)':52} {other:9.3f} {100 * other / call:5.1f}%")
        text.append("")
        if res.returncode == 0 and stats_file.exists():
            text.extend(cprofile_summary(stats_file))
        text.append("")
    out.write_text("\n".join(text) + "\n")
    log(f"wrote {out}")


def cprofile_summary(stats_file: Path) -> list[str]:
    st = pstats.Stats(str(stats_file))
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = st.stats  # type: ignore[attr-defined]
    total = max((v[3] for v in raw.values()), default=0.0)

    def short(key: tuple[str, int, str]) -> str:
        fn, line, func = key
        for marker in ("pip_linkmode/", "installer/"):
            if marker in fn:
                return f"{marker}{fn.split(marker, 1)[1]}:{line}({func})"
        return f"{os.path.basename(fn)}:{line}({func})" if fn != "~" else func

    ours = [(k, v) for k, v in raw.items() if "pip_linkmode/" in k[0] or "/installer/" in k[0]]
    lines = [f"   cProfile (deterministic; profiler overhead inflates per-call costs; total {total:.3f} s)",
             "   our and installer's functions by cumulative time:",
             f"   {'cumulative s':>12} {'own s':>8} {'calls':>7}  function"]
    for k, v in sorted(ours, key=lambda kv: -kv[1][3])[:30]:
        lines.append(f"   {v[3]:12.3f} {v[2]:8.3f} {v[1]:7d}  {short(k)}")
    lines.append("   all functions by own time:")
    for k, v in sorted(raw.items(), key=lambda kv: -kv[1][2])[:20]:
        lines.append(f"   {v[3]:12.3f} {v[2]:8.3f} {v[1]:7d}  {short(k)}")
    return lines


# -- main ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="timed runs per configuration (default 3)")
    p.add_argument("--slow-runs", type=int, default=None,
                   help="timed runs of the slow compiling configurations, pip and "
                        "uv --compile-bytecode (default: --runs)")
    p.add_argument("--step-compile", action="store_true",
                   help="also time the install step with bytecode (install_wheels "
                        "compile_bytecode=True against uv --compile-bytecode)")
    p.add_argument("--only", default=",".join(SCENARIOS),
                   help=f"comma-separated scenarios: {', '.join(SCENARIOS)} (default all); "
                        "empty with --profile for the profile alone")
    p.add_argument("--profile", action="store_true", help="write results/profile.txt")
    p.add_argument("--no-xfs", action="store_true", help="skip the loop-mounted XFS clone scenarios")
    p.add_argument("--xfs-size", default="3G")
    p.add_argument("--fresh-ext4", metavar="SIZE", default="",
                   help="run the non-clone configurations on a new loop-mounted ext4 image of SIZE "
                        "(e.g. 12G; root) instead of the work directory's own, aged filesystem")
    p.add_argument("--pip", default="26.3", metavar="VERSION",
                   help="the pip under test, for plain pip and pip-linkmode alike, in a tools "
                        "venv under --work (default 26.3, the newest; empty: the running interpreter's)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--work", type=Path, default=HERE / ".work")
    p.add_argument("--results", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    slow_runs = args.runs if args.slow_runs is None else min(args.slow_runs, args.runs)

    work: Path = args.work.resolve()
    global WORK
    WORK = work
    work.mkdir(parents=True, exist_ok=True)
    wheel_dir = work / "wheels"
    wheels = prepare_corpus(args.corpus, wheel_dir)
    uv_bin = ensure_uv()
    global PY
    PY = tools_python(work, args.pip)
    versions = tool_versions(uv_bin)
    args.results.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as images:
        fresh = images.enter_context(loop_image(work, "ext4", args.fresh_ext4)) if args.fresh_ext4 else None
        native = Place("ext4 (new loop image)", fresh) if fresh else Place(fs_type(work), work / "native")
        native.setup()
        mnt = None if args.no_xfs else images.enter_context(loop_image(work, "xfs", args.xfs_size))
        clone_place = Place("xfs", Path(mnt)) if mnt is not None else None
        if clone_place is not None:
            clone_place.setup()
        configs = build_configs(scenarios, [native], clone_place, uv_bin, args.corpus, wheel_dir,
                                wheels, args.runs, slow_runs, args.step_compile)
        results = run_all(configs, args.runs, len(wheels)) if configs else []
        if args.profile:
            profile([native], clone_place, wheel_dir, args.results / "profile.txt", len(wheels))

    if not results:
        return 0
    rows = rows_of(results)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python", "benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "versions": versions,
        "corpus": str(args.corpus),
        "wheels": len(wheels),
        "filesystems": native.label + ("" if args.fresh_ext4 else " (work dir)") + (", xfs reflink=1 loop image (clone)" if clone_place else ""),
        "runs": args.runs,
        "slow_runs": slow_runs,
    }
    meta["native"] = native.label
    md = markdown(rows, meta)
    print(md)
    (args.results / "latest.md").write_text(md)
    (args.results / "latest.json").write_text(json.dumps(
        {"meta": meta, "results": [asdict(r) for r in results]}, indent=1, default=str))
    chart(rows, args.results / "latest.png")
    log(f"wrote {args.results / 'latest.md'}, latest.json and latest.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
