"""The wheel cache: keys, verified unpacking, atomic publishing, rejections."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from wheelmaker import WheelSpec, build_wheel, demo_spec, record_hash

from pip_linkmode import InvalidWheel, WheelCache
from pip_linkmode.cache import CacheError, default_cache_dir

ROOT = Path(__file__).resolve().parent.parent


def test_default_dir_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIP_LINKMODE_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert WheelCache().root == tmp_path / "c"
    monkeypatch.delenv("PIP_LINKMODE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_cache_dir() == tmp_path / "xdg" / "pip-linkmode"


def test_unpack_verifies_and_publishes_once(demo_wheel: Path, cache_dir: Path) -> None:
    cache = WheelCache(cache_dir)
    entry = cache.get(demo_wheel)
    assert cache.unpacked == [entry.key]
    again = cache.get(demo_wheel)
    assert again == entry and cache.unpacked == [entry.key]  # warm hit, no unpack
    assert (entry.tree / "demo/core.py").read_bytes().startswith(b"def hello")
    assert list((cache_dir / "tmp").iterdir()) == []
    assert [p.name for p in (cache_dir / "entries").iterdir()] == [entry.key]
    listed = {f.path for f in entry.files}
    with zipfile.ZipFile(demo_wheel) as zf:
        assert listed == {n for n in zf.namelist() if not n.endswith("RECORD")}


def test_key_changes_with_content_under_same_filename(tmp_path: Path, cache_dir: Path) -> None:
    cache = WheelCache(cache_dir)
    spec = demo_spec()
    first = build_wheel(tmp_path / "a", spec)
    entry1 = cache.get(first)
    spec.files = {**spec.files, "demo/core.py": b"def hello():\n    return 'CHANGED'\n"}
    second = build_wheel(tmp_path / "b", spec)
    assert first.name == second.name
    entry2 = cache.get(second)
    assert entry2.key != entry1.key
    assert b"CHANGED" in (entry2.tree / "demo/core.py").read_bytes()
    assert b"CHANGED" not in (entry1.tree / "demo/core.py").read_bytes()


def test_warm_key_reads_only_index_and_record(demo_wheel: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = WheelCache(cache_dir)
    cache.get(demo_wheel)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: object, *a: object, **k: object) -> object:
        opened.append(name if isinstance(name, str) else name.filename)  # type: ignore[attr-defined]
        return real_open(self, name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    entry = cache.get(demo_wheel)
    assert opened == []  # the same file, unchanged: its key comes from the index
    os.utime(demo_wheel)  # touched: the key is computed again, from the zip index and RECORD
    assert cache.get(demo_wheel).key == entry.key
    assert opened == ["demo-1.0.dist-info/RECORD"]
    assert len(list(cache.index_dir.iterdir())) == 1


def test_wheel_rewritten_in_place_with_same_size_and_mtime_gets_its_own_entry(
    cache_dir: Path, tmp_path: Path
) -> None:
    """The index trusts a file only while inode, size, mtime and ctime all match;
    ctime cannot be set back, so a rewrite is always seen."""
    cache = WheelCache(cache_dir)
    spec = demo_spec()
    wheel = build_wheel(tmp_path / "w", spec)
    first = cache.get(wheel)
    before = os.stat(wheel)
    core = spec.files["demo/core.py"]
    # Same length, different bytes; RECORD's hashes compress unevenly, so try
    # variants until one gives a zip of exactly the same size.
    variants = [core.replace(b"hello from core", b"hello from %04d" % n) for n in range(400)]
    for i, variant in enumerate(variants):
        spec.files = {**spec.files, "demo/core.py": variant}
        rebuilt = build_wheel(tmp_path / f"x{i}", spec)
        if rebuilt.stat().st_size == before.st_size:
            break
    else:
        pytest.fail("no same-size variant of the wheel")
    with open(wheel, "r+b") as f:  # same inode, same size
        f.write(rebuilt.read_bytes())
    os.utime(wheel, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime
    second = cache.get(wheel)
    assert second.key != first.key
    assert (second.tree / "demo/core.py").read_bytes() != (first.tree / "demo/core.py").read_bytes()


def test_executable_bits_kept_and_link_members_stored_as_files(make_wheel, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    spec = WheelSpec(
        files={
            "pkg/__init__.py": b"",
            "pkg/run.sh": (b"#!/bin/sh\n", 0o755),
            "pkg/link": (b"/etc/passwd", stat.S_IFLNK | 0o777),
            "pkg/dev": (b"xx", stat.S_IFCHR | 0o644),
        }
    )
    entry = WheelCache(cache_dir).get(make_wheel(spec))
    run = entry.tree / "pkg/run.sh"
    assert os.stat(run).st_mode & 0o111 or os.name == "nt"  # Windows keeps no executable bits
    link = entry.tree / "pkg/link"
    assert not link.is_symlink() and link.read_bytes() == b"/etc/passwd"
    assert not os.stat(link).st_mode & 0o111
    dev = entry.tree / "pkg/dev"
    assert stat.S_ISREG(os.lstat(dev).st_mode) and dev.read_bytes() == b"xx"


def _rows_set(path: str, field: int, value: str):  # type: ignore[no-untyped-def]
    def hook(rows: list[list[str]]) -> list[list[str]]:
        for row in rows:
            if row[0] == path:
                row[field] = value
        return rows

    return hook


BAD_WHEELS = {
    "absolute": (WheelSpec(raw_members=[("/etc/evil", b"x", 0o644)]), "/etc/evil", "absolute path"),
    "dotdot": (WheelSpec(raw_members=[("pkg/../../evil.py", b"x", 0o644)]), "pkg/../../evil.py", "'..' in member name"),
    "backslash": (WheelSpec(raw_members=[("pkg\\..\\evil.py", b"x", 0o644)]), "pkg\\..\\evil.py", "backslash"),
    "drive": (WheelSpec(raw_members=[("C:/evil.py", b"x", 0o644)]), "C:/evil.py", "absolute path"),
    "not-normal": (WheelSpec(raw_members=[("pkg/./x.py", b"x", 0o644)]), "pkg/./x.py", "normal form"),
    "duplicate": (
        WheelSpec(files={"pkg/a.py": b"a"}, raw_members=[("pkg/a.py", b"b", 0o644)]),
        "pkg/a.py",
        "duplicate member",
    ),
    "hash": (
        WheelSpec(files={"pkg/a.py": b"a"}, record_hook=_rows_set("pkg/a.py", 1, record_hash(b"b"))),
        "pkg/a.py",
        "hash contradicts RECORD",
    ),
    "size": (
        WheelSpec(files={"pkg/a.py": b"abc"}, record_hook=_rows_set("pkg/a.py", 2, "2")),
        "pkg/a.py",
        "zip declares 3 bytes, RECORD 2",
    ),
    "size-short": (
        WheelSpec(files={"pkg/a.py": b"abc"}, record_hook=_rows_set("pkg/a.py", 2, "10")),
        "pkg/a.py",
        "zip declares 3 bytes, RECORD 10",
    ),
    "unlisted": (
        WheelSpec(files={"pkg/a.py": b"a"}, raw_members=[("pkg/extra.py", b"x", 0o644)]),
        "pkg/extra.py",
        "not listed in RECORD",
    ),
    "no-hash": (
        WheelSpec(files={"pkg/a.py": b"a"}, record_hook=_rows_set("pkg/a.py", 1, "")),
        "pkg/a.py",
        "RECORD gives no hash or size",
    ),
    "weak-hash": (
        WheelSpec(files={"pkg/a.py": b"a"}, record_hook=_rows_set("pkg/a.py", 1, "md5=abc")),
        "pkg/a.py",
        "unsupported hash",
    ),
    "dist-info-name": (
        WheelSpec(files={"pkg/a.py": b"a"}, dist_info_name="other-1.0.dist-info"),
        "other-1.0.dist-info",
        "does not match the wheel's project name",
    ),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(BAD_WHEELS))
def test_bad_wheels_are_rejected_naming_wheel_and_member(case: str, make_wheel, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec, member, reason = BAD_WHEELS[case]
    wheel = make_wheel(spec)
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(InvalidWheel) as info:
        cache.get(wheel)
    message = str(info.value)
    assert wheel.name in message and repr(member) in message and reason in message
    assert list((tmp_path / "c" / "entries").iterdir()) == []
    assert list((tmp_path / "c" / "tmp").iterdir()) == []
    assert not (tmp_path / "evil.py").exists() and not Path("/etc/evil").exists()


def test_malformed_zip_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "demo-1.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(InvalidWheel, match="demo-1.0-py3-none-any.whl.*not a readable zip"):
        WheelCache(tmp_path / "c").get(bad)


def test_missing_record_is_rejected(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
    with pytest.raises(InvalidWheel, match="'demo-1.0.dist-info/RECORD': missing"):
        WheelCache(tmp_path / "c").get(wheel)


def test_unwritable_cache_dir_is_a_clear_error(tmp_path: Path, demo_wheel: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(CacheError, match="cannot use cache directory .*PIP_LINKMODE_CACHE_DIR"):
        WheelCache(blocker / "cache").get(demo_wheel)


_UNPACKER = """
import sys
from pip_linkmode import WheelCache
WheelCache(sys.argv[1]).get(sys.argv[2])
print("done")
"""


def test_concurrent_processes_unpack_once(demo_wheel: Path, cache_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _UNPACKER, str(cache_dir), str(demo_wheel)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6 and all("done" in o for o in outs)
    entries = list((cache_dir / "entries").iterdir())
    assert len(entries) == 1
    assert list((cache_dir / "tmp").iterdir()) == []
    data = json.loads((entries[0] / "entry.json").read_text())
    assert data["filename"] == demo_wheel.name


def test_killed_unpack_leaves_no_entry(tmp_path: Path, cache_dir: Path) -> None:
    # A wheel large enough that unpacking takes a while.
    files = {f"big/f{i:04d}.bin": os.urandom(64 * 1024) for i in range(600)}
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="big", files=files))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _UNPACKER, str(cache_dir), str(wheel)], env=env)
    tmp = cache_dir / "tmp"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        leftovers = list(tmp.glob("*/tree/big")) if tmp.exists() else []
        if leftovers and any(leftovers[0].iterdir()):
            break
        time.sleep(0.005)
    else:
        proc.kill()
        pytest.fail("the unpack never started")
    proc.kill()  # SIGKILL; TerminateProcess on Windows
    proc.wait()
    assert list((cache_dir / "entries").iterdir()) == []  # no partial entry
    assert list(tmp.iterdir())  # a temp leftover at most
    cache = WheelCache(cache_dir)
    entry = cache.get(wheel)  # the next run cleans up and succeeds
    assert list(tmp.iterdir()) == []
    assert len([f for f in entry.files if f.path.startswith("big/")]) == 600
    assert (entry.tree / "big/f0599.bin").read_bytes() == files["big/f0599.bin"]


_LOCKER = """
import sys, time
from pip_linkmode._cachecore import OsFileLock
with OsFileLock(sys.argv[1]):
    with open(sys.argv[2], "a") as f:
        f.write("in\\n"); f.flush(); time.sleep(0.3); f.write("out\\n")
"""


def test_os_file_lock_excludes_other_processes(tmp_path: Path) -> None:
    # The fallback lock used where the installed filelock does not import.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", _LOCKER, str(tmp_path / "l.lock"), str(log)], env=env) for _ in range(3)]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0]
    assert log.read_text() == "in\nout\n" * 3  # never interleaved


@pytest.mark.skipif(sys.platform == "win32", reason="on Windows the cache's entry lock is filelock's own")
def test_the_cache_lock_and_filelocks_lock_exclude_each_other(tmp_path: Path) -> None:
    """The cache takes its entry locks with flock itself (filelock's costs 25
    times the CPU per use). An older pip-linkmode took them with filelock's
    FileLock: each must exclude the other."""
    from filelock import FileLock, Timeout

    from pip_linkmode._cachecore import OsFileLock

    lock = WheelCache(tmp_path / "cache").lock("0" * 40)
    assert isinstance(lock.inner, OsFileLock)
    with FileLock(lock.path):
        assert lock.acquire(blocking=False) is False
    assert lock.acquire(blocking=False) is True
    try:
        with pytest.raises(Timeout):
            FileLock(lock.path).acquire(timeout=0)
    finally:
        lock.release()
    with FileLock(lock.path).acquire(timeout=0):
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="msvcrt's lock is the handle's, not a shared open file's")
def test_a_released_entry_lock_is_free_while_a_child_shares_its_file(tmp_path: Path) -> None:
    """A process started (or forked) while an entry lock was held shares the
    open lock file. Releasing unlocks it for every sharer: closing it alone
    left it held until that child ended, so every install waiting for the
    entry waited for it."""
    cache = WheelCache(tmp_path / "cache")
    lock = cache.lock("2" * 40)
    lock.acquire(blocking=True)
    fd = lock.inner._fd
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE, pass_fds=[fd])
    try:
        other = WheelCache(tmp_path / "cache").lock("2" * 40)
        assert other.acquire(blocking=False) is False  # (held: the two exclude each other here)
        lock.release()
        assert other.acquire(blocking=False) is True
        other.release()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def test_an_entry_lock_excludes_other_threads(tmp_path: Path) -> None:
    """Re-entrant for the thread holding it, exclusive for any other (the
    cache unpacks wheels on several threads: two copies of one wheel at
    two paths are one entry, unpacked once)."""
    import threading

    from pip_linkmode import bytecode

    lock = WheelCache(tmp_path / "cache").lock("1" * 40)
    got: list[bool] = []
    with lock:
        with lock:  # re-entrant here
            worker = threading.Thread(target=lambda: got.append(lock.acquire(blocking=False)))
            worker.start()
            worker.join()
    assert got == [False]
    files = {f"pkg/m{i}.py": b"x = %d\n" % i * 50 for i in range(1500)}
    a = build_wheel(tmp_path / "a", WheelSpec(name="twice", files=files))
    b = tmp_path / "b" / a.name
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    for attempt in range(3):
        cache = WheelCache(tmp_path / f"c{attempt}")
        entries = bytecode.prepare(cache, [a, b])
        assert len(entries) == 2 and entries[0].key == entries[1].key
        assert len(cache.unpacked) == 1, cache.unpacked


def test_a_member_is_what_zipfile_reads_even_past_its_declared_size(tmp_path: Path) -> None:
    """The cache reads small members itself (one read, one inflate): it must
    read what zipfile reads. Here RECORD's stored bytes run past the size and
    CRC the central directory declares (a row smuggled after them); zipfile
    stops at the declared size, and so does the cached copy, which the pip
    front end reads back as the wheel's RECORD."""
    import zlib

    body = b"smug/__init__.py,%s,4\nsmug-1.0.dist-info/METADATA,%s,%d\nsmug-1.0.dist-info/RECORD,,\n"
    meta = b"Metadata-Version: 2.1\nName: smug\nVersion: 1.0\n"
    record = body % (record_hash(b"X=1\n").encode(), record_hash(meta).encode(), len(meta))
    wheel_meta = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = record.replace(b"smug-1.0.dist-info/RECORD,,\n",
                            b"smug-1.0.dist-info/WHEEL,%s,%d\nsmug-1.0.dist-info/RECORD,,\n"
                            % (record_hash(wheel_meta).encode(), len(wheel_meta)))
    smuggled = record + b"smug/extra.py,,\n"
    wheel = tmp_path / "smug-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("smug/__init__.py", b"X=1\n")
        zf.writestr("smug-1.0.dist-info/METADATA", meta)
        zf.writestr("smug-1.0.dist-info/WHEEL", wheel_meta)
        zf.writestr("smug-1.0.dist-info/RECORD", smuggled)
    raw = bytearray(wheel.read_bytes())
    name = b"smug-1.0.dist-info/RECORD"
    entry = raw.rfind(b"PK\x01\x02" + bytes(0), 0, raw.rfind(name))  # its central directory entry
    assert raw[entry + 46 : entry + 46 + len(name)] == name
    raw[entry + 16 : entry + 20] = zlib.crc32(record).to_bytes(4, "little")
    raw[entry + 24 : entry + 28] = len(record).to_bytes(4, "little")
    wheel.write_bytes(bytes(raw))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("smug-1.0.dist-info/RECORD") == record  # zipfile's reading
    cached = WheelCache(tmp_path / "cache").get(wheel)
    assert (cached.tree / "smug-1.0.dist-info" / "RECORD").read_bytes() == record


def test_record_rows_split_only_at_line_ends(tmp_path: Path, cache_dir: Path, venv: Path) -> None:
    """A member's name may hold U+2028 or \\x1c-\\x1e (str.splitlines breaks
    lines there, csv does not): the wheel is cached and installs, as pip
    installs it."""
    from conftest import site_packages

    from pip_linkmode import install_wheel

    odd = ["odd/line\u2028sep.txt", "odd/file\x1csep.txt", "odd/group\x1dsep.txt", "odd/record\x1esep.txt"]
    if os.name == "nt":
        odd = odd[:1]  # NTFS refuses characters 1-31 in a name
    spec = demo_spec()
    spec.files = {**spec.files, **{name: name.encode("utf-8") for name in odd}}
    wheel = build_wheel(tmp_path / "w", spec)
    entry = WheelCache(cache_dir).get(wheel)
    assert {f.path for f in entry.files} >= set(odd)
    install_wheel(wheel, venv=venv, cache=cache_dir, link_mode="hardlink")
    for name in odd:
        assert (site_packages(venv) / name).read_bytes() == name.encode("utf-8")
