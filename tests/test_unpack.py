"""Unpacking into the cache: large members read by the cache's own reader
(with zlib-ng's inflater and with the stdlib's), and large first installs
unpacked by worker processes."""

from __future__ import annotations

import functools
import json
import os
import pickle
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
from wheelmaker import WheelSpec, build_wheel

from pip_linkmode import InvalidWheel, WheelCache, archive, bytecode
from pip_linkmode._cachecore import UnsafeCachePath

try:
    from zlib_ng import zlib_ng
except ImportError:  # pragma: no cover - where zlib-ng publishes no wheel
    zlib_ng = None

INFLATERS = [pytest.param(zlib, id="stdlib-zlib"), pytest.param(
    zlib_ng, id="zlib-ng", marks=pytest.mark.skipif(zlib_ng is None, reason="zlib-ng has no wheel for this platform"))]
LARGE = archive._WHOLE + 1


@pytest.fixture(params=INFLATERS)
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> object:
    """The cache's inflater for the test: zlib-ng's, then the stdlib's."""
    monkeypatch.setattr(archive, "_inflater", request.param)
    return request.param


def _low_entropy(size: int) -> bytes:
    """About one bit per byte: deflate shrinks it about 6 times, so a large
    member's compressed chunk inflates to more than one output chunk."""
    return os.urandom(size).translate(bytes(97 + (i & 1) for i in range(256)))


def _members() -> dict[str, bytes]:
    return {
        "big/random.bin": os.urandom(archive._CHUNK * 2 + 12345),  # stays large compressed: several reads
        "big/expands.txt": _low_entropy(archive._CHUNK * 5),  # one read inflates to several chunks
        "big/tool.py": (b"#!python\n" + os.urandom(LARGE)),
        "big/__init__.py": b"",
    }


def _stored(wheel: Path, names: set[str]) -> Path:
    """The wheel rewritten with ``names`` stored, not deflated."""
    with zipfile.ZipFile(wheel) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(wheel, "w") as zf:
        for info, data in members:
            info.compress_type = zipfile.ZIP_STORED if info.filename in names else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def _central(raw: bytearray, name: str) -> int:
    """The offset of ``name``'s central directory record."""
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len] == name.encode():
            return at
        at = raw.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} not in the central directory")


@pytest.mark.parametrize("stored", [False, True], ids=["deflated", "stored"])
def test_large_members_unpack_to_what_zipfile_reads(
    inflater: object, stored: bool, tmp_path: Path
) -> None:
    files = _members()
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="big", files=files))
    if stored:
        _stored(wheel, set(files))
    with zipfile.ZipFile(wheel) as zf:
        large = [i.filename for i in zf.infolist() if i.compress_size > archive._WHOLE]
    assert set(large) == {"big/random.bin", "big/expands.txt", "big/tool.py"}  # the chunked reader's
    entry = WheelCache(tmp_path / "cache").get(wheel)
    for name, data in files.items():
        assert (entry.tree / name).read_bytes() == data, name
    shebangs = {f.path for f in entry.files if f.python_shebang}
    assert shebangs == {"big/tool.py"}  # the first bytes of a chunked member are seen


@pytest.mark.parametrize("stored", [False, True], ids=["deflated", "stored"])
def test_a_large_member_with_a_flipped_byte_is_refused(
    inflater: object, stored: bool, tmp_path: Path
) -> None:
    body = os.urandom(archive._CHUNK + LARGE)
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="flip", files={"flip/data.bin": body}))
    if stored:
        _stored(wheel, {"flip/data.bin"})
    raw = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("flip/data.bin")
    at = info.header_offset + 30 + len(info.filename) + archive._CHUNK + 100  # in its second chunk
    raw[at] ^= 0xFF
    wheel.write_bytes(bytes(raw))
    with pytest.raises(InvalidWheel) as caught:
        WheelCache(tmp_path / "cache").get(wheel)
    assert caught.value.member == "flip/data.bin"
    assert "cannot be read" in caught.value.reason
    assert not list((tmp_path / "cache" / "entries").iterdir())


def test_a_large_member_whose_data_ends_early_is_refused(
    inflater: object, tmp_path: Path
) -> None:
    """The zip and RECORD both declare more bytes than the deflate stream holds."""
    body = os.urandom(LARGE * 2)
    declared = len(body) + 1000

    def bigger(rows: list[list[str]]) -> list[list[str]]:
        for row in rows:
            if row[0] == "short/data.bin":
                row[2] = str(declared)
        return rows

    wheel = build_wheel(tmp_path / "w", WheelSpec(name="short", files={"short/data.bin": body}, record_hook=bigger))
    raw = bytearray(wheel.read_bytes())
    at = _central(raw, "short/data.bin")
    raw[at + 24 : at + 28] = declared.to_bytes(4, "little")
    wheel.write_bytes(bytes(raw))
    with pytest.raises(InvalidWheel) as caught:
        WheelCache(tmp_path / "cache").get(wheel)
    assert caught.value.member == "short/data.bin"
    assert "ended before the declared size" in caught.value.reason


def test_a_large_member_is_read_up_to_its_declared_size_as_zipfile_does(
    inflater: object, tmp_path: Path
) -> None:
    """Data past the declared size is not read (zipfile stops there too):
    the member is its declared bytes, held to the CRC and RECORD of those."""
    body = os.urandom(LARGE * 2)
    declared = body[: LARGE + 7]
    from wheelmaker import record_hash

    def smaller(rows: list[list[str]]) -> list[list[str]]:
        for row in rows:
            if row[0] == "long/data.bin":
                row[1], row[2] = record_hash(declared), str(len(declared))
        return rows

    wheel = build_wheel(tmp_path / "w", WheelSpec(name="long", files={"long/data.bin": body}, record_hook=smaller))
    raw = bytearray(wheel.read_bytes())
    at = _central(raw, "long/data.bin")
    raw[at + 16 : at + 20] = zlib.crc32(declared).to_bytes(4, "little")
    raw[at + 24 : at + 28] = len(declared).to_bytes(4, "little")
    wheel.write_bytes(bytes(raw))
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("long/data.bin") == declared
    entry = WheelCache(tmp_path / "cache").get(wheel)
    assert (entry.tree / "long/data.bin").read_bytes() == declared


def test_errors_raised_in_a_worker_process_keep_their_fields() -> None:
    bad = pickle.loads(pickle.dumps(InvalidWheel("/w/x-1.0-py3-none-any.whl", "x/a.py", "hash contradicts RECORD")))
    assert (bad.wheel, bad.member, bad.reason) == ("/w/x-1.0-py3-none-any.whl", "x/a.py", "hash contradicts RECORD")
    assert str(bad) == "invalid wheel x-1.0-py3-none-any.whl, member 'x/a.py': hash contradicts RECORD"
    unsafe = pickle.loads(pickle.dumps(UnsafeCachePath("/c/entries/k")))
    assert unsafe.path == "/c/entries/k" and str(unsafe) == str(UnsafeCachePath("/c/entries/k"))


def _wheels(directory: Path, n: int) -> list[Path]:
    return [
        build_wheel(directory, WheelSpec(name=f"p{i}", files={f"p{i}/__init__.py": f"N = {i}\n".encode(),
                                                               f"p{i}/blob.bin": os.urandom(20_000)}))
        for i in range(n)
    ]


def _recording_pids(monkeypatch: pytest.MonkeyPatch, log: Path, die_on: str | None = None) -> None:
    """``_unpack_here`` noting the process it runs in (and, for ``die_on``,
    a worker that dies), inherited by the forked workers."""
    original = bytecode._unpack_here

    @functools.wraps(original)
    def unpack_here(root: str, wheel: str) -> tuple[object, bool]:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {os.path.basename(wheel)}\n")
        if die_on is not None and os.path.basename(wheel).startswith(die_on):
            os._exit(9)
        return original(root, wheel)

    monkeypatch.setattr(bytecode, "_unpack_here", unpack_here)


def _any_install_by_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes for any first install, on two of them."""
    monkeypatch.setattr(bytecode, "_PROCESSES_FROM", 0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="worker processes unpack on Linux only (fork)")


@linux_only
def test_a_large_first_install_unpacks_in_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = _wheels(tmp_path / "w", 4)
    log = tmp_path / "pids"
    _recording_pids(monkeypatch, log)
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c1")
    entries = bytecode.prepare(cache, [*wheels, wheels[0]])
    pids = {line.split()[0] for line in log.read_text().splitlines()}
    assert pids and str(os.getpid()) not in pids  # every wheel went to a worker
    assert len(log.read_text().splitlines()) == 4  # the repeated wheel once
    assert sorted(cache.unpacked) == sorted(e.key for e in entries[:4])
    threaded = WheelCache(tmp_path / "c2")
    monkeypatch.setattr(bytecode, "_PROCESSES_FROM", 1 << 60)
    same = bytecode.prepare(threaded, wheels)
    assert [e.key for e in entries] == [e.key for e in [*same, same[0]]]
    for a, b in zip(entries, same, strict=False):
        assert [f[:3] for f in a.files] == [f[:3] for f in b.files]
        assert (a.tree / f"{a.name}/blob.bin").read_bytes() == (b.tree / f"{b.name}/blob.bin").read_bytes()


@linux_only
@pytest.mark.parametrize("in_worker", ["made", "failed"])
def test_a_worker_keeps_the_layout_of_what_it_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_worker: str
) -> None:
    """A worker that unpacked an entry makes and keeps its layout too, so
    the installing process reads it back instead of routing every file; a
    layout the worker could not make is made by the install, unchanged."""
    from pip_linkmode import placement
    from pip_linkmode.source import CachedWheelSource

    original = placement._build_layout
    made_here: list[str] = []
    installing = os.getpid()

    def build(source: CachedWheelSource) -> placement.Layout | None:
        if os.getpid() != installing:
            if in_worker == "failed":
                raise RuntimeError("no layout in this worker")
        else:
            made_here.append(source.entry.name)
        return original(source)

    monkeypatch.setattr(placement, "_build_layout", build)  # (inherited by the forked workers)
    wheels = _wheels(tmp_path / "w", 3)
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    entries = bytecode.prepare(cache, wheels)
    assert sorted(cache.unpacked) == sorted(e.key for e in entries)  # all three fresh, from workers
    kept = [(e.root / placement._LAYOUT_FILE).is_file() for e in entries]
    assert kept == [in_worker == "made"] * 3
    layouts = [placement.load_layout(CachedWheelSource(e, cache)) for e in entries]
    assert made_here == ([] if in_worker == "made" else ["p0", "p1", "p2"])
    assert all(layout is not None for layout in layouts)
    fresh = [original(CachedWheelSource(e, cache)) for e in entries]
    assert json.dumps(layouts) == json.dumps(fresh)  # (as kept: lists where made tuples)


@linux_only
def test_a_wheel_refused_in_a_worker_is_refused_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = _wheels(tmp_path / "w", 3)
    bad = build_wheel(tmp_path / "w", WheelSpec(name="bad", files={"bad/a.py": b"a"}, record_hook=lambda rows: [
        [r[0], "sha256=AAAA", r[2]] if r[0] == "bad/a.py" else r for r in rows]))
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(InvalidWheel) as caught:
        bytecode.prepare(cache, [*wheels, bad])
    assert (caught.value.wheel, caught.value.member) == (str(bad), "bad/a.py")
    assert "hash contradicts RECORD" in caught.value.reason
    assert not list(cache.tmp_dir.iterdir())  # the worker cleaned up after itself


@linux_only
def test_a_worker_that_dies_leaves_its_wheels_to_the_installing_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = _wheels(tmp_path / "w", 3)
    log = tmp_path / "pids"
    _recording_pids(monkeypatch, log, die_on="p1")
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    entries = bytecode.prepare(cache, wheels)
    assert [e.name for e in entries] == ["p0", "p1", "p2"]
    for e in entries:
        assert (e.tree / f"{e.name}/__init__.py").read_text() == f"N = {e.name[1:]}\n"
    assert any(line.endswith("p1-1.0-py3-none-any.whl") for line in log.read_text().splitlines())


@linux_only
def test_the_pip_door_unpacks_each_wheel_as_pip_prepares_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook on pip's preparer hands each prepared wheel file to worker
    processes while pip goes on; the install's own pass then finds them."""
    from pip_linkmode.modes import LinkMode
    from pip_linkmode.pip_plugin import _Hook

    wheels = _wheels(tmp_path / "w", 3)
    log = tmp_path / "pids"
    _recording_pids(monkeypatch, log)
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    hook = _Hook(LinkMode.HARDLINK, cache)
    assert hook.early is not None

    class Req:
        def __init__(self, path: str | None, editable: bool = False) -> None:
            self.local_file_path, self.editable = path, editable

    prepared: list[str | None] = []
    prepare = hook.wrap_prepare_linked(lambda preparer, req, *a, **k: prepared.append(req.local_file_path) or "dist")
    try:
        for req in (Req(str(wheels[0])), Req(None), Req(str(tmp_path / "x.tar.gz")), Req(str(wheels[1])),
                    Req(str(wheels[2]), editable=True), Req(str(wheels[0]))):
            assert prepare(object(), req) == "dist"  # pip's result, passed on
        assert len(prepared) == 6
        answered: list[str] = []
        cache.answered = lambda wheel, entry: answered.append(wheel) or entry  # type: ignore[method-assign]
        hook.early.settle()
        assert sorted(answered) == sorted(str(w) for w in wheels[:2])  # what a progress display counts
        assert hook.early._pool is None  # the workers end once pip installs
        hook.early.add(str(tmp_path / "later.whl"))  # (nothing more is taken)
        assert hook.early._futures == [] and hook.early._waiting == []
    finally:
        hook.early.close()
    done = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(done) == sorted(w.name for w in wheels[:2])  # each wheel file once, editable and sdists not
    assert str(os.getpid()) not in {line.split()[0] for line in log.read_text().splitlines()}
    assert len(cache.unpacked) == 2
    assert all(cache.get_indexed(w) is not None for w in wheels[:2])


@linux_only
def test_a_worker_killed_mid_unpack_leaves_nothing_half_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that dies between two members of a wheel: the installing
    process unpacks that wheel itself (its lock died with the worker), the
    half-filled temporary tree is swept, and every entry is whole."""
    wheels = _wheels(tmp_path / "w", 3)
    parent = os.getpid()
    original = archive.Unpacker._write

    def dying_write(self: archive.Unpacker, info: zipfile.ZipInfo, *args: object, **kwargs: object) -> bool:
        if os.getpid() != parent and info.filename == "p1/blob.bin":
            (tmp_path / "died").write_text(str(os.getpid()))
            os._exit(9)  # after p1/__init__.py, before its blob
        return original(self, info, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(archive.Unpacker, "_write", dying_write)
    _any_install_by_workers(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    entries = bytecode.prepare(cache, wheels)
    assert (tmp_path / "died").is_file()  # a worker did die mid-unpack
    assert [e.name for e in entries] == ["p0", "p1", "p2"]
    blob = zipfile.ZipFile(wheels[1]).read("p1/blob.bin")
    assert (entries[1].tree / "p1/blob.bin").read_bytes() == blob
    assert not list(cache.tmp_dir.iterdir())  # the dead worker's tree is gone
    assert sorted(p.name for p in cache.entries_dir.iterdir()) == sorted(e.key for e in entries)


def test_the_first_bytes_of_a_large_member_are_seen_whatever_its_first_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deflate stream can give its first bytes a few at a time (empty
    blocks between them): ``#!python`` is still seen, as zipfile reads it."""
    original = archive.Unpacker._chunks

    def dribbling(self: archive.Unpacker, info: zipfile.ZipInfo, start: int):  # type: ignore[no-untyped-def]
        next_chunk = original(self, info, start)
        calls = [0]

        def first_ones_short(most: int) -> bytes:
            calls[0] += 1
            return next_chunk(3 if calls[0] < 4 else most)

        return first_ones_short

    monkeypatch.setattr(archive.Unpacker, "_chunks", dribbling)
    body = b"#!python\n" + os.urandom(LARGE)
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="sh", files={"sh-1.0.data/scripts/tool": (body, 0o755)}))
    entry = WheelCache(tmp_path / "cache").get(wheel)
    assert (entry.tree / "sh-1.0.data/scripts/tool").read_bytes() == body
    assert [f.python_shebang for f in entry.files if f.path.endswith("/tool")] == [True]


def test_dry_run_is_read_as_pip_reads_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """--dry-run from pip's command line or its environment: no early unpack."""
    from pip_linkmode.pip_plugin import _pip_view

    assert _pip_view(["--dry-run", "six"]).dry_run
    assert not _pip_view(["six"]).dry_run
    monkeypatch.setenv("PIP_DRY_RUN", "1")
    assert _pip_view(["six"]).dry_run
