"""Paths read back from the cache are checked before use, as archive members are.

An attacker who can write in the cache edits what the cache recorded for
itself (a venv plan, an entry's layout, its manifest) to name a path
outside the environment. Nothing is written there: a plan is discarded and
recorded again, a layout is computed again, a manifest is a one-line error
naming the entry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import make_venv, site_packages
from wheelmaker import build_wheel, demo_spec

from pip_linkmode import CacheError, WheelCache, install_wheel
from pip_linkmode._cachecore import all_safe_relpaths, is_safe_relpath
from pip_linkmode.venv import create

UNSAFE = ["", "/abs", "../up", "a/../../up", "a//b", "./a", "a/.", "a\\b", "nul\x00", "C:/x", "C:x", "a:b"]
SAFE = ["a", "a/b.py", ".hidden", "a..b/c", "x/.../y", "ab/c:d"]


@pytest.mark.parametrize("path", UNSAFE + SAFE)
def test_path_rules_agree_one_by_one_and_joined(path: str) -> None:
    expected = path in SAFE
    assert is_safe_relpath(path) is expected
    assert all_safe_relpaths([path]) is expected
    assert all_safe_relpaths(["ok", path, "ok/too"]) is expected


def _plan_file(cache: Path) -> Path:
    (found,) = (cache / "plans").glob("*.json")
    return found


@pytest.mark.parametrize("where", ["generated", "link-target", "link-source"])
def test_a_tampered_plan_writes_nothing_outside_and_is_recorded_again(
    where: str, tmp_path: Path, cache_dir: Path
) -> None:
    create(tmp_path / "first", cache_dir=cache_dir)  # records the plan
    plan_file = _plan_file(cache_dir)
    plan = json.loads(plan_file.read_bytes())
    escape = os.path.join("..", "..", "escaped")
    if where == "generated":
        plan["generated"][0]["path"] = escape
    elif where == "link-target":
        plan["links"][0][1] = os.path.join("..", "..", "escaped-dir")
    else:
        victim = tmp_path / "secret.txt"
        victim.write_text("not the cache's\n")
        plan["links"][0][0] = os.path.relpath(tmp_path, cache_dir)
        plan["links"][0][2] = [["secret.txt", victim.stat().st_size]]
    plan_file.write_text(json.dumps(plan))
    second = tmp_path / "deep" / "er" / "second"
    second.parent.mkdir(parents=True)
    result = create(second, cache_dir=cache_dir)  # installs normally
    assert result is not None and any(n.startswith("pip-") for n in result.installed)
    assert not (tmp_path / "deep" / "escaped").exists()
    assert not (tmp_path / "deep" / "escaped-dir").exists()
    assert not any(p.name == "secret.txt" for p in second.rglob("*"))
    assert (site_packages(second) / "pip" / "__init__.py").is_file()
    recorded = json.loads(_plan_file(cache_dir).read_bytes())  # recorded again, untampered
    assert recorded != plan and recorded["links"] and recorded["generated"]


def _layout_install(cache: WheelCache, wheel: Path, venv: Path) -> None:
    install_wheel(wheel, venv=venv, cache=cache, link_mode="hardlink", compile_bytecode=False)


@pytest.mark.parametrize(
    "where",
    [
        "key", "dir", "name", "record-line", "script-source", "entry-point-name",
        "handed-path", "handed-position", "handed-short-row", "dist-info-name", "handed-hash", "link-hash", "handed-other-scheme",
        "handed-shebang", "dist-info-entry-points", "empty-line", "special-twice",
    ],
)
def test_a_tampered_layout_is_computed_again(where: str, tmp_path: Path, venv: Path) -> None:
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", demo_spec())
    first = make_venv(tmp_path / "first")
    _layout_install(cache, wheel, first)
    entry = cache.get(wheel)
    layout_file = entry.root / "layout.json"
    good = json.loads(layout_file.read_bytes())
    data = json.loads(layout_file.read_bytes())
    root, groups, keys, lines, special, entry_points, entry_scripts, dist_info, handed = data["layout"]
    index = next(i for i, line in enumerate(lines) if line)
    if where == "key":
        keys[index] = "../../../../escaped.py"
    elif where == "dir":
        groups[-1][2] = "../../../../escaped-dir"
    elif where == "name":
        groups[-1][3][0] = "../../../../escaped-name"
    elif where == "record-line":
        # RECORD is what pip uninstall deletes by: a line naming another file
        lines[index] = "../../../../victim.txt,,\n"
    elif where == "handed-path":
        # the first file installer is handed (the installer door), read from the tree by this path
        handed[0][1] = "../../../../escaped.py"
    elif where == "handed-position":
        # a file handed to installer that is not one it is to be handed
        handed.append([index + 1, *handed[0][1:]])
    elif where == "handed-short-row":
        handed[0] = []
    elif where == "dist-info-name":
        dist_info[0] = "../../../../escaped.txt"
    elif where == "handed-hash":
        # a hash is written into RECORD: a line break in it would add a line
        handed[0][2] = "sha256=x,1\n../../../../victim.txt,sha256=y"
    elif where == "link-hash":
        links = [s for s in special if s[1] == "link"]
        assert links, "the demo wheel has files of other schemes"
        links[0][4] = "sha256=x,1\n../../../../victim.txt,sha256=y"
    elif where == "handed-other-scheme":
        # RECORD would list the file under another scheme than the one it is placed in
        handed[0][1] = f"demo-1.0.data/data/elsewhere/{handed[0][1]}"
    elif where == "handed-shebang":
        # installer rewrites the #!python script: without the flag it would be placed as is, or lost
        scripts = [row for row in handed if row[5]]
        assert scripts, "the demo wheel has a #!python script"
        scripts[0][5] = False
    elif where == "dist-info-entry-points":
        dist_info.remove("entry_points.txt")  # (its console scripts would be left out)
    elif where == "empty-line":
        # a file with no special row and no line: RECORD would not list it (pip uninstall leaves it)
        lines[index] = ""
    elif where == "special-twice":
        # two rows for one file: which one RECORD lists is not the layout's to leave open
        links = [s for s in special if s[1] == "link"]
        assert links, "the demo wheel has files of other schemes"
        special.append([*links[0][:4], "sha256=other", links[0][5]])
    elif where == "entry-point-name":
        # a console script the layout keeps, written where its name says
        entry_scripts[0][0] = "../../../../escaped-script"
    else:
        scripts = [s for s in special if s[1] == "write"]
        assert scripts, "the demo wheel has a #!python script"
        scripts[0][4] = "../../../../../etc/hostname"
    layout_file.write_text(json.dumps(data))
    _layout_install(cache, wheel, venv)
    assert not list(tmp_path.glob("escaped*")) and not list(tmp_path.parent.glob("escaped*"))
    assert json.loads(layout_file.read_bytes()) == good  # computed again and kept
    record = next(site_packages(venv).glob("demo-*.dist-info")) / "RECORD"
    assert "victim.txt" not in record.read_text() and "hostname" not in record.read_text()
    first_record = next(site_packages(first).glob("demo-*.dist-info")) / "RECORD"
    # the same files listed (scripts' hashes differ: they name each venv's
    # interpreter; on Windows installer lists them by absolute path)

    def listed(record: Path, env: Path) -> list[str]:
        text = record.read_text().replace(str(env).replace(os.sep, "/"), "ROOT")
        return [line.split(",")[0] for line in text.splitlines()]

    assert listed(record, venv) == listed(first_record, first)


@pytest.mark.parametrize("where", ["path", "hash", "short-row"])
def test_a_tampered_manifest_is_one_error_naming_the_entry(tmp_path: Path, venv: Path, where: str) -> None:
    cache = WheelCache(tmp_path / "cache")
    wheel = build_wheel(tmp_path / "w", demo_spec())
    entry = cache.get(wheel)
    meta_file = entry.root / "entry.json"
    meta = json.loads(meta_file.read_bytes())
    if where == "path":
        meta["files"][0][0] = "../../../escaped.py"
    elif where == "hash":  # a hash is written into RECORD: a line break would add a line naming another file
        meta["files"][0][1] = "sha256=x,1\n../../../victim.txt,sha256=y"
    else:
        meta["files"][0] = []
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="damaged or removed cache entry") as info:
        list(WheelCache(tmp_path / "cache").get(wheel).files)
    assert ("escaped.py" in str(info.value) or where != "path") and "\n" not in str(info.value)
