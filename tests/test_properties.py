"""Property tests (hypothesis): member-name normalisation and the fallback state machine."""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pip_linkmode import InvalidWheel, LinkMode, _platform
from pip_linkmode.archive import _check_member_name
from pip_linkmode.linker import Linker, LinkJob, reset_process_state

# -- member names ---------------------------------------------------------------

SEGMENTS = st.sampled_from(["pkg", "..", ".", "", "a.py", "C:", "c:x", "\\", "..\\x", "\x00", "é", "日本", "x y", "...", "-"])
NAMES = st.one_of(
    st.lists(SEGMENTS, min_size=1, max_size=6).map("/".join),
    st.lists(SEGMENTS, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts)),
    st.text(min_size=0, max_size=40),
)


def _reference_verdict(name: str) -> bool:
    """Accepted by a model written from the rules, not from the code: no empty
    name, NUL, backslash, leading slash or drive letter, no '..' segment, and
    not the root itself."""
    if not name or "\x00" in name or "\\" in name or posixpath.normpath(name) == ".":
        return False
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        return False
    return ".." not in name.rstrip("/").split("/")


@settings(max_examples=1500, deadline=None)
@given(NAMES)
def test_member_names_are_refused_or_stay_inside(name: str) -> None:
    root = "/srv/target"
    try:
        norm = _check_member_name(Path("x-1.0-py3-none-any.whl"), name)
    except InvalidWheel as exc:
        assert not _reference_verdict(name), f"refused a safe name {name!r}: {exc}"
        assert "x-1.0-py3-none-any.whl" in str(exc)
        return
    assert _reference_verdict(name), f"accepted an unsafe name {name!r}"
    joined = posixpath.normpath(posixpath.join(root, norm))
    assert joined.startswith(root + "/"), (name, norm, joined)
    assert norm == posixpath.normpath(name)


# -- the fallback state machine ----------------------------------------------------

CAUSES = {
    "cross-device": errno.EXDEV,
    "unsupported": errno.EOPNOTSUPP,
    "privilege": errno.EPERM,
}
LINK_MODES = (LinkMode.CLONE, LinkMode.HARDLINK, LinkMode.SYMLINK)


#: this system's own primitives (Linux's, or Windows' real calls)
NativePlatform = type(_platform.current())


class RefusingPlatform(NativePlatform):  # type: ignore[misc,valid-type]
    """The real primitives of this system, except the link modes a test says fail."""

    def __init__(self, refuse: dict[LinkMode, int]) -> None:
        super().__init__()
        self.refuse = refuse
        self.attempts: list[LinkMode] = []

    def _maybe_refuse(self, mode: LinkMode) -> None:
        self.attempts.append(mode)
        if mode in self.refuse:
            raise OSError(self.refuse[mode], os.strerror(self.refuse[mode]))

    def clone_file(self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None) -> None:
        self._maybe_refuse(LinkMode.CLONE)
        super().clone_file(src, dst, source_mtime=source_mtime, perm=perm)

    def hardlink(self, src: str, dst: str) -> None:
        self._maybe_refuse(LinkMode.HARDLINK)
        super().hardlink(src, dst)

    def symlink(self, src: str, dst: str) -> None:
        self._maybe_refuse(LinkMode.SYMLINK)
        super().symlink(src, dst)


CHAIN = {
    LinkMode.AUTO: (LinkMode.CLONE, LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.CLONE: (LinkMode.CLONE, LinkMode.COPY),
    LinkMode.HARDLINK: (LinkMode.HARDLINK, LinkMode.COPY),
    LinkMode.SYMLINK: (LinkMode.SYMLINK, LinkMode.COPY),
    LinkMode.COPY: (LinkMode.COPY,),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    requested=st.sampled_from(list(LinkMode)),
    refuse=st.dictionaries(st.sampled_from(LINK_MODES), st.sampled_from(sorted(CAUSES)), max_size=3),
    runs=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=3),
)
def test_fallback_state_machine(requested: LinkMode, refuse: dict[LinkMode, str], runs: list[int], caplog: pytest.LogCaptureFixture) -> None:
    """Every file is placed, by the first mode of the documented chain that
    works (clone refused on ext4-like filesystems is real here too); auto never
    symlinks; at most one warning per (mode, cause); the cache is unchanged."""
    reset_process_state()
    caplog.clear()
    root = Path(tempfile.mkdtemp(prefix="plm-prop-"))
    try:
        cache = root / "cache"
        cache.mkdir()
        platform = RefusingPlatform({m: CAUSES[c] for m, c in refuse.items()})
        placed: list[tuple[Path, Path]] = []
        with caplog.at_level(logging.WARNING, logger="pip_linkmode"):
            for run, count in enumerate(runs):
                jobs = []
                for i in range(count):
                    src = cache / f"r{run}f{i}.py"
                    src.write_bytes(f"x = {run * 100 + i}\n".encode())
                    dst = root / "env" / f"run{run}" / src.name
                    jobs.append(LinkJob(str(src), str(dst), src.stat().st_size))
                    placed.append((src, dst))
                before = {str(s): (s.read_bytes(), s.stat().st_ino) for s, _ in placed}
                report = Linker(requested, platform).run(jobs)
                assert sum(report.counts.values()) == count
                after = {str(s): (s.read_bytes(), s.stat().st_ino) for s, _ in placed}
                assert after == before  # the cache never changes
        for src, dst in placed:
            assert dst.read_bytes() == src.read_bytes()
        used = {m for m in LinkMode if any(_relation(src, dst) == m for src, dst in placed)}
        expected = _expected_mode(requested, platform, root)
        assert used == {expected}, (requested, refuse, used, expected)
        assert LinkMode.SYMLINK not in used or requested is LinkMode.SYMLINK
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == len(set(warnings))  # one per (mode, cause)
        if requested is LinkMode.AUTO:
            assert warnings == []  # auto explains itself in the summary, never warns
        else:
            assert len(warnings) <= 1
    finally:
        shutil.rmtree(root, ignore_errors=True)
        reset_process_state()


def _relation(src: Path, dst: Path) -> LinkMode:
    if dst.is_symlink():
        return LinkMode.SYMLINK
    if dst.stat().st_ino == src.stat().st_ino:
        return LinkMode.HARDLINK
    return LinkMode.COPY  # a clone and a copy look alike from here: told apart below


def _expected_mode(requested: LinkMode, platform: RefusingPlatform, root: Path) -> LinkMode:
    """The first mode of the chain that works; clone works only where the
    filesystem clones and symlink only where this process may make one (both
    probed for real on this temp dir: Wine, for one, makes no symlink), and a
    working clone is indistinguishable from a copy by inode, so it maps to
    COPY here."""
    probe_src = root / "probe-src"
    probe_src.write_bytes(b"probe")
    works = {}
    for mode, call in ((LinkMode.CLONE, NativePlatform().clone_file), (LinkMode.SYMLINK, NativePlatform().symlink)):
        try:
            call(str(probe_src), str(root / f"probe-{mode.value}"))
            works[mode] = True
        except OSError:
            works[mode] = False
    for mode in CHAIN[requested]:
        if mode in platform.refuse or not works.get(mode, True):
            continue
        if mode is LinkMode.CLONE:
            return LinkMode.COPY
        return mode
    raise AssertionError("copy always works")


_COMPONENT = st.sampled_from(["a", "b", "ab", "a.b", "c"])


@settings(max_examples=300, deadline=None)
@given(
    roots=st.lists(st.lists(_COMPONENT, min_size=1, max_size=4), max_size=4),
    path=st.lists(_COMPONENT, min_size=1, max_size=6),
)
def test_the_cache_root_of_a_path_is_its_innermost_registered_ancestor(roots: list[list[str]], path: list[str]) -> None:
    """``cache_root_of`` (found by prefix) is what walking up from the path's
    directory finds first among the registered roots: never a sibling that
    shares a name's prefix (``/x/a`` is not inside ``/x/ab``)."""
    from pip_linkmode import _cachecore

    base = os.path.abspath(os.sep + "x")
    registered = {os.path.join(base, *root) for root in roots}
    full = os.path.join(base, *path)
    expected = None
    head = os.path.dirname(full)
    while True:
        if head in registered:
            expected = head
            break
        if os.path.dirname(head) == head:
            break
        head = os.path.dirname(head)
    saved = set(_cachecore._roots)
    _cachecore._roots.clear()
    _cachecore._roots.update(registered)
    try:
        assert _cachecore.cache_root_of(full) == expected
    finally:
        _cachecore._roots.clear()
        _cachecore._roots.update(saved)
