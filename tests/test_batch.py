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
    return [*real_wheels, build_wheel(tmp_path / "w", demo_spec()), build_wheel(tmp_path / "w", many)]


def _install_each(wheels: list[Path], cache: WheelCache, base: Path, batch: LinkBatch | None, **kwargs: Any) -> None:
    for wheel in wheels:
        with cache.open(wheel) as source:
            installer.install(source, _destination(base, batch=batch, **kwargs), META)


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


def test_bytecode_installer_compiles_is_compiled_from_the_placed_files(tmp_path: Path, wheels: list[Path]) -> None:
    """Where installer compiles (bytecode not linked from the cache), it
    reads each file where it lands: the batch waits for them first."""
    cache = WheelCache(tmp_path / "c")
    base = tmp_path / "env"
    with LinkBatch("hardlink") as batch:
        _install_each(wheels, cache, base, batch, bytecode_optimization_levels=(0,), cached_bytecode=False)
    sources = [p for p in (base / "purelib").rglob("*.py") if "__pycache__" not in p.parts]
    assert len(sources) > 1500
    missing = [p for p in sources if not Path(pyc_path(str(p), 0)).is_file()]
    assert missing == []


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


def test_an_empty_batch_and_one_entered_twice(tmp_path: Path) -> None:
    with LinkBatch("hardlink") as batch:
        pass
    assert batch.report.summary().startswith("pip-linkmode: ")
    with pytest.raises(RuntimeError, match="entered once"):
        batch.__enter__()


def test_what_a_batch_refuses(tmp_path: Path) -> None:
    base = tmp_path / "env"
    idle = LinkBatch("hardlink")
    with pytest.raises(RuntimeError, match="inside its with block"):
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

