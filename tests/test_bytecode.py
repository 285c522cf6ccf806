"""Bytecode compiled once into the cache and linked into every environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Mounts, make_venv, other_pythons, site_packages, snapshot, venv_python
from wheelmaker import WheelSpec, build_wheel

from pip_linkmode import WheelCache, install_wheel
from pip_linkmode.bytecode import compiled_rows, ensure_bytecode, prepare

ROOT = Path(__file__).resolve().parent.parent

FILES = {
    "multi/__init__.py": b"from . import a, b\n",
    "multi/a.py": b"def boom():\n    raise RuntimeError('boom')\n",
    "multi/b.py": b"VALUE = 42\n",
    "multi/sub/__init__.py": b"",
    "multi/sub/c.py": b"from multi.b import VALUE\nDOUBLE = VALUE * 2\n",
    "multi/py2_only.py": b"print 'this is Python 2'\n",  # does not compile: skipped
    "multi/templates/tmpl.py": b"{% if x %}{{ x }}{% endif %}\n",  # a template: does not compile
}


def _wheel(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "w", WheelSpec(name="multi", files=FILES))


def _pycs(sp: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(sp)): (p.stat().st_ino, p.read_bytes()) for p in sp.rglob("*.pyc")}


# Python must be free to write bytecode, or "nothing was rewritten" proves nothing.
WRITE_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

IMPORT_ALL = "import multi, multi.a, multi.b, multi.sub, multi.sub.c; print(multi.sub.c.DOUBLE)"


def test_library_links_cached_pycs_listed_in_record(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "cache"
    install_wheel(_wheel(tmp_path), venv=venv, link_mode="hardlink", cache=cache, compile_bytecode=True)
    sp = site_packages(venv)
    tag = sys.implementation.cache_tag
    pyc = sp / f"multi/__pycache__/a.{tag}.pyc"
    assert pyc.exists() and pyc.stat().st_nlink == 2  # linked from the cache
    assert not (sp / f"multi/__pycache__/py2_only.{tag}.pyc").exists()
    record = (sp / "multi-1.0.dist-info/RECORD").read_text()
    assert f"multi/__pycache__/a.{tag}.pyc,," in record
    assert "py2_only" in record and f"py2_only.{tag}.pyc" not in record
    before = _pycs(sp)
    out = subprocess.run([venv_python(venv), "-c", IMPORT_ALL], capture_output=True, text=True, check=True, env=WRITE_ENV)
    assert out.stdout.strip() == "84"
    assert _pycs(sp) == before  # valid as linked: nothing recompiled or rewritten


def test_tracebacks_show_the_environment_path(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "cache"
    install_wheel(_wheel(tmp_path), venv=venv, link_mode="hardlink", cache=cache, compile_bytecode=True)
    out = subprocess.run([venv_python(venv), "-c", "import multi.a; multi.a.boom()"], capture_output=True, text=True)
    assert "RuntimeError: boom" in out.stderr
    assert str(site_packages(venv) / "multi" / "a.py") in out.stderr
    assert str(cache) not in out.stderr


def test_edit_then_import_leaves_cache_untouched(tmp_path: Path) -> None:
    venv = make_venv(tmp_path / "v")
    cache = tmp_path / "cache"
    install_wheel(_wheel(tmp_path), venv=venv, link_mode="hardlink", cache=cache, compile_bytecode=True)
    before = snapshot(cache / "entries")
    sp = site_packages(venv)
    # An editor saving by write-and-rename, as most do.
    src = sp / "multi/b.py"
    tmp = src.with_suffix(".new")
    tmp.write_bytes(b"VALUE = 500\n")  # size differs: timestamp pycs compare mtime (s) and size
    os.replace(tmp, src)
    out = subprocess.run([venv_python(venv), "-c", IMPORT_ALL], capture_output=True, text=True, check=True, env=WRITE_ENV)
    assert out.stdout.strip() == "1000"
    pyc = sp / f"multi/__pycache__/b.{sys.implementation.cache_tag}.pyc"
    assert pyc.stat().st_nlink == 1  # Python wrote a new file and renamed it into place
    assert snapshot(cache / "entries") == before


def test_pip_front_end_links_pycs_and_compiles_once(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    cache = tmp_path / "cache"
    tag = sys.implementation.cache_tag
    for name in ("one", "two"):
        venv = make_venv(tmp_path / name)
        proc = subprocess.run(
            [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink",
             "--cache-dir", str(cache), "--disable-pip-version-check", "--no-index", str(wheel)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr
        sp = site_packages(venv)
        assert (sp / f"multi/sub/__pycache__/c.{tag}.pyc").stat().st_nlink >= 2
        record = (sp / "multi-1.0.dist-info/RECORD").read_text()
        assert f"multi/sub/__pycache__/c.{tag}.pyc,," in record
    markers = list((cache / "entries").glob(f"*/bytecode-{tag}-o0-*.json"))
    assert len(markers) == 1
    one = site_packages(tmp_path / "one") / f"multi/sub/__pycache__/c.{tag}.pyc"
    two = site_packages(tmp_path / "two") / f"multi/sub/__pycache__/c.{tag}.pyc"
    assert one.stat().st_ino == two.stat().st_ino  # the same cached pyc
    # uninstall removes the pycs and leaves the cache alone
    before = snapshot(cache)
    subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(tmp_path / "one"), "uninstall", "-y", "multi"],
                   check=True, capture_output=True)
    assert not one.exists() and snapshot(cache) == before


def test_source_date_epoch_gives_checked_hash_pycs(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    venv = make_venv(tmp_path / "v")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--cache-dir", str(tmp_path / "c"),
         "--disable-pip-version-check", "--no-index", str(wheel)],
        check=True, capture_output=True, env=env,
    )
    pyc = site_packages(venv) / f"multi/__pycache__/b.{sys.implementation.cache_tag}.pyc"
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b11  # hash-based, checked: as compileall does under SOURCE_DATE_EPOCH
    assert list((tmp_path / "c" / "entries").glob("*/bytecode-*-checked_hash.json"))


def _other_pythons() -> list[str]:
    return other_pythons()


def test_interpreters_sharing_a_cache_get_their_own_tags(tmp_path: Path) -> None:
    others = _other_pythons()
    if not others:
        pytest.skip(reason="needs a second interpreter (pyenv 3.10-3.13, or PIP_LINKMODE_TEST_PYTHONS)")
    wheel = _wheel(tmp_path)
    cache = tmp_path / "cache"
    tags = set()
    for python in [sys.executable, *others]:
        venv = make_venv(tmp_path / f"v{len(tags)}", python)
        proc = subprocess.run(
            [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink",
             "--cache-dir", str(cache), "--disable-pip-version-check", "--no-index", str(wheel)],
            capture_output=True, text=True,
        )
        assert proc.returncode == 0, proc.stderr
        tag = subprocess.run([venv_python(venv), "-c", "import sys; print(sys.implementation.cache_tag)"],
                             capture_output=True, text=True, check=True).stdout.strip()
        tags.add(tag)
        assert (site_packages(venv) / f"multi/__pycache__/a.{tag}.pyc").stat().st_nlink >= 2
        out = subprocess.run([venv_python(venv), "-c", IMPORT_ALL], capture_output=True, text=True, check=True, env=WRITE_ENV)
        assert out.stdout.strip() == "84"
    markers = {p.name.split("-o0")[0] for p in (cache / "entries").glob("*/bytecode-*.json")}
    assert markers == {f"bytecode-{t}" for t in tags} and len(tags) == len(others) + 1


_COMPILER = """
import sys
from pip_linkmode import WheelCache
from pip_linkmode.bytecode import ensure_bytecode, prepare
cache = WheelCache(sys.argv[1])
entry = cache.get(sys.argv[2])
print(len(ensure_bytecode(cache, entry)))
"""


def test_concurrent_compiles_of_one_entry(tmp_path: Path) -> None:
    files = {f"many/m{i}.py": f"X = {i}\n".encode() for i in range(300)}  # takes the parallel path
    wheel = build_wheel(tmp_path / "w", WheelSpec(name="many", files=files))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILER, str(tmp_path / "c"), str(wheel)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["300"] * 4
    cache = WheelCache(tmp_path / "c")
    entry = cache.get(wheel)
    assert len(ensure_bytecode(cache, entry)) == 300


def test_stream_pool_compiles_as_in_process_and_reports_a_dead_worker(tmp_path: Path) -> None:
    """The pool Windows compiles with (standard streams, not multiprocessing):
    the same pycs as compiling in this process, failures skipped alike, and
    a worker that dies is an error on its task, not a hang."""
    from pip_linkmode.bytecode import _compile_many, _StreamPool

    src = tmp_path / "src"
    src.mkdir()
    paths = []
    for i in range(40):
        (src / f"m{i}.py").write_text(f"X = {i}\n" if i % 7 else "print 'py2'\n")
        paths.append(str(src / f"m{i}.py"))
    pool = _StreamPool(2)
    try:
        futures = [pool.submit(_compile_many, (paths[k : k + 8], (0, 1), "CHECKED_HASH")) for k in range(0, 40, 8)]
        got = sorted(item for f in futures for item in f.result(timeout=120))
    finally:
        pool.shutdown()
    pycs = {p: p.read_bytes() for p in src.rglob("*.pyc")}
    for p in pycs:
        p.unlink()
    want = sorted(_compile_many((paths, (0, 1), "CHECKED_HASH")))
    assert got == want and len(want) == 2 * (40 - 6)
    assert pycs == {p: p.read_bytes() for p in src.rglob("*.pyc")}

    pool = _StreamPool(1)
    try:
        dead = pool.submit(_compile_many, ([str(src / "m1.py")], (0,), "NO_SUCH_MODE"))  # KeyError kills it
        with pytest.raises(OSError, match="compiling worker process ended"):
            dead.result(timeout=120)
        again = pool.submit(_compile_many, ([str(src / "m1.py")], (0,), "CHECKED_HASH"))
        with pytest.raises(OSError, match="compiling worker process ended"):
            again.result(timeout=120)  # the dead worker is not silently replaced
    finally:
        pool.shutdown()


@pytest.mark.parametrize("level", [0, 1, 2])
@pytest.mark.parametrize(
    # (an absolute path as this project spells one: the system's spelling of a
    # directory, then '/'-separated archive paths)
    "source", ["pkg/mod.py", os.path.abspath("/abs/dir") + "/pkg/__init__.py", "top.py", "a/b.c/d.e.py", os.path.join("x", "y", "z.py")]
)
def test_pyc_path_is_cache_from_source(source: str, level: int) -> None:
    from importlib.util import cache_from_source

    from pip_linkmode.bytecode import pyc_path

    assert pyc_path(source, level) == cache_from_source(source, optimization="" if level == 0 else level)


def _many_module_wheels(tmp_path: Path, count: int, modules: int) -> list[Path]:
    return [
        build_wheel(
            tmp_path / f"w{i}",
            WheelSpec(
                name=f"many{i}",
                files={f"many{i}/m{k}.py": f"X = {k}\n".encode() for k in range(modules)}
                | {f"many{i}/bad.py": b"def (:\n"},
            ),
        )
        for i in range(count)
    ]


def test_prepare_unpacks_and_compiles_every_entry_in_order(tmp_path: Path) -> None:
    """One pass over many wheels: entries come back in the wheels' order, each
    compiled exactly as ``ensure_bytecode`` compiles it alone."""
    wheels = _many_module_wheels(tmp_path, 6, 45)  # 6 x 45 sources: several worker tasks each
    cache = WheelCache(tmp_path / "cache")
    entries = prepare(cache, [*wheels, wheels[0]], (0, 1))
    assert [e.name for e in entries] == [f"many{i}" for i in (0, 1, 2, 3, 4, 5, 0)]
    assert len(cache.unpacked) == 6
    other = WheelCache(tmp_path / "other")
    tag = sys.implementation.cache_tag
    for entry, wheel in zip(entries, wheels, strict=False):
        got = ensure_bytecode(cache, entry, (0, 1))  # read from the marker prepare wrote
        alone = ensure_bytecode(other, other.get(wheel), (0, 1))
        assert sorted(got) == sorted(alone) and len(got) == 90  # bad.py skipped at both levels
        pyc = Path(got[(f"{entry.name}/m7.py", 1)].path)
        assert pyc.name == f"m7.{tag}.opt-1.pyc" and pyc.stat().st_size == got[(f"{entry.name}/m7.py", 1)].size
        ours = pyc.read_bytes().replace(os.fsencode(tmp_path / "cache"), os.fsencode(tmp_path / "other"))
        theirs = Path(alone[(f"{entry.name}/m7.py", 1)].path).read_bytes()
        source = entry.path_of(f"{entry.name}/m7.py").stat()
        assert ours[:8] == theirs[:8] and ours[16:] == theirs[16:]  # all but co_filename and the stamp
        assert ours[8:16] == (int(source.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + source.st_size.to_bytes(4, "little")


HOLD_LOCK = """
import sys, time
from pathlib import Path
from pip_linkmode import WheelCache
cache = WheelCache(sys.argv[1])
with cache.lock(cache.key_for(sys.argv[2])):
    Path(sys.argv[3]).touch()
    time.sleep(float(sys.argv[4]))
"""


@pytest.mark.parametrize("levels", [(0,), ()], ids=["compiling", "unpacking-threads"])
def test_prepare_waits_for_an_entry_another_process_holds_last(tmp_path: Path, levels: tuple[int, ...]) -> None:
    """An entry locked by another process (here: held before it exists, as an
    unpacking process would) is not waited for while prepare holds other
    locks: the rest is unpacked and compiled first, then prepare waits for it."""
    wheels = _many_module_wheels(tmp_path, 3, 5)
    cache_dir = tmp_path / "cache"
    held = tmp_path / "held"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(cache_dir), str(wheels[0]), str(held), "1.5"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    while not held.exists():
        assert holder.poll() is None, "the lock holder died"
    cache = WheelCache(cache_dir)
    entries = prepare(cache, [*wheels, wheels[1]], levels)
    assert holder.wait(timeout=30) == 0
    assert [e.name for e in entries] == ["many0", "many1", "many2", "many1"]
    assert cache.unpacked[-1] == entries[0].key  # the held one, unpacked last
    assert len(cache.unpacked) == 3
    assert [len(list(e.root.glob("bytecode-*.json"))) for e in entries] == [len(levels)] * 4
    for entry in entries:
        assert len(ensure_bytecode(cache, entry, (0,))) == 5


@pytest.mark.parametrize("front_end", ["library", "pip"])
def test_cloned_sources_keep_the_cache_mtime_where_cached_pycs_are_linked(
    front_end: str, mounts: Mounts, tmp_path: Path
) -> None:
    """Cloned on XFS: with bytecode, each .py keeps the cache file's mtime
    and the linked pycs are valid as they lie; without, the clone is a fresh
    file (its mtime its creation, as pip and uv give), which saves a system
    call per source and Python compiles against whatever it finds."""
    root = mounts.points["xfs"] / tmp_path.name
    wheel = _wheel(tmp_path)
    cache = root / "cache"
    tag = sys.implementation.cache_tag
    for compiling in (True, False):
        venv = make_venv(root / f"v-{compiling}")
        if front_end == "library":
            install_wheel(wheel, venv=venv, link_mode="clone", cache=cache, compile_bytecode=compiling)
        else:
            subprocess.run(
                [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv),
                 "--link-mode", "clone", "--cache-dir", str(cache), "--disable-pip-version-check",
                 "--no-index", *([] if compiling else ["--no-compile"]), str(wheel)],
                check=True, capture_output=True,
            )
        sp = site_packages(venv)
        tree = WheelCache(cache).get(wheel).tree
        for rel in ("multi/a.py", "multi/sub/c.py"):
            cached, placed = (tree / rel).stat(), (sp / rel).stat()
            assert placed.st_ino != cached.st_ino  # a clone, not the cache's inode
            assert (placed.st_mtime_ns == cached.st_mtime_ns) is compiling, rel
        assert (sp / f"multi/__pycache__/a.{tag}.pyc").exists() is compiling
        if compiling:
            before = _pycs(sp)
            out = subprocess.run([venv_python(venv), "-c", IMPORT_ALL], capture_output=True, text=True,
                                 check=True, env=WRITE_ENV)
            assert out.stdout.strip() == "84"
            assert _pycs(sp) == before  # valid as cloned: nothing recompiled


def test_an_entry_with_nothing_to_compile_is_compiled_once(tmp_path: Path) -> None:
    """Its bytecode record holds no row, and is read back as such: the next
    install neither compiles again nor rewrites the record (nor needs to
    write in the cache at all)."""
    from pip_linkmode.bytecode import _marker, _read_marker, invalidation_mode

    wheel = build_wheel(tmp_path / "w", WheelSpec(name="stubs", files={"stubs/__init__.pyi": b"x: int\n",
                                                                        "stubs/py.typed": b""}))
    cache = WheelCache(tmp_path / "cache")
    entry = cache.get(wheel)
    assert compiled_rows(cache, entry, (0,)) == []
    marker = _marker(entry, (0,), invalidation_mode())
    assert _read_marker(marker) == []
    before = marker.stat().st_mtime_ns
    assert compiled_rows(cache, entry, (0,)) == []
    assert marker.stat().st_mtime_ns == before
