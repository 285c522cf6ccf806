"""Each link mode and its fallbacks, on real filesystems."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    Mounts,
    link_modes,
    make_venv,
    shares_extents,
    site_packages,
    snapshot,
    venv_python,
)
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import LinkError, LinkMode, WheelCache, install_wheel
from pip_linkmode.linker import Linker, LinkJob


def _entry_jobs(cache: WheelCache, wheel: Path, target: Path) -> list[LinkJob]:
    entry = cache.get(wheel)
    return [LinkJob(str(entry.tree / f.path), str(target / f.path), f.size) for f in entry.files]


def _spec(n: int = 20, size: int = 20000) -> WheelSpec:
    return WheelSpec(files={f"pkg/m{i}.py": (f"x = {i}\n".encode() * (size // 8)) for i in range(n)})


def _check_relation(mode: LinkMode, src: Path, dst: Path) -> None:
    assert dst.read_bytes() == src.read_bytes()
    if mode is LinkMode.HARDLINK:
        assert os.stat(dst).st_ino == os.stat(src).st_ino
    elif mode is LinkMode.SYMLINK:
        assert dst.is_symlink() and os.readlink(dst) == str(src)
    else:
        assert not dst.is_symlink()
        assert os.stat(dst).st_ino != os.stat(src).st_ino
        if mode is LinkMode.COPY or dst.suffix == ".py":
            # Python sources keep the mtime their cached .pyc is checked against
            assert os.stat(dst).st_mtime_ns == os.stat(src).st_mtime_ns
        assert os.stat(dst).st_mode == os.stat(src).st_mode


@pytest.mark.parametrize("mode", link_modes(LinkMode.HARDLINK, LinkMode.SYMLINK, LinkMode.COPY))
def test_modes_on_one_filesystem(mode: LinkMode, tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", _spec())
    jobs = _entry_jobs(cache, wheel, tmp_path / "target")
    report = Linker(mode).run(jobs)
    assert report.counts[mode] == len(jobs) and sum(report.counts.values()) == len(jobs)
    for job in jobs:
        _check_relation(mode, Path(job.src), Path(job.dst))
    expected_shared = 0 if mode is LinkMode.COPY else sum(j.size for j in jobs)
    assert report.bytes_shared == expected_shared


@pytest.mark.parametrize("fs", ["xfs", "btrfs"])
@pytest.mark.parametrize("mode", [LinkMode.CLONE, LinkMode.AUTO])
def test_clone_shares_extents(fs: str, mode: LinkMode, mounts: Mounts, tmp_path: Path) -> None:
    root = mounts.points[fs] / tmp_path.name
    cache = WheelCache(root / "cache")
    wheel = build_wheel(tmp_path / "w", _spec(5, 64 * 1024))
    jobs = _entry_jobs(cache, wheel, root / f"target-{mode}")
    report = Linker(mode).run(jobs)
    assert report.counts[LinkMode.CLONE] == len(jobs)
    if mode is LinkMode.AUTO:
        assert any("auto chose clone" in n for n in report.notes)
    os.sync()
    for job in jobs:
        _check_relation(LinkMode.CLONE, Path(job.src), Path(job.dst))
    # btrfs keeps tiny files inline in metadata: only files over a block have extents.
    big = [job for job in jobs if job.size > 8192]
    assert len(big) == 5
    for job in big:
        assert shares_extents(Path(job.dst)), f"{job.dst} does not share extents with the cache"


def test_clone_on_ext4_falls_back(mounts: Mounts, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = mounts.points["ext4"] / tmp_path.name
    cache = WheelCache(root / "cache")
    wheel = build_wheel(tmp_path / "w", _spec(4))
    # auto: clone refused by ext4, hardlink works; said in the summary, no warning
    report = Linker(LinkMode.AUTO).run(_entry_jobs(cache, wheel, root / "t1"))
    assert report.counts[LinkMode.HARDLINK] == 6
    assert "auto chose hardlink: clone not possible" in report.summary()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # explicit clone: falls back to copy with exactly one warning per process
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        r1 = Linker(LinkMode.CLONE).run(_entry_jobs(cache, wheel, root / "t2"))
        r2 = Linker(LinkMode.CLONE).run(_entry_jobs(cache, wheel, root / "t3"))
    assert r1.counts[LinkMode.COPY] == 6 and r2.counts[LinkMode.COPY] == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "clone is not possible" in warnings[0] and "--link-mode=copy" in warnings[0]
    assert "PIP_LINK_MODE=copy" in warnings[0]


def test_hardlink_across_filesystems_falls_back_to_copy(mounts: Mounts, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = WheelCache(mounts.points["ext4"] / tmp_path.name / "cache")
    wheel = build_wheel(tmp_path / "w", _spec(6))
    target = mounts.points["xfs"] / tmp_path.name
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        report = Linker(LinkMode.HARDLINK).run(_entry_jobs(cache, wheel, target / "a"))
        Linker(LinkMode.HARDLINK).run(_entry_jobs(cache, wheel, target / "b"))
    assert report.counts[LinkMode.COPY] == 8 and report.bytes_shared == 0
    assert "fell back to copy: hardlink not possible (cache and target are on different filesystems)" in report.summary()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "different filesystems" in warnings[0] and "--cache-dir" in warnings[0]
    for job in _entry_jobs(cache, wheel, target / "a"):
        _check_relation(LinkMode.COPY, Path(job.src), Path(job.dst))


def test_auto_across_filesystems_copies_without_warning(mounts: Mounts, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = WheelCache(mounts.points["xfs"] / tmp_path.name / "cache")
    wheel = build_wheel(tmp_path / "w", _spec(3))
    with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
        report = Linker(LinkMode.AUTO).run(_entry_jobs(cache, wheel, mounts.points["btrfs"] / tmp_path.name))
    assert report.counts[LinkMode.COPY] == 5
    assert "auto chose copy" in report.summary() and "different filesystems" in report.summary()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_empty_first_file_does_not_decide_auto(tmp_path: Path) -> None:
    """auto probes the modes with the first file it places. An empty one
    (an empty ``__init__.py`` starts many wheels) has nothing to clone: on
    Windows, where cloning an empty file needs no block-cloning call, it
    passed for a clone on a volume that cannot clone, and the next file
    failed the install ("Request not supported"). Now the volume is asked."""
    files: dict[str, Any] = {"pkg/__init__.py": b""}
    files.update({f"pkg/m{i}.py": b"x = 1\n" * 1000 for i in range(3)})
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", WheelSpec(files=files))
    jobs = sorted(_entry_jobs(cache, wheel, tmp_path / "t"), key=lambda job: job.size)
    assert jobs[0].size == 0
    report = Linker(LinkMode.AUTO).run(jobs)
    assert sum(report.counts.values()) == len(jobs)
    (mode,) = report.modes_used
    for job in jobs:
        _check_relation(mode, Path(job.src), Path(job.dst))


@pytest.mark.parametrize("mode", link_modes(LinkMode.HARDLINK, LinkMode.SYMLINK, LinkMode.COPY))
def test_existing_targets_replaced_never_written_through(mode: LinkMode, tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", _spec(3))
    target = tmp_path / "t"
    jobs = _entry_jobs(cache, wheel, target)
    Linker(LinkMode.HARDLINK).run(jobs)  # targets are now hardlinks into the cache
    before = snapshot(cache.entries_dir)
    Linker(mode).run(jobs)  # replace them all
    assert snapshot(cache.entries_dir) == before
    for job in jobs:
        _check_relation(mode, Path(job.src), Path(job.dst))
    assert not [p for p in target.rglob("*") if "plm-tmp" in p.name]


def test_refuses_to_overwrite_when_told(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    jobs = _entry_jobs(cache, build_wheel(tmp_path / "w", _spec(1)), tmp_path / "t")
    Linker(LinkMode.COPY).run(jobs)
    with pytest.raises(LinkError, match="File already exists"):
        Linker(LinkMode.COPY, overwrite=False).run(jobs)


def test_link_limit_gives_cache_file_a_fresh_inode(mounts: Mounts, tmp_path: Path) -> None:
    root = mounts.points["ext4"] / tmp_path.name
    cache = WheelCache(root / "cache")
    wheel = build_wheel(tmp_path / "w", WheelSpec(files={"pkg/a.py": b"a = 1\n"}))
    entry = cache.get(wheel)
    src = entry.tree / "pkg/a.py"
    filler = root / "filler"
    filler.mkdir()
    n = 1
    try:  # drive the real inode to ext4's link limit
        while True:
            os.link(src, filler / str(n))
            n += 1
    except OSError as exc:
        assert exc.errno == 31  # EMLINK
    old_inode = os.stat(src).st_ino
    content = src.read_bytes()
    report = Linker(LinkMode.HARDLINK).run([LinkJob(str(src), str(root / "t/pkg/a.py"), 6)])
    assert report.counts[LinkMode.HARDLINK] == 1
    assert os.stat(src).st_ino != old_inode and src.read_bytes() == content
    assert os.stat(root / "t/pkg/a.py").st_ino == os.stat(src).st_ino
    assert os.stat(filler / "1").st_ino == old_inode  # other environments keep theirs
    shutil.rmtree(filler)


def test_failure_after_mode_worked_names_the_file(mounts: Mounts, tmp_path: Path) -> None:
    # A small filesystem fills up part-way through copying.
    target = mounts.points["ext4b"] / tmp_path.name
    cache = WheelCache(tmp_path / "cache")
    big = {f"pkg/big{i}.bin": os.urandom(4 * 1024 * 1024) for i in range(24)}
    jobs = _entry_jobs(cache, build_wheel(tmp_path / "w", WheelSpec(files=big)), target)
    try:
        with pytest.raises(LinkError) as info:
            Linker(LinkMode.COPY, max_workers=1).run(jobs)
        message = str(info.value)
        assert "copy failed for " + str(target) in message
        assert "No space left on device" in message and "free some space" in message
        assert "[Errno" not in message
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux errno texts")
def test_error_on_probe_is_not_a_fallback(tmp_path: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    jobs = _entry_jobs(cache, build_wheel(tmp_path / "w", _spec(1)), tmp_path / "t")
    os.unlink(jobs[0].src)  # the source vanished: a real error, not a mode problem
    with pytest.raises(LinkError, match="hardlink failed for .*No such file"):
        Linker(LinkMode.HARDLINK).run(jobs)


def _clone_dir(request: pytest.FixtureRequest) -> Path:
    """Where clone mode must work: PIP_LINKMODE_TEST_CLONE_DIR (CI sets it to
    APFS on macOS and to a ReFS volume on Windows), else this session's XFS."""
    configured = os.environ.get("PIP_LINKMODE_TEST_CLONE_DIR")
    if configured:
        return Path(configured)
    if sys.platform == "linux":
        mounts: Mounts = request.getfixturevalue("mounts")
        return mounts.points["xfs"]
    pytest.skip(reason="set PIP_LINKMODE_TEST_CLONE_DIR to a directory on a filesystem that clones (APFS, ReFS / Dev Drive)")


def test_clone_mode_installs_a_real_venv_without_fallback(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    root = _clone_dir(request) / f"clone-{tmp_path.name}"
    root.mkdir(parents=True)
    wheel = build_wheel(tmp_path / "w", demo_spec())
    venv = make_venv(root / "venv")
    report = install_wheel(wheel, venv=venv, cache=root / "cache", link_mode=LinkMode.CLONE)
    assert report.links.counts[LinkMode.CLONE] > 0
    assert set(report.links.modes_used) == {LinkMode.CLONE}, report.summary()  # no fallback
    assert not any("fell back" in n for n in report.links.notes)
    out = subprocess.run([venv_python(venv), "-c", "import demo; print(demo.hello())"], capture_output=True, text=True)
    assert out.stdout.strip() == "hello from core", out.stderr


# -- helper processes for clones ---------------------------------------------------

#: helper processes place files on Linux only (``LinuxPlatform.helper_class``)
_linux_helpers = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="helper processes place files on Linux only (LinuxPlatform.helper_class)"
)


def _many_spec(dirs: int = 30, per_dir: int = 50) -> WheelSpec:
    """More files than a linker clones with threads before its helpers start."""
    files: dict[str, bytes | tuple[bytes, int]] = {"many/__init__.py": b"N = %d\n" % (dirs * per_dir)}
    for d in range(dirs):
        for i in range(per_dir):
            files[f"many/d{d}/m{i}.py"] = f"X = {d * per_dir + i}\n".encode() * (1 + i % 7)
    files["many/d0/tool.sh"] = (b"#!/bin/sh\necho many\n", 0o755)
    return WheelSpec(name="many", files=files)


def _files(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode) for p in sorted(root.rglob("*")) if p.is_file()}


def _spy_on_helpers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The helper sets linkers start from now on (two, even on one CPU)."""
    from pip_linkmode.linker import helpers as linker_mod

    started: list[linker_mod.Helpers] = []
    real_start = linker_mod.Helpers.start

    def spy(linker: Linker, count: int, *, shared: bool = False) -> linker_mod.Helpers | None:
        helpers = real_start(linker, count, shared=shared)
        assert helpers is not None, "no helper process could start here"
        started.append(helpers)
        return helpers

    monkeypatch.setattr(linker_mod.Helpers, "start", staticmethod(spy))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # two helpers even on a one-CPU runner
    return started


def test_clones_get_pips_modes_in_threads_and_helpers_alike(
    mounts: Mounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under umask 027, a clone gets pip's mode for the file as the wheel
    marks it (0o640; executable 0o751, execute bits whatever the umask),
    not the cache file's (filled under umask 022, three files chmod-ed
    since): the first file (the probe of the filesystems' link mode), the
    files threads place, the last ones (helper processes), and every one
    again when an install over the first replaces them."""
    from pip_linkmode.linker import reset_process_state

    started = _spy_on_helpers(monkeypatch)
    root = mounts.points["xfs"] / tmp_path.name
    spec = _many_spec()
    spec.files["many/d29/late.so"] = (b"\x7fELF (not really)\n", 0o755)
    wheel = build_wheel(tmp_path / "w", spec)
    cache = root / "cache"
    tree = WheelCache(cache).get(wheel).tree
    for rel in ("many/__init__.py", "many/d0/m1.py", "many/d29/m1.py"):
        (tree / rel).chmod(0o600)
    venv = make_venv(root / "venv")
    reset_process_state()  # the first file probes the link mode again
    for attempt in ("first", "over the first"):
        old = os.umask(0o027)
        try:
            report = install_wheel(wheel, venv=venv, cache=cache, link_mode="clone")
        finally:
            os.umask(old)
        assert started and started[-1].answered > 0, "no helper placed any clone"
        pkg = site_packages(venv) / "many"
        modes = {str(p.relative_to(pkg)): p.stat().st_mode & 0o7777 for p in pkg.rglob("*") if p.is_file()}
        assert len(modes) == 1 + 30 * 50 + 2
        assert modes.pop("d0/tool.sh") == modes.pop("d29/late.so") == 0o751, attempt
        assert set(modes.values()) == {0o640}, (attempt, {k: oct(v) for k, v in modes.items() if v != 0o640})
        assert report.links.counts[LinkMode.CLONE] == len(modes) + 2 + 2  # + METADATA, WHEEL
        assert shares_extents(pkg / "d29" / "m49.py")


def test_a_clone_batch_interrupted_on_the_main_thread_is_rolled_back(
    mounts: Mounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one worker, this thread places the clones. A real SIGINT (Ctrl-C)
    arriving just after a file is created, before the loop can record it,
    is held until the batch ends: every file placed is known to the linker,
    the next batch is not started, and rollback removes them all. (Before,
    the interrupt could land between the two, and the file stayed behind.)"""
    root = mounts.points["xfs"] / tmp_path.name
    src = root / "src"
    src.mkdir(parents=True)
    names = [f"f{i}.py" for i in range(600)]
    for name in names:
        (src / name).write_bytes(b"x = 1\n")
    linker = Linker(LinkMode.CLONE, max_workers=1)
    linker.run_dirs([(str(src), str(root / "warm"), names[:1], [6], False)])  # the mode is known
    linker.created.clear()
    linker.created_dirs.clear()

    real_open = os.open
    opened: list[str] = []

    def open_then_interrupt(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, flags, *args, **kwargs)
        at = kwargs.get("dir_fd")  # (the clones are made relative to their directory)
        where = os.fstat(at) if at is not None else os.stat(os.path.dirname(str(path)))
        if flags & os.O_CREAT and os.path.samestat(where, os.stat(root / "t1")):
            opened.append(str(path))
            if len(opened) == 100:
                os.kill(os.getpid(), signal.SIGINT)  # lands right after the creating call
        return fd

    monkeypatch.setattr(os, "open", open_then_interrupt)
    groups = [
        (str(src), str(root / "t1"), names, [6] * len(names), False),
        (str(src), str(root / "t2"), names, [6] * len(names), False),
    ]
    with pytest.raises(KeyboardInterrupt):
        linker.run_dirs(groups)
    monkeypatch.undo()
    assert len(opened) >= 100, "the interrupt was never sent"
    placed = sorted(str(root / "t1" / n) for n in os.listdir(root / "t1"))
    assert placed, "nothing was placed before the interrupt"
    assert sorted(linker.created) == placed
    assert not (root / "t2").exists() or not os.listdir(root / "t2"), "the batch after the interrupt ran"
    linker.rollback()
    assert not (root / "t1").exists()
    assert not (root / "t2").exists()


@pytest.mark.parametrize("compiling", [False, True])
def test_helper_processes_clone_a_big_wheel_like_threads_would(
    compiling: bool, mounts: Mounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first thousand clones, helper processes place them (each has
    its own GIL): the venv is file for file the copy-mode venv (contents,
    modes, RECORD), each file a clone sharing the cache's extents, sources
    keeping the cache mtime exactly when cached pycs are linked beside
    them, and the helpers are gone afterwards."""
    started = _spy_on_helpers(monkeypatch)
    root = mounts.points["xfs"] / tmp_path.name
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = root / "cache"
    cloned = make_venv(root / "cloned")
    report = install_wheel(wheel, venv=cloned, cache=cache, link_mode="clone", compile_bytecode=compiling)
    copied = make_venv(root / "copied")
    install_wheel(wheel, venv=copied, cache=cache, link_mode="copy", compile_bytecode=compiling)
    assert len(started) == 1, "the clone install did not start its helpers"
    assert all(proc.returncode == 0 for proc in started[0]._procs)  # ended by close
    sp_clone, sp_copy = site_packages(cloned), site_packages(copied)
    placed = _files(sp_clone)
    assert placed == _files(sp_copy)
    assert len(placed) == 2 + 30 * 50 + 2 + 3 + (1 + 30 * 50 if compiling else 0)  # + METADATA, WHEEL; RECORD...
    assert report.links.counts[LinkMode.CLONE] == len(placed) - 3, report.summary()  # all but RECORD, INSTALLER, REQUESTED
    tree = WheelCache(cache).get(wheel).tree
    os.sync()
    for rel in ("many/__init__.py", "many/d29/m49.py", "many/d0/tool.sh"):
        placed, cached = (sp_clone / rel).stat(), (tree / rel).stat()
        assert placed.st_ino != cached.st_ino
        assert (placed.st_mtime_ns == cached.st_mtime_ns) is (compiling and rel.endswith(".py")), rel
    assert os.access(sp_clone / "many/d0/tool.sh", os.X_OK)
    big = sp_clone / "many/d3/m6.py"  # 7 lines: under a block, XFS still clones its one extent
    assert shares_extents(big)
    if compiling:
        out = subprocess.run([venv_python(cloned), "-c", "import many.d29.m49 as m; print(m.X)"],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "1499"


@_linux_helpers
def test_install_wheels_hands_links_to_helpers_and_installers_door_shares_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the first thousand files, ``install_wheels`` hands hardlinks to
    helper processes too (while its thread prepares the next wheel, placing
    threads would wait for the GIL), and the helpers make the directories:
    the venv is the copy-mode venv file for file, each file the cache's own
    inode, and the helpers are gone afterwards. installer's door, a
    destination per wheel, uses the process's shared helpers: started by
    the first large wheel (on a thread of their own, while threads go on
    placing its files), used from the first file by the next destination,
    and still there after it, until ``stop_idle_helpers``."""
    import installer

    from pip_linkmode import LinkingDestination
    from pip_linkmode.install import target_for_venv
    from pip_linkmode.linker.helpers import join_starts, stop_idle_helpers

    started = _spy_on_helpers(monkeypatch)
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = tmp_path / "cache"
    linked = make_venv(tmp_path / "linked")
    report = install_wheel(wheel, venv=linked, cache=cache, link_mode="hardlink")
    assert len(started) == 1, "the hardlink install did not start its helpers"
    assert started[0].answered > 0, "the helpers placed nothing"
    assert all(proc.returncode == 0 for proc in started[0]._procs)  # ended by close
    copied = make_venv(tmp_path / "copied")
    install_wheel(wheel, venv=copied, cache=cache, link_mode="copy")
    placed = _files(site_packages(linked))
    assert placed == _files(site_packages(copied))
    assert report.links.counts[LinkMode.HARDLINK] == len(placed) - 3, report.summary()  # all but RECORD, INSTALLER, REQUESTED
    tree = WheelCache(cache).get(wheel).tree
    for rel in ("many/__init__.py", "many/d29/m49.py", "many/d0/tool.sh"):
        assert (site_packages(linked) / rel).stat().st_ino == (tree / rel).stat().st_ino, rel

    answered = []
    for name in ("door", "door2"):
        door = make_venv(tmp_path / name)
        target = target_for_venv(door)
        with WheelCache(cache).open(wheel) as source:
            dest = LinkingDestination(target.scheme_for(source.distribution), target.interpreter, "posix", link_mode="hardlink")
            installer.install(source, dest, {"INSTALLER": b"pip-linkmode\n"})
        join_starts()
        assert len(started) == 2, "installer's door did not start shared helpers once"
        assert started[1].shared
        answered.append(started[1].answered)
        by_door = _files(site_packages(door))
        assert {k: v for k, v in by_door.items() if ".dist-info" not in k} == {
            k: v for k, v in placed.items() if ".dist-info" not in k
        }
        assert (site_packages(door) / "many/d29/m49.py").stat().st_ino == (tree / "many/d29/m49.py").stat().st_ino
    # the second destination's tasks went to them from its first file
    assert answered[1] - answered[0] >= 1500 // 256, answered
    assert all(proc.poll() is None for proc in started[1]._procs)  # kept for the next destination
    stop_idle_helpers()
    assert all(proc.returncode == 0 for proc in started[1]._procs)


@_linux_helpers
@pytest.mark.parametrize("mode", [LinkMode.HARDLINK, LinkMode.SYMLINK])
def test_helpers_make_the_directories_they_link_into_and_rollback_removes_them(
    mode: LinkMode, tmp_path: Path
) -> None:
    """Directories left to the helpers are made there, nested ones too, and
    written in the journal: a rollback leaves nothing."""
    groups = _source_tree(tmp_path / "src", 6, 50)
    target = tmp_path / "t"
    linker = _helper_linker(mode, help_links=True)
    # each directory's parent is known to the linker before it: all but the
    # first are left to the task that places their files
    d0 = target / "d0"
    dirs = [d0, d0 / "d1", d0 / "d1" / "d2", d0 / "d1" / "d2" / "d3", d0 / "s4", d0 / "s4" / "s5"]
    try:
        report = linker.run_dirs([(s, str(dirs[d]), n, z, False) for d, (s, n, z) in enumerate(groups)])
        assert linker._helpers is not None and linker._helpers.answered > 0  # they did the work
        import fcntl

        for proc in linker._helpers._procs:  # room for a few tasks (LinuxPlatform.widen_pipe)
            assert fcntl.fcntl(proc.stdin.fileno(), fcntl.F_GETPIPE_SZ) == 1 << 18
    finally:
        linker.close()
    assert report.counts[mode] == 300
    assert len(linker.created) == 300
    assert {str(d) for d in dirs} <= set(linker.created_dirs)
    placed = d0 / "s4" / "s5" / "f7.txt"
    assert placed.read_bytes() == b"5/f7.txt\n"
    assert placed.is_symlink() is (mode is LinkMode.SYMLINK)
    linker.rollback()
    assert not target.exists()
    assert len(list((tmp_path / "src").rglob("*.txt"))) == 300  # the cache untouched


@_linux_helpers
def test_a_directory_a_helper_cannot_make_is_reported_as_the_linkers_own(tmp_path: Path) -> None:
    """A helper that cannot make a directory of its task places none of its
    files; the thread reading its answers makes and places them itself, and
    so raises the error naming the directory, as a thread would have."""
    groups = _source_tree(tmp_path / "src", 3, 20)
    target = tmp_path / "t"
    linker = _helper_linker(LinkMode.HARDLINK, help_links=True)
    long = "x" * 300  # longer than a name may be (ENAMETOOLONG)
    dirs = [target / "d0", target / "d0" / "a", target / "d0" / "a" / long]
    try:
        with pytest.raises(LinkError, match=r"create directory .*/d0/a/x{300}.*(too long|File name)"):
            linker.run_dirs([(s, str(dirs[d]), n, z, False) for d, (s, n, z) in enumerate(groups)])
        assert linker._helpers is not None and linker._helpers.answered > 0
    finally:
        linker.rollback()
        linker.close()
    assert not target.exists()


def _source_tree(root: Path, dirs: int, per_dir: int) -> list[tuple[str, list[str], list[int]]]:
    groups = []
    for d in range(dirs):
        src = root / f"d{d}"
        src.mkdir(parents=True)
        names = [f"f{i}.txt" for i in range(per_dir)]
        for name in names:
            (src / name).write_bytes(f"{d}/{name}\n".encode())
        groups.append((str(src), names, [len(f"{d}/{n}\n") for n in names]))
    return groups


def _helper_linker(mode: LinkMode = LinkMode.CLONE, *, help_links: bool = False) -> Linker:
    linker = Linker(mode, max_workers=2, help_links=help_links)
    assert linker.help_after is not None, "this platform starts no helpers"
    linker.help_after = 0  # every clone to the helpers
    return linker


@pytest.mark.parametrize("placer", ["helpers", "threads"])
def test_clones_replace_existing_targets_and_name_a_failing_file(placer: str, mounts: Mounts, tmp_path: Path) -> None:
    """A directory's files go to one batch call (``clone_files``), in a
    helper process or a thread: a file that fails in it is recovered after
    the rest are placed (an existing target replaced by rename) or named."""
    root = mounts.points["xfs"] / tmp_path.name
    groups = _source_tree(root / "src", 8, 100)
    target = root / "t"
    (target / "d3").mkdir(parents=True)
    (target / "d3" / "f7.txt").write_bytes(b"old\n")  # an earlier install's file
    if placer == "helpers":
        linker = _helper_linker()
    else:
        linker = Linker(LinkMode.CLONE, max_workers=2)
        linker.help_after = None
    try:
        report = linker.run_dirs([(s, str(target / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)])
        assert report.counts[LinkMode.CLONE] == 800
        if placer == "helpers":
            assert linker._helpers is not None and linker._helpers.answered > 0  # they did the work
        else:
            assert linker._helpers is None
        assert (target / "d3" / "f7.txt").read_bytes() == b"3/f7.txt\n"  # replaced by rename
        assert (root / "src" / "d3" / "f7.txt").read_bytes() == b"3/f7.txt\n"  # the source untouched
        assert len(set(linker.created)) == 799  # the replaced file was not new here
        # a source that vanished: the helper's failure names the file, rollback removes the rest
        os.unlink(root / "src" / "d5" / "f50.txt")
        with pytest.raises(LinkError, match=r"clone failed for .*/u/d5/f50\.txt from .*No such file"):
            linker.run_dirs([(s, str(root / "u" / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)])
        linker.rollback()
        assert not (root / "u").exists()
    finally:
        linker.close()


def test_helpers_that_cannot_start_leave_their_clones_to_threads(
    mounts: Mounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = mounts.points["xfs"] / tmp_path.name
    groups = _source_tree(root / "src", 4, 300)
    monkeypatch.setattr(sys, "executable", shutil.which("false"))  # exits at once, never ready
    linker = _helper_linker()
    try:
        report = linker.run_dirs([(s, str(root / "t" / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)])
    finally:
        linker.close()
    assert report.counts[LinkMode.CLONE] == 1200
    assert len(linker.created) == 1200
    assert (root / "t" / "d2" / "f299.txt").read_bytes() == b"2/f299.txt\n"


@pytest.mark.parametrize("mode", [LinkMode.CLONE, LinkMode.HARDLINK])
def test_a_killed_helper_fails_the_install_naming_it(mode: LinkMode, mounts: Mounts, tmp_path: Path) -> None:
    """What killed helpers placed of their last tasks is rolled back (the
    directories a helper made are: see the two tests below)."""
    root = mounts.points["xfs"] / tmp_path.name
    groups = _source_tree(root / "src", 40, 200)
    linker = _helper_linker(mode, help_links=True)
    try:
        linker.run_dirs([(s, str(root / "first" / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups[:4])])
        assert linker._helpers is not None  # running, and ready: they placed those
        linker.run_dirs([(s, str(root / "t" / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)], wait=False)
        assert linker._helpers._pending, "every clone was done before the kill: make the tree bigger"
        for proc in linker._helpers._procs:
            proc.kill()
        with pytest.raises(LinkError, match="a helper process placing files exited with status -9"):
            linker.finish()
        # what the killed helpers placed of their last tasks is rolled back
        # with the rest: those directories are this install's
        linker.rollback()
        assert not (root / "t").exists() and not (root / "first").exists()
        assert len(list((root / "src").rglob("*.txt"))) == 40 * 200  # the cache untouched
    finally:
        linker.close()


@_linux_helpers
def test_directories_a_killed_helper_made_mid_task_are_rolled_back(tmp_path: Path) -> None:
    """A helper killed after it made its task's directories, while it links
    the files, never answers: the directories and files it made there are
    still rolled back."""

    groups = _source_tree(tmp_path / "src", 2, 1)
    big = _source_tree(tmp_path / "big", 1, 20000)[0]
    target = tmp_path / "t"
    linker = _helper_linker(LinkMode.HARDLINK, help_links=True)
    try:
        linker.run_dirs([(s, str(target / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)])
        assert linker._helpers is not None  # running, and ready
        deep = target / "d0" / "deep"  # left to the helper: its parent is known
        linker.run_dirs([(big[0], str(deep), big[1], big[2], False)], wait=False)
        deadline = time.monotonic() + 30
        while not deep.exists():
            assert time.monotonic() < deadline, "the helper never made its directory"
        pending = dict(linker._helpers._pending)
        for proc in linker._helpers._procs:
            proc.kill()
        assert pending, "the helper answered before the kill"
        with pytest.raises(LinkError, match="a helper process placing files exited with status -9"):
            linker.finish()
        linker.rollback()
        assert not target.exists()
        assert len(os.listdir(tmp_path / "big" / "d0")) == 20000  # the cache untouched
    finally:
        linker.close()


@_linux_helpers
def test_a_parent_made_for_another_task_by_a_killed_helper_is_rolled_back(tmp_path: Path) -> None:
    """A helper makes a missing parent of its task's directory, which is
    another task's (whose helper has not run it yet); killed before it
    answers, that parent is still rolled back, with everything under it."""
    groups = _source_tree(tmp_path / "src", 1, 1)
    first = _source_tree(tmp_path / "p", 1, 300)[0]
    big = _source_tree(tmp_path / "big", 1, 20000)[0]
    target = tmp_path / "t"
    linker = _helper_linker(LinkMode.HARDLINK, help_links=True)
    try:
        linker.run_dirs([(groups[0][0], str(target), groups[0][1], groups[0][2], False)])  # (target known)
        assert linker._helpers is not None  # both running, and ready
        paused, other = linker._helpers._procs
        os.kill(paused.pid, signal.SIGSTOP)
        parent, child = target / "P", target / "P" / "C"
        # the first task (P's 300 files) goes to the paused helper, the
        # second (P/C's) to the other, which makes P for it
        linker.run_dirs([(first[0], str(parent), first[1], first[2], False), (big[0], str(child), big[1], big[2], False)],
                        wait=False)
        deadline = time.monotonic() + 30
        while not child.exists():
            assert time.monotonic() < deadline, "the helper never made its directory"
        pending = list(linker._helpers._pending.values())
        assert [dirs for _, _, _, dirs, _, _ in pending] == [[str(parent)], [str(child)]], "not the case tested"
        other.kill()
        os.kill(paused.pid, signal.SIGCONT)
        with pytest.raises(LinkError, match="a helper process placing files exited with status -9"):
            linker.finish()
        linker.rollback()
        assert not target.exists()
    finally:
        with contextlib.suppress(OSError):
            os.kill(paused.pid, signal.SIGCONT)
        linker.close()


@_linux_helpers
def test_a_helper_meeting_a_dangling_link_for_a_parent_fails_like_a_thread(tmp_path: Path) -> None:
    """A directory the linker knows, replaced by a dangling symbolic link
    during the install: a helper asked to make a directory under it stops
    (it does not loop making the parent), and the error is the linker's
    own, as with threads."""
    groups = _source_tree(tmp_path / "src", 2, 5)
    target = tmp_path / "t"
    linker = _helper_linker(LinkMode.HARDLINK, help_links=True)
    try:
        linker.run_dirs([(groups[0][0], str(target / "X"), groups[0][1], groups[0][2], False)])
        assert linker._helpers is not None
        shutil.rmtree(target / "X")
        os.symlink(tmp_path / "nowhere", target / "X")
        with pytest.raises(LinkError, match=r"create directory .*/X/Y.*No such file"):
            linker.run_dirs([(groups[1][0], str(target / "X" / "Y"), groups[1][1], groups[1][2], False)])
        assert linker._helpers.answered == 2  # the helper answered it: it did not hang
    finally:
        linker.close()
    assert not (tmp_path / "nowhere").exists()


@_linux_helpers
def test_a_helper_speaking_other_frames_is_ended_and_threads_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that says it is ready in other words (a placer from before
    an upgrade made in the same run) is ended, and threads place the files
    sent to it."""
    groups = _source_tree(tmp_path / "src", 4, 300)
    old = tmp_path / "old_placer.py"
    old.write_text(
        "import marshal, struct, sys\n"
        "body = marshal.dumps('ready')\n"
        "sys.stdout.buffer.write(struct.pack('<I', len(body)) + body); sys.stdout.flush()\n"
        "sys.stdin.buffer.read()\n"
    )
    python = sys.executable
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {python} {old}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    _threads_place_what_ended_helpers_had(_helper_linker(LinkMode.HARDLINK, help_links=True), groups, tmp_path / "t")


def test_a_helper_that_never_gets_ready_is_ended_and_threads_clone(
    mounts: Mounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interpreter that hangs at start (here: one that sleeps) is ended
    after the start timeout, and threads place the clones sent to it."""
    from pip_linkmode.linker import helpers as linker_mod

    root = mounts.points["xfs"] / tmp_path.name
    groups = _source_tree(root / "src", 4, 300)
    hang = tmp_path / "hang"
    hang.write_text("#!/bin/sh\nexec sleep 600\n")
    hang.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(hang))
    monkeypatch.setattr(linker_mod, "HELPER_START_TIMEOUT", 0.5)
    _threads_place_what_ended_helpers_had(_helper_linker(), groups, root / "t")


def _threads_place_what_ended_helpers_had(
    linker: Linker, groups: list[tuple[str, list[str], list[int]]], target: Path
) -> None:
    """``linker``'s helpers are ended (killed) on start, and its threads place
    all 4 x 300 files of ``groups`` into ``target``."""
    try:
        report = linker.run_dirs([(s, str(target / f"d{d}"), n, z, False) for d, (s, n, z) in enumerate(groups)])
        assert linker._helpers is not None
        procs = linker._helpers._procs
    finally:
        linker.close()
    assert [proc.returncode for proc in procs] == [-signal.SIGKILL] * 2
    assert report.counts[linker.mode] == 1200
    assert len(linker.created) == 1200
    assert (target / "d3" / "f299.txt").read_bytes() == b"3/f299.txt\n"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_ctrl_c_with_helpers_rolls_back_and_helpers_stay_quiet(mounts: Mounts, tmp_path: Path) -> None:
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends)
    while helpers are cloning: the install rolls back, leaving the venv's
    site-packages empty, the helpers print nothing and are gone."""
    root = mounts.points["xfs"] / tmp_path.name
    wheel = build_wheel(tmp_path / "w", _many_spec(dirs=60, per_dir=100))
    cache = root / "cache"
    WheelCache(cache).get(wheel)  # warm: the install is placing only
    code = ("import sys; from pip_linkmode import install_wheel; "
            "install_wheel(sys.argv[1], venv=sys.argv[2], cache=sys.argv[3], link_mode='clone')")
    for attempt in range(5):
        venv = make_venv(root / f"v{attempt}")
        proc = subprocess.Popen([sys.executable, "-c", code, str(wheel), str(venv), str(cache)],
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        helpers: list[int] = []
        serving = site_packages(venv) / "many" / "d30"  # past the first 1,024 clones, which threads place
        while proc.poll() is None and not (helpers and serving.is_dir() and any(serving.iterdir())):
            with contextlib.suppress(OSError):
                helpers = helpers or [c for c in _children(proc.pid)
                                      if b"placer" in Path(f"/proc/{c}/cmdline").read_bytes()]
        if proc.poll() is not None or not helpers:
            proc.communicate()
            continue  # it finished first: try again
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        if proc.returncode == 0:
            continue  # the signal came after the last file
        assert "KeyboardInterrupt" in err
        assert err.count("Traceback") == 1 and "placer.py\", line" not in err.split("KeyboardInterrupt")[-1], err
        assert not any(Path(f"/proc/{pid}").exists() and b"placer" in Path(f"/proc/{pid}/cmdline").read_bytes()
                       for pid in helpers)
        assert [p for p in site_packages(venv).rglob("*")] == []
        return
    pytest.fail("the install always finished before SIGINT reached it")


class _ObservedLock:
    """A lock that says (``contended``) when a thread has to wait for it."""

    def __init__(self, contended: Any) -> None:
        import threading

        self._lock = threading.Lock()
        self.contended = contended

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_a_temp_file_written_while_another_thread_sweeps_its_directory_is_kept(tmp_path: Path) -> None:
    """A thread sweeping a killed install's leftovers from a directory and
    another about to write a temp file of its own there (a file written over
    an existing one, as RECORD and INSTALLER over an installed version): the
    writer waits for the sweep, so the sweep never removes the writer's temp
    file (seen as a rename failing with ENOENT mid-install)."""
    import threading

    from pip_linkmode.linker.journal import Journal

    d = tmp_path / "dist-info"
    d.mkdir()
    (d / ".RECORD.0badc0de.plm-tmp").write_bytes(b"left by a killed install")
    listing, go, waiting = threading.Event(), threading.Event(), threading.Event()

    def fspath(path: str) -> str:
        if threading.current_thread().name == "sweeper" and path == str(d):
            listing.set()
            assert go.wait(30)
        return path

    journal = Journal(fspath)
    journal._sweeping = _ObservedLock(waiting)  # type: ignore[assignment]
    mine = d / ".INSTALLER.1234abcd.plm-tmp"

    def write_own_temp() -> None:
        journal.sweep_temps(str(d))
        mine.write_bytes(b"pip-linkmode\n")
        waiting.set()  # (done without waiting: the sweep is still to list the directory)

    sweeper = threading.Thread(target=journal.sweep_temps, args=(str(d),), name="sweeper")
    sweeper.start()
    assert listing.wait(30)  # the sweep is about to list the directory
    writer = threading.Thread(target=write_own_temp)
    writer.start()
    assert waiting.wait(30)  # the writer waits for the sweep, or (the bug) has written already
    go.set()
    sweeper.join(30)
    writer.join(30)
    assert mine.read_bytes() == b"pip-linkmode\n"
    assert not (d / ".RECORD.0badc0de.plm-tmp").exists()
    assert str(d) in journal._swept


def _door_install(wheel: Path, cache: Path, venv: Path) -> Any:
    """The installer door as a tool uses it: a new destination for the wheel."""
    import installer

    from pip_linkmode import LinkingDestination
    from pip_linkmode.install import target_for_venv

    target = target_for_venv(venv)
    with WheelCache(cache).open(wheel) as source:
        dest = LinkingDestination(target.scheme_for(source.distribution), target.interpreter, "posix", link_mode="hardlink")
        installer.install(source, dest, {"INSTALLER": b"pip-linkmode\n"})
    return dest


@_linux_helpers
def test_a_forked_child_lets_go_of_the_shared_helpers_and_starts_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that forks (a tool's pool of workers) while the shared
    helpers run: the child holds no pipe to them (else they would never
    see their input end, and the parent would wait for them for ever),
    and its own installs start helpers of its own."""
    import threading
    import warnings

    from pip_linkmode.linker.helpers import join_starts, running_shared, stop_idle_helpers

    started = _spy_on_helpers(monkeypatch)
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = tmp_path / "cache"
    _door_install(wheel, cache, make_venv(tmp_path / "parent"))
    join_starts()
    assert len(started) == 1 and started[0].shared
    child_venv = make_venv(tmp_path / "child")
    release_r, release_w = os.pipe()
    report_r, report_w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (3.12+: forking with threads running)
        pid = os.fork()
    if pid == 0:  # the child: report, then hold on until the parent has ended its helpers
        status = 1
        try:
            import stat as stat_mod

            pipes = [s for proc in started[0]._procs for s in (proc.stdin, proc.stdout) if s is not None]
            let_go = all(stat_mod.S_ISCHR(os.fstat(s.fileno()).st_mode) for s in pipes) and len(pipes) == 4
            _door_install(wheel, cache, child_venv)
            join_starts()  # (its own set, started by that install)
            dest = _door_install(wheel, cache, make_venv(tmp_path / "child2"))
            own = running_shared(dest.linker, 2) if dest.linker is not None else None
            ok = let_go and own is not None and own is not started[0] and own.answered > 0
            os.write(report_w, b"ok" if ok else b"no")
            os.read(release_r, 1)
            stop_idle_helpers()
            status = 0 if ok else 2
        finally:
            os._exit(status)
    os.close(report_w)
    try:
        assert os.read(report_r, 2) == b"ok", "the child held the parent's pipes, or placed nothing through helpers of its own"
        ended = threading.Event()

        def stop() -> None:
            stop_idle_helpers()
            ended.set()

        threading.Thread(target=stop, daemon=True).start()
        assert ended.wait(60), "the parent's helpers did not end while the child lives"
        assert all(proc.returncode == 0 for proc in started[0]._procs)
    finally:
        os.write(release_w, b"x")
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    placed = _files(site_packages(child_venv))
    assert placed == _files(site_packages(tmp_path / "parent"))


@_linux_helpers
def test_shared_helpers_that_died_are_replaced_for_the_next_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One of the shared helpers killed between two wheels: the next
    destination starts a new set (and the one after uses it) and installs
    in full; an idle set ends before the process forks its compiling
    workers (``stop_idle_threads``)."""
    from pip_linkmode.linker.executor import stop_idle_threads
    from pip_linkmode.linker.helpers import join_starts

    started = _spy_on_helpers(monkeypatch)
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = tmp_path / "cache"
    _door_install(wheel, cache, make_venv(tmp_path / "one"))
    join_starts()
    assert len(started) == 1
    first = started[0]
    first._procs[0].kill()
    first._procs[0].wait()
    deadline = time.monotonic() + 30
    while first.usable():  # (its reader notes the end)
        assert time.monotonic() < deadline, "the helper's end was never noted"
    dest = _door_install(wheel, cache, make_venv(tmp_path / "two"))
    assert dest.report.counts[LinkMode.HARDLINK] >= 1500
    assert _files(site_packages(tmp_path / "two")) == _files(site_packages(tmp_path / "one"))
    join_starts()
    dest = _door_install(wheel, cache, make_venv(tmp_path / "three"))
    assert len(started) == 2 and started[1].answered > 0, "no new set took the third destination's tasks"
    assert _files(site_packages(tmp_path / "three")) == _files(site_packages(tmp_path / "one"))
    assert first.closed and first._procs[1].returncode == 0  # the old set's live helper was ended
    stop_idle_threads()
    assert started[1].closed and all(proc.returncode == 0 for proc in started[1]._procs)


@_linux_helpers
def test_an_install_never_waits_for_shared_helpers_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared helpers start on a thread of their own: an install whose
    helpers are slow to start (held here until it is over) places every
    file with threads meanwhile, and the next install uses them."""
    import threading

    from pip_linkmode.linker import helpers as linker_mod

    started = _spy_on_helpers(monkeypatch)
    spied = linker_mod.Helpers.start
    asked, release = threading.Event(), threading.Event()

    def slow(linker: Linker, count: int, *, shared: bool = False) -> linker_mod.Helpers | None:
        asked.set()
        assert release.wait(60), "the install never ended while its helpers were starting"
        return spied(linker, count, shared=shared)

    monkeypatch.setattr(linker_mod.Helpers, "start", staticmethod(slow))
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = tmp_path / "cache"
    try:
        dest = _door_install(wheel, cache, make_venv(tmp_path / "one"))
        assert asked.wait(30) and started == []  # over, with its helpers still starting
        assert dest.report.counts[LinkMode.HARDLINK] >= 1500
    finally:
        release.set()
    linker_mod.join_starts()
    _door_install(wheel, cache, make_venv(tmp_path / "two"))
    assert len(started) == 1 and started[0].answered > 0
    assert _files(site_packages(tmp_path / "two")) == _files(site_packages(tmp_path / "one"))


@_linux_helpers
def test_shared_helpers_that_failed_to_start_once_are_tried_again_by_a_later_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start of the shared helpers that fails (here ``Popen``'s OSError,
    as for a passing lack of processes): that install places every file
    with threads; a later one starts them and they take its files."""
    from pip_linkmode.linker import helpers as linker_mod

    started = _spy_on_helpers(monkeypatch)
    spied = linker_mod.Helpers.start
    calls: list[int] = []

    def once_refused(linker: Linker, count: int, *, shared: bool = False) -> linker_mod.Helpers | None:
        calls.append(count)
        if len(calls) == 1:
            return None  # (what Helpers.start answers when Popen raises OSError)
        return spied(linker, count, shared=shared)

    monkeypatch.setattr(linker_mod.Helpers, "start", staticmethod(once_refused))
    wheel = build_wheel(tmp_path / "w", _many_spec())
    cache = tmp_path / "cache"
    one = _door_install(wheel, cache, make_venv(tmp_path / "one"))
    linker_mod.join_starts()
    assert len(calls) == 1 and started == [] and one.linker is not None and one.linker.help_after is None
    _door_install(wheel, cache, make_venv(tmp_path / "two"))
    linker_mod.join_starts()
    _door_install(wheel, cache, make_venv(tmp_path / "three"))
    assert len(calls) == 2 and len(started) == 1 and started[0].answered > 0
    for name in ("two", "three"):
        assert _files(site_packages(tmp_path / name)) == _files(site_packages(tmp_path / "one"))


@_linux_helpers
def test_shared_helpers_that_cannot_start_are_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shared helpers that end without saying they are ready (here an
    executable that exits at once; after an upgrade, a placer of another
    version) are not started again for every task and wheel: the set's
    tasks are placed by its readers, and threads place the rest."""
    started = _spy_on_helpers(monkeypatch)
    wheel = build_wheel(tmp_path / "w", _many_spec(dirs=30, per_dir=100))
    cache = tmp_path / "cache"
    WheelCache(cache).get(wheel)
    venvs = [make_venv(tmp_path / name) for name in ("one", "two")]
    monkeypatch.setattr(sys, "executable", "/bin/false")
    for venv in venvs:
        dest = _door_install(wheel, cache, venv)
        assert dest.report.counts[LinkMode.HARDLINK] >= 3000
    assert len(started) == 1, f"{len(started)} sets started"
    assert _files(site_packages(tmp_path / "two")) == _files(site_packages(tmp_path / "one"))


@_linux_helpers
def test_a_task_handed_over_as_its_set_closes_is_placed_by_it(tmp_path: Path) -> None:
    """A linker hands a task to shared helpers just as another closes the
    set (one of its helpers died, and a new set replaces it): the close
    waits until the task's frame is written, so its helper places it
    before its input ends, instead of failing it as if it had died."""
    import threading

    from pip_linkmode.linker.helpers import shared_helpers

    (src,) = _source_tree(tmp_path / "src", 1, 3)
    dst = tmp_path / "dst"
    dst.mkdir()
    a = Linker(LinkMode.HARDLINK, max_workers=2, help_links=True, share_helpers=True)
    b = Linker(LinkMode.HARDLINK, max_workers=2, help_links=True, share_helpers=True)
    first = shared_helpers(a, 2)
    assert first is not None
    deadline = time.monotonic() + 30
    while not all(first._ready):  # (a set that never got ready is not replaced)
        assert time.monotonic() < deadline, "the helpers never got ready"
    handing, go, closing = threading.Event(), threading.Event(), threading.Event()
    first._writing = _ObservedLock(closing)  # type: ignore[assignment]

    def track(future: Any, task: Any) -> None:
        a._track(future, task)
        handing.set()
        assert go.wait(30)

    task = [(LinkMode.HARDLINK, src[0] + "/", str(dst) + "/", src[1], None)]
    handed = threading.Thread(target=lambda: first.submit(a, task, False, track, ()))
    handed.start()
    replaced: list[Any] = []
    try:
        assert handing.wait(30)
        ((_, _, _, _, index, _),) = first._pending.values()
        other = first._procs[1 - index]  # (not the task's own helper: its death would fail the task)
        other.kill()
        other.wait()
        deadline = time.monotonic() + 30
        while first.usable():  # (its reader notes the end)
            assert time.monotonic() < deadline, "the helper's end was never noted"
        replacing = threading.Thread(target=lambda: replaced.append(shared_helpers(b, 2)))
        replacing.start()
        assert closing.wait(30)  # the old set's close waits for the frame being handed over
    finally:
        go.set()
        handed.join(30)
    replacing.join(30)
    assert replaced[0] is not None and replaced[0] is not first and first.closed
    a.finish()
    assert sorted(os.listdir(dst)) == ["f0.txt", "f1.txt", "f2.txt"]
    assert first.answered == 1  # (placed by its helper)


@pytest.mark.parametrize("mode", ["hardlink", "clone"])
def test_a_directory_of_files_is_placed_relative_to_its_two_directories(
    mode: str, mounts: Mounts, tmp_path: Path
) -> None:
    """The platform's batch calls (``hardlink_files``, ``clone_files``), which
    open a group's cache and target directories once and place each file
    by name: every name is tried, a failure is that file's alone (an
    existing target), ``placed`` lists the new files in order; a link in
    the cache is never followed (hard-linked as the link itself, refused
    as a clone source); a target directory that is not there fails every
    file with its error."""
    from pip_linkmode._platform import current

    platform = current()
    root = mounts.points["xfs"] / f"{tmp_path.name}-{mode}"
    src, dst = root / "src", root / "dst"
    src.mkdir(parents=True)
    dst.mkdir()
    for name in ("a.py", "b.txt", "c.txt"):
        (src / name).write_bytes(name.encode())
    (src / "link").symlink_to(src / "a.py")
    (dst / "b.txt").write_bytes(b"already here")
    names = ["a.py", "b.txt", "c.txt", "link"]
    placed: list[str] = []
    if mode == "hardlink":
        failed = platform.hardlink_files(f"{src}/", f"{dst}/", names, placed=placed)
    else:
        failed = platform.clone_files(f"{src}/", f"{dst}/", names, placed=placed)
    errors = {names[i]: exc.errno for i, exc in failed}
    assert errors.pop("b.txt") == errno.EEXIST
    assert (dst / "b.txt").read_bytes() == b"already here"
    if mode == "hardlink":
        assert errors == {}
        assert placed == [f"{dst}/{n}" for n in ("a.py", "c.txt", "link")]
        assert (dst / "link").is_symlink() and os.path.samestat((dst / "link").lstat(), (src / "link").lstat())
        assert os.path.samestat((dst / "a.py").stat(), (src / "a.py").stat())
    else:
        assert errors == {"link": errno.ELOOP}  # (the cache holds no link of its own)
        assert not os.path.lexists(dst / "link")
        assert placed == [f"{dst}/a.py", f"{dst}/c.txt"]
        assert shares_extents(dst / "c.txt")
        assert not (dst / "a.py").is_symlink() and (dst / "a.py").read_bytes() == b"a.py"
    assert (dst / "c.txt").read_bytes() == b"c.txt"

    gone = root / "not-made"
    placed = []
    if mode == "hardlink":
        failed = platform.hardlink_files(f"{src}/", f"{gone}/", names, placed=placed)
    else:
        failed = platform.clone_files(f"{src}/", f"{gone}/", names, placed=placed)
    assert [(i, exc.errno) for i, exc in failed] == [(i, errno.ENOENT) for i in range(len(names))]
    assert placed == [] and not gone.exists()
