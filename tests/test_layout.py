"""The install step from a cache entry's layout, and its worker threads.

``LinkingDestination.install_cached`` places an entry's files from its
precomputed layout (``layout.json``) by ``Linker.run_dirs``, whose worker
threads go on placing while ``install_wheels`` prepares the next wheel.
These tests hold it to the general path (``installer.install`` with the same
destination): the same tree, byte for byte, RECORD included, on real wheels
and on wheels built to hit the corner cases (quoted RECORD paths, a path in
two schemes, bytecode). And they hold the threads to the order and the
rollback a sequential install would give.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import installer
import pytest
from conftest import make_venv, run_pip, site_packages, venv_python
from wheelmaker import FileSpec, WheelSpec, build_wheel, demo_spec

from pip_linkmode import (
    LinkError,
    LinkingDestination,
    LinkMode,
    WheelCache,
    _platform,
    install_wheels,
    linker,
    placement,
)

META = {"INSTALLER": b"test\n", "REQUESTED": b""}



def _tree(root: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every file (bytes, mode) and symlink (target) under ``root``; the
    root's own path in a file (installer on Windows records other schemes'
    files by absolute path) spelled ROOT."""
    spelled = str(root).replace(os.sep, "/").encode()
    out: dict[str, tuple[bytes | str, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = (os.readlink(path), 0)
        elif path.is_file():
            out[rel] = (path.read_bytes().replace(spelled, b"ROOT"), path.stat().st_mode)
    return out


def _scheme(base: Path) -> dict[str, str]:
    # purelib and platlib apart, as on some distributions, so scheme prefixes show
    return {k: str(base / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}


class _GeneralPath(LinkingDestination):
    """The same destination with the layout path switched off."""

    def _fast_path_applies(self) -> bool:
        return False


def _install(
    cache: WheelCache, wheel: Path, base: Path, how: str, levels: tuple[int, ...] = ()
) -> LinkingDestination:
    cls = _GeneralPath if how == "general" else LinkingDestination
    dest = cls(
        _scheme(base),
        sys.executable,
        "posix",
        link_mode=LinkMode.HARDLINK,
        bytecode_optimization_levels=levels,
        cached_bytecode=bool(levels),
    )
    with cache.open(wheel) as source:
        if how == "installer":
            installer.install(source, dest, dict(META))
        else:
            dest.install_cached(source, META)
    return dest


def _corner_spec() -> WheelSpec:
    spec = demo_spec(name="corner", long_paths=False)
    files: dict[str, FileSpec] = dict(spec.files)
    files.update(
        {
            "corner/with,comma.txt": b"comma\n",
            # (a name Windows refuses: NTFS allows no '"' in names)
            **({} if os.name == "nt" else {'corner/with"quote.txt': b"quote\n"}),
            "corner/deep/a/b/c/leaf.py": b"X = 1\n",
            "corner/broken.py": b"def broken(:\n",  # does not compile: skipped, as pip does
            "LICENSE": b"root license\n",
            # the same path within another scheme: RECORD's sort keeps both, in order
            "corner-1.0.data/data/LICENSE": b"data license\n",
            "corner-1.0.data/purelib/corner_extra.py": b"Y = 2\n",
            # a directory the root and .data/purelib both fill (root purelib)
            "corner-1.0.data/purelib/corner/merged.py": b"M = 4\n",
            "corner-1.0.data/platlib/corner_plat.py": b"Z = 3\n",
        }
    )
    spec.files = files
    return spec


def test_layout_gives_what_the_general_path_gives(real_wheels: list[Path], tmp_path: Path) -> None:
    """Per wheel: installer.install, the general install_cached and the layout
    path leave byte-identical trees (RECORD, modes, scripts included)."""
    cache = WheelCache(tmp_path / "cache")
    wheels = [*real_wheels, build_wheel(tmp_path / "w", _corner_spec())]
    for wheel in wheels:
        trees = {}
        for how in ("installer", "general", "layout"):
            base = tmp_path / how / wheel.name
            _install(cache, wheel, base, how)
            trees[how] = _tree(base)
        assert trees["layout"] == trees["general"] == trees["installer"], wheel.name
        entry = cache.get(wheel)
        assert (entry.root / "layout.json").is_file()  # kept for the next install
    corner = _tree(tmp_path / "layout" / wheels[-1].name)
    record = corner["purelib/corner-1.0.dist-info/RECORD"][0]
    assert isinstance(record, bytes)
    assert b'"corner/with,comma.txt",sha256=' in record
    assert os.name == "nt" or b'"corner/with""quote.txt",sha256=' in record
    assert record.count(b"LICENSE,sha256=") == 2


def test_layout_with_cached_bytecode_gives_the_general_paths_record(tmp_path: Path) -> None:
    """With bytecode linked from the cache, both paths list the same pycs
    (lib schemes only, the broken source skipped) and link the same files."""
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", _corner_spec())
    trees = {}
    for how in ("general", "layout"):
        base = tmp_path / how
        _install(cache, wheel, base, how, levels=(0,))
        trees[how] = _tree(base)
    assert trees["layout"] == trees["general"]
    tag = sys.implementation.cache_tag
    pycs = sorted(p for p in trees["layout"] if p.endswith(".pyc"))
    assert f"purelib/corner/__pycache__/core.{tag}.pyc" in pycs
    assert f"purelib/corner/deep/a/b/c/__pycache__/leaf.{tag}.pyc" in pycs
    assert f"purelib/__pycache__/corner_extra.{tag}.pyc" in pycs
    assert f"purelib/corner/__pycache__/merged.{tag}.pyc" in pycs  # (its source dir is .data's)
    assert f"platlib/__pycache__/corner_plat.{tag}.pyc" in pycs
    assert not any("broken" in p for p in pycs)
    assert not any(p.startswith(("scripts/", "data/", "headers/")) for p in pycs)
    record = trees["layout"]["purelib/corner-1.0.dist-info/RECORD"][0]
    assert isinstance(record, bytes)
    platlib = "ROOT/platlib" if sys.platform == "win32" else "../platlib"  # installer: absolute on Windows
    assert f"{platlib}/__pycache__/corner_plat.{tag}.pyc,,".encode() in record
    # linked, not copied: the pyc is the cache's inode
    entry = cache.get(wheel)
    cached = entry.tree / "corner" / "__pycache__" / f"core.{tag}.pyc"
    assert os.path.samestat(cached.stat(), (tmp_path / "layout" / "purelib/corner/__pycache__" / f"core.{tag}.pyc").stat())


def test_layout_is_kept_and_a_damaged_one_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", _corner_spec())
    _install(cache, wheel, tmp_path / "one", "layout")
    layout_file = cache.get(wheel).root / "layout.json"
    kept = json.loads(layout_file.read_bytes())
    assert kept["v"] == placement._LAYOUT_VERSION and not kept["none"]

    def no_rebuild(source: object) -> None:
        raise AssertionError("the kept layout was not used")

    with monkeypatch.context() as patch:
        patch.setattr(placement, "_build_layout", no_rebuild)
        _install(cache, wheel, tmp_path / "two", "layout")
    layout_file.write_bytes(b"{\"v\": 2, \"layout\": [")  # cut short
    _install(cache, wheel, tmp_path / "three", "layout")
    assert json.loads(layout_file.read_bytes()) == kept
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two") == _tree(tmp_path / "three")


def test_a_first_file_starting_like_a_script_keeps_its_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module of the root scheme that starts with ``#!python`` (never
    rewritten: only scripts are) is the first file installer is handed; the
    layout that lists it is kept and used, not refused and rebuilt at every
    install, and the module is linked as it is."""
    spec = WheelSpec(name="hashbang", files={"hashbang/__init__.py": b"#!python\nX = 1\n", "hashbang/b.py": b""})
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", spec)
    _install(cache, wheel, tmp_path / "one", "layout")
    kept = json.loads((cache.get(wheel).root / "layout.json").read_bytes())["layout"]
    assert kept[-1][0][5] is True  # (the handed row of the first file has the flag)

    def no_rebuild(source: object) -> None:
        raise AssertionError("the kept layout was not used")

    monkeypatch.setattr(placement, "_build_layout", no_rebuild)
    _install(cache, wheel, tmp_path / "two", "layout")
    assert (tmp_path / "two/purelib/hashbang/__init__.py").read_bytes() == b"#!python\nX = 1\n"
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")


def test_a_wheel_installer_must_route_itself_is_remembered_as_such(tmp_path: Path) -> None:
    spec = demo_spec(name="stale", long_paths=False)
    spec.files = {**spec.files, "stale/__pycache__/core.cpython-311.pyc": b"stale"}
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", spec)
    with pytest.warns(RuntimeWarning, match="__pycache__"):
        _install(cache, wheel, tmp_path / "a", "layout")
    assert json.loads((cache.get(wheel).root / "layout.json").read_bytes())["none"] is True
    assert not (tmp_path / "a" / "purelib" / "stale" / "__pycache__").exists()


def _many(name: str, count: int, extra: dict[str, FileSpec] | None = None) -> WheelSpec:
    files: dict[str, FileSpec] = {f"{name}/__init__.py": b""}
    files.update({f"shared/{name}_{i:04d}.txt": f"{name} {i}\n".encode() for i in range(count)})
    files.update(extra or {})
    return WheelSpec(name=name, files=files)


def test_a_later_wheel_wins_a_shared_path_as_in_a_sequential_install(tmp_path: Path) -> None:
    """Two wheels place the same file: the later one's is what remains (as pip
    leaves it), though the first one's files are still being placed by the
    worker threads when the second one's are handed over."""
    first = build_wheel(tmp_path / "w1", _many("first", 900, {"shared/conflict.txt": b"first\n"}))
    second = build_wheel(tmp_path / "w2", _many("second", 10, {"shared/conflict.txt": b"second\n"}))
    venv = make_venv(tmp_path / "venv")
    cache = tmp_path / "cache"
    install_wheels([first, second], venv=venv, cache=cache, link_mode="hardlink")
    assert (site_packages(venv) / "shared" / "conflict.txt").read_bytes() == b"second\n"
    assert len(list((site_packages(venv) / "shared").iterdir())) == 911
    # and the other way round
    venv2 = make_venv(tmp_path / "venv2")
    install_wheels([second, first], venv=venv2, cache=cache, link_mode="hardlink")
    assert (site_packages(venv2) / "shared" / "conflict.txt").read_bytes() == b"first\n"


def test_a_failure_in_a_worker_thread_names_the_file_and_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file that cannot be placed is far into a big wheel, so a worker
    thread meets it: install_wheels raises it, naming the file, after every
    worker stopped, and removes what the install created."""
    seen: set[str] = set()
    real_run = linker.Linker._place_names

    def spy(self: linker.Linker, task: object, dirs: object = ()) -> None:
        seen.add(threading.current_thread().name)
        real_run(self, task, dirs)  # type: ignore[arg-type]

    monkeypatch.setattr(linker.Linker, "_place_names", spy)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    big = build_wheel(tmp_path / "w1", _many("big", 1200))
    after = build_wheel(tmp_path / "w2", WheelSpec(name="after", files={"after/__init__.py": b""}))
    venv = make_venv(tmp_path / "venv")
    blocker = site_packages(venv) / "shared" / "big_1000.txt"
    (blocker / "occupied").mkdir(parents=True)
    before = _tree(venv)
    with pytest.raises(LinkError) as err:
        install_wheels([big, after], venv=venv, cache=tmp_path / "cache", link_mode="hardlink")
    assert str(blocker) in str(err.value) and "directory is in the way" in str(err.value)
    assert any(name.startswith("pip-linkmode") for name in seen), seen  # a worker met it
    assert _tree(venv) == before
    assert sorted(p.name for p in (site_packages(venv) / "shared").iterdir()) == ["big_1000.txt"]


def test_installed_environment_imports_and_pip_sees_it(tmp_path: Path) -> None:
    """The layout path end to end into a real venv, with cached bytecode:
    the modules import without writing a pyc, and pip accepts the result."""
    wheel = build_wheel(tmp_path / "w", _corner_spec())
    venv = make_venv(tmp_path / "venv")
    install_wheels([wheel], venv=venv, cache=tmp_path / "cache", link_mode="hardlink", compile_bytecode=True)
    sp = site_packages(venv)
    pyc = next((sp / "corner" / "__pycache__").glob("core.*.pyc"))
    before = (pyc.stat().st_ino, pyc.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [venv_python(venv), "-c", "import corner, corner.deep.a.b.c.leaf as leaf, corner_extra; print(corner.hello(), leaf.X)"],
        capture_output=True, text=True, check=True, env=env,
    )
    assert out.stdout.split() == ["hello", "from", "core", "1"]
    assert (pyc.stat().st_ino, pyc.read_bytes()) == before
    assert "No broken requirements" in run_pip(venv, "check").stdout
    assert "corner 1.0" in run_pip(venv, "list", "--format", "freeze").stdout.replace("==", " ")


@pytest.mark.skipif(os.name == "nt", reason="Windows keeps only the write bit of a umask (0o027 reads back 0o022)")
def test_umask_is_read_without_being_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting the umask to read it would, for a moment, give files that
    other threads create the wrong mode bits: on Linux it is read from /proc."""
    if not Path("/proc/self/status").is_file():
        pytest.skip(reason="no /proc/self/status here: the umask is read once, by setting it")
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(_platform.os, "umask", lambda mask: pytest.fail("os.umask was called"))
        assert _platform.umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)


def test_a_warm_lookup_reads_no_manifest(tmp_path: Path, demo_wheel: Path) -> None:
    """The index remembers an entry's names: a warm lookup builds the entry
    without reading entry.json, which is read when its file list is needed."""
    cache = WheelCache(tmp_path / "cache")
    first = cache.get(demo_wheel)
    again = WheelCache(tmp_path / "cache").get_indexed(demo_wheel)
    assert again is not None and again._file_rows is None  # nothing read yet
    assert (again.key, again.dist_info, again.name, again.version) == (first.key, first.dist_info, first.name, first.version)
    assert again.files == first.files and again == first


_WARM = """
import json, sys
from pip_linkmode import install_wheels
report = install_wheels(sys.argv[3:], venv=sys.argv[1], cache=sys.argv[2], link_mode="hardlink",
                        compile_bytecode=True)
print(json.dumps({"installer": "installer" in sys.modules, "email": "email" in sys.modules,
                  "logging": "logging" in sys.modules, "futures": "concurrent.futures" in sys.modules,
                  "summary": report.summary()}))
"""


@pytest.mark.skipif(os.name == "nt", reason="the warm path without installer is POSIX's (Windows scripts are launchers installer makes)")
def test_a_warm_install_imports_no_installer_and_leaves_installers_tree(real_wheels: list[Path], tmp_path: Path) -> None:
    """The first install of an entry goes through LinkingDestination (which
    keeps the layout); a later one, with every layout kept, through
    ``laidout.install_layout`` alone: no installer or email imported (nor
    logging or concurrent.futures), and
    the same environment (scripts with their shebangs, #!python scripts,
    RECORD, cached bytecode), byte for byte and mode for mode."""
    wheels = [str(w) for w in (*real_wheels, build_wheel(tmp_path / "w", _corner_spec()))]
    cache = tmp_path / "cache"
    trees = []
    for name in ("cold", "warm"):  # the same path: scripts and their RECORD hashes name it
        shutil.rmtree(tmp_path / "env", ignore_errors=True)
        venv = make_venv(tmp_path / "env")
        proc = subprocess.run(
            [sys.executable, "-c", _WARM, str(venv), str(cache), *wheels], capture_output=True, text=True, check=True
        )
        seen = json.loads(proc.stdout)
        trees.append(_tree(venv))
        if name == "warm":
            assert seen["installer"] is False and seen["email"] is False, seen
            # (the linker's threads and log need neither: 5 ms of a warm install)
            assert seen["logging"] is False and seen["futures"] is False, seen
            assert "hardlinked" in seen["summary"]
    assert trees[0] == trees[1]
    scripts = [k for k in trees[1] if k.startswith("bin/") and k != "bin/python" and not k.startswith("bin/python3")]
    assert "bin/pyflakes" in scripts and "bin/corner-hello" in scripts and "bin/corner-shebang" in scripts
    assert trees[1]["bin/pyflakes"][0].startswith(b"#!ROOT/bin/python\n")  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["/usr/bin/python3", "/opt/my python/bin/python", "/x" * 70 + "/python"])
def test_the_shebang_is_installers(where: str) -> None:
    """The shebang written without installer is the one installer writes:
    the plain path, or for a path with a space or too long for a kernel's
    shebang, the /bin/sh line that runs it."""
    from installer.scripts import Script

    from pip_linkmode.laidout import posix_shebang

    _, data = Script("tool", "mod", "main", "console").generate(where, "posix")
    assert data.startswith(posix_shebang(where) + b"\n# -*- coding: utf-8 -*-\n")


def test_a_layout_is_made_for_entry_points_installer_cannot_parse(tmp_path: Path) -> None:
    """entry_points.txt with a duplicate key (real wheels ship such files):
    the layout keeps no script text (installer's own path then raises its
    own error where it parses them), and making it does not fail, so the
    pip door, which writes scripts with pip's parser, still links."""
    spec = demo_spec(name="dupes", long_paths=False)
    spec.entry_points = "[pytest11]\nplugin = dupes.core\nplugin = dupes.core\n[console_scripts]\ndupes-hello = dupes.core:main\n"
    wheel = build_wheel(tmp_path / "w", spec)
    cache = WheelCache(tmp_path / "cache")
    with cache.open(wheel) as source:
        layout = placement.load_layout(source)
    assert layout is not None and layout.entry_points and layout.scripts is None
    assert placement._posix_scripts("[console_scripts]\nx = a:b\nx = a:c\n") is None


def test_a_directory_that_is_there_is_looked_at_not_assumed_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's directory that exists already (a mount point, a link to
    another filesystem) is stat'ed for its own device, not given its
    parent's: the worker-made-directory shortcut is for new ones only."""
    lk = linker.Linker("hardlink", max_workers=2)
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    dst = tmp_path / "dst"
    (dst / "pkg").mkdir(parents=True)  # there already
    new = dst / "new"
    groups = [
        (str(src), str(dst), ["b.txt"], [1], False),
        (str(src / "pkg"), str(dst / "pkg"), ["a.txt"], [1], False),
        (str(src / "pkg"), str(new), ["a.txt"], [1], False),
    ]
    deferred: dict[str, object] = {}
    real = lk._later_dir

    def later_dir(ddir: str, sdev: int) -> int | None:
        deferred[ddir] = result = real(ddir, sdev)
        return result

    monkeypatch.setattr(lk, "_later_dir", later_dir)
    lk.run_dirs(groups)
    assert deferred[str(dst / "pkg")] is None  # there: its own device is read
    assert deferred[str(new)] == os.stat(dst).st_dev  # new: left to the worker, on its parent's device
    assert (dst / "pkg" / "a.txt").read_bytes() == b"a"
    assert (new / "a.txt").read_bytes() == b"a" and str(new) in lk.created_dirs
