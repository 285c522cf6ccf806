"""Recorded seed plans: the second venv replays the first one's install.

Every replay is compared with what the full engine makes at the same path
(same files, bytes, modes, link relations and RECORD), and shown not to have
run the engine at all.
"""

from __future__ import annotations

import csv
import os
import shutil
import stat
import sys
import threading
import time
import venv as venv_module
from pathlib import Path

import pytest
from conftest import (
    CAN_SYMLINK,
    Mounts,
    link_modes,
    needs_symlinks,
    record_path,
    script,
    scripts_dir,
    shares_extents,
    site_packages,
    snapshot,
)
from test_venv import exe_launcher_parts, file_hash, pip_works

import pip_linkmode.venv as plm_venv
from pip_linkmode import WheelCache, plan
from pip_linkmode.venv import create

#: the interpreter's file name in a venv
PYTHON = "python.exe" if os.name == "nt" else "python"


def _plans(cache: Path) -> list[Path]:
    return sorted((cache / "plans").glob("*.json")) if (cache / "plans").is_dir() else []


def _engine_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the full install path fail, so only a replay can seed."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the engine ran: the plan was not replayed")

    monkeypatch.setattr(plm_venv, "install_wheels", refuse)


def _tree(env: Path) -> dict[str, tuple[str, int, bytes | str, int]]:
    """Every file and link below ``env``: kind, mode bits, content (or link
    target), link count. A Windows ``.exe`` launcher is its parts (its zip
    carries the time it was made), and RECORD lists launchers without their
    hash and size, which follow from those parts."""
    out: dict[str, tuple[str, int, bytes | str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(env):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, env)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(path), 1)
                continue
            data = Path(path).read_bytes()
            if os.name == "nt" and name.endswith(".exe") and os.path.basename(dirpath) == "Scripts" and name not in ("python.exe", "pythonw.exe"):
                launcher, shebang, code = exe_launcher_parts(Path(path))
                data = b"\0".join([launcher, shebang.encode(), code.encode()])
            elif name == "RECORD" and os.name == "nt":
                rows = [line.split(",") for line in data.decode("utf-8").splitlines()]
                data = "\n".join(",".join(r[:1] if r[0].endswith(".exe") else r) for r in rows).encode()
            out[rel] = ("file", stat.S_IMODE(st.st_mode), data, min(st.st_nlink, 2))
    return out


def _replayed_equals_engine(env: Path, cache: Path, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay into ``env``, then let the engine build the same path; both trees are equal."""
    with monkeypatch.context() as m:
        _engine_forbidden(m)
        result = create(env, link_mode=mode, cache_dir=cache)
    assert result is not None and any(n.startswith("pip-") for n in result.installed)
    replayed = _tree(env)
    shutil.rmtree(env)
    kept = cache / "plans-aside"
    (cache / "plans").rename(kept)  # no plan: the engine installs
    create(env, link_mode=mode, cache_dir=cache)
    shutil.rmtree(cache / "plans")
    kept.rename(cache / "plans")
    engine = _tree(env)
    assert sorted(replayed) == sorted(engine)
    for rel in engine:
        assert replayed[rel] == engine[rel], rel


@pytest.mark.parametrize("mode", link_modes("auto", "hardlink", "copy", "symlink"))
def test_second_venv_replays_the_first(
    mode: str, tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tmp_path / "first"
    create(first, link_mode=mode, cache_dir=cache_dir)
    (recorded,) = _plans(cache_dir)
    second = tmp_path / "second-env"
    _replayed_equals_engine(second, cache_dir, mode, monkeypatch)
    assert _plans(cache_dir) == [recorded]
    # the scripts name their own environment's interpreter, and RECORD hashes them as they are
    site = site_packages(second)
    (dist_info,) = site.glob("pip-*.dist-info")
    rows = {r[0]: r for r in csv.reader((dist_info / "RECORD").read_text("utf-8").splitlines()) if r}
    # the interpreter `python -m venv` names (bin/python3.11 when this runs in a venv)
    probe = venv_module.EnvBuilder().ensure_directories(tmp_path / "probe")
    interpreter = scripts_dir(second) / os.path.basename(probe.env_exec_cmd)
    for name in ("pip", "pip3", f"pip{sys.version_info[0]}.{sys.version_info[1]}"):
        path = script(second, name)
        if os.name == "nt":
            shebang = exe_launcher_parts(path)[1]
        else:
            shebang = path.read_text().splitlines()[0]
        assert shebang == f"#!{interpreter}"
        row = rows[record_path(second, path)]
        assert row[1:] == [file_hash(path), str(path.stat().st_size)]
    pip_works(second, pip_demo_wheel, cache_dir)


def test_replay_clones_on_xfs(mounts: Mounts, monkeypatch: pytest.MonkeyPatch) -> None:
    xfs = mounts.points["xfs"]
    cache, first, second = xfs / "plan-cache", xfs / "plan-first", xfs / "plan-second"
    try:
        create(first, link_mode="clone", cache_dir=cache)
        _replayed_equals_engine(second, cache, "clone", monkeypatch)
        assert shares_extents(site_packages(second) / "pip" / "_internal" / "req" / "req_install.py")
    finally:
        for d in (cache, first, second):
            shutil.rmtree(d, ignore_errors=True)


def test_what_the_key_covers(tmp_path: Path, cache_dir: Path) -> None:
    create(tmp_path / "a", link_mode="hardlink", cache_dir=cache_dir)
    create(tmp_path / "b", link_mode="copy", cache_dir=cache_dir)
    create(tmp_path / "c", link_mode="copy", cache_dir=cache_dir, compile_bytecode=False)
    assert len(_plans(cache_dir)) == 3  # link mode and bytecode are part of the key
    create(tmp_path / "d", link_mode="copy", cache_dir=cache_dir)
    assert len(_plans(cache_dir)) == 3  # the same settings again: replayed, nothing new


def test_wheel_changed_means_a_new_plan(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = Path(plm_venv.interpreter_info().wheels["pip"])
    copy = tmp_path / "wheels" / bundled.name
    copy.parent.mkdir()
    shutil.copy2(bundled, copy)
    real = plm_venv.interpreter_info

    def with_copy() -> plm_venv.Interpreter:
        info = real()
        return info._replace(wheels={**info.wheels, "pip": str(copy)})

    monkeypatch.setattr(plm_venv, "interpreter_info", with_copy)
    create(tmp_path / "a", cache_dir=cache_dir)
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))  # as an upgrade in place would
    create(tmp_path / "b", cache_dir=cache_dir)
    assert len(_plans(cache_dir)) == 2


def test_removed_entry_installs_normally_and_records_again(
    tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path
) -> None:
    from pip_linkmode import cache_admin

    create(tmp_path / "a", cache_dir=cache_dir)
    (recorded,) = _plans(cache_dir)
    cache_admin.clean(WheelCache(cache_dir), ["pip"])
    assert not any(e.name == "pip" for e in WheelCache(cache_dir).iter_entries())
    assert _plans(cache_dir) == []  # clean forgets the plans that link from it
    create(tmp_path / "b", cache_dir=cache_dir)  # the plan's entry is gone: unpacked again
    assert any(e.name == "pip" for e in WheelCache(cache_dir).iter_entries())
    assert _plans(cache_dir) == [recorded]  # recorded again, same key
    pip_works(tmp_path / "b", pip_demo_wheel, cache_dir)


def test_damaged_plan_is_ignored_and_replaced(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(tmp_path / "a", cache_dir=cache_dir)
    (recorded,) = _plans(cache_dir)
    recorded.write_text("{not json")
    create(tmp_path / "b", cache_dir=cache_dir)
    assert "links" in recorded.read_text()
    with monkeypatch.context() as m:
        _engine_forbidden(m)
        create(tmp_path / "c", cache_dir=cache_dir)


@pytest.mark.skipif(os.name == "nt", reason="a Windows launcher names any interpreter path as it is: no /bin/sh shebang there")
def test_interpreter_path_needing_the_sh_shebang_is_never_replayed(
    tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path
) -> None:
    create(tmp_path / "plain", cache_dir=cache_dir)
    assert len(_plans(cache_dir)) == 1
    spaced = tmp_path / "with space" / "env"
    create(spaced, cache_dir=cache_dir)
    assert (scripts_dir(spaced) / "pip").read_text().startswith("#!/bin/sh\n")
    long = tmp_path / ("x" * 120) / "env"
    create(long, cache_dir=cache_dir)
    assert (scripts_dir(long) / "pip").read_text().startswith("#!/bin/sh\n")
    assert len(_plans(cache_dir)) == 1  # neither was recorded
    assert not plan.plain_interpreter(str(scripts_dir(spaced) / "python"))
    pip_works(spaced, pip_demo_wheel, cache_dir)


@pytest.mark.skipif(os.name != "nt", reason="POSIX: a path with a space needs the /bin/sh shebang (the test above)")
def test_interpreter_path_with_a_space_is_replayed_on_windows(
    tmp_path: Path, cache_dir: Path, pip_demo_wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A launcher takes the interpreter's path as it is, spaces and all: the
    plan is recorded in one such environment and replayed into another."""
    create(tmp_path / "with space" / "first", cache_dir=cache_dir)
    assert len(_plans(cache_dir)) == 1
    _replayed_equals_engine(tmp_path / "with space" / "second", cache_dir, "auto", monkeypatch)
    launcher = script(tmp_path / "with space" / "second", "pip")
    assert exe_launcher_parts(launcher)[1] == f"#!{scripts_dir(tmp_path / 'with space' / 'second') / PYTHON}"
    pip_works(tmp_path / "with space" / "second", pip_demo_wheel, cache_dir)


def test_replay_holds_the_entry_locks(tmp_path: Path, cache_dir: Path) -> None:
    """``cache clean`` takes an entry's lock: a replay waits for it (and it for a replay)."""
    create(tmp_path / "a", cache_dir=cache_dir)
    cache = WheelCache(cache_dir)
    pip_key = next(e.key for e in cache.iter_entries() if e.name == "pip")
    lock = cache.lock(pip_key)  # the cache's own lock: the replay's must respect it
    done = threading.Event()
    errors: list[BaseException] = []

    def seed() -> None:
        try:
            create(tmp_path / "b", cache_dir=cache_dir)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        done.set()

    with lock:
        worker = threading.Thread(target=seed)
        worker.start()
        assert not done.wait(1.5), "the replay did not wait for the entry lock"
    worker.join(60)
    assert done.is_set() and not errors
    assert (site_packages(tmp_path / "b") / "pip" / "__init__.py").is_file()


def test_record_refuses_what_it_cannot_repeat(tmp_path: Path) -> None:
    env, cache = tmp_path / "env", tmp_path / "cache"
    bin_dir = scripts_dir(env).name
    (env / bin_dir).mkdir(parents=True)
    (cache / "entries" / "k" / "tree").mkdir(parents=True)
    (cache / "locks").mkdir()
    (cache / "entries" / "k" / "entry.json").write_text("{}")  # published
    src = cache / "entries" / "k" / "tree" / "a.py"
    src.write_text("x")
    python = str(env / bin_dir / PYTHON)
    journal = [(str(src), str(env / "a.py"), 1)]
    # a file that was there before the install
    assert not plan.record(str(cache), "k1", str(env), python, journal, {"a.py"}, ["a-1"])
    # a link source outside the cache's entries
    assert not plan.record(str(cache), "k2", str(env), python, [(str(tmp_path / "x"), str(env / "a.py"), 1)], set(), ["a-1"])
    # a file placed under another name (a plan stores names once for both sides)
    assert not plan.record(str(cache), "k5", str(env), python, [(str(src), str(env / "b.py"), 1)], set(), ["a-1"])
    # a link the install did not make itself (a symlink appeared)
    if CAN_SYMLINK:
        os.symlink("elsewhere", env / "odd")
        assert not plan.record(str(cache), "k3", str(env), python, journal, set(), ["a-1"])
        os.unlink(env / "odd")
    # a generated file naming the environment otherwise than by its interpreter
    (env / "named.txt").write_text(f"made for {env}\n")
    assert not plan.record(str(cache), "k6", str(env), python, journal, set(), ["a-1"])
    os.unlink(env / "named.txt")
    # and what it can: recorded, then replayed elsewhere
    os.link(src, env / "a.py")
    (env / bin_dir / "tool").write_text(f"#!{python}\n")
    assert plan.record(str(cache), "k4", str(env), python, journal, set(), ["a-1"])
    other = tmp_path / "other"
    (other / bin_dir).mkdir(parents=True)
    before = snapshot(cache / "entries")
    done = plan.replay(str(cache), "k4", str(other), str(other / bin_dir / PYTHON), plm_venv.LinkMode.HARDLINK)
    assert done is not None and done.installed == ["a-1"]
    assert os.path.samefile(other / "a.py", src)
    assert (other / bin_dir / "tool").read_text() == f"#!{other / bin_dir / PYTHON}\n"
    assert snapshot(cache / "entries") == before  # a replay never changes the cache


@needs_symlinks
def test_symlink_replay_registers_its_environment(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pip_linkmode.cache_admin import users_of

    create(tmp_path / "a", link_mode="symlink", cache_dir=cache_dir)
    with monkeypatch.context() as m:
        _engine_forbidden(m)
        create(tmp_path / "b", link_mode="symlink", cache_dir=cache_dir)
    cache = WheelCache(cache_dir)
    pip_key = next(e.key for e in cache.iter_entries() if e.name == "pip")
    assert str(tmp_path / "b") in users_of(cache, pip_key)  # so `cache clean` keeps the entry


def test_a_changed_cached_pyc_is_not_replayed(tmp_path: Path, cache_dir: Path) -> None:
    """A replay checks each cached .pyc's size and mtime before it links it,
    as the engine does: a rewritten one sends the seed through the engine,
    which compiles it again, and the plan is recorded again."""
    create(tmp_path / "a", link_mode="hardlink", cache_dir=cache_dir)
    (recorded,) = _plans(cache_dir)
    tag = sys.implementation.cache_tag
    (pyc,) = cache_dir.glob(f"entries/*/tree/pip/__pycache__/__init__.{tag}.pyc")
    tampered = pyc.read_bytes() + b"# not what the compiler wrote\n"
    pyc.chmod(0o644)
    pyc.write_bytes(tampered)
    create(tmp_path / "b", link_mode="hardlink", cache_dir=cache_dir)
    placed = site_packages(tmp_path / "b") / "pip" / "__pycache__" / f"__init__.{tag}.pyc"
    assert placed.read_bytes() != tampered
    assert _plans(cache_dir) == [recorded]  # recorded again, under the same key
