"""Reliability under load and faults: concurrency, kill -9, full disks, read-only filesystems.

Everything here is real: processes, signals (strace's syscall fault injection
delivers SIGKILL at the N-th chosen system call), loop-mounted filesystems
that fill up, read-only mounts.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IS_ROOT, make_venv, site_packages, venv_python
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import CacheError, WheelCache, cache_admin

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LINUX_ROOT = sys.platform == "linux" and IS_ROOT


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PYTHONPATH"] = str(REPO)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _top_level_modules(venv: Path) -> list[str]:
    """Every importable top-level name the installed distributions put in site-packages."""
    names: set[str] = set()
    for dist in site_packages(venv).glob("*.dist-info"):
        for line in (dist / "RECORD").read_text().splitlines():
            top = line.split(",")[0].split("/")[0]
            if top.endswith((".dist-info", ".data", ".pth")) or top in ("..", "__pycache__"):
                continue
            top = top.removesuffix(".py")
            if top.isidentifier():
                names.add(top)
    return sorted(names)


def _check_venv(venv: Path) -> None:
    check = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(venv), "check"], capture_output=True, text=True)
    assert check.returncode == 0 and "No broken requirements" in check.stdout, check.stdout + check.stderr
    modules = _top_level_modules(venv)
    assert modules
    imp = subprocess.run([venv_python(venv), "-c", f"import {', '.join(modules)}"], capture_output=True, text=True)
    assert imp.returncode == 0, imp.stderr


# -- concurrency ------------------------------------------------------------------

@pytest.fixture(scope="module")
def more_real_wheels(real_wheels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    dest = tmp_path_factory.mktemp("more-real-wheels")
    for w in real_wheels:
        shutil.copy2(w, dest)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary", ":all:",
         "--no-deps", "-d", str(dest), "packaging==24.2", "attrs==24.2.0", "pyparsing==3.2.0", "iniconfig==2.0.0"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"cannot download real wheels from the package index:\n{proc.stderr}")
    return sorted(dest.glob("*.whl"))


def test_eight_processes_share_a_cold_cache(more_real_wheels: list[Path], tmp_path: Path) -> None:
    """8 pip-linkmode processes at once, overlapping sets of 8 real wheels, a cold
    shared cache; then a second round (--force-reinstall) into the same venvs."""
    names = [w.name.split("-")[0].replace("_", "-") for w in more_real_wheels]
    assert len(names) == 8
    cache = tmp_path / "cache"
    venvs = [make_venv(tmp_path / f"v{i}") for i in range(8)]
    rng = random.Random(9)
    sets = [sorted(rng.sample(names, 5)) for _ in venvs]

    def round_(extra: list[str]) -> None:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(v), "--cache-dir", str(cache),
                 "--no-index", "--find-links", str(more_real_wheels[0].parent), "--no-deps", "--link-mode", "hardlink",
                 *extra, *wanted],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
            )
            for v, wanted in zip(venvs, sets, strict=True)
        ]
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
            assert "Successfully installed" in out

    round_([])
    entries = sorted((cache / "entries").iterdir())
    used = {n for s in sets for n in s}
    assert len(entries) == len(used)  # each wheel unpacked exactly once
    stamps = {e.name: os.stat(e / "entry.json").st_ino for e in entries}
    for v in venvs:
        _check_venv(v)
    round_(["--force-reinstall"])
    assert {e.name: os.stat(e / "entry.json").st_ino for e in sorted((cache / "entries").iterdir())} == stamps  # not unpacked again
    for v in venvs:
        _check_venv(v)
    assert cache_admin.verify(WheelCache(cache)) == []
    out = subprocess.run([sys.executable, "-m", "pip_linkmode", "cache", "verify", "--cache-dir", str(cache)],
                         capture_output=True, text=True, env=_env())
    assert out.returncode == 0, out.stdout + out.stderr


REVERSED_ORDERS = """
import sys, time
from pathlib import Path
from pip_linkmode import install_wheels
venv, cache, start, rounds, *wheels = sys.argv[1:]
while not Path(start).exists():
    time.sleep(0.005)
for i in range(int(rounds)):
    install_wheels(wheels, venv=venv, cache=cache, link_mode="hardlink", compile_bytecode=i % 2 == 0)
print("done")
"""


def test_installs_in_opposite_orders_never_wait_on_each_other(make_wheel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two library installs of the same wheels in opposite orders, started
    together, 8 rounds each, cold cache then warm, compiling every other
    round. Installs hold their entries' locks while placing files: taken in
    the order of the wheel list, that used to be a lock-order deadlock."""
    wheels = [str(make_wheel(demo_spec(name=f"order{i}", long_paths=False))) for i in range(5)]
    cache = tmp_path / "cache"
    start = tmp_path / "start"
    venvs = [make_venv(tmp_path / f"v{i}") for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REVERSED_ORDERS, str(v), str(cache), str(start), "8", *order],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for v, order in zip(venvs, (wheels, wheels[::-1]), strict=True)
    ]
    start.touch()
    try:
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "done", err
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("the two installs waited on each other's locks (deadlock)")
    assert len(list((cache / "entries").iterdir())) == 5  # each wheel unpacked once
    assert cache_admin.verify(WheelCache(cache)) == []
    for v in venvs:
        _check_venv(v)
        assert len(list(site_packages(v).glob("order0/__pycache__/*.pyc"))) == 2


# -- kill -9 at chosen system calls ----------------------------------------------------

INSTALL = """
import sys
from pip_linkmode import install_wheels
install_wheels(sys.argv[3:], venv=sys.argv[1], cache=sys.argv[2], link_mode="hardlink")
"""

#: (the cache makes, renames and removes relative to directory descriptors,
#: never through a planted link: the *at forms)
KILL_SYSCALLS = (
    "openat", "mkdir", "mkdirat", "link", "linkat", "rename", "renameat", "renameat2", "write", "unlink", "unlinkat",
)


def _tree(venv: Path) -> dict[str, bytes]:
    out = {}
    root = str(venv)
    for dirpath, dirs, files in os.walk(venv):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.lower().startswith("activate") or name == "pyvenv.cfg":
                continue  # written by venv (with the venv's name), not by the install
            p = os.path.join(dirpath, name)
            data = b"link:" + os.readlink(p).encode() if os.path.islink(p) else Path(p).read_bytes()
            if name == "RECORD":  # scripts embed the venv's path, so their hashes differ by venv
                data = b"\n".join(
                    line.rsplit(b",", 2)[0] + b",<hash>" if b"/bin/" in line else line for line in data.splitlines()
                )
            out[os.path.relpath(p, root)] = data.replace(root.encode(), b"VENV")
    return out


@pytest.fixture(scope="module")
def crash_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("crash-wheels")
    wheels = [build_wheel(d / "a", demo_spec("alpha", long_paths=False))]
    wheels.append(build_wheel(d / "b", WheelSpec(name="beta", files={f"beta/m{i}.py": f"X = {i}\n".encode() for i in range(30)})))
    wheels.append(build_wheel(d / "c", demo_spec("gamma", long_paths=False)))
    return wheels


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace): it delivers the kills")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kills are delivered by strace's syscall fault injection, Linux only")
def test_kill_9_at_fifty_seeded_points(crash_wheels: list[Path], tmp_path: Path) -> None:
    """SIGKILL at the N-th openat/mkdir/link(at)/rename/write/unlink of a cold-cache
    install (cache population, linking, RECORD and script writing), at >= 50
    seeded points. After each: no partial cache entry, the same install into
    the same venv succeeds, and the venv equals a clean install."""
    reference = make_venv(tmp_path / "reference")
    subprocess.run([sys.executable, "-c", INSTALL, str(reference), str(tmp_path / "refcache"), *map(str, crash_wheels)],
                   check=True, env=_env())
    clean = _tree(reference)
    # how many of each call a whole run makes, to aim the kills: strace counts
    # an injection's N-th call per thread (placement and unpacking run on
    # worker threads), so the aim is the busiest thread's count of each call
    trace_file = tmp_path / "calls.txt"
    v0 = make_venv(tmp_path / "count-venv")
    subprocess.run(["strace", "-f", "-qq", "-o", str(trace_file), "-e", f"trace={','.join(KILL_SYSCALLS)}",
                    sys.executable, "-c", INSTALL, str(v0), str(tmp_path / "countcache"), *map(str, crash_wheels)],
                   check=True, env=_env(), capture_output=True)
    per_thread: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in trace_file.read_text().splitlines():
        match = re.match(r"(\d+)\s+(?:<\.\.\. )?(\w+)[( ]", line)
        if match and match.group(2) in KILL_SYSCALLS and "resumed>" not in line:
            per_thread[(match.group(1), match.group(2))] += 1
    totals: dict[str, int] = {}
    for (_, call), n in per_thread.items():
        totals[call] = max(totals.get(call, 0), n)
    assert set(totals) >= {"openat", "write"} and set(totals) & {"link", "linkat"}, totals
    assert set(totals) & {"mkdir", "mkdirat"} and set(totals) & {"rename", "renameat", "renameat2"}, totals
    rng = random.Random(20261122)
    kills = 0
    trials = 0
    record: list[str] = []
    while kills < 50 and trials < 120:
        trials += 1
        syscall = rng.choice(sorted(totals))
        when = rng.randint(1, max(1, totals[syscall]))
        venv = make_venv(tmp_path / f"k{trials}")
        cache = tmp_path / f"kc{trials}"
        proc = subprocess.run(
            ["strace", "-f", "-qq", "-o", os.devnull, "-e", f"trace={syscall}", "-e", f"inject={syscall}:signal=KILL:when={when}",
             sys.executable, "-c", INSTALL, str(venv), str(cache), *map(str, crash_wheels)],
            capture_output=True, text=True, env=_env(),
        )
        killed = proc.returncode in (-9, 137) or "Killed" in proc.stderr or "+++ killed by SIGKILL" in proc.stderr
        if killed:
            kills += 1
        record.append(f"{syscall}#{when}:{'killed' if killed else 'ran'}")
        # no partial entry: every published entry is complete and verifies
        wc = WheelCache(cache)
        for entry_dir in (cache / "entries").iterdir() if (cache / "entries").exists() else []:
            assert (entry_dir / "entry.json").is_file(), f"partial entry after {record[-1]}"
        assert cache_admin.verify(wc) == [], record[-1]
        # the same install again succeeds, and equals a clean one
        again = subprocess.run([sys.executable, "-c", INSTALL, str(venv), str(cache), *map(str, crash_wheels)],
                               capture_output=True, text=True, env=_env())
        assert again.returncode == 0, f"{record[-1]}: {again.stderr}"
        got = _tree(venv)
        assert got == clean, (record[-1], {k for k in set(got) | set(clean) if got.get(k) != clean.get(k)})
        cache_admin.prune(wc)
        assert not (cache / "tmp").exists() or list((cache / "tmp").iterdir()) == [], record[-1]
        shutil.rmtree(venv)
        shutil.rmtree(cache)
    assert kills >= 50, f"only {kills} kills in {trials} trials: {record}"
    print(f"kill -9 schedule: {kills} kills in {trials} trials; per call: "
          + ", ".join(f"{c} {sum(r.startswith(c + '#') and r.endswith('killed') for r in record)}" for c in sorted(totals)))


# -- full disks --------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if not LINUX_ROOT:
        pytest.skip(reason="loop-mounting a small filesystem needs Linux and root")
    image = tmp_path / "small.img"
    point = tmp_path / "small"
    point.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(point)], check=True, capture_output=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _big_wheel(directory: Path, name: str, mb: int) -> Path:
    rnd = random.Random(name)
    files = {f"{name}/__init__.py": b"", **{f"{name}/blob{i}.bin": rnd.randbytes(1024 * 1024) for i in range(mb)}}
    return build_wheel(directory, WheelSpec(name=name, files=files))


def _state(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_target_disk_full_fails_cleanly_and_rolls_back(small_fs: Path, tmp_path: Path) -> None:
    small_ok = build_wheel(tmp_path / "w1", WheelSpec(name="fits", files={"fits/__init__.py": b"OK = 1\n"}))
    big = _big_wheel(tmp_path / "w2", "toobig", 24)  # 24 MB of incompressible data, 16 MB disk
    venv = make_venv(small_fs / "venv")
    before = _state(venv)
    proc = subprocess.run(
        [sys.executable, "-c", INSTALL.replace('"hardlink"', '"copy"'), str(venv), str(tmp_path / "cache"), str(small_ok), str(big)],
        capture_output=True, text=True, env=_env(),
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "No space left" in last or "no space" in last.lower(), proc.stderr
    assert str(small_fs) in last, last  # where
    assert _state(venv) == before  # rolled back: even the wheel that fitted is gone
    assert cache_admin.verify(WheelCache(tmp_path / "cache")) == []


BATCH_INSTALL = """
import sys
import installer
from pip_linkmode import LinkBatch, LinkingDestination, WheelCache
from pip_linkmode.install import target_for_venv
target, cache = target_for_venv(sys.argv[1]), WheelCache(sys.argv[2])
returned = []
try:
    with LinkBatch("copy") as batch:
        for wheel in sys.argv[3:]:
            with cache.open(wheel) as source:
                installer.install(source, LinkingDestination(
                    target.scheme_for(source.distribution), target.interpreter, "posix", batch=batch), {})
            returned.append(source.distribution)
finally:
    print("returned:", *returned)
"""


def test_a_batch_whose_disk_fills_removes_every_install_of_it(small_fs: Path, tmp_path: Path) -> None:
    """A ``LinkBatch`` copying into a full disk: the copy fails in a worker,
    whether before or after its ``installer.install`` returned; the batch
    raises the error naming where, and nothing of any install is left."""
    small_ok = build_wheel(tmp_path / "w1", WheelSpec(name="fits", files={"fits/__init__.py": b"OK = 1\n"}))
    big = _big_wheel(tmp_path / "w2", "toobig", 24)
    venv = make_venv(small_fs / "venv")
    before = _state(venv)
    proc = subprocess.run(
        [sys.executable, "-c", BATCH_INSTALL, str(venv), str(tmp_path / "cache"), str(small_ok), str(big)],
        capture_output=True, text=True, env=_env(),
    )
    assert proc.returncode != 0
    assert proc.stdout.startswith("returned: fits"), proc.stdout  # the first install's call had returned
    last = proc.stderr.strip().splitlines()[-1]
    assert "No space left" in last or "no space" in last.lower(), proc.stderr
    assert str(small_fs) in last, last
    assert _state(venv) == before


def test_cache_disk_full_leaves_no_entry(small_fs: Path, tmp_path: Path) -> None:
    big = _big_wheel(tmp_path / "w", "huge", 20)
    venv = make_venv(tmp_path / "venv")
    before = _state(venv)
    cache = small_fs / "cache"
    proc = subprocess.run([sys.executable, "-c", INSTALL, str(venv), str(cache), str(big)], capture_output=True, text=True, env=_env())
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "no space" in last.lower() and str(small_fs) in last, proc.stderr
    assert list((cache / "entries").iterdir()) == []
    assert list((cache / "tmp").iterdir()) == []  # the failed unpack cleaned up after itself
    assert _state(venv) == before


def test_pip_front_end_disk_full_keeps_the_environment(small_fs: Path, tmp_path: Path) -> None:
    big = _big_wheel(tmp_path / "w", "toobig", 24)
    venv = make_venv(small_fs / "venv")
    before = _state(venv)
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "copy",
         "--cache-dir", str(tmp_path / "cache"), "--no-index", "--no-deps", str(big)],
        capture_output=True, text=True, env=_env(),
    )
    assert proc.returncode != 0
    assert "No space left" in proc.stderr or "no space" in proc.stderr.lower(), proc.stderr
    assert not (site_packages(venv) / "toobig-1.0.dist-info" / "RECORD").exists()  # not recorded as installed
    listed = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(venv), "list", "--format", "json"],
                            capture_output=True, text=True, check=True)
    assert "toobig" not in {d["name"] for d in json.loads(listed.stdout)}
    added = sorted(set(_state(venv)) - set(before))
    assert added == [], added  # the files we placed for the failed wheel are gone, and their directories


# -- read-only filesystems -------------------------------------------------------------------

def _remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True, capture_output=True)


def test_read_only_target_is_one_clear_error(small_fs: Path, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="ro", files={"ro/__init__.py": b""}))
    venv = make_venv(small_fs / "venv")
    before = _state(venv)
    _remount(small_fs, "ro")
    try:
        proc = subprocess.run([sys.executable, "-c", INSTALL, str(venv), str(tmp_path / "cache"), str(wheel)],
                              capture_output=True, text=True, env=_env())
    finally:
        _remount(small_fs, "rw")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert "Read-only file system" in last and str(venv) in last, proc.stderr
    assert _state(venv) == before


def test_read_only_cache_still_serves_its_entries(small_fs: Path, tmp_path: Path) -> None:
    """Entries on a read-only cache are used as they are (nothing can change
    them, so no lock is needed); a wheel not in it is one clear error."""
    present = build_wheel(tmp_path / "w1", WheelSpec(name="present", files={"present/__init__.py": b"P = 1\n"}))
    absent = build_wheel(tmp_path / "w2", WheelSpec(name="absent", files={"absent/__init__.py": b""}))
    cache = small_fs / "cache"
    WheelCache(cache).get(present)
    _remount(small_fs, "ro")
    try:
        venv = make_venv(tmp_path / "venv")
        ok = subprocess.run([sys.executable, "-c", INSTALL.replace('"hardlink"', '"copy"'), str(venv), str(cache), str(present)],
                            capture_output=True, text=True, env=_env())
        assert ok.returncode == 0, ok.stderr
        assert (site_packages(venv) / "present" / "__init__.py").read_text() == "P = 1\n"
        bad = subprocess.run([sys.executable, "-c", INSTALL, str(venv), str(cache), str(absent)],
                             capture_output=True, text=True, env=_env())
    finally:
        _remount(small_fs, "rw")
    assert bad.returncode != 0
    last = bad.stderr.strip().splitlines()[-1]
    assert "Read-only file system" in last and str(cache) in last, bad.stderr


def test_read_only_cache_files_still_link(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="frozen", files={"frozen/__init__.py": b"F = 1\n"}))
    cache = WheelCache(tmp_path / "cache")
    entry = cache.get(wheel)
    for p in entry.tree.rglob("*"):
        p.chmod(0o444 if p.is_file() else 0o555)
    try:
        venv = make_venv(tmp_path / "venv")
        subprocess.run([sys.executable, "-c", INSTALL, str(venv), str(tmp_path / "cache"), str(wheel)], check=True, env=_env())
        assert (site_packages(venv) / "frozen" / "__init__.py").read_text() == "F = 1\n"
    finally:
        for p in entry.tree.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_two_unpacks_at_once_must_both_fit(small_fs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of two wheels fits in the cache's free space, both together do
    not: while one is unpacking (held at its first write), the other is
    refused before a byte is written, with one line, and the first completes.
    (Before, both passed the free-space check and one hit ENOSPC mid-unpack.)"""
    from pip_linkmode import archive

    first, second = _big_wheel(tmp_path / "w1", "first", 8), _big_wheel(tmp_path / "w2", "second", 8)
    root = small_fs / "cache"
    free = shutil.disk_usage(small_fs).free
    assert 8 * 2**20 < free < 16 * 2**20, free  # each fits, both do not
    started, go_on = threading.Event(), threading.Event()
    real_run = archive.Unpacker.run

    def held_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "first" in str(self.wheel):
            started.set()
            assert go_on.wait(60)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(archive.Unpacker, "run", held_run)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(WheelCache(root).get(first)))
    worker.start()
    try:
        assert started.wait(60)
        with pytest.raises(CacheError) as refused:
            WheelCache(root).get(second)
    finally:
        go_on.set()
        worker.join(120)
    message = str(refused.value)
    assert "no space left" in message and str(small_fs) in message and "held by other unpacks" in message
    assert "\n" not in message
    assert len(results) == 1 and results[0].name == "first"  # type: ignore[attr-defined]
    assert [e.name for e in WheelCache(root).iter_entries()] == ["first"]
    assert list((root / "tmp").iterdir()) == []


#: a sitecustomize that SIGKILLs the process as it starts to write a RECORD
#: in site-packages: after pip (or we) wrote INSTALLER, before RECORD
KILL_AT_RECORD = '''
import builtins, os, signal

def _record(path):
    path = os.fspath(path)
    return os.path.basename(path) == "RECORD" and path.endswith(".dist-info" + os.sep + "RECORD") and "site-packages" in path

def _die():
    os.kill(os.getpid(), signal.SIGKILL)

_open, _os_open, _replace, _rename = builtins.open, os.open, os.replace, os.rename

def open(file, mode="r", *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and _record(file) and any(c in mode for c in "wax+"):
        _die()
    return _open(file, mode, *args, **kwargs)

def os_open(path, flags, *args, **kwargs):
    if _record(path) and flags & (os.O_WRONLY | os.O_RDWR):
        _die()
    return _os_open(path, flags, *args, **kwargs)

def replace(src, dst, *args, **kwargs):
    if _record(dst):
        _die()
    return _replace(src, dst, *args, **kwargs)

def rename(src, dst, *args, **kwargs):
    if _record(dst):
        _die()
    return _rename(src, dst, *args, **kwargs)

builtins.open, os.open, os.replace, os.rename = open, os_open, replace, rename
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of a process is POSIX's (the injection kills itself with it)")
def test_an_install_killed_between_installer_and_record_is_healed(tmp_path: Path) -> None:
    """Through the pip front end, a kill after the wheel's INSTALLER and
    before its RECORD leaves a .dist-info pip would call installed and could
    not uninstall. The next install removes it and the wheel's files that
    are still the cache's, says so in one line, and installs."""
    venv, site, dist_info, _ = _killed_at_record(tmp_path)
    assert (site / "demo" / "core.py").is_file()
    stray = site / "demo" / "mine.txt"  # not the wheel's: stays
    stray.write_text("kept\n")

    proc = subprocess.run(_install_args(tmp_path, venv), capture_output=True, text=True, env=_env())
    assert proc.returncode == 0, proc.stderr
    told = [line for line in proc.stderr.splitlines() if "killed install" in line]
    assert len(told) == 1 and "demo 1.0" in told[0] and str(site) in told[0], proc.stderr
    assert (dist_info / "RECORD").is_file() and "Successfully installed demo-1.0" in proc.stdout
    assert stray.read_text() == "kept\n"
    stray.unlink()
    uninstall = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(venv), "uninstall", "-y", "demo"],
                               capture_output=True, text=True)
    assert uninstall.returncode == 0, uninstall.stderr
    assert not list(site.glob("demo*"))


def _install_args(tmp_path: Path, venv: Path) -> list[str]:
    """The front end's hardlink install of the demo wheel built in ``tmp_path/w``."""
    (wheel,) = (tmp_path / "w").glob("*.whl")
    return [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink",
            "--cache-dir", str(tmp_path / "cache"), "--no-index", "--no-deps", "--no-compile", str(wheel)]


def _killed_at_record(tmp_path: Path) -> tuple[Path, Path, Path, WheelCache]:
    """A venv where a hardlink install of the demo was killed after its
    INSTALLER, before its RECORD: (venv, site-packages, the .dist-info, cache)."""
    build_wheel(tmp_path / "w", demo_spec(long_paths=False))
    venv = make_venv(tmp_path / "venv")
    killer = tmp_path / "killer"
    killer.mkdir()
    (killer / "sitecustomize.py").write_text(KILL_AT_RECORD)
    proc = subprocess.run(_install_args(tmp_path, venv), capture_output=True, text=True,
                          env={**_env(), "PYTHONPATH": f"{killer}{os.pathsep}{REPO}"})
    assert proc.returncode != 0
    site = site_packages(venv)
    (dist_info,) = site.glob("demo-*.dist-info")
    assert (dist_info / "INSTALLER").is_file() and not (dist_info / "RECORD").exists(), "not killed where aimed"
    return venv, site, dist_info, WheelCache(tmp_path / "cache")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of a process is POSIX's (the injection kills itself with it)")
@pytest.mark.parametrize("case", ["install-running", "linked-package-dir", "damaged-entry"])
def test_healing_leaves_what_is_not_a_killed_install_of_its_own(case: str, tmp_path: Path) -> None:
    """What the heal must not remove: an install from the entry running now
    (it holds the entry's lock, and writes RECORD last), files reached
    through a package directory linked elsewhere (a developer's checkout
    with the same bytes), and anything when the entry's manifest cannot be
    read (then one line, no traceback)."""
    from pip_linkmode.pip_plugin import heal_killed_installs

    venv, site, dist_info, cache = _killed_at_record(tmp_path)
    key = next(e.key for e in cache.iter_entries())
    core = site / "demo" / "core.py"
    if case == "install-running":
        lock = WheelCache(cache.root).lock(key)
        assert lock.acquire(blocking=False)
        try:
            assert heal_killed_installs(WheelCache(cache.root), [str(site)]) == []
        finally:
            lock.release()
        assert (dist_info / "INSTALLER").is_file() and core.is_file()
        told = heal_killed_installs(WheelCache(cache.root), [str(site)])  # (the lock released: a killed one)
        assert len(told) == 1 and not dist_info.exists() and not core.exists(), told
    elif case == "linked-package-dir":
        checkout = tmp_path / "checkout"
        shutil.copytree(site / "demo", checkout)  # the same bytes: the hash matches
        shutil.rmtree(site / "demo")
        (site / "demo").symlink_to(checkout, target_is_directory=True)
        told = heal_killed_installs(WheelCache(cache.root), [str(site)])
        assert len(told) == 1 and "0 of its files" in told[0], told
        assert (checkout / "core.py").is_file() and sorted(os.listdir(checkout)) == sorted(os.listdir(site / "demo"))
    else:
        manifest = cache.entry_dir(key) / "entry.json"
        data = json.loads(manifest.read_bytes())
        data["files"][0][0] = "../../../outside.py"
        manifest.write_text(json.dumps(data))
        told = heal_killed_installs(WheelCache(cache.root), [str(site)])
        assert len(told) == 1 and "left it" in told[0] and "\n" not in told[0], told
        assert (dist_info / "INSTALLER").is_file() and core.is_file()


@pytest.mark.parametrize(("args", "env", "where"), [
    (["demo"], {}, "site"),
    (["--user", "demo"], {}, "user"),
    (["--targ", "{tmp}/t", "demo"], {}, "none"),  # an abbreviation pip's parser takes
    (["-Ut", "{tmp}/t", "demo"], {}, "none"),
    (["--pref", "{tmp}/p", "demo"], {}, "none"),
    (["demo"], {"PIP_TARGET": "{tmp}/t"}, "none"),
    (["demo"], {"PIP_PREFIX": "{tmp}/p"}, "none"),
    # linkmode among use-feature's values: pip's parser takes it while the opt-in runs pip
    (["--use-feature=linkmode", "demo"], {}, "site"),
    (["demo"], {"PIP_USE_FEATURE": "linkmode"}, "site"),
    (["--user", "demo"], {"PIP_USE_FEATURE": "linkmode"}, "user"),
])
def test_healing_looks_only_where_pip_installs(args: list[str], env: dict[str, str], where: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The heal looks in this interpreter's site-packages only when pip, by
    its own reading of the arguments and PIP_* variables, installs there."""
    import site as site_mod
    import sysconfig

    from pip_linkmode.pip_plugin import _default_site_dirs, _pip_view

    for name, value in env.items():
        monkeypatch.setenv(name, value.format(tmp=tmp_path))
    view = _pip_view([a.format(tmp=tmp_path) for a in args])
    found = _default_site_dirs(view)
    expected = {
        "site": list(dict.fromkeys(os.path.abspath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib"))),
        "user": [site_mod.getusersitepackages()],
        "none": [],
    }[where]
    assert found == expected


def test_pip_no_cache_dir_is_read_with_the_feature_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """``PIP_NO_CACHE_DIR`` beside ``PIP_USE_FEATURE=linkmode``: pip's parser
    must take the feature, or the run would fill the kept cache."""
    from pip_linkmode.pip_plugin import _pip_view

    monkeypatch.setenv("PIP_USE_FEATURE", "linkmode")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    view = _pip_view(["demo"])
    assert view.no_cache and view.installs_into == "site"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of a process is POSIX's (the injection kills itself with it)")
@pytest.mark.parametrize("case", ["no-cache-dir", "other-entry-damaged", "not-in-the-cache"])
def test_healing_finds_the_entry_in_the_kept_cache(case: str, tmp_path: Path) -> None:
    """``--no-cache-dir`` heals from the kept cache (the temporary one holds
    no entry of the killed install); another project's damaged entry does
    not stop it; a wheel the cache does not hold is left, with the fix."""
    venv, site, dist_info, cache = _killed_at_record(tmp_path)
    args = _install_args(tmp_path, venv)
    if case == "no-cache-dir":
        args.insert(args.index("--cache-dir"), "--no-cache-dir")
    elif case == "other-entry-damaged":
        other = build_wheel(tmp_path / "o", WheelSpec(name="other", files={"other/x.py": b"x = 1\n"}))
        entry = WheelCache(cache.root).get(other)
        (entry.root / "entry.json").write_text("{not json")
    else:
        args[args.index("--cache-dir") + 1] = str(tmp_path / "another-cache")
    proc = subprocess.run(args, capture_output=True, text=True, env=_env())
    told = [line for line in proc.stderr.splitlines() if "killed install" in line]
    assert len(told) == 1 and "Traceback" not in proc.stderr, proc.stderr
    if case == "not-in-the-cache":
        assert "left it: its wheel is not in the cache" in told[0] and f"remove {dist_info}" in told[0], told
        assert (dist_info / "INSTALLER").is_file()
    else:
        assert proc.returncode == 0, proc.stderr
        assert told[0].startswith("pip-linkmode: removed what a killed install of demo 1.0 left"), told
        assert (dist_info / "RECORD").is_file()
