"""``LinkBatch``: ``installer.install`` calls whose files are placed while the
next one is prepared, all in place at the end of the block, all or nothing."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path
from typing import Any

import installer
import pytest
from conftest import file_tree, link_modes
from installer.destinations import SchemeDictionaryDestination
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import (
    LinkBatch,
    LinkError,
    LinkingDestination,
    LinkMode,
    WheelCache,
    cache_admin,
    installer_api,
)
from pip_linkmode.bytecode import pyc_path
from pip_linkmode.linker.helpers import join_starts

META = {"INSTALLER": b"test\n"}


def _scheme(base: Path) -> dict[str, str]:
    """Each scheme a directory of its own under ``base``, the data scheme
    ``base`` itself (as in a venv: the environment a symlink user is)."""
    return {"data": str(base), **{name: str(base / name) for name in ("purelib", "platlib", "headers", "scripts")}}


def _destination(base: Path, **kwargs: Any) -> LinkingDestination:
    return LinkingDestination(_scheme(base), sys.executable, "posix", **kwargs)


def _tree(base: Path) -> dict[str, tuple[int, bytes]]:
    """``file_tree`` with the base directory taken out of RECORD (installer
    lists files of schemes other than the root one by absolute path)."""
    spelled = str(base).replace(os.sep, "/").encode()
    return {
        name: (mode, data.replace(spelled, b"BASE") if name.endswith("RECORD") else data)
        for name, (mode, data) in file_tree(base).items()
    }


@pytest.fixture
def wheels(tmp_path: Path, real_wheels: list[Path]) -> list[Path]:
    """Real wheels, the demo wheel (scripts, .data, long paths) and one of
    1,500 files (more than the linker hands to threads before it starts
    its helper processes)."""
    many = WheelSpec(name="many", files={f"many/m{i:04d}.py": f"N = {i}\n".encode() for i in range(1500)})
    return [build_wheel(tmp_path / "w", many), *real_wheels, build_wheel(tmp_path / "w", demo_spec())]


def _install_each(wheels: list[Path], cache: WheelCache, base: Path, batch: LinkBatch | None, **kwargs: Any) -> None:
    for wheel in wheels:
        with cache.open(wheel) as source:
            installer.install(source, _destination(base, batch=batch, **kwargs), META)
        if wheel.name.startswith("many"):
            join_starts()  # (the helpers it started take the next installs' files)


@pytest.mark.parametrize("mode", link_modes("hardlink", "copy", "symlink"))
def test_a_batch_places_what_installs_one_by_one_place(tmp_path: Path, wheels: list[Path], mode: str) -> None:
    cache = WheelCache(tmp_path / "c")
    _install_each(wheels, cache, tmp_path / "one" / "env", None, link_mode=mode)
    with LinkBatch(mode) as batch:
        _install_each(wheels, cache, tmp_path / "all" / "env", batch)
    assert batch.report.counts[LinkMode(mode)] > 1500
    assert _tree(tmp_path / "all" / "env") == _tree(tmp_path / "one" / "env")
    if mode == "symlink":  # every entry knows the environment links into it (cache clean keeps it)
        for wheel in wheels:
            with cache.open(wheel) as source:
                users = cache_admin.users_of(cache, source.entry.key)
            assert users == sorted(os.path.realpath(tmp_path / how / "env") for how in ("one", "all")), wheel.name


@pytest.mark.parametrize("cached", [True, False], ids=["linked-from-the-cache", "compiled-by-installer"])
def test_bytecode_in_a_batch_and_removed_with_it(
    tmp_path: Path, wheels: list[Path], cached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytecode compiled into a fresh cache while earlier installs' files
    are being placed (by compiling processes that are not forked beside
    the busy placing threads), or compiled by installer from each file
    where it lands: every source gets its .pyc; and a failure later in a
    batch removes those of the installs before it too."""
    from pip_linkmode import bytecode

    streamed: list[object] = []

    class Streamed(bytecode._StreamPool):
        def __init__(self, workers: int) -> None:
            streamed.append(self)
            super().__init__(workers)

    monkeypatch.setattr(bytecode, "_StreamPool", Streamed)
    more = WheelSpec(name="more", files={f"more/m{i:03d}.py": f"M = {i}\n".encode() for i in range(300)})
    wheels = [wheels[0], build_wheel(tmp_path / "w2", more), *wheels[1:]]
    cache = WheelCache(tmp_path / "c")
    base = tmp_path / "env"
    with LinkBatch("hardlink") as batch:
        _install_each(wheels, cache, base, batch, bytecode_optimization_levels=(0,), cached_bytecode=cached)
    if cached and (os.cpu_count() or 1) > 1:  # ("more" compiled while "many" was still in the placing threads' hands)
        assert streamed, "a compiling pool was forked beside busy placing threads"
    sources = [p for p in (base / "purelib").rglob("*.py") if "__pycache__" not in p.parts]
    assert len(sources) > 1800
    missing = [p for p in sources if not Path(pyc_path(str(p), 0)).is_file()]
    assert missing == []

    failing = tmp_path / "failing"
    blocker = failing / "purelib" / "demo" / "core.py"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"mine\n")
    before = file_tree(failing)
    with pytest.raises(FileExistsError), LinkBatch("hardlink") as batch:
        _install_each(wheels, cache, failing, batch, bytecode_optimization_levels=(0,), cached_bytecode=cached)
    assert file_tree(failing) == before
    assert [p for p in failing.rglob("__pycache__")] == []


def test_an_install_that_fails_removes_every_install_of_the_batch(tmp_path: Path, wheels: list[Path]) -> None:
    base = tmp_path / "env"
    blocker = base / "purelib" / "demo" / "core.py"
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"mine\n")
    before = file_tree(base)
    cache = WheelCache(tmp_path / "c")
    order = [w for w in wheels if not w.name.startswith("demo")] + [w for w in wheels if w.name.startswith("demo")]
    with pytest.raises(FileExistsError) as caught, LinkBatch("hardlink") as batch:
        _install_each(order, cache, base, batch)
    assert str(caught.value) == f"File already exists: {blocker}"
    assert batch.failure is caught.value
    assert file_tree(base) == before  # the installs before it, whose calls returned, are gone too


def test_a_failure_the_tool_caught_still_fails_the_batch(tmp_path: Path, wheels: list[Path]) -> None:
    base = tmp_path / "env"
    (base / "purelib" / "six.py").parent.mkdir(parents=True)
    (base / "purelib" / "six.py").write_bytes(b"mine\n")
    before = file_tree(base)
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(LinkError, match=r"every install of this LinkBatch was removed: one of them failed \(File already exists: "):  # noqa: SIM117
        with LinkBatch("hardlink") as batch:
            for wheel in wheels:
                try:
                    _install_each([wheel], cache, base, batch)
                except FileExistsError:
                    continue  # a tool that goes on: the next install is refused
                except LinkError as refused:
                    assert "rolled back after an install of it failed" in str(refused)
                    break
            else:
                pytest.fail("the batch took installs after one of them failed")
    assert file_tree(base) == before


def test_two_installs_of_a_batch_placing_one_file(tmp_path: Path, make_wheel: Any) -> None:
    """The second install's file is refused whether the first one's is in
    place already (FileExistsError from installer.install) or still being
    placed (the link's LinkError at the end); either way nothing is left."""
    a = make_wheel(WheelSpec(name="ns-a", files={"ns/__init__.py": b"# a\n", **{f"ns/a{i}.py": b"" for i in range(300)}}))
    b = make_wheel(WheelSpec(name="ns-b", files={"ns/__init__.py": b"# b\n", "ns/b.py": b""}))
    base = tmp_path / "env"
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(OSError, match=r"ns[/\\]__init__\.py"), LinkBatch("hardlink") as batch:
        _install_each([a, b], cache, base, batch)
    assert batch.failure is not None
    assert [p for p in base.rglob("*") if not p.is_dir()] == []


def test_an_interrupt_in_the_block_removes_what_it_installed(tmp_path: Path, wheels: list[Path]) -> None:
    base = tmp_path / "env"
    cache = WheelCache(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt), LinkBatch("hardlink") as batch:
        _install_each(wheels, cache, base, batch)
        raise KeyboardInterrupt
    assert [p for p in base.rglob("*") if not p.is_dir()] == []


def test_a_destination_of_a_failed_or_ended_batch_installs_no_more(tmp_path: Path, wheels: list[Path]) -> None:
    """Kept for a later install: once its batch failed, or ended, a
    destination refuses to install, and leaves nothing."""
    base = tmp_path / "env"
    (base / "purelib").mkdir(parents=True)
    (base / "purelib" / "six.py").write_bytes(b"mine\n")
    before = file_tree(base)
    cache = WheelCache(tmp_path / "c")
    six = next(w for w in wheels if w.name.startswith("six"))
    idna = next(w for w in wheels if w.name.startswith("idna"))
    with pytest.raises(LinkError, match="every install of this LinkBatch was removed"), LinkBatch("hardlink") as batch:
        kept = _destination(base, batch=batch)
        with cache.open(six) as source, pytest.raises(FileExistsError):
            installer.install(source, kept, META)
        with cache.open(idna) as source, pytest.raises(LinkError, match="rolled back after an install of it failed"):
            installer.install(source, kept, META)
    assert file_tree(base) == before
    with LinkBatch("hardlink") as batch:
        kept = _destination(tmp_path / "other", batch=batch)
    with cache.open(idna) as source, pytest.raises(RuntimeError, match=r"\(this one has ended\)"):
        installer.install(source, kept, META)
    assert not (tmp_path / "other").exists()


class _WritesItself(LinkingDestination):
    def write_to_fs(self, scheme: Any, path: str, stream: Any, is_executable: bool) -> Any:
        return super().write_to_fs(scheme, path, stream, is_executable)


def test_what_a_batch_cannot_take(tmp_path: Path, wheels: list[Path]) -> None:
    """A destination class that writes files its own way (a tool's
    subclass), and, through the one-call swap, a destination the batch
    cannot make its own: refused, with what to do."""
    base = tmp_path / "env"
    with LinkBatch("hardlink") as batch:
        with pytest.raises(ValueError, match="_WritesItself writes or compiles files its own way"):
            _WritesItself(_scheme(base), sys.executable, "posix", batch=batch)
        outside = _destination(base, link_mode="hardlink")
        with pytest.raises(ValueError, match="LinkingDestination is no destination of this LinkBatch"):
            installer_api.install(wheels[0], outside, META, cache=tmp_path / "c", batch=batch)
    assert not base.exists()


def test_an_empty_batch_and_one_entered_twice(tmp_path: Path) -> None:
    with LinkBatch("hardlink") as batch:
        pass
    assert batch.report.summary().startswith("pip-linkmode: ")
    with pytest.raises(RuntimeError, match="entered once"):
        batch.__enter__()


def test_what_a_batch_refuses(tmp_path: Path) -> None:
    base = tmp_path / "env"
    idle = LinkBatch("hardlink")
    with pytest.raises(RuntimeError, match="installs inside its with block"):
        _destination(base, batch=idle)
    with LinkBatch("hardlink") as batch:
        with pytest.raises(ValueError, match="overwrite_existing=True cannot join"):
            _destination(base, batch=batch, overwrite_existing=True)
        with pytest.raises(ValueError, match="link_mode copy cannot join a LinkBatch that links in mode hardlink"):
            _destination(base, batch=batch, link_mode="copy")
        with pytest.raises(ValueError, match="a linker or a batch, not both"):
            _destination(base, batch=batch, linker=_destination(base).linker)
        joined = _destination(base, batch=batch)  # the batch's mode, unless given
        assert joined.link_mode is LinkMode.HARDLINK and not joined.wait_for_links
        errors: list[BaseException] = []

        def other_thread() -> None:
            try:
                _destination(base, batch=batch)
            except RuntimeError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert [str(e) for e in errors] == ["a LinkBatch takes the installs of the thread that entered it"]
    with pytest.raises(RuntimeError, match=r"\(this one has ended\)"):
        _destination(base, batch=batch)


def test_the_one_call_swap_takes_a_batch(tmp_path: Path, wheels: list[Path]) -> None:
    cache = WheelCache(tmp_path / "c")
    for how in ("one", "all"):
        base = tmp_path / how / "env"
        with LinkBatch("hardlink") if how == "all" else contextlib.nullcontext() as batch:
            for wheel in wheels:
                plain = SchemeDictionaryDestination(_scheme(base), sys.executable, "posix")
                installer_api.install(wheel, plain, META, cache=cache, link_mode="hardlink", batch=batch)
    assert _tree(tmp_path / "all" / "env") == _tree(tmp_path / "one" / "env")
    inode = os.stat(tmp_path / "all" / "env" / "purelib" / "many" / "m0001.py")
    assert inode.st_nlink >= 3  # the cache's file, linked into both environments

