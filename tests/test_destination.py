"""LinkingDestination with the real installer library, in real venvs, checked by real pip."""

from __future__ import annotations

import os
import re
import subprocess
import warnings
from pathlib import Path

import installer
import pytest
from conftest import (
    ON_WINE,
    link_modes,
    other_pythons,
    record_path,
    run_pip,
    script,
    scripts_dir,
    site_packages,
    snapshot,
    venv_python,
)
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
from wheelmaker import WheelSpec, build_wheel, demo_spec

from pip_linkmode import (
    CachedWheelSource,
    LinkingDestination,
    LinkMode,
    WheelCache,
    install_wheel,
    install_wheels,
)
from pip_linkmode.install import target_for_venv

MODES = link_modes(LinkMode.AUTO, LinkMode.HARDLINK, LinkMode.SYMLINK, LinkMode.COPY)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file's bytes; the root's own path (installer on Windows records
    other schemes' files by absolute path) spelled ROOT."""
    spelled = str(root).replace(os.sep, "/").encode()
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = p.read_bytes().replace(spelled, b"ROOT")
    return out


def _scheme(base: Path) -> dict[str, str]:
    return {k: str(base / k) for k in ("purelib", "platlib", "headers", "scripts", "data")}


def test_plain_wheelfile_behaves_like_scheme_dictionary_destination(demo_wheel: Path, tmp_path: Path) -> None:
    meta = {"INSTALLER": b"test\n"}
    with WheelFile.open(demo_wheel) as source:
        installer.install(source, SchemeDictionaryDestination(_scheme(tmp_path / "a"), "/usr/bin/python3", "posix"), meta)
    with WheelFile.open(demo_wheel) as source:
        dest = LinkingDestination(_scheme(tmp_path / "b"), "/usr/bin/python3", "posix")
        installer.install(source, dest, meta)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert sum(dest.report.counts.values()) == 0  # nothing linked: streams were not cached


def test_the_mode_comes_from_pip_link_mode_unless_given(demo_wheel: Path, tmp_path: Path, cache_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``install_wheels`` and the doors: ``PIP_LINK_MODE``, else auto; ``link_mode=`` over both."""
    monkeypatch.setenv("PIP_LINK_MODE", "copy")
    dest = LinkingDestination(_scheme(tmp_path / "a"), "/usr/bin/python3", "posix")
    assert dest.link_mode is LinkMode.COPY
    with WheelCache(cache_dir).open(demo_wheel) as source:
        installer.install(source, dest, {"INSTALLER": b"test\n"})
    assert dest.report.modes_used == [LinkMode.COPY]
    assert LinkingDestination(_scheme(tmp_path / "b"), "/usr/bin/python3", "posix",
                              link_mode="hardlink").link_mode is LinkMode.HARDLINK
    monkeypatch.setenv("PIP_LINK_MODE", "sideways")
    with pytest.raises(ValueError, match="sideways"):
        LinkingDestination(_scheme(tmp_path / "c"), "/usr/bin/python3", "posix")
    monkeypatch.delenv("PIP_LINK_MODE")
    assert LinkingDestination(_scheme(tmp_path / "d"), "/usr/bin/python3", "posix").link_mode is LinkMode.AUTO


@pytest.mark.parametrize("mode", MODES)
def test_cached_source_gives_the_same_tree_as_installer(mode: LinkMode, demo_wheel: Path, tmp_path: Path) -> None:
    meta = {"INSTALLER": b"test\n"}
    with WheelFile.open(demo_wheel) as source:
        installer.install(source, SchemeDictionaryDestination(_scheme(tmp_path / "a"), "/usr/bin/python3", "posix"), meta)
    cache = WheelCache(tmp_path / "cache")
    with cache.open(demo_wheel) as cached:
        assert isinstance(cached, CachedWheelSource)
        dest = LinkingDestination(_scheme(tmp_path / "b"), "/usr/bin/python3", "posix", link_mode=mode)
        installer.install(cached, dest, meta)
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")  # RECORD included, byte for byte
    linked = sum(dest.report.counts.values())
    assert linked == len(cache.get(demo_wheel).files) - 1  # all but the #!python script
    # executables stay executable; the #!python script got a real shebang
    script = tmp_path / "b/scripts/demo-shebang"
    assert script.read_bytes().startswith(b"#!/usr/bin/python3\n") and os.access(script, os.X_OK)
    assert not script.is_symlink()
    assert os.access(tmp_path / "b/purelib/demo/tool.sh", os.X_OK)


def _check_relation(mode: LinkMode, target: Path, cached: Path) -> None:
    assert target.read_bytes() == cached.read_bytes()
    if mode is LinkMode.HARDLINK:
        assert os.stat(target).st_ino == os.stat(cached).st_ino
    elif mode is LinkMode.SYMLINK:
        assert target.is_symlink() and Path(os.readlink(target)) == cached
    elif mode is LinkMode.COPY:
        assert os.stat(target).st_ino != os.stat(cached).st_ino and not target.is_symlink()


@pytest.mark.parametrize("mode", MODES)
def test_install_into_real_venv_then_pip_uninstall(mode: LinkMode, make_wheel, venv: Path, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # Under Wine, GetFinalPathNameByHandleW fails (error 234) for paths over
    # 260 characters, so pip's own uninstall cannot realpath them, whoever
    # installed them: the long paths are tested in test_windows.py there.
    demo_wheel = make_wheel(demo_spec(long_paths=not ON_WINE))
    report = install_wheel(demo_wheel, venv=venv, link_mode=mode, cache=cache_dir)
    assert report.installed == ["demo-1.0"]
    sp = site_packages(venv)
    entry = WheelCache(cache_dir).get(demo_wheel)
    effective = LinkMode.HARDLINK if mode is LinkMode.AUTO else mode  # ext4 here: auto picks hardlink
    if mode is LinkMode.AUTO and "auto chose clone" in report.summary():
        effective = LinkMode.CLONE
    for rel in ("demo/core.py", "demo/sub/data.json", "demo-1.0.dist-info/METADATA"):
        _check_relation(effective, sp / rel, entry.tree / rel)
    # Files that differ per environment are never links into the cache.
    for rel in ("demo-1.0.dist-info/RECORD", "demo-1.0.dist-info/INSTALLER", "demo-1.0.dist-info/REQUESTED"):
        assert not (sp / rel).is_symlink()
        assert os.stat(sp / rel).st_nlink == 1
    bin_dir = Path(venv_python(venv)).parent
    for name in ("demo-hello", "demo-shebang"):
        made = script(venv, name) if name == "demo-hello" else bin_dir / name
        assert os.stat(made).st_nlink == 1 and not made.is_symlink()
    # it runs
    out = subprocess.run([str(script(venv, "demo-hello"))], capture_output=True, text=True, check=True)
    assert out.stdout == "hello from core\n"
    out = subprocess.run([venv_python(venv), "-c", "import demo, importlib.metadata as m; print(demo.hello(), m.version('demo'))"], capture_output=True, text=True, check=True)
    assert out.stdout == "hello from core 1.0\n"
    # pip agrees it is installed properly
    shown = run_pip(venv, "show", "-f", "demo").stdout
    # (pip shows paths with the system's separator; installer records a
    # launcher outside site-packages by absolute path on Windows)
    launcher = record_path(venv, script(venv, "demo-hello")) if os.name != "nt" else script(venv, "demo-hello").name
    assert "Name: demo" in shown and os.path.join("demo", "core.py") in shown and launcher in shown
    assert "No broken requirements" in run_pip(venv, "check").stdout
    before = snapshot(cache_dir)
    run_pip(venv, "uninstall", "-y", "demo")
    assert snapshot(cache_dir) == before  # uninstall never touches the cache
    assert not (sp / "demo").exists() and not script(venv, "demo-hello").exists()
    assert not list(sp.glob("demo-1.0.dist-info"))


def test_record_matches_pip_install_of_the_same_wheel(demo_wheel: Path, tmp_path: Path, cache_dir: Path) -> None:
    from conftest import make_venv

    ours, pips = make_venv(tmp_path / "ours"), make_venv(tmp_path / "pips")
    run_pip(pips, "install", "--no-compile", "--no-deps", str(demo_wheel))
    # pip records PEP 610 direct_url.json for a wheel given by path; so do we, given it
    direct_url = (site_packages(pips) / "demo-1.0.dist-info/direct_url.json").read_text()
    install_wheel(demo_wheel, venv=ours, link_mode="hardlink", cache=cache_dir, direct_url=direct_url)
    assert (site_packages(ours) / "demo-1.0.dist-info/direct_url.json").read_text() == direct_url

    def rows(venv: Path) -> dict[str, tuple[str, str]]:
        record = site_packages(venv) / "demo-1.0.dist-info/RECORD"
        out = {}
        for line in record.read_text().splitlines():
            path, h, size = line.rsplit(",", 2)
            if os.path.isabs(path):  # installer on Windows records other schemes' files by absolute path
                path = os.path.relpath(path, site_packages(venv)).replace(os.sep, "/")
            out[path] = (h, size)
        return out

    ours_rows, pip_rows = rows(ours), rows(pips)
    assert set(ours_rows) == set(pip_rows)
    differ = {p for p in ours_rows if ours_rows[p] != pip_rows[p]}
    # INSTALLER's content and the entry-point launcher's template are the only differences
    launchers = {record_path(ours, script(ours, "demo-hello")), record_path(ours, scripts_dir(ours) / "demo-shebang")}
    assert differ <= {"demo-1.0.dist-info/INSTALLER", *launchers}
    # the rewritten #!python script differs only by the venv path in its shebang
    ours_script = (scripts_dir(ours) / "demo-shebang").read_text().replace(str(ours), "VENV")
    assert ours_script == (scripts_dir(pips) / "demo-shebang").read_text().replace(str(pips), "VENV")
    for rel in ("demo/core.py", "demo/tool.sh", "demo-1.0.dist-info/METADATA"):
        assert (site_packages(ours) / rel).read_bytes() == (site_packages(pips) / rel).read_bytes()
        assert os.stat(site_packages(ours) / rel).st_mode == os.stat(site_packages(pips) / rel).st_mode


def test_reinstall_over_hardlinked_install_keeps_cache(demo_wheel: Path, venv: Path, cache_dir: Path) -> None:
    install_wheel(demo_wheel, venv=venv, link_mode="hardlink", cache=cache_dir)
    before = snapshot(cache_dir / "entries")
    report = install_wheel(demo_wheel, venv=venv, link_mode="copy", cache=cache_dir)
    assert report.links.counts[LinkMode.COPY] > 0
    assert snapshot(cache_dir / "entries") == before
    sp = site_packages(venv)
    assert os.stat(sp / "demo/core.py").st_nlink == 1


def test_target_for_other_interpreter(tmp_path: Path, demo_wheel: Path, cache_dir: Path) -> None:
    others = other_pythons()
    if not others:
        pytest.skip(reason="no second interpreter installed (pyenv 3.10-3.13, or PIP_LINKMODE_TEST_PYTHONS)")
    from conftest import make_venv

    venv = make_venv(tmp_path / "v", str(others[0]))
    target = target_for_venv(venv)
    assert target.interpreter == venv_python(venv)
    assert Path(target.paths["purelib"]).is_relative_to(venv)
    install_wheel(demo_wheel, venv=venv, link_mode="hardlink", cache=cache_dir)
    out = subprocess.run([str(script(venv, "demo-hello"))], capture_output=True, text=True, check=True)
    assert out.stdout == "hello from core\n"


def test_long_paths_installed(demo_wheel: Path, venv: Path, cache_dir: Path) -> None:
    install_wheel(demo_wheel, venv=venv, link_mode="symlink", cache=cache_dir)
    long_files = [p for p in (venv / "share/jupyter").rglob("*.js")]
    assert long_files and len(str(long_files[0])) > 260
    assert long_files[0].read_bytes() == b"// js\n"


def _odd_specs() -> dict[str, WheelSpec]:
    spec = demo_spec()
    platlib = demo_spec()
    platlib.purelib = False
    pycache = demo_spec()
    pycache.files = {**pycache.files, "demo/__pycache__/core.cpython-311.pyc": b"stale"}
    return {"demo": spec, "platlib": platlib, "pycache": pycache}


@pytest.mark.parametrize("shape", ["demo", "platlib", "pycache"])
def test_planned_install_equals_installer_install(shape: str, tmp_path: Path) -> None:
    """``install_cached`` (what install_wheel uses) and ``installer.install``
    with the same destination give byte-identical trees, RECORD included, or
    the same error; the wheels installer treats specially go through it."""
    wheel = build_wheel(tmp_path / "w", _odd_specs()[shape])
    meta = {"INSTALLER": b"test\n", "REQUESTED": b""}
    cache = WheelCache(tmp_path / "cache")
    outcomes = []
    for name, run in (
        ("a", lambda source, dest: installer.install(source, dest, dict(meta))),
        ("b", lambda source, dest: dest.install_cached(source, meta)),
    ):
        with cache.open(wheel) as source:
            dest = LinkingDestination(_scheme(tmp_path / name), "/usr/bin/python3", "posix", link_mode=LinkMode.HARDLINK)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    run(source, dest)
                outcomes.append(("ok", [str(w.message) for w in caught]))
            except Exception as exc:  # noqa: BLE001 - the comparison is the point
                outcomes.append((type(exc).__name__, [re.sub(r" at 0x[0-9a-f]+", "", str(exc))]))
    assert outcomes[0] == outcomes[1]
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert outcomes[0][0] == "ok"
    record = (tmp_path / "b" / ("platlib" if shape == "platlib" else "purelib") / "demo-1.0.dist-info/RECORD").read_text()
    shebang = "ROOT/scripts/demo-shebang," if os.name == "nt" else "../scripts/demo-shebang,"  # (installer: absolute there)
    assert "demo/core.py,sha256=" in record and shebang in record.replace(str(tmp_path / "b").replace(os.sep, "/"), "ROOT")
    if shape == "pycache":
        assert any("__pycache__" in m for m in outcomes[1][1])


def test_a_placement_failure_stops_the_install_and_names_the_file(
    tmp_path: Path, venv: Path, cache_dir: Path
) -> None:
    """A failure placing one wheel's files is raised by install_wheels with the
    file named, the wheels after it are not placed, and what the install
    created is rolled back."""
    from pip_linkmode import LinkError

    first = build_wheel(tmp_path / "w1", WheelSpec(name="first", files={"first/__init__.py": b"A = 1\n"}))
    second = build_wheel(tmp_path / "w2", WheelSpec(name="second", files={"second/__init__.py": b"B = 2\n"}))
    third = build_wheel(tmp_path / "w3", WheelSpec(name="third", files={"third/__init__.py": b"C = 3\n"}))
    blocker = site_packages(venv) / "second" / "__init__.py"
    (blocker / "occupied").mkdir(parents=True)  # a non-empty directory where a file must go
    before = sorted(p.name for p in site_packages(venv).iterdir())
    with pytest.raises(LinkError) as err:
        install_wheels([first, second, third], venv=venv, cache=cache_dir, link_mode=LinkMode.HARDLINK)
    assert str(blocker) in str(err.value)
    left = sorted(p.name for p in site_packages(venv).iterdir())
    assert left == before, left  # the environment is as it was: only the blocker remains
    assert (blocker / "occupied").is_dir()
