"""Quickstart: install a wheel into a fresh venv through the shared cache, twice.

    python examples/quickstart.py [WHEEL ...]

Without arguments it downloads `six` and `idna` with pip into a temp dir.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from pip_linkmode import WheelCache, install_wheels


def main(argv: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="pip-linkmode-quickstart-"))
    wheels = [Path(a) for a in argv]
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
             "--no-deps", "-d", str(work / "wheels"), "six", "idna"],
            check=True,
        )
        wheels = sorted((work / "wheels").glob("*.whl"))
    cache = WheelCache(work / "cache")
    for name in ("env-one", "env-two"):
        env_dir = work / name
        venv.create(env_dir, with_pip=False)
        start = time.perf_counter()
        report = install_wheels(wheels, venv=env_dir, cache=cache)
        took = time.perf_counter() - start
        print(f"{name}: installed {', '.join(report.installed)} in {took * 1000:.0f} ms "
              f"({report.unpacked} wheel(s) unpacked into the cache)")
        print("  " + report.summary())
    python = work / "env-two" / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    subprocess.run([str(python), "-c", "import six, idna; print('imports work:', six.__version__, idna.__version__)"], check=True)
    print(f"cache: {cache.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
