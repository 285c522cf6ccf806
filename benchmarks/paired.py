"""Paired whole-process timing: two commands run in turn, the ratio taken pair by pair.

    python benchmarks/paired.py -n 11 --work DIR \\
        --a 'python benchmarks/lib_install.py {venv} hardlink CACHE WHEELS --door installer' \\
        --b 'uv pip install --offline --no-index --no-deps --python {venv}/bin/python --link-mode hardlink ...'

A, then B, N times (after one untimed run of each), each through ``sh -c``.
``{venv}`` in a command becomes a new ``python -m venv --without-pip``
environment under ``--work``, made before the run and outside its time.
Wall seconds are a monotonic clock around each run; CPU seconds (user +
system) the finished children's own accounting. Prints min, median and max
of each and of the per-pair ratio A/B: pairing keeps the ratio meaningful
when the machine's speed drifts during the call. POSIX only (sh, resource);
not part of the test suite.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(command: str, work: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``."""
    if "{venv}" in command:
        venv = Path(tempfile.mkdtemp(prefix="venv-", dir=work))
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        command = command.replace("{venv}", str(venv))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    done = subprocess.run(["sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"exit {done.returncode}: {command}\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spread(values: list[float]) -> str:
    return f"{min(values):8.3f} {statistics.median(values):8.3f} {max(values):8.3f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="the command measured")
    p.add_argument("--b", required=True, help="the command it is compared with")
    p.add_argument("-n", "--runs", type=int, default=9)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()), help="where {venv}s are made")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    run_once(args.a, args.work)  # (untimed: warm caches)
    run_once(args.b, args.work)
    rows: dict[str, list[float]] = {k: [] for k in ("A wall", "A cpu", "B wall", "B cpu", "A/B wall", "A/B cpu")}
    for _ in range(args.runs):
        a_wall, a_cpu = run_once(args.a, args.work)
        b_wall, b_cpu = run_once(args.b, args.work)
        for key, value in (("A wall", a_wall), ("A cpu", a_cpu), ("B wall", b_wall), ("B cpu", b_cpu),
                           ("A/B wall", a_wall / b_wall), ("A/B cpu", a_cpu / b_cpu if b_cpu else float("nan"))):
            rows[key].append(value)
    print(f"{args.runs} pairs; seconds (ratios for A/B): min, median, max")
    for key, values in rows.items():
        print(f"{key:9s} {spread(values)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
