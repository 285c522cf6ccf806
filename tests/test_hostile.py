"""A generated corpus of hostile and broken wheels, installed for real.

Each wheel is either refused, with a message that names the wheel file and
the member, or installed the way pip and installer install it. Either way
nothing lands outside the target environment, and a refused wheel leaves no
cache entry and no temporary leftovers. The library path runs every wheel;
the pip front end runs a representative subset.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import IS_ROOT, make_venv, site_packages, venv_python
from wheelmaker import WheelSpec, build_wheel, record_hash

from pip_linkmode import CacheError, InvalidWheel, WheelCache, install_wheel

ESCAPE = "../../../outside/pwned.py"  # from site-packages: lib/pythonX.Y/site-packages


def _set_row(path: str, col: int, value: str) -> Callable[[list[list[str]]], list[list[str]]]:
    def hook(rows: list[list[str]]) -> list[list[str]]:
        for row in rows:
            if row[0] == path:
                row[col] = value
        return rows

    return hook


def _add_row(path: str, data: bytes) -> Callable[[list[list[str]]], list[list[str]]]:
    return lambda rows: [*rows, [path, record_hash(data), str(len(data))]]


def _raw(name: str, data: bytes = b"x = 1\n", mode: int = 0o644, listed: bool = True) -> WheelSpec:
    """A wheel with one extra member written raw (any name, any mode bits)."""
    hook = _add_row(name, data) if listed else None
    return WheelSpec(name="evil", files={"evil/__init__.py": b""}, raw_members=[(name, data, mode)], record_hook=hook)


@dataclass
class Refused:
    spec: WheelSpec | Callable[[Path], Path]
    member: str | None
    reason: str


@dataclass
class Accepted:
    spec: WheelSpec
    check: Callable[[Path], None]  # given site-packages


def _zip_bomb(directory: Path) -> Path:
    """A member whose zip header declares 64 GiB while RECORD declares 100 bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(directory, WheelSpec(name="bomb", files={"bomb/__init__.py": b"x" * 100}))
    with zipfile.ZipFile(wheel) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    raw = bytearray(wheel.read_bytes())
    # Patch the central directory's uncompressed size of bomb/__init__.py.
    name = b"bomb/__init__.py"
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len] == name:
            raw[at + 24 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 4)
    wheel.write_bytes(bytes(raw))
    return wheel


def _declared_huge(directory: Path) -> Path:
    """RECORD and the zip header agree on 4 GB (the member really holds 1000 zeros)."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "huge-1.0-py3-none-any.whl"
    size = 0xFFFFFFFE
    meta = b"Metadata-Version: 2.1\nName: huge\nVersion: 1.0\n"
    whl = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("huge-1.0.dist-info/METADATA", meta)
        zf.writestr("huge-1.0.dist-info/WHEEL", whl)
        zf.writestr(
            "huge-1.0.dist-info/RECORD",
            f"huge-1.0.dist-info/METADATA,{record_hash(meta)},{len(meta)}\n"
            f"huge-1.0.dist-info/WHEEL,{record_hash(whl)},{len(whl)}\n"
            f"huge/zeros.bin,sha256=AAAA,{size}\nhuge-1.0.dist-info/RECORD,,\n",
        )
        zf.writestr("huge/zeros.bin", b"\0" * 1000)
    raw = bytearray(wheel.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:  # the central directory claims the same 4 GB
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len] == b"huge/zeros.bin":
            raw[at + 24 : at + 28] = size.to_bytes(4, "little")
        at = raw.find(b"PK\x01\x02", at + 4)
    wheel.write_bytes(bytes(raw))
    return wheel


def _truncated(directory: Path) -> Path:
    wheel = build_wheel(directory, WheelSpec(name="trunc", files={"trunc/__init__.py": b"x = 1\n" * 100}))
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])
    return wheel


def _garbage(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "garbage-1.0-py3-none-any.whl"
    wheel.write_bytes(os.urandom(4096))
    return wheel


def _empty_file(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "empty-1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    return wheel


def _bad_crc(directory: Path) -> Path:
    """The stored bytes of a member flipped after writing: its CRC no longer matches."""
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "crc-1.0-py3-none-any.whl"
    body = b"A" * 64
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("crc-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: crc\nVersion: 1.0\n")
        zf.writestr("crc-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("crc/data.bin", body)
        meta = b"Metadata-Version: 2.1\nName: crc\nVersion: 1.0\n"
        whl = b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        zf.writestr(
            "crc-1.0.dist-info/RECORD",
            f"crc-1.0.dist-info/METADATA,{record_hash(meta)},{len(meta)}\n"
            f"crc-1.0.dist-info/WHEEL,{record_hash(whl)},{len(whl)}\n"
            f"crc/data.bin,{record_hash(body)},64\ncrc-1.0.dist-info/RECORD,,\n",
        )
    raw = wheel.read_bytes()
    wheel.write_bytes(raw.replace(body, b"B" + body[1:], 1))
    return wheel


def _header_name_differs(directory: Path) -> Path:
    """A member's local header names another file than the central directory
    does (zipfile refuses to read it; so does the cache's own reader)."""
    wheel = build_wheel(directory, WheelSpec(name="evil", files={"evil/abc.py": b"A = 1\n"}))
    raw = wheel.read_bytes()
    wheel.write_bytes(raw.replace(b"evil/abc.py", b"evil/abd.py", 1))  # the first is the local header's
    return wheel


REFUSED: dict[str, Refused] = {
    "dotdot": Refused(_raw(ESCAPE), ESCAPE, "'..' in member name"),
    "dotdot-inside": Refused(_raw("evil/../../../outside/x.py"), "evil/../../../outside/x.py", "'..' in member name"),
    "absolute": Refused(_raw("/tmp/pip-linkmode-pwned.py"), "/tmp/pip-linkmode-pwned.py", "absolute path"),
    "drive-letter": Refused(_raw("C:/Windows/pwned.py"), "C:/Windows/pwned.py", "absolute path"),
    "drive-relative": Refused(_raw("C:pwned.py"), "C:pwned.py", "absolute path"),
    "backslash-dotdot": Refused(_raw("..\\..\\outside\\pwned.py"), "..\\..\\outside\\pwned.py", "backslash"),
    "backslash": Refused(_raw("evil\\sub.py"), "evil\\sub.py", "backslash"),
    "dot-segment": Refused(_raw("evil/./x.py"), "evil/./x.py", "not in normal form"),
    "leading-dot": Refused(_raw("./evil/x.py"), "./evil/x.py", "not in normal form"),
    "empty-segment": Refused(_raw("evil//x.py"), "evil//x.py", "not in normal form"),
    # a NUL in RECORD refuses the wheel before anything else (zipfile cuts the
    # member's name at it: 'evil/x', which RECORD would not list either)
    "nul-byte": Refused(_raw("evil/x\x00.py"), "RECORD", "NUL byte in RECORD"),
    "duplicate": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, raw_members=[("evil/a.py", b"b", 0o644)]),
        "evil/a.py",
        "duplicate member",
    ),
    "data-traversal": Refused(_raw("evil-1.0.data/../../outside/x.py"), "evil-1.0.data/../../outside/x.py", "'..'"),
    "data-unknown-scheme": Refused(_raw("evil-1.0.data/nowhere/x.txt"), "evil-1.0.data/nowhere/x.txt", "known .data scheme"),
    "data-file-at-top": Refused(_raw("evil-1.0.data/purelib"), "evil-1.0.data/purelib", "known .data scheme"),
    "not-in-record": Refused(_raw("evil/extra.py", listed=False), "evil/extra.py", "not listed in RECORD"),
    "record-hash-mismatch": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, record_hook=_set_row("evil/a.py", 1, record_hash(b"b"))),
        "evil/a.py",
        "hash contradicts RECORD",
    ),
    "record-size-mismatch": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"abc"}, record_hook=_set_row("evil/a.py", 2, "2")),
        "evil/a.py",
        "RECORD 2",
    ),
    "record-no-hash": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, record_hook=_set_row("evil/a.py", 1, "")),
        "evil/a.py",
        "no hash or size",
    ),
    "record-md5": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, record_hook=_set_row("evil/a.py", 1, "md5=DMF1ucDxtqgxw5niaXcmYQ")),
        "evil/a.py",
        "unsupported hash",
    ),
    "record-malformed-row": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, record_hook=lambda rows: [*rows, ["only", "two"]]),
        "RECORD",
        "malformed row",
    ),
    "record-missing": Refused(
        lambda d: _strip_member(build_wheel(d, WheelSpec(name="evil", files={"evil/a.py": b"a"})), "evil-1.0.dist-info/RECORD"),
        "evil-1.0.dist-info/RECORD",
        "missing",
    ),
    "dist-info-mismatch": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, dist_info_name="other-1.0.dist-info"),
        "other-1.0.dist-info",
        "does not match the wheel's project name",
    ),
    "two-dist-infos": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, raw_members=[("evil2-1.0.dist-info/METADATA", b"x", 0o644)]),
        None,
        "exactly one .dist-info",
    ),
    # pip and installer count directory entries too: an empty one is refused
    "empty-dist-info-dir-entry": Refused(
        WheelSpec(name="evil", files={"evil/a.py": b"a"}, raw_members=[("evil2-1.0.dist-info/", b"", 0o755)]),
        None,
        "exactly one .dist-info",
    ),
    "wheel-version-2": Refused(
        lambda d: _rewrite_member(
            build_wheel(d, WheelSpec(name="evil", files={"evil/a.py": b"a"})),
            "evil-1.0.dist-info/WHEEL",
            b"Wheel-Version: 2.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        "evil-1.0.dist-info/WHEEL",
        "Wheel-Version 2.0 is not 1.x",
    ),
    "zip-bomb-header": Refused(_zip_bomb, "bomb/__init__.py", "zip declares 4294967280 bytes, RECORD 100"),
    "bad-crc": Refused(_bad_crc, "crc/data.bin", "cannot be read"),
    "header-name-differs": Refused(_header_name_differs, "evil/abc.py", "cannot be read: File name in directory"),
    "truncated-zip": Refused(_truncated, None, "not a readable zip"),
    "garbage": Refused(_garbage, None, "not a readable zip"),
    "zero-bytes": Refused(_empty_file, None, "not a readable zip"),
    "file-and-dir-same-name": Refused(
        WheelSpec(name="evil", files={"evil/a": b"file", "evil/a/b.py": b"b"}),
        None,
        "cannot unpack evil-1.0-py3-none-any.whl",
    ),
    "name-too-long": Refused(_raw("evil/" + "n" * 300 + ".py"), None, "cannot unpack evil-1.0-py3-none-any.whl"),
    "not-a-wheel-name": Refused(
        lambda d: _renamed(build_wheel(d, WheelSpec(name="evil", files={"evil/a.py": b"a"})), "evil.whl"),
        None,
        "not a wheel file name",
    ),
}


def _strip_member(wheel: Path, name: str) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        members = [(i, zf.read(i)) for i in zf.infolist() if i.filename != name]
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return wheel


def _rewrite_member(wheel: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        members = [(i, data if i.filename == name else zf.read(i)) for i in zf.infolist()]
    # keep RECORD consistent with the new bytes, so only the version is wrong
    fixed = []
    for info, body in members:
        if info.filename.endswith("/RECORD"):
            rows = body.decode().splitlines()
            rows = [f"{name},{record_hash(data)},{len(data)}" if r.startswith(name + ",") else r for r in rows]
            body = ("\n".join(rows) + "\n").encode()
        fixed.append((info, body))
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, body in fixed:
            zf.writestr(info, body)
    return wheel


def _renamed(wheel: Path, name: str) -> Path:
    return wheel.rename(wheel.with_name(name))


def _check_symlink_stored_as_file(sp: Path) -> None:
    link = sp / "evil" / "link"
    assert link.is_file() and not link.is_symlink()
    assert link.read_bytes() == b"/etc/passwd"  # the link's target text, as a plain file


def _check_device_stored_as_file(sp: Path) -> None:
    dev = sp / "evil" / "dev"
    assert stat.S_ISREG(os.lstat(dev).st_mode)


def _check_case_names(sp: Path) -> None:
    assert (sp / "evil" / "Mod.py").read_bytes() == b"UPPER = 1\n"
    assert (sp / "evil" / "mod.py").read_bytes() == b"lower = 1\n"


def _check_pth(sp: Path) -> None:
    assert (sp / "evil.pth").read_text() == "import sys\n"  # installed as pip installs it: a plain file


def _check_pycache_skipped(sp: Path) -> None:
    assert not (sp / "evil" / "__pycache__" / "x.cpython-311.pyc").exists()
    assert (sp / "evil" / "__init__.py").exists()


def _check_listed_but_absent(sp: Path) -> None:
    record = (sp / "evil-1.0.dist-info" / "RECORD").read_text()
    assert "evil/ghost.py" not in record and not (sp / "evil" / "ghost.py").exists()


def _check_record_self_hash(sp: Path) -> None:
    rows = (sp / "evil-1.0.dist-info" / "RECORD").read_text().splitlines()
    assert "evil-1.0.dist-info/RECORD,," in rows


def _check_setuid_dropped(sp: Path) -> None:
    mode = os.stat(sp / "evil" / "tool").st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID)
    assert mode & 0o100 or os.name == "nt"  # Windows keeps no executable bits


ACCEPTED: dict[str, Accepted] = {
    "symlink-bits": Accepted(_raw("evil/link", b"/etc/passwd", stat.S_IFLNK | 0o777), _check_symlink_stored_as_file),
    "device-bits": Accepted(_raw("evil/dev", b"", stat.S_IFCHR | 0o666), _check_device_stored_as_file),
    "fifo-bits": Accepted(_raw("evil/dev", b"", stat.S_IFIFO | 0o644), _check_device_stored_as_file),
    "setuid-bits": Accepted(_raw("evil/tool", b"#!/bin/sh\n", stat.S_IFREG | 0o6755), _check_setuid_dropped),
    "case-colliding": Accepted(
        WheelSpec(name="evil", files={"evil/__init__.py": b"", "evil/Mod.py": b"UPPER = 1\n", "evil/mod.py": b"lower = 1\n"}),
        _check_case_names,
    ),
    "pth-file": Accepted(WheelSpec(name="evil", files={"evil/__init__.py": b"", "evil.pth": b"import sys\n"}), _check_pth),
    "pycache-member": Accepted(
        WheelSpec(name="evil", files={"evil/__init__.py": b"", "evil/__pycache__/x.cpython-311.pyc": b"stale"}),
        _check_pycache_skipped,
    ),
    "record-lists-absent-file": Accepted(
        WheelSpec(name="evil", files={"evil/__init__.py": b""}, record_hook=_add_row("evil/ghost.py", b"boo")),
        _check_listed_but_absent,
    ),
    "record-hashes-itself": Accepted(
        WheelSpec(name="evil", files={"evil/__init__.py": b""}, record_hook=_set_row("evil-1.0.dist-info/RECORD", 1, "sha256=AAAA")),
        _check_record_self_hash,
    ),
}


def _build(spec: WheelSpec | Callable[[Path], Path], directory: Path) -> Path:
    return spec(directory) if callable(spec) else build_wheel(directory, spec)


def _outside_snapshot(root: Path) -> set[str]:
    """Every path under root except the target venv, the cache and the wheels."""
    out = set()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (dirpath == str(root) and d in ("venv", "cache", "wheels"))]
        out.update(os.path.join(dirpath, n) for n in dirs + files)
    return out


def _assert_no_trace(cache: Path) -> None:
    entries = cache / "entries"
    assert not entries.exists() or list(entries.iterdir()) == []
    tmp = cache / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_the_corpus_is_big_enough() -> None:
    assert len(REFUSED) + len(ACCEPTED) >= 30
    assert len(REFUSED) >= 25


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_through_the_library(case: str, tmp_path: Path) -> None:
    bad = REFUSED[case]
    venv = make_venv(tmp_path / "venv")
    (tmp_path / "outside").mkdir()
    wheel = _build(bad.spec, tmp_path / "wheels")
    before = _outside_snapshot(tmp_path)
    sp_before = sorted(p.name for p in site_packages(venv).iterdir())
    with pytest.raises(CacheError) as info:
        install_wheel(wheel, venv=venv, cache=tmp_path / "cache", link_mode="hardlink")
    message = str(info.value)
    assert wheel.name in message and bad.reason in message, message
    if bad.member is not None:
        assert isinstance(info.value, InvalidWheel) and repr(bad.member) in message, message
    assert "Traceback" not in message and "Errno" not in message
    assert _outside_snapshot(tmp_path) == before  # nothing outside the target
    assert sorted(p.name for p in site_packages(venv).iterdir()) == sp_before  # nor inside it
    assert not Path("/tmp/pip-linkmode-pwned.py").exists()
    _assert_no_trace(tmp_path / "cache")


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_through_the_library_as_installer_does(case: str, tmp_path: Path) -> None:
    good = ACCEPTED[case]
    probe = tmp_path / "CaseProbe"
    probe.touch()
    if case == "case-colliding" and (tmp_path / "caseprobe").exists():
        pytest.skip(reason="this filesystem folds case (APFS, NTFS): Mod.py and mod.py are one file here")
    venv = make_venv(tmp_path / "venv")
    (tmp_path / "outside").mkdir()
    wheel = build_wheel(tmp_path / "wheels", good.spec)
    before = _outside_snapshot(tmp_path)
    install_wheel(wheel, venv=venv, cache=tmp_path / "cache", link_mode="hardlink")
    good.check(site_packages(venv))
    assert _outside_snapshot(tmp_path) == before
    check = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(venv), "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(not IS_ROOT or sys.platform != "linux", reason="mounting a small tmpfs for the cache needs Linux and root")
def test_declared_size_beyond_free_space_is_refused_before_writing(tmp_path: Path) -> None:
    """A wheel whose RECORD and zip header agree on more than the cache's
    free space is refused before a byte is written (no disk filled first)."""
    wheel = _declared_huge(tmp_path / "wheels")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        cache = WheelCache(mnt / "cache")
        with pytest.raises(CacheError) as info:
            cache.get(wheel)
        message = str(info.value)
        assert "no space left on the cache's filesystem" in message and "huge-1.0-py3-none-any.whl" in message, message
        assert shutil.disk_usage(mnt).used < 1024 * 1024  # nothing was written first
        _assert_no_trace(mnt / "cache")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


PIP_SUBSET = ["dotdot", "absolute", "backslash-dotdot", "duplicate", "record-hash-mismatch", "zip-bomb-header", "data-unknown-scheme"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("case", PIP_SUBSET)
def test_through_the_pip_front_end_as_plain_pip(case: str, tmp_path: Path) -> None:
    """The pip door refuses what plain pip refuses, with pip's exit status;
    what pip installs (a duplicate member, a hash RECORD contradicts, a zip
    header's lie about a size, a backslash name on POSIX) pip's loop installs
    unlinked. Either way nothing lands outside the venv, and the cache keeps
    nothing of the wheel."""
    bad = REFUSED[case]
    venv = make_venv(tmp_path / "venv")
    plain_venv = make_venv(tmp_path / "wheels" / "plain")  # (under "wheels": outside the snapshot)
    (tmp_path / "outside").mkdir()
    wheel = _build(bad.spec, tmp_path / "wheels")
    before = _outside_snapshot(tmp_path)
    common = ["--disable-pip-version-check", "--no-index", "--no-deps", str(wheel)]
    plain = subprocess.run([sys.executable, "-m", "pip", "--python", venv_python(plain_venv), "install", *common],
                           capture_output=True, text=True)
    proc = subprocess.run(
        [sys.executable, "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--cache-dir", str(tmp_path / "cache"),
         *common],
        capture_output=True, text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == plain.returncode, out
    # pip refuses some of these itself before we see the wheel; either way it names the wheel
    assert wheel.name in out or wheel.name.split("-")[0] in out, out
    assert _outside_snapshot(tmp_path) == before
    # (plain pip leaves what it extracted before it refused; the door removes it)
    installed = plain.returncode == 0 and (site_packages(plain_venv) / "evil").exists()
    assert (site_packages(venv) / "evil").exists() == installed
    _assert_no_trace(tmp_path / "cache")
