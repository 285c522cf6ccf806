"""The pip door takes every wheel pip takes, and refuses what pip refuses in pip's words.

Each case installs the same wheel file twice through real pip (the newest
release of the oldest and the newest supported line): once with plain
``pip install``, once with ``pip-linkmode install --link-mode hardlink``,
each into a fresh venv, and compares what a user sees: the exit status,
the ``ERROR:`` lines, the installed files, RECORD, and that ``pip
uninstall`` takes it all away again.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import make_venv, site_packages, venv_python

ROOT = Path(__file__).resolve().parent.parent
PIP_VERSIONS = ["23.3.2", "26.3"]


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


Rows = list[list[str]]


def _wheel(
    directory: Path,
    name: str,
    files: dict[str, bytes],
    *,
    wheel_version: str = "1.0",
    rows: Callable[[Rows], Rows] = lambda rows: rows,
    stored: bool = False,
) -> Path:
    """A wheel of ``files`` plus its .dist-info; ``rows`` edits RECORD's rows."""
    info = f"{name}-1.0.dist-info"
    members = dict(files)
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
    members[f"{info}/WHEEL"] = (
        f"Wheel-Version: {wheel_version}\nGenerator: pip-linkmode-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    record = rows([[path, _digest(data), str(len(data))] for path, data in members.items()] + [[f"{info}/RECORD", "", ""]])
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(record)
    members[f"{info}/RECORD"] = out.getvalue().encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zi = zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0))
            zi.external_attr = 0o100644 << 16
            zi.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return path


@pytest.fixture(scope="module", params=PIP_VERSIONS)
def runner(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with this pip release and the project importable: it runs both
    installs into other venvs with ``--python``."""
    venv = make_venv(tmp_path_factory.mktemp(f"pip-{request.param}") / "runner")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv_python(venv), "install", "-q", "--disable-pip-version-check",
         f"pip=={request.param}", "installer", "filelock", "packaging"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot install pip {request.param} from the index: {proc.stderr.strip().splitlines()[-1:]}")
    (site_packages(venv) / "pip_linkmode_dev.pth").write_text(str(ROOT) + "\n")
    return venv


class Result:
    def __init__(self, venv: Path, cache: Path, proc: subprocess.CompletedProcess[str]) -> None:
        self.venv, self.cache, self.proc = venv, cache, proc
        self.site = site_packages(venv)

    def errors(self) -> list[str]:
        """The ERROR lines, with this venv's path written as VENV."""
        spellings = {os.path.realpath(self.venv), str(self.venv)}
        # (pip quotes paths with repr: on Windows each backslash is doubled)
        spellings |= {s.replace("\\", "\\\\") for s in spellings}
        lines = [line for line in self.proc.stderr.splitlines() if line.startswith("ERROR:")]
        for spelling in sorted(spellings, key=len, reverse=True):
            lines = [line.replace(spelling, "VENV") for line in lines]
        return lines

    def notes(self) -> list[str]:
        return [line for line in self.proc.stderr.splitlines() if line.startswith("pip-linkmode:")]

    def files(self) -> dict[str, bytes]:
        """What the install put in site-packages (pyc names only: their
        bytes hold the source's mtime), RECORD without its pyc rows."""
        found: dict[str, bytes] = {}
        for path in sorted(self.site.rglob("*")):
            rel = path.relative_to(self.site).as_posix()
            if path.is_dir() or rel.startswith(("_distutils_hack", "distutils-precedence")):
                continue
            data = b"" if rel.endswith(".pyc") else path.read_bytes()
            if rel.endswith("/RECORD"):
                data = b"".join(sorted(line for line in data.splitlines(keepends=True) if b"__pycache__" not in line))
            found[rel] = data
        return found


#: the notes these tests count are ours about each wheel: no progress lines,
#: which a slow or busy machine shows after half a second of unpacking
#: (``test_cli_standin`` tests those)
_NO_PROGRESS = {**os.environ, "_PIP_LINKMODE_PROGRESS_DELAY": "3600"}


def _install(runner: Path, tmp_path: Path, wheel: Path, ours: bool) -> Result:
    label = "ours" if ours else "pip"
    venv = make_venv(tmp_path / label)
    cache = tmp_path / f"cache-{label}"
    common = ["--disable-pip-version-check", "--no-index", "--no-deps", "--cache-dir", str(cache), str(wheel)]
    if ours:
        cmd = [venv_python(runner), "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink", *common]
    else:
        cmd = [venv_python(runner), "-m", "pip", "--python", venv_python(venv), "install", *common]
    return Result(venv, cache, subprocess.run(cmd, capture_output=True, text=True, env=_NO_PROGRESS))


def _both(runner: Path, tmp_path: Path, wheel: Path) -> tuple[Result, Result]:
    return _install(runner, tmp_path, wheel, False), _install(runner, tmp_path, wheel, True)


def _cache_holds_nothing_of(cache: Path) -> None:
    """No entry, no index of the wheel, no temp tree left by the attempt."""
    assert cache.is_dir()
    for sub in ("entries", "index", "tmp"):
        for found in cache.rglob(sub):
            assert not list(found.iterdir()), (found, list(found.iterdir()))


def _uninstalls(result: Result, name: str) -> None:
    before = set(result.files())
    proc = subprocess.run([venv_python(result.venv), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip()
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv_python(result.venv), "uninstall", "-y", name],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    left = {f for f in result.files() if f.startswith((f"{name}/", f"{name}-"))}
    assert not left and before != set(result.files()), left


def _installed_alike(plain: Result, ours: Result, wheel: Path) -> None:
    """Both installed it, the same files and RECORD; ours said in one line
    why it is not linked, with no traceback; the cache kept nothing of it."""
    assert plain.proc.returncode == 0, plain.proc.stderr
    assert ours.proc.returncode == 0, ours.proc.stderr
    assert "Traceback" not in ours.proc.stderr and not ours.errors(), ours.proc.stderr
    assert ours.files() == plain.files()
    notes = ours.notes()
    assert len(notes) == 1 and wheel.name in notes[0] and "pip's own per-file loop installed it" in notes[0], ours.proc.stderr
    _cache_holds_nothing_of(ours.cache)


def test_wheel_version_0_1_installs_as_pip_installs_it(runner: Path, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "w", "oldwheel", {"oldwheel/__init__.py": b"X = 1\n"}, wheel_version="0.1")
    plain, ours = _both(runner, tmp_path, wheel)
    _installed_alike(plain, ours, wheel)
    assert "Wheel-Version 0.1" in ours.notes()[0]
    assert "oldwheel/__pycache__/__init__.cpython-{}{}.pyc".format(*sys.version_info[:2]) in ours.files()
    _uninstalls(ours, "oldwheel")


def _drop_metadata(rows: Rows) -> Rows:
    return [row for row in rows if not row[0].endswith("/METADATA")]


def _elsewhere(rows: Rows) -> Rows:
    return [[row[0].replace("odd_record-1.0.dist-info", "other-2.0.dist-info"), *row[1:]] for row in rows]


def _wrong_hash(rows: Rows) -> Rows:
    return [[row[0], _digest(b"not these bytes"), row[2]] if row[0].endswith(".py") else row for row in rows]


@pytest.mark.parametrize(
    ("case", "rows", "reason"),
    [
        ("member-not-in-record", _drop_metadata, "not listed in RECORD"),
        ("empty-record", lambda rows: [], "not listed in RECORD"),
        ("record-of-another-dist-info", _elsewhere, "not listed in RECORD"),
        ("hash-contradicts-record", _wrong_hash, "hash contradicts RECORD"),
    ],
)
def test_record_pip_does_not_check_installs_with_a_fresh_record(
    runner: Path, tmp_path: Path, case: str, rows: Callable[[Rows], Rows], reason: str
) -> None:
    files = {"odd_record/__init__.py": b"from .mod import Y\n", "odd_record/mod.py": b"Y = 2\n"}
    wheel = _wheel(tmp_path / "w", "odd_record", files, rows=rows)
    plain, ours = _both(runner, tmp_path, wheel)
    _installed_alike(plain, ours, wheel)
    assert reason in ours.notes()[0], ours.notes()
    record = (ours.site / "odd_record-1.0.dist-info" / "RECORD").read_text()
    assert "\nodd_record/mod.py," in record  # (the rest of its rows: as plain pip writes them)
    _uninstalls(ours, "odd_record")


@pytest.mark.parametrize("member", ["../example", "./../example", "ABSOLUTE"])
def test_member_outside_the_target_is_refused_in_pips_words(runner: Path, tmp_path: Path, member: str) -> None:
    outside = tmp_path / "outside" / "example"
    member = str(outside) if member == "ABSOLUTE" else member
    files = {"escaper/__init__.py": b"", member: b"escaped\n"}
    wheel = _wheel(tmp_path / "w", "escaper", files)
    plain, ours = _both(runner, tmp_path, wheel)
    assert plain.proc.returncode == 1, plain.proc.stderr
    assert "trying to install outside the target directory" in plain.proc.stderr
    assert (ours.proc.returncode, ours.errors()) == (plain.proc.returncode, plain.errors()), ours.proc.stderr
    assert "Traceback" not in ours.proc.stderr and not ours.notes(), ours.proc.stderr
    assert not outside.exists() and not (tmp_path / "example").exists()
    assert not [f for f in ours.files() if f.startswith("escaper")], ours.files()
    _cache_holds_nothing_of(ours.cache)


def test_unreadable_member_is_one_error_line_naming_wheel_and_member(runner: Path, tmp_path: Path) -> None:
    """A member whose bytes are broken (bad CRC): plain pip ends in a
    traceback; through the door it is one ERROR line, nothing left behind."""
    payload = b"BROKEN = True\n" * 50
    wheel = _wheel(tmp_path / "w", "broken", {"broken/__init__.py": b"", "broken/mod.py": payload}, stored=True)
    data = bytearray(wheel.read_bytes())
    at = data.index(payload)
    data[at] ^= 0x20  # "bROKEN": the stored bytes no longer match the member's CRC
    wheel.write_bytes(bytes(data))
    plain, ours = _both(runner, tmp_path, wheel)
    assert plain.proc.returncode != 0
    assert ours.proc.returncode == 1, ours.proc.stderr
    assert "Traceback" not in ours.proc.stderr and "ERROR: Exception" not in ours.proc.stderr, ours.proc.stderr
    errors = ours.errors()
    assert len(errors) == 1 and wheel.name in errors[0] and "'broken/mod.py'" in errors[0], ours.proc.stderr
    assert not ours.notes(), ours.proc.stderr  # the error line says it all
    assert not [f for f in ours.files() if f.startswith("broken")], ours.files()
    _cache_holds_nothing_of(ours.cache)


def test_a_good_wheel_beside_a_refused_one_is_still_linked(runner: Path, tmp_path: Path) -> None:
    """The preparation pass sets the refused wheel aside, not the others."""
    old = _wheel(tmp_path / "w", "oldwheel", {"oldwheel/__init__.py": b"X = 1\n"}, wheel_version="0.1")
    good = _wheel(tmp_path / "w", "goodwheel", {"goodwheel/__init__.py": b"Y = 1\n"})
    venv = make_venv(tmp_path / "v")
    proc = subprocess.run(
        [venv_python(runner), "-m", "pip_linkmode", "install", "--python", venv_python(venv), "--link-mode", "hardlink",
         "--disable-pip-version-check", "--no-index", "--no-deps", "--cache-dir", str(tmp_path / "cache"), str(old), str(good)],
        capture_output=True, text=True, env=_NO_PROGRESS,
    )
    assert proc.returncode == 0, proc.stderr
    site = site_packages(venv)
    assert os.stat(site / "goodwheel" / "__init__.py").st_nlink == 2  # linked from the cache
    assert os.stat(site / "oldwheel" / "__init__.py").st_nlink == 1  # pip's own copy
    assert len([line for line in proc.stderr.splitlines() if line.startswith("pip-linkmode:")]) == 1, proc.stderr
