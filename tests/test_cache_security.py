"""Cache security (issue 24): nothing is written, created or removed through
a link planted inside the cache; a cache owned by someone else is not
written; what the cache creates is never group- or world-writable.

Each attack is the real one: a link in the cache pointing at a victim
outside it (which must stay as it was, and where a dangling link points
nothing may appear), a second real user, a real umask in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import IS_ROOT, make_venv, needs_symlinks, site_packages
from wheelmaker import build_wheel, demo_spec

from pip_linkmode import WheelCache, cache_admin
from pip_linkmode._cachecore import ENV_SHARED_CACHE, CacheNotWritable, UnsafeCachePath
from pip_linkmode.bytecode import compiled_rows
from pip_linkmode.linker import write_beside

ROOT = Path(__file__).resolve().parent.parent

posix_only = pytest.mark.skipif(os.name == "nt", reason="owners, umasks and O_NOFOLLOW are POSIX's (Windows: lstat checks)")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory outside the cache, with a file that must stay as it is."""
    d = tmp_path / "victim"
    d.mkdir()
    (d / "precious").write_bytes(b"precious\n")
    old = time.time() - 30 * 86400
    os.utime(d / "precious", (old, old))
    return d


def _unchanged(victim: Path, names: tuple[str, ...] = ("precious",)) -> None:
    """Nothing in ``victim`` but what was there, with its content and mtime."""
    assert sorted(p.name for p in victim.iterdir()) == sorted(names)
    for name in names:
        if name == "precious":
            assert (victim / name).read_bytes() == b"precious\n"
            assert time.time() - (victim / name).stat().st_mtime > 86400


def _attempt(action: Callable[[], object]) -> UnsafeCachePath | None:
    """The refusal ``action`` ends with, or None (looked at after the
    victim: the harm, if any, is what the test reports first)."""
    try:
        action()
    except UnsafeCachePath as exc:
        return exc
    return None


def _refused(error: UnsafeCachePath | None, names: str) -> None:
    assert error is not None, "the planted link was not reported"
    assert names in str(error) and "\n" not in str(error)


def _fresh_cache(tmp_path: Path, wheel: Path) -> tuple[WheelCache, str]:
    cache = WheelCache(tmp_path / "cache")
    return cache, cache.get(wheel).key


# -- planted links: never followed ----------------------------------------------


@needs_symlinks
def test_a_dangling_link_at_cachedir_tag_creates_nothing(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "CACHEDIR.TAG").symlink_to(victim / "tag")
    error = _attempt(lambda: WheelCache(root).get(demo_wheel))
    _unchanged(victim)
    _refused(error, "CACHEDIR.TAG")


@needs_symlinks
@pytest.mark.parametrize("where", ["lock file", "locks directory"])
def test_a_link_at_a_lock_creates_nothing(tmp_path: Path, demo_wheel: Path, victim: Path, where: str) -> None:
    root = tmp_path / "cache"
    key = WheelCache(tmp_path / "other").key_for(demo_wheel)
    if where == "lock file":
        (root / "locks").mkdir(parents=True)
        (root / "locks" / f"{key}.lock").symlink_to(victim / "lock")
    else:
        root.mkdir()
        (root / "locks").symlink_to(victim, target_is_directory=True)
    error = _attempt(lambda: WheelCache(root).get(demo_wheel))
    _unchanged(victim)
    _refused(error, "locks")
    assert not (root / "entries" / key).exists()


@needs_symlinks
@pytest.mark.parametrize("target", ["dangling", "existing"])
def test_a_link_at_last_used_is_not_followed(tmp_path: Path, demo_wheel: Path, victim: Path, target: str) -> None:
    cache, key = _fresh_cache(tmp_path, demo_wheel)
    used = cache.entry_dir(key) / "last-used"
    used.unlink()
    used.symlink_to(victim / ("precious" if target == "existing" else "used"))
    error = _attempt(lambda: WheelCache(cache.root).get(demo_wheel))
    _unchanged(victim)
    _refused(error, "last-used")


@needs_symlinks
def test_a_link_at_a_user_record_is_not_written_through(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    """The install that records a symlink-mode environment truncated and
    rewrote the file a record's link pointed to."""
    cache, key = _fresh_cache(tmp_path, demo_wheel)
    env = tmp_path / "env"
    env.mkdir()
    cache_admin.record_user(cache, key, str(env))
    records = [p for p in (cache.root / "users" / key).iterdir()]
    assert records
    for p in records:
        p.unlink()
        p.symlink_to(victim / "precious")
    error = _attempt(lambda: cache_admin.record_user(cache, key, str(env)))
    _unchanged(victim)
    _refused(error, str(cache.root / "users" / key))


@needs_symlinks
@pytest.mark.parametrize("directory", ["users", "users/KEY", "index", "plans"])
def test_a_linked_directory_is_never_written_into(
    tmp_path: Path, demo_wheel: Path, victim: Path, directory: str
) -> None:
    cache = WheelCache(tmp_path / "cache")
    key = cache.key_for(demo_wheel)
    link = cache.root / directory.replace("KEY", key)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim, target_is_directory=True)
    def attack() -> None:
        if directory == "plans":  # a recorded plan, a layout, a record: write_beside
            write_beside(os.path.join(cache.root, "plans", f"{key}.json"), b"{}")
            return
        cache.get(demo_wheel)  # records the wheel file in the index
        cache_admin.record_user(cache, key, str(tmp_path))

    error = _attempt(attack)
    _unchanged(victim)
    _refused(error, str(link))


@needs_symlinks
def test_unpacking_removes_no_leftovers_through_a_linked_tmp(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    """Leftovers of killed unpacks of an entry are removed before it is
    unpacked again: never in a directory ``tmp`` links to."""
    cache = WheelCache(tmp_path / "cache")
    key = cache.key_for(demo_wheel)
    (victim / f"{key}-precious").mkdir()
    (victim / f"{key}-precious" / "file").write_bytes(b"mine")
    cache.root.mkdir()
    (cache.root / "tmp").symlink_to(victim, target_is_directory=True)
    error = _attempt(lambda: cache.get(demo_wheel))
    _unchanged(victim, ("precious", f"{key}-precious"))
    assert (victim / f"{key}-precious" / "file").read_bytes() == b"mine"
    _refused(error, "tmp")


@needs_symlinks
@pytest.mark.parametrize("directory", ["tmp", "index", "plans"])
def test_prune_removes_nothing_through_a_link(tmp_path: Path, demo_wheel: Path, victim: Path, directory: str) -> None:
    cache, _ = _fresh_cache(tmp_path, demo_wheel)
    link = cache.root / directory
    shutil.rmtree(link, ignore_errors=True)
    (victim / "notes.json").write_bytes(b"not an index record\n")
    link.symlink_to(victim, target_is_directory=True)
    error = _attempt(lambda: cache_admin.prune(WheelCache(cache.root)))
    _unchanged(victim, ("precious", "notes.json"))
    _refused(error, str(link))


@needs_symlinks
def test_clean_removes_nothing_through_a_linked_users_directory(
    tmp_path: Path, demo_wheel: Path, victim: Path
) -> None:
    """``clean`` reads an entry's user records and removes the stale ones:
    with ``users/<key>`` a link, those would be the victim's files."""
    cache, key = _fresh_cache(tmp_path, demo_wheel)
    (cache.root / "users").mkdir()
    (cache.root / "users" / key).symlink_to(victim, target_is_directory=True)
    error = _attempt(lambda: cache_admin.clean(WheelCache(cache.root)))
    _unchanged(victim)
    _refused(error, "users")


@needs_symlinks
def test_repair_removes_nothing_through_a_linked_users_directory(
    tmp_path: Path, demo_wheel: Path, victim: Path
) -> None:
    """``verify --repair`` re-creates a damaged entry: what it removes of
    the entry's users is never where ``users`` links to."""
    cache, key = _fresh_cache(tmp_path, demo_wheel)
    (cache.entry_dir(key) / "tree" / "demo" / "core.py").write_bytes(b"tampered = True\n")
    (victim / key).mkdir()
    (victim / key / "mine").write_bytes(b"mine")
    (cache.root / "users").symlink_to(victim, target_is_directory=True)
    fresh = WheelCache(cache.root)
    problems = cache_admin.verify(fresh)
    assert problems
    error = _attempt(lambda: cache_admin.repair(fresh, problems))
    assert (victim / key / "mine").read_bytes() == b"mine"
    assert error is None or "users" in str(error)
    _unchanged(victim, ("precious", key))


def _swap_for_link_at_first_read(monkeypatch: pytest.MonkeyPatch, directory: Path, victim: Path) -> list[Path]:
    """Another user of a shared cache renames ``directory`` away and puts a
    link to ``victim`` in its place, the moment after the cache has checked
    it and read the first file in it (a FIFO let them time that before:
    the reads now never block). Returns where the directory went."""
    moved: list[Path] = []
    read = cache_admin.HeldDir.read

    def read_then_swap(self: cache_admin.HeldDir, name: str) -> bytes:
        data = read(self, name)
        if not moved and os.path.samefile(self.path, directory):
            moved.append(directory.with_name(directory.name + ".moved"))
            directory.rename(moved[0])
            directory.symlink_to(victim, target_is_directory=True)
        return data

    monkeypatch.setattr(cache_admin.HeldDir, "read", read_then_swap)
    return moved


@posix_only
@needs_symlinks
@pytest.mark.parametrize("directory", ["index", "plans"])
def test_prune_removes_nothing_through_a_directory_swapped_mid_way(
    tmp_path: Path, demo_wheel: Path, victim: Path, directory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stale records are removed from the directory as it was checked
    and opened, never from what its name points at later."""
    cache, _ = _fresh_cache(tmp_path, demo_wheel)
    where = cache.root / directory
    where.mkdir(exist_ok=True)
    stale = [("a.json", b"{}"), ("b.json", b"not json")]
    for name, data in stale:
        (where / name).write_bytes(data)
        (victim / name).write_bytes(b"the victim's own\n")
    moved = _swap_for_link_at_first_read(monkeypatch, where, victim)
    cache_admin.prune(WheelCache(cache.root))
    assert moved, "the swap was never made: the test proves nothing"
    assert all((victim / name).read_bytes() == b"the victim's own\n" for name, _ in stale)
    _unchanged(victim, ("precious", *(name for name, _ in stale)))
    assert not [n for n in os.listdir(moved[0]) if n in ("a.json", "b.json")]  # removed where they were


@posix_only
@needs_symlinks
def test_clean_removes_no_record_through_a_users_directory_swapped_mid_way(
    tmp_path: Path, demo_wheel: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, key = _fresh_cache(tmp_path, demo_wheel)
    users = cache.root / "users" / key
    users.mkdir(parents=True)
    for name in ("0000", "id_ed25519", "authorized_keys"):
        (users / name).write_text(json.dumps({"path": str(tmp_path / f"gone-{name}")}))
    for name in ("id_ed25519", "authorized_keys"):
        (victim / name).write_bytes(b"the victim's own\n")
    moved = _swap_for_link_at_first_read(monkeypatch, users, victim)
    cache_admin.clean(WheelCache(cache.root))
    assert moved, "the swap was never made: the test proves nothing"
    _unchanged(victim, ("precious", "id_ed25519", "authorized_keys"))
    assert (victim / "id_ed25519").read_bytes() == b"the victim's own\n"


@posix_only
@needs_symlinks
def test_a_leftover_is_removed_where_it_was_checked_not_through_a_swapped_parent(
    tmp_path: Path, demo_wheel: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prune`` removes a killed unpack's leftover in ``tmp/``: ``tmp``
    swapped for a link between the check and the removal (by another user
    of a shared cache) must not make it remove the victim's directory of
    that name. Read-only parts are made writable through descriptors."""
    from pip_linkmode import cache as cache_mod

    cache, _ = _fresh_cache(tmp_path, demo_wheel)
    tmp = cache.root / "tmp"
    leftover = tmp / "unpack-dead"
    (leftover / "ro").mkdir(parents=True)
    (leftover / "ro" / "f").write_bytes(b"x")
    (leftover / "ro").chmod(0o555)
    (victim / "unpack-dead").mkdir()
    (victim / "unpack-dead" / "mine").write_bytes(b"mine")
    real_rmtree = cache_mod._rmtree_at
    swapped: list[Path] = []

    def rmtree_after_a_swap(name: str, dir_fd: int, path: str, **kwargs: bool) -> None:
        if not swapped:
            swapped.append(tmp.with_name("tmp.moved"))
            tmp.rename(swapped[0])
            tmp.symlink_to(victim, target_is_directory=True)
        real_rmtree(name, dir_fd, path, **kwargs)

    monkeypatch.setattr(cache_mod, "_rmtree_at", rmtree_after_a_swap)
    cache_mod.remove_tree(leftover, inside=cache.root)
    assert swapped, "the swap was never made: the test proves nothing"
    assert (victim / "unpack-dead" / "mine").read_bytes() == b"mine"
    _unchanged(victim, ("precious", "unpack-dead"))
    assert not (swapped[0] / "unpack-dead").exists()  # removed where it was, read-only part and all


@posix_only
def test_prune_never_waits_on_a_fifo_planted_in_the_cache(tmp_path: Path, demo_wheel: Path) -> None:
    """A FIFO where a plan or an index record should be is passed over (and
    removed): never opened so as to wait for a writer."""
    import threading

    cache, _ = _fresh_cache(tmp_path, demo_wheel)
    for directory in ("plans", "index"):
        (cache.root / directory).mkdir(exist_ok=True)
        os.mkfifo(cache.root / directory / "planted.json")
    done = threading.Event()
    failure: list[BaseException] = []

    def prune() -> None:
        try:
            cache_admin.prune(WheelCache(cache.root))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)
        done.set()

    threading.Thread(target=prune, daemon=True).start()
    assert done.wait(60), "prune waited on the FIFO"
    assert not failure, failure
    assert not (cache.root / "plans" / "planted.json").exists() and not (cache.root / "index" / "planted.json").exists()


@needs_symlinks
def test_a_path_that_climbs_through_a_link_is_refused(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    """``index/x/../mod.py`` with ``index/x`` a link: folding ``..`` away
    first would check ``index/mod.py`` while the system goes through the link."""
    from pip_linkmode._cachecore import check_path

    cache, _ = _fresh_cache(tmp_path, demo_wheel)
    (cache.root / "index").mkdir(exist_ok=True)
    (victim / "sub").mkdir()
    (cache.root / "index" / "x").symlink_to(victim / "sub", target_is_directory=True)
    path = os.path.join(cache.root, "index", "x", os.pardir, "precious")
    error = _attempt(lambda: check_path(cache.root, path))
    _refused(error, "'..'")
    _unchanged(victim, ("precious", "sub"))


def test_a_bytecode_record_naming_a_path_outside_the_entry_is_not_used(tmp_path: Path, demo_wheel: Path) -> None:
    """A bytecode record is read back as the cache's own: a source path that
    climbs out (``../``) makes it damaged, compiled again at install and
    reported by ``verify`` (its hash matches: someone wrote both)."""
    from pip_linkmode.bytecode import _marker, _read_marker, invalidation_mode
    from pip_linkmode.cache_admin import record_produced

    cache, key = _fresh_cache(tmp_path, demo_wheel)
    entry = cache.lookup(key)
    assert entry is not None
    compiled_rows(cache, entry, (0,))
    marker = _marker(entry, (0,), invalidation_mode())
    rows = json.loads(marker.read_bytes())
    rows[0][0] = "../../../../outside.py"
    data = json.dumps(rows).encode()
    record_produced(marker, data)
    marker.write_bytes(data)
    assert _read_marker(marker) is None
    problems = cache_admin.verify(WheelCache(cache.root))
    assert [p.what for p in problems if p.path == str(marker)] == ["damaged (a source path that climbs out of the entry)"]
    assert all(rel != "../../../../outside.py" for rel, _, _ in compiled_rows(cache, entry, (0,)))


@needs_symlinks
def test_bytecode_is_not_compiled_into_a_linked_pycache(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    entry = cache.get(demo_wheel)
    (entry.tree / "demo" / "__pycache__").symlink_to(victim, target_is_directory=True)
    error = _attempt(lambda: compiled_rows(cache, entry))
    _unchanged(victim)
    _refused(error, "__pycache__")


@needs_symlinks
def test_the_error_is_one_line_through_pip(tmp_path: Path, demo_wheel: Path, victim: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    (root / "CACHEDIR.TAG").symlink_to(victim / "tag")
    result = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--no-index", "--target", str(tmp_path / "t"), str(demo_wheel)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PIP_LINKMODE_CACHE_DIR": str(root), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "CACHEDIR.TAG" in line]
    assert len(errors) == 1 and "symbolic link inside the cache" in errors[0], result.stderr
    _unchanged(victim)


# -- ownership -----------------------------------------------------------------


@pytest.fixture(scope="module")
def other_user() -> Iterator[tuple[str, int, int]]:
    """A second real user, created for these tests and removed after."""
    if not IS_ROOT or shutil.which("useradd") is None:
        pytest.skip("creating a second user needs root and useradd")
    name = f"plm{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        import pwd

        record = pwd.getpwnam(name)
        yield name, record.pw_uid, record.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False)


def _as_user(uid: int, gid: int, work: Callable[[], str]) -> str:
    """``work()`` run by that user, in a forked child: this interpreter sits
    under a directory only root may enter (/root), so the user could not
    start it; a fork runs the code already loaded."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 0
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            try:
                out = "ok: " + work()
            except Exception as exc:  # reported to the parent
                out = f"{type(exc).__name__}: {exc}"
            os.write(write, out.encode())
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    return b"".join(chunks).decode()


def _shared_dir() -> Path:
    """A directory any user can reach (the tests' tmp_path is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="plm-sec-"))
    d.chmod(0o755)
    return d


@posix_only
def test_a_cache_owned_by_another_user_is_not_written(
    tmp_path: Path, demo_wheel: Path, other_user: tuple[str, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sudo`` without ``-H``: root with a user's HOME, so a user's cache."""
    monkeypatch.delenv(ENV_SHARED_CACHE, raising=False)
    name, uid, gid = other_user
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, uid, gid)
    with pytest.raises(CacheNotWritable) as raised:
        WheelCache(root).get(demo_wheel)
    message = str(raised.value)
    assert name in message and "not by root" in message and ENV_SHARED_CACHE in message and "--cache-dir" in message
    assert "\n" not in message
    assert list(root.iterdir()) == []

    # through pip, one line
    result = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--no-index", "--target", str(tmp_path / "t"), str(demo_wheel)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PIP_LINKMODE_CACHE_DIR": str(root), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if f"owned by {name}" in line]) == 1, result.stderr
    assert list(root.iterdir()) == []


@posix_only
def test_a_shared_cache_is_written_when_chosen(
    tmp_path: Path, demo_wheel: Path, other_user: tuple[str, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, uid, gid = other_user
    root = tmp_path / "cache"
    root.mkdir()
    os.chown(root, uid, gid)
    monkeypatch.setenv(ENV_SHARED_CACHE, "1")
    entry = WheelCache(root).get(demo_wheel)
    assert (entry.tree / "demo" / "core.py").is_file()


@posix_only
def test_a_cache_owned_by_root_is_read_not_written_by_a_user(
    demo_wheel: Path, other_user: tuple[str, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_SHARED_CACHE, raising=False)
    _, uid, gid = other_user
    base = _shared_dir()
    try:
        wheels = base / "wheels"
        here = build_wheel(wheels, demo_spec())
        missing = build_wheel(wheels / "other", demo_spec(name="other"))
        for p in (wheels, wheels / "other"):
            p.chmod(0o755)
        root = base / "cache"
        cache = WheelCache(root)
        key = cache.get(here).key
        before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))

        def read() -> str:
            user_cache = WheelCache(root)
            entry = user_cache.get(here)
            with user_cache.lock(entry.key):  # a lock file it cannot write: read, and locked
                text = (entry.tree / "demo" / "core.py").read_text()
            return f"{entry.key} {text.splitlines()[0]}"

        assert _as_user(uid, gid, read) == f"ok: {key} def hello():"

        def miss() -> str:
            WheelCache(root).get(missing)
            return "unpacked"

        out = _as_user(uid, gid, miss)
        assert out.startswith("CacheNotWritable: ") and "owned by root" in out and ENV_SHARED_CACHE in out, out
        assert "\n" not in out and missing.name in out
        assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before
    finally:
        shutil.rmtree(base)


# -- modes -----------------------------------------------------------------------


_UMASK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pip_linkmode import install_wheel
    wheel, cache, hard_venv, copy_venv = sys.argv[1:]
    install_wheel(wheel, venv=hard_venv, cache=cache, link_mode="hardlink", compile_bytecode=True)
    install_wheel(wheel, venv=copy_venv, cache=cache, link_mode="copy")
    """
)


@posix_only
@pytest.mark.parametrize("umask", [0o000, 0o002])
def test_cache_files_are_never_group_or_world_writable(tmp_path: Path, demo_wheel: Path, umask: int) -> None:
    """In hardlink mode the cache inode is every environment's file: under
    umask 000 or 002 nothing the cache creates may be writable by others.
    A copy is the environment's own: it gets pip's modes for that umask."""
    cache = tmp_path / "cache"
    hard, copy = make_venv(tmp_path / "hard"), make_venv(tmp_path / "copy")
    subprocess.run(
        [sys.executable, "-c", _UMASK_SCRIPT, str(demo_wheel), str(cache), str(hard), str(copy)],
        check=True, cwd=ROOT, preexec_fn=lambda: os.umask(umask),  # noqa: PLW1509
    )
    loose = {}
    kinds = set()
    for path in [cache, *cache.rglob("*")]:
        st = path.lstat()
        kinds.add(path.suffix if stat.S_ISREG(st.st_mode) else "dir")
        if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode):
            loose[str(path.relative_to(cache))] = oct(stat.S_IMODE(st.st_mode))
    assert not loose, loose
    assert {".pyc", ".json", ".lock", ".py", "dir"} <= kinds  # bytecode, layouts, locks were all made
    pkg = site_packages(copy) / "demo"
    assert stat.S_IMODE((pkg / "core.py").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((pkg / "tool.sh").stat().st_mode) == 0o777 & ~umask
    hard_core = site_packages(hard) / "demo" / "core.py"
    assert hard_core.stat().st_nlink > 1 and not hard_core.stat().st_mode & 0o022
    assert json.loads((cache / "index").iterdir().__next__().read_text())["key"]


@posix_only
def test_links_planted_in_a_tree_are_removed_never_opened(other_user: tuple[str, int, int]) -> None:
    """Another user of a shared cache plants, in a tree the cache's user
    removes, links to a directory that user cannot read and to a FIFO, and
    a FIFO: the links and the FIFO go, what they point to stays, nothing is
    opened through them (which would fail, or wait on the FIFO for ever)."""
    from pip_linkmode.cache import remove_tree

    _, uid, gid = other_user
    base = _shared_dir()
    try:
        root = base / "cache"
        leftover = root / "tmp" / "unpack-dead"
        (leftover / "pkg").mkdir(parents=True)
        (leftover / "pkg" / "m.py").write_bytes(b"x")
        private = base / "private"
        private.mkdir(mode=0o700)
        (private / "secret").write_bytes(b"root's own\n")
        os.mkfifo(base / "fifo")
        os.mkfifo(leftover / "pkg" / "a-fifo")
        (leftover / "pkg" / "to-private").symlink_to(private, target_is_directory=True)
        (leftover / "to-fifo").symlink_to(base / "fifo")
        for p in [root, *root.rglob("*")]:
            os.chown(p, uid, gid, follow_symlinks=False)
        (root / "tmp").chmod(0o777)  # (shared: anyone may plant)

        def remove() -> str:
            remove_tree(leftover, inside=root)
            return "gone" if not os.path.lexists(leftover) else "still there"

        assert _as_user(uid, gid, remove) == "ok: gone"
        assert (private / "secret").read_bytes() == b"root's own\n"
        assert stat.S_ISFIFO((base / "fifo").lstat().st_mode)
        assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o777
    finally:
        shutil.rmtree(base)


@posix_only
def test_a_shared_tmp_keeps_its_mode_when_a_removal_is_denied(other_user: tuple[str, int, int]) -> None:
    """A read-only directory another user planted in a leftover under the
    shared ``tmp/`` cannot be removed by the cache's user: the removal fails,
    and ``tmp/`` is not made the user's alone (others could no longer
    unpack)."""
    from pip_linkmode.cache import remove_tree

    _, uid, gid = other_user
    base = _shared_dir()
    try:
        root = base / "cache"
        leftover = root / "tmp" / "unpack-dead"
        leftover.mkdir(parents=True)
        for p in [root, *root.rglob("*")]:
            os.chown(p, uid, gid)
        (root / "tmp").chmod(0o777)
        planted = leftover / "theirs"
        planted.mkdir()  # (root's: another user's, for the cache's user)
        (planted / "f").write_bytes(b"x")
        planted.chmod(0o555)

        def remove() -> str:
            try:
                remove_tree(leftover, inside=root)
            except PermissionError as exc:
                return f"denied: {exc.filename}"
            return "removed"

        assert _as_user(uid, gid, remove) == f"ok: denied: {planted}/f"
        assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o777
        assert stat.S_IMODE(planted.stat().st_mode) == 0o555  # (not the user's to change)
    finally:
        shutil.rmtree(base)


@posix_only
def test_another_users_dead_unpack_is_left_beside_a_new_one(other_user: tuple[str, int, int]) -> None:
    """A leftover of a killed unpack of the same wheel that the cache's user
    may not remove (another user's, private, as in a shared cache's tmp/):
    the unpack goes on beside it (it used to fail with a raw
    PermissionError), and ``cache prune`` keeps it, saying why and whose it
    is to remove, rather than stopping at it."""
    _, uid, gid = other_user
    base = _shared_dir()
    try:
        wheel = build_wheel(base / "wheels", demo_spec())
        warm = WheelCache(base / "warm")  # what the user's child runs, loaded here: it
        warm.get(wheel)  # cannot read this interpreter's files (a lazy import would fail)
        cache_admin.prune(warm)
        root = base / "cache"
        root.mkdir()
        os.chown(root, uid, gid)

        def make() -> str:
            cache = WheelCache(root)
            cache._ensure_dirs()
            return cache.key_for(wheel)

        out = _as_user(uid, gid, make)
        assert out.startswith("ok: "), out
        key = out[4:]
        leftover = root / "tmp" / f"{key}-1-dead"
        (leftover / "tree").mkdir(parents=True)
        (leftover / "tree" / "m.py").write_bytes(b"x")
        leftover.chmod(0o700)  # (root's: another user's, for the cache's user)

        def unpack() -> str:
            entry = WheelCache(root).get(wheel)
            return f"{entry.key} {(entry.tree / 'demo' / '__init__.py').is_file()}"

        assert _as_user(uid, gid, unpack) == f"ok: {key} True"
        assert (leftover / "tree" / "m.py").read_bytes() == b"x"

        def prune() -> str:
            result = cache_admin.prune(WheelCache(root))
            return json.dumps([result.removed, result.kept])

        out = _as_user(uid, gid, prune)
        assert out.startswith("ok: "), out
        removed, kept = json.loads(out[4:])
        assert removed == []
        assert len(kept) == 1 and kept[0].startswith(f"leftover {leftover.name}: Permission denied")
        assert "its owner or root can remove it" in kept[0]
        assert leftover.is_dir()
    finally:
        shutil.rmtree(base)


@posix_only
def test_files_are_linked_from_a_directory_that_may_be_entered_but_not_listed(
    other_user: tuple[str, int, int],
) -> None:
    """A cache directory a user may enter but not list (a cache made under
    umask 026 is 0751 to the others): its files are linked by a user as
    they were by path (the directory is opened O_PATH, not to be read),
    and in ``auto`` mode the clone probe falls back to hardlinks as before."""
    from pip_linkmode.linker import Linker

    _, uid, gid = other_user
    base = _shared_dir()
    try:
        src = base / "cache" / "tree"
        src.mkdir(parents=True)
        names = ["a.py", "b.txt", "c.txt"]
        for name in names:
            (src / name).write_bytes(name.encode())
            os.chown(src / name, uid, gid)  # (protected_hardlinks: the user's own files)
        src.chmod(0o311)
        dst = base / "env"
        dst.mkdir()
        os.chown(dst, uid, gid)

        def place(into: Path = dst / "pkg") -> str:
            linker = Linker("auto")
            report = linker.run_dirs([(str(src), str(into), names, [4, 5, 5], False)])
            linker.close()
            return ",".join(sorted(f"{m.value}={n}" for m, n in report.counts.items() if n))

        place(base / "warm")  # what the user's child runs, loaded here (it cannot read this interpreter's files)
        out = _as_user(uid, gid, place)
        assert out == "ok: hardlink=3", out
        for name in names:
            assert os.path.samestat((dst / "pkg" / name).stat(), (src / name).stat())
    finally:
        (base / "cache" / "tree").chmod(0o755)
        shutil.rmtree(base)


@posix_only
def test_a_directory_that_cannot_be_read_is_an_oserror_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory whose listing fails (EIO, an NFS handle gone stale): the
    removal raises an OSError naming that directory's path, which callers
    turn into one line (the system names the descriptor, an int)."""
    import errno

    from pip_linkmode import cache as cache_mod

    root = tmp_path / "cache"
    leftover = root / "tmp" / "unpack-dead"
    (leftover / "pkg" / "sub").mkdir(parents=True)
    real_scandir = os.scandir

    def scandir(target: Any = ".") -> Any:
        if isinstance(target, int) and os.path.samestat(os.fstat(target), (leftover / "pkg" / "sub").stat()):
            raise OSError(errno.EIO, os.strerror(errno.EIO), target)
        return real_scandir(target)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(OSError) as caught:
        cache_mod.remove_tree(leftover, inside=root)
    assert caught.value.errno == errno.EIO
    assert caught.value.filename == f"{leftover}/pkg/sub"


@posix_only
def test_read_only_parts_of_a_users_cache_are_removed_by_that_user(other_user: tuple[str, int, int]) -> None:
    """``remove_tree`` of a cache tree with a read-only directory, and under a
    read-only parent, as the cache's own (non-root) user: made writable
    through descriptors, then removed (root would not need it)."""
    from pip_linkmode.cache import remove_tree

    _, uid, gid = other_user
    base = _shared_dir()
    try:
        root = base / "cache"
        leftover = root / "tmp" / "ropar" / "x"
        (leftover / "ro").mkdir(parents=True)
        (leftover / "ro" / "f").write_bytes(b"x")
        (leftover / "unsearchable" / "sub").mkdir(parents=True)  # (0o444: listed, not entered)
        (leftover / "unsearchable" / "sub" / "g").write_bytes(b"x")
        for p in [root, *root.rglob("*")]:
            os.chown(p, uid, gid)
        (leftover / "ro").chmod(0o555)
        (leftover / "unsearchable").chmod(0o444)
        (root / "tmp" / "ropar").chmod(0o555)

        def remove() -> str:
            remove_tree(leftover, inside=root)
            return "gone" if not leftover.exists() else "still there"

        assert _as_user(uid, gid, remove) == "ok: gone"
    finally:
        shutil.rmtree(base)
