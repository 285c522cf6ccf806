"""The ``installer`` door as tool authors use it: installer.install with a
cached source, a subclassed destination, overwrite rules, bytecode levels,
and the one-call swap (``pip_linkmode.installer_api``)."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import installer
import pytest
from conftest import file_tree, site_packages
from installer.destinations import SchemeDictionaryDestination
from installer.records import RecordEntry
from installer.sources import WheelFile, _WheelFileValidationError
from installer.utils import Scheme
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import CachedWheelSource, LinkingDestination, LinkMode, WheelCache, installer_api
from pip_linkmode.install import target_for_venv

META = {"INSTALLER": b"test\n"}


def _scheme(base: Path) -> dict[str, str]:
    return {name: str(base / name) for name in ("purelib", "platlib", "headers", "scripts", "data")}


def _destination(base: Path, cls: type = LinkingDestination, **kwargs: Any) -> Any:
    return cls(_scheme(base), sys.executable, "posix", **kwargs)


def _tree(base: Path) -> dict[str, tuple[int, bytes]]:
    """``file_tree`` with the base directory taken out of RECORD (on Windows
    installer lists files of schemes other than the root one by absolute path)."""
    spelled = str(base).replace(os.sep, "/").encode()
    return {
        name: (mode, data.replace(spelled, b"BASE") if name.endswith("RECORD") else data)
        for name, (mode, data) in file_tree(base).items()
    }


def _same_file(a: Path, b: Path) -> bool:
    return os.path.samestat(os.stat(a), os.stat(b))


# -- 1. CachedWheelSource stands in for WheelFile ----------------------------------


def test_cached_source_has_every_public_member_of_wheelfile(tmp_path: Path, demo_wheel: Path) -> None:
    public = {n for n in dir(WheelFile) if not n.startswith("_")}
    assert public <= {n for n in dir(CachedWheelSource) if not n.startswith("_")}
    for name in ("validate_record", "read_dist_info", "get_contents"):
        ours = inspect.signature(getattr(CachedWheelSource, name), eval_str=True)
        assert ours == inspect.signature(getattr(WheelFile, name), eval_str=True), name
    assert CachedWheelSource.validation_error is WheelFile.validation_error
    with WheelFile.open(demo_wheel) as plain, CachedWheelSource.open(demo_wheel, tmp_path / "c") as cached:
        assert cached.dist_info_dir == plain.dist_info_dir
        assert sorted(cached.dist_info_filenames) == sorted(plain.dist_info_filenames)
        assert cached.data_dir == plain.data_dir
        assert cached.read_dist_info("METADATA") == plain.read_dist_info("METADATA")
        cached.validate_record(validate_contents=True)
        cached.validate_record(validate_contents=False)
        with pytest.raises(KeyError):
            plain.read_dist_info("NOPE")
        with pytest.raises(KeyError):
            cached.read_dist_info("NOPE")


def test_validate_record_reads_the_cache_again(tmp_path: Path, demo_wheel: Path) -> None:
    """A cached file changed since it was unpacked fails validation with
    installer's exception and words; names alone still pass."""
    cache = WheelCache(tmp_path / "c")
    with cache.open(demo_wheel) as source:
        core = source.entry.path_of("demo/core.py")
        os.chmod(core, 0o644)
        core.write_bytes(b"tampered\n")
        source.validate_record(validate_contents=False)
        with pytest.raises(_WheelFileValidationError) as caught:
            source.validate_record()
        assert caught.value.issues == [f"In {source.entry.filename}, hash / size of demo/core.py didn't match RECORD"]


# -- 2. level -1, and a failure leaves nothing -------------------------------------


def test_level_minus_one_is_the_interpreters_level(tmp_path: Path, demo_wheel: Path) -> None:
    dest = _destination(tmp_path / "env", bytecode_optimization_levels=(-1,))
    with WheelCache(tmp_path / "c").open(demo_wheel) as source:
        installer.install(source, dest, META)
    tag = sys.implementation.cache_tag
    opt = f".opt-{sys.flags.optimize}" if sys.flags.optimize else ""
    pyc = tmp_path / "env" / "purelib" / "demo" / "__pycache__" / f"core.{tag}{opt}.pyc"
    assert pyc.is_file()
    record = (tmp_path / "env" / "purelib" / "demo-1.0.dist-info" / "RECORD").read_text()
    assert f"demo/__pycache__/core.{tag}{opt}.pyc," in record


def test_a_failure_inside_installer_install_leaves_the_environment_as_it_was(
    tmp_path: Path, demo_wheel: Path
) -> None:
    """An existing file (no overwriting): FileExistsError from write_file,
    as installer's own destination raises it, and nothing of the install is
    left, not even the INSTALLER file of a half-made .dist-info."""
    base = tmp_path / "env"
    blocker = base / "purelib" / "demo" / "sub" / "data.json"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"mine\n")
    before = file_tree(base)
    for how in ("installer", "one call"):
        dest = _destination(base, overwrite_existing=False)
        with WheelCache(tmp_path / "c").open(demo_wheel) as source, pytest.raises(FileExistsError) as caught:
            if how == "installer":
                installer.install(source, dest, META)
            else:
                dest.install_cached(source, META)
        assert str(caught.value) == f"File already exists: {blocker}", how
        assert file_tree(base) == before, how


def test_file_exists_is_raised_before_anything_is_placed(tmp_path: Path, demo_wheel: Path) -> None:
    """The same contract as SchemeDictionaryDestination: write_file raises
    for the existing target itself, before finalize_installation."""
    base = tmp_path / "env"
    (base / "purelib" / "demo").mkdir(parents=True)
    (base / "purelib" / "demo" / "core.py").write_bytes(b"mine\n")
    dest = _destination(base, overwrite_existing=False)
    calls: list[str] = []
    real_link = dest.link_pending

    def spy() -> None:
        calls.append("link_pending")
        real_link()

    dest.link_pending = spy  # type: ignore[method-assign]
    with WheelCache(tmp_path / "c").open(demo_wheel) as source:
        for (path, _, _), stream, executable in source.get_contents():
            if path == "demo/core.py":
                with pytest.raises(FileExistsError):
                    dest.write_file(Scheme("purelib"), path, stream, executable)
                break
            dest.write_file(Scheme("purelib"), path, stream, executable)
    assert calls == []
    assert (base / "purelib" / "demo" / "core.py").read_bytes() == b"mine\n"


# -- 3. subclasses that write files their own way ----------------------------------


class _RenamesPth(LinkingDestination):
    """As pdm does: a top-level .pth is installed under another name."""

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        if "/" not in path and path.endswith(".pth"):
            path = f"renamed-{path}"
        return super().write_to_fs(scheme, path, stream, is_executable)


class _ToleratesExisting(LinkingDestination):
    """As poetry does: a file that exists already (a pkgutil-style
    namespace package shipped by two wheels) is written over, not refused."""

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        from installer.records import Hash
        from installer.utils import copyfileobj_with_hashing

        target = Path(self.scheme_dict[scheme]) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as f:
            digest, size = copyfileobj_with_hashing(stream, f, self.hash_algorithm)
        return RecordEntry(path, Hash(self.hash_algorithm, digest), size)


def test_a_subclass_write_to_fs_sees_linked_files_too(tmp_path: Path, make_wheel: Any) -> None:
    spec = WheelSpec(name="pthpkg", files={"pthpkg/__init__.py": b"", "pthpkg.pth": b"import os\n"})
    wheel = make_wheel(spec)
    cache = WheelCache(tmp_path / "c")
    base = tmp_path / "env"
    with cache.open(wheel) as source:
        dest = _destination(base, _RenamesPth, link_mode="hardlink")
        dest.install_cached(source, META)
        entry = source.entry
    purelib = base / "purelib"
    assert not (purelib / "pthpkg.pth").exists()
    assert _same_file(purelib / "renamed-pthpkg.pth", entry.path_of("pthpkg.pth"))  # linked, under its new name
    assert _same_file(purelib / "pthpkg" / "__init__.py", entry.path_of("pthpkg/__init__.py"))
    assert "renamed-pthpkg.pth," in (purelib / "pthpkg-1.0.dist-info" / "RECORD").read_text()


def test_a_subclass_writing_itself_never_writes_through_a_link(tmp_path: Path, make_wheel: Any) -> None:
    """Two wheels ship the same namespace __init__.py: the second install
    goes through the subclass's own write, which opens the target for
    writing; that target was a hardlink into the cache, and the cache file
    is unchanged."""
    cache = WheelCache(tmp_path / "c")
    base = tmp_path / "env"
    first = make_wheel(WheelSpec(name="ns-a", files={"ns/__init__.py": b"# a\n", "ns/a.py": b""}))
    second = make_wheel(WheelSpec(name="ns-b", files={"ns/__init__.py": b"# b\n", "ns/b.py": b""}))
    with cache.open(first) as source:
        installer.install(source, _destination(base, link_mode="hardlink", overwrite_existing=True), META)
        cached_init = source.entry.path_of("ns/__init__.py")
    assert _same_file(base / "purelib" / "ns" / "__init__.py", cached_init)
    with cache.open(second) as source:
        installer.install(source, _destination(base, _ToleratesExisting, overwrite_existing=True), META)
    assert (base / "purelib" / "ns" / "__init__.py").read_bytes() == b"# b\n"
    assert cached_init.read_bytes() == b"# a\n"  # the cache is untouched


# -- 5. a scheme at the root of the filesystem -------------------------------------


def test_a_scheme_rooted_at_slash_is_inside_itself(tmp_path: Path) -> None:
    dest = LinkingDestination({**_scheme(tmp_path), "purelib": os.path.abspath(os.sep)}, sys.executable, "posix")
    root = os.path.abspath(os.sep)
    assert dest._target(Scheme("purelib"), "pkg/mod.py") == os.path.join(root, "pkg", "mod.py")
    assert dest._path_with_destdir(Scheme("purelib"), "pkg/mod.py") == Path(root, "pkg", "mod.py")


# -- one swap ------------------------------------------------------------------------


def test_one_call_swap_links_what_installer_would_copy(tmp_path: Path, demo_wheel: Path) -> None:
    """installer_api.install takes installer.install's arguments (a
    WheelFile or a path, installer's own destination) and gives the same
    tree, with files linked from the cache."""
    venv_like = tmp_path / "plain"
    with WheelFile.open(demo_wheel) as plain:
        installer.install(plain, _destination(venv_like, SchemeDictionaryDestination), META)
    cache = WheelCache(tmp_path / "c")
    for how in ("wheelfile", "path"):
        base = tmp_path / how
        dest = _destination(base, SchemeDictionaryDestination)
        if how == "wheelfile":
            with WheelFile.open(demo_wheel) as source:
                installer_api.install(source, dest, META, cache=cache, link_mode="hardlink")
        else:
            installer_api.install(demo_wheel, dest, META, cache=cache, link_mode="hardlink")
        assert _tree(base) == _tree(venv_like), how
        entry = cache.get(demo_wheel)
        assert _same_file(base / "purelib" / "demo" / "core.py", entry.path_of("demo/core.py")), how


def test_one_call_swap_keeps_a_tools_destination_subclass(tmp_path: Path, make_wheel: Any) -> None:
    class ToolDestination(SchemeDictionaryDestination):
        def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
            if "/" not in path and path.endswith(".pth"):
                path = f"renamed-{path}"
            return super().write_to_fs(scheme, path, stream, is_executable)

    wheel = make_wheel(WheelSpec(name="pthpkg", files={"pthpkg/__init__.py": b"", "pthpkg.pth": b"import os\n"}))
    cache = WheelCache(tmp_path / "c")
    dest = _destination(tmp_path / "env", ToolDestination)
    dest.tool_setting = "kept"
    installer_api.install(wheel, dest, META, cache=cache, link_mode="hardlink")
    purelib = tmp_path / "env" / "purelib"
    assert _same_file(purelib / "renamed-pthpkg.pth", cache.get(wheel).path_of("pthpkg.pth"))
    swapped = installer_api.linking_destination(dest)
    assert isinstance(swapped, ToolDestination) and isinstance(swapped, LinkingDestination)
    assert swapped.tool_setting == "kept"


def test_one_call_swap_into_a_real_venv(tmp_path: Path, venv: Path) -> None:
    wheel = build_wheel(tmp_path / "w", demo_spec(long_paths=False))
    target = target_for_venv(venv)
    dest = SchemeDictionaryDestination(target.scheme_for("demo"), target.interpreter, "posix")
    installer_api.install(wheel, dest, {"INSTALLER": b"tool\n"}, cache=tmp_path / "c")
    assert (site_packages(venv) / "demo-1.0.dist-info" / "INSTALLER").read_bytes() == b"tool\n"


def test_a_destination_used_twice_still_refuses_what_the_first_install_placed(
    tmp_path: Path, demo_wheel: Path
) -> None:
    base = tmp_path / "env"
    dest = _destination(base, overwrite_existing=False)
    cache = WheelCache(tmp_path / "c")
    with cache.open(demo_wheel) as source:
        installer.install(source, dest, META)
    after_first = file_tree(base)
    with cache.open(demo_wheel) as source, pytest.raises(FileExistsError):
        installer.install(source, dest, META)
    assert file_tree(base) == after_first


def test_an_existing_executable_is_refused_before_anything_is_placed(tmp_path: Path, demo_wheel: Path) -> None:
    """A directory's executable and plain files are two groups of the
    layout: an existing file of the second group is found before any link
    is made, not by the linker halfway through."""
    base = tmp_path / "env"
    existing = base / "purelib" / "demo" / "tool.sh"  # executable in the wheel, beside plain files
    existing.parent.mkdir(parents=True)
    existing.write_bytes(b"mine\n")
    before = file_tree(base)
    dest = _destination(base, overwrite_existing=False)
    placed: list[object] = []
    real_run_dirs = dest.linker.run_dirs

    def spy(*args: Any, **kwargs: Any) -> Any:
        placed.append(args)
        return real_run_dirs(*args, **kwargs)

    dest.linker.run_dirs = spy
    with WheelCache(tmp_path / "c").open(demo_wheel) as source, pytest.raises(FileExistsError) as caught:
        dest.install_cached(source, META)
    assert str(caught.value) == f"File already exists: {existing}"
    assert placed == []
    assert file_tree(base) == before


# -- 5. installer's per-file calls feed one placement -------------------------------


def test_installer_install_places_the_cached_entry_whole_at_its_first_file(
    tmp_path: Path, demo_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At installer's first write_file of a cache entry the whole entry is
    handed to the linker (its threads link while installer goes through the
    rest); later calls only answer with RECORD entries. The tree, RECORD
    included, is installer's own, and the .pyc files are the cache's: none
    is compiled in the environment."""
    import compileall

    compiled: list[object] = []
    def compile_file(*args: object, **kwargs: object) -> bool:
        compiled.append(args)
        return True

    monkeypatch.setattr(compileall, "compile_file", compile_file)
    dest = _destination(tmp_path / "env", bytecode_optimization_levels=(0,))
    dispatched: list[int] = []  # write_file calls made when run_dirs ran
    calls = [0]
    real_write, real_run_dirs = dest.write_file, dest.linker.run_dirs

    def write_file(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real_write(*args, **kwargs)

    def run_dirs(*args: Any, **kwargs: Any) -> Any:
        dispatched.append(calls[0])
        return real_run_dirs(*args, **kwargs)

    dest.write_file, dest.linker.run_dirs = write_file, run_dirs
    cache = WheelCache(tmp_path / "c")
    with cache.open(demo_wheel) as source:
        installer.install(source, dest, META)
    assert dispatched == [1]
    entry = cache.get(demo_wheel)
    assert dest.report.counts[dest.report.modes_used[0]] >= len(entry.files) - 1
    tag = sys.implementation.cache_tag
    pyc = tmp_path / "env/purelib/demo/__pycache__" / f"core.{tag}.pyc"
    cached_pycs = [p for p in cache.root.rglob(f"core.{tag}.pyc")]
    assert len(cached_pycs) == 1 and _same_file(pyc, cached_pycs[0]) or (
        dest.report.modes_used == [LinkMode.COPY] and pyc.read_bytes() == cached_pycs[0].read_bytes()
    )
    assert compiled == []
    record = (tmp_path / "env/purelib/demo-1.0.dist-info/RECORD").read_text()
    assert f"demo/__pycache__/core.{tag}.pyc,," in record
    # the same tree as installer's own destination compiling for itself
    with WheelFile.open(demo_wheel) as plain:
        monkeypatch.undo()
        installer.install(plain, _destination(tmp_path / "ref", SchemeDictionaryDestination, bytecode_optimization_levels=(0,)), META)
    ours, ref = _tree(tmp_path / "env"), _tree(tmp_path / "ref")
    assert ours.keys() == ref.keys()
    # RECORD: ours lists the cached .pyc files as pip does (installer's own
    # destination compiles after writing RECORD and lists none)
    record_key = next(k for k in ours if k.replace(os.sep, "/") == "purelib/demo-1.0.dist-info/RECORD")
    mode, listed = ours[record_key]
    kept = b"".join(line for line in listed.splitlines(keepends=True) if b"/__pycache__/" not in line)
    ours[record_key] = (mode, kept)
    assert {k: v for k, v in ours.items() if not k.endswith(".pyc")} == {
        k: v for k, v in ref.items() if not k.endswith(".pyc")
    }


def test_a_caller_that_skips_files_gets_only_the_files_it_asked_for(tmp_path: Path, demo_wheel: Path) -> None:
    """The entry is placed whole at the first file; a caller that then
    leaves some files out (installer never does) does not get them: they are
    removed again when the install is finalized."""
    base = tmp_path / "env"
    dest = _destination(base)
    records = []
    with WheelCache(tmp_path / "c").open(demo_wheel) as source:
        for (path, _, _), stream, executable in source.get_contents():
            if path in ("demo/sub/data.json", "demo-1.0.dist-info/RECORD") or path.startswith("demo-1.0.data/"):
                continue
            records.append((Scheme("purelib"), dest.write_file(Scheme("purelib"), path, stream, executable)))
        record_path = "demo-1.0.dist-info/RECORD"
        dest.finalize_installation(Scheme("purelib"), record_path, [*records, (Scheme("purelib"), RecordEntry(record_path, None, None))])
    assert (base / "purelib/demo/core.py").is_file()
    assert not (base / "purelib/demo/sub/data.json").exists()
    assert not (base / "headers").exists() and not (base / "data").exists()
    listed = (base / "purelib" / record_path).read_text()
    assert "demo/sub/data.json" not in listed and "demo/core.py,sha256=" in listed


def _count_handed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The archive paths of the cached files ``get_contents`` hands over from now on."""
    from pip_linkmode import source as source_mod

    handed: list[str] = []

    class Counted(source_mod.CachedFileStream):
        __slots__ = ()

        def __init__(self, cache_path: str, cached: Any, *args: Any) -> None:
            handed.append(cached.path)
            super().__init__(cache_path, cached, *args)

    monkeypatch.setattr(source_mod, "CachedFileStream", Counted)
    return handed


def test_installer_is_handed_only_the_files_not_placed_whole(
    tmp_path: Path, make_wheel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the entry is placed whole, ``installer.install``'s own loop is
    not handed the files placed (only installer's loop: a caller of its own
    gets every file, as above). RECORD still lists them, and the tree is
    installer's own, byte for byte: ``.data`` schemes, a ``#!python``
    script, entry points and the extra metadata."""
    spec = demo_spec(long_paths=False)
    files = dict(spec.files)
    files["demo-1.0.data/purelib/demo_extra.py"] = b"X = 1\n"
    files["demo-1.0.data/platlib/demo_native/__init__.py"] = b""
    wheel = make_wheel(WheelSpec(name="demo", version="1.0", files=files, entry_points=spec.entry_points))
    cache = WheelCache(tmp_path / "c")
    entry = cache.get(wheel)
    assert len(entry.files) >= 12
    handed = _count_handed(monkeypatch)
    with cache.open(wheel) as source:
        installer.install(source, _destination(tmp_path / "env"), META)
    # the first file, and the #!python script installer rewrites
    assert len(handed) <= 2 and "demo-1.0.data/scripts/demo-shebang" in handed, handed
    with WheelFile.open(wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref", SchemeDictionaryDestination), META)
    ours = _tree(tmp_path / "env")
    assert ours == _tree(tmp_path / "ref")
    assert any(k.replace(os.sep, "/").endswith("purelib/demo_extra.py") for k in ours)
    # the same source walked by a caller of its own: every file again
    handed.clear()
    with cache.open(wheel) as source:
        listed = [path for (path, _, _), _, _ in source.get_contents()]
    assert len(handed) == len(entry.files) and len(listed) == len(entry.files) + 1  # (RECORD last)


@pytest.mark.parametrize("writes", ["own", "subclass"])
def test_an_entry_with_a_kept_layout_is_walked_without_its_manifest(
    tmp_path: Path, make_wheel: Any, monkeypatch: pytest.MonkeyPatch, writes: str
) -> None:
    """Once the entry's layout is kept, installer's walk for a destination
    that places the entry whole reads nothing of the entry's manifest: the
    layout has the dist-info names and the rows of the files installer is
    handed (the first, a ``#!python`` script). A destination that does not
    place it whole (a subclass's ``write_to_fs``) is handed the other files
    from the manifest after the first. Both trees are installer's own."""
    from pip_linkmode.cache import CachedWheel

    spec = demo_spec(long_paths=False)
    files = {**spec.files, "demo-1.0.data/purelib/demo_extra.py": b"X = 1\n"}
    wheel = make_wheel(WheelSpec(name="demo", version="1.0", files=files, entry_points=spec.entry_points))
    cache = WheelCache(tmp_path / "c")
    with cache.open(wheel) as source:  # the first install keeps the layout
        installer.install(source, _destination(tmp_path / "first"), META)
    entry_files = len(cache.get(wheel).files)
    read: list[str] = []
    real_manifest = CachedWheel._manifest

    def manifest(self: CachedWheel) -> Any:
        read.append(self.filename)
        return real_manifest(self)

    monkeypatch.setattr(CachedWheel, "_manifest", manifest)
    handed = _count_handed(monkeypatch)
    cls = LinkingDestination if writes == "own" else _PassesThrough
    with cache.open(wheel) as source:
        installer.install(source, _destination(tmp_path / "env", cls), META)
    if writes == "own":
        assert read == [] and handed == ["demo/__init__.py", "demo-1.0.data/scripts/demo-shebang"], (read, handed)
    else:
        assert read and len(handed) == entry_files, handed
    monkeypatch.undo()
    with WheelFile.open(wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref", SchemeDictionaryDestination), META)
    assert _tree(tmp_path / "env") == _tree(tmp_path / "ref") == _tree(tmp_path / "first")


class _PassesThrough(LinkingDestination):
    """A subclass whose ``write_to_fs`` only passes every file on."""

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        return super().write_to_fs(scheme, path, stream, is_executable)


def test_files_are_skipped_only_for_installers_walk_into_this_destination(tmp_path: Path, demo_wheel: Path) -> None:
    """installer's own loop is spared the placed files only when it walks the
    source's own ``get_contents`` for the very destination that placed
    them: a source subclass that filters its files, a destination wrapping
    ours that leaves files out, and one feeding two of ours (a tee) each get
    installer's own result."""
    from installer.destinations import WheelDestination

    def plain_json(element: Any) -> bool:
        return not element[0][0].endswith(".json")

    class FilteredCached(CachedWheelSource):
        def get_contents(self) -> Any:
            return filter(plain_json, super().get_contents())

    class FilteredPlain(WheelFile):
        def get_contents(self) -> Any:
            return filter(plain_json, super().get_contents())

    class Without(WheelDestination):
        """Leaves the .json files out (and their rows)."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def write_script(self, **kwargs: Any) -> Any:
            return self.inner.write_script(**kwargs)

        def write_file(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> Any:
            if str(path).endswith(".json"):
                return RecordEntry(str(path), None, None)
            return self.inner.write_file(scheme, path, stream, is_executable)

        def finalize_installation(self, scheme: Scheme, record_file_path: str, records: Any) -> None:
            kept = [r for r in records if not r[1].path.endswith(".json")]
            self.inner.finalize_installation(scheme, record_file_path, kept)

    class Tee(WheelDestination):
        def __init__(self, *inner: Any) -> None:
            self.inner = inner

        def write_script(self, **kwargs: Any) -> Any:
            return [d.write_script(**kwargs) for d in self.inner][0]

        def write_file(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> Any:
            answers = []
            for d in self.inner:
                stream.seek(0)
                answers.append(d.write_file(scheme, path, stream, is_executable))
            return answers[0]

        def finalize_installation(self, scheme: Scheme, record_file_path: str, records: Any) -> None:
            records = list(records)
            for d in self.inner:
                d.finalize_installation(scheme, record_file_path, records)

    cache = WheelCache(tmp_path / "c")
    with cache.open(demo_wheel) as source:
        installer.install(FilteredCached(source.entry, cache), _destination(tmp_path / "filtered"), META)
        installer.install(source, Without(_destination(tmp_path / "without")), META)
        installer.install(source, Tee(_destination(tmp_path / "tee1"), _destination(tmp_path / "tee2")), META)
    reference = SchemeDictionaryDestination
    with FilteredPlain.open(demo_wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref-filtered", reference), META)
    with WheelFile.open(demo_wheel) as plain:
        installer.install(plain, Without(_destination(tmp_path / "ref-without", reference)), META)
    with WheelFile.open(demo_wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref", reference), META)
    assert _tree(tmp_path / "filtered") == _tree(tmp_path / "ref-filtered")
    assert _tree(tmp_path / "without") == _tree(tmp_path / "ref-without")
    assert not any(name.endswith(".json") for name in _tree(tmp_path / "without"))
    assert _tree(tmp_path / "tee1") == _tree(tmp_path / "tee2") == _tree(tmp_path / "ref")


def test_two_threads_installing_one_source_each_skip_their_own(
    tmp_path: Path, demo_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What installer is not handed is kept per walk, not on the source:
    two installs of one source on two threads, the second starting its walk
    while the first has placed its entry and not finished, both give
    installer's tree, and both skip."""
    import threading

    first_placed, second_walking = threading.Event(), threading.Event()
    real_whole = LinkingDestination._whole_entry
    dest_a, dest_b = _destination(tmp_path / "a"), _destination(tmp_path / "b")

    def whole_entry(self: Any, *args: Any) -> Any:
        whole = real_whole(self, *args)
        if self is dest_a:
            first_placed.set()
            assert second_walking.wait(10)
        else:
            second_walking.set()
        return whole

    monkeypatch.setattr(LinkingDestination, "_whole_entry", whole_entry)
    handed = _count_handed(monkeypatch)
    cache = WheelCache(tmp_path / "c")
    entry = cache.get(demo_wheel)
    with cache.open(demo_wheel) as source:

        def second() -> None:
            assert first_placed.wait(10)
            installer.install(source, dest_b, META)

        thread = threading.Thread(target=second)
        thread.start()
        installer.install(source, dest_a, META)
        thread.join(30)
    monkeypatch.undo()
    with WheelFile.open(demo_wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref", SchemeDictionaryDestination), META)
    reference = _tree(tmp_path / "ref")
    assert _tree(tmp_path / "a") == reference and _tree(tmp_path / "b") == reference
    assert len(handed) < len(entry.files)  # (both walks skipped)


def test_an_existing_record_stays_when_a_link_fails(tmp_path: Path, make_wheel: Any) -> None:
    """Over an installed version (``overwrite_existing``), RECORD is written
    only once every link is in: a link failing leaves the old RECORD, which
    still lists the old files."""
    old = make_wheel(WheelSpec(files={"demo/__init__.py": b"", "demo/old.py": b"OLD = 1\n"}))
    files = {f"demo/m{i:03}.py": f"X = {i}\n".encode() for i in range(300)}
    files["demo/__init__.py"] = b""
    new = make_wheel(WheelSpec(files=files))
    base = tmp_path / "env"
    with WheelFile.open(old) as plain:
        installer.install(plain, _destination(base, SchemeDictionaryDestination), META)
    record = base / "purelib/demo-1.0.dist-info/RECORD"
    before = record.read_bytes()
    cache = WheelCache(tmp_path / "c")
    (cache.get(new).tree / "demo" / "m299.py").unlink()  # (a damaged entry: the last link fails)
    with cache.open(new) as source, pytest.raises(Exception, match="m299.py"):
        installer.install(source, _destination(base, overwrite_existing=True), META)
    assert record.read_bytes() == before
    assert (base / "purelib/demo/old.py").is_file()


def test_rows_of_one_path_in_two_schemes_keep_installers_order(tmp_path: Path, make_wheel: Any) -> None:
    """RECORD sorts by the path within its scheme, and keeps installer's
    order for equal ones: the files not handed to installer are listed where
    it would have listed them."""
    files = {
        "demo/__init__.py": b"",
        "demo-1.0.data/data/tool": b"data\n",
        "demo-1.0.data/scripts/tool": (b"#!python\nprint(1)\n", 0o755),
    }
    wheel = make_wheel(WheelSpec(files=files))
    with WheelCache(tmp_path / "c").open(wheel) as source:
        installer.install(source, _destination(tmp_path / "env"), META)
    with WheelFile.open(wheel) as plain:
        installer.install(plain, _destination(tmp_path / "ref", SchemeDictionaryDestination), META)
    assert _tree(tmp_path / "env") == _tree(tmp_path / "ref")


def test_a_walk_driven_from_c_gets_every_file(tmp_path: Path, demo_wheel: Path) -> None:
    """``get_contents`` consumed by C code with no Python frame above it (a
    new thread running ``list.extend`` over a chain that sets an event when
    the walk is over) still hands over every file."""
    import _thread
    import itertools
    import threading

    done = threading.Event()
    out: list[Any] = []
    with WheelCache(tmp_path / "c").open(demo_wheel) as source:
        walk = itertools.chain(source.get_contents(), iter(done.set, None))
        _thread.start_new_thread(out.extend, (walk,))
        assert done.wait(10)
        assert len(out) == len(source.entry.files) + 1  # (RECORD last)


def test_a_link_failing_after_record_was_written_leaves_nothing(tmp_path: Path, make_wheel: Any) -> None:
    """A whole entry's RECORD is written while the threads still link: when
    one of those links then fails, the install raises and RECORD goes with
    everything else it placed."""
    files = {f"demo/m{i:03}.py": f"X = {i}\n".encode() for i in range(300)}
    wheel = make_wheel(WheelSpec(name="demo", version="1.0", files=files))
    base = tmp_path / "env"
    (base / "purelib").mkdir(parents=True)
    before = file_tree(base)
    cache = WheelCache(tmp_path / "c")
    entry = cache.get(wheel)
    (entry.tree / "demo" / "m299.py").unlink()  # (a damaged entry: the last link fails)
    dest = _destination(base)
    written: list[str] = []
    real_write_record = dest._write_record

    def write_record(scheme: Scheme, path: str, records: Any) -> None:
        real_write_record(scheme, path, records)
        written.append(path)

    dest._write_record = write_record
    with cache.open(wheel) as source, pytest.raises(Exception) as caught:
        installer.install(source, dest, META)
    assert "m299.py" in str(caught.value)
    assert written == ["demo-1.0.dist-info/RECORD"]  # (before the failure was known)
    assert file_tree(base) == before


def test_a_subclass_compiling_its_own_way_sees_every_file_placed_whole(
    tmp_path: Path, make_wheel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination with its own ``_compile_bytecode`` is called for every
    file, those installer was not handed too (each in its scheme, with
    RECORD's hash and size), in installer's order; the tree and RECORD stay
    installer's."""
    spec = demo_spec(long_paths=False)
    files = dict(spec.files)
    files["demo-1.0.data/purelib/demo_extra.py"] = b"X = 1\n"
    wheel = make_wheel(WheelSpec(name="demo", version="1.0", files=files, entry_points=spec.entry_points))

    def seen_by(cls: type) -> type:
        class Seeing(cls):  # type: ignore[misc,valid-type]
            def _compile_bytecode(self, scheme: Scheme, record: RecordEntry) -> None:
                self.seen.append((scheme, record.path, str(record.hash_), record.size))

        return Seeing

    handed = _count_handed(monkeypatch)
    ours = _destination(tmp_path / "env", seen_by(LinkingDestination), bytecode_optimization_levels=(0,))
    ours.seen = []
    with WheelCache(tmp_path / "c").open(wheel) as source:
        installer.install(source, ours, META)
    assert len(handed) <= 2  # (the first file and the #!python script: the rest were placed whole)
    monkeypatch.undo()
    ref = _destination(tmp_path / "ref", seen_by(SchemeDictionaryDestination), bytecode_optimization_levels=(0,))
    ref.seen = []
    with WheelFile.open(wheel) as plain:
        installer.install(plain, ref, META)
    # installer's own lists RECORD's files once; ours adds the cached pycs' rows
    assert [row for row in ours.seen if "__pycache__" not in row[1]] == ref.seen
    assert ("purelib", "demo_extra.py") in [(s, p) for s, p, _, _ in ours.seen]
    assert _tree(tmp_path / "env").keys() >= _tree(tmp_path / "ref").keys()
