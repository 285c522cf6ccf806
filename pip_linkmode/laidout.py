"""A cache entry installed from its layout: the links, and the files an install writes itself.

``install_layout`` is the warm path of an install: the entry's ``Layout``
resolved into one ``Placement`` for the linker, then the files each
environment gets of its own, written as installer writes them: console and
gui scripts, ``#!python`` scripts with the target's interpreter in their
shebang, the metadata files (INSTALLER, REQUESTED, direct_url.json) and
RECORD, byte for byte. ``LinkingDestination.install_cached`` runs it, and
``install_wheels`` runs it directly for a POSIX target whose entries have
their layout kept: that path imports no ``installer`` (and so no ``email``),
a third of a warm install's start-up. The scripts' text is installer's,
generated when the layout was made (``placement._posix_scripts``); only the
shebang line is made here, by installer's rule.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from .cache import record_digest
from .linker import DirJob, Linker, LinkReport
from .placement import Layout, Placement, execute, link_groups, pyc_dirs, record_line

if TYPE_CHECKING:
    from .cache import CachedWheel, WheelCache

__all__ = ["LayoutTarget", "inside", "install_layout", "line_speller", "may_exist", "posix_shebang", "record_prefix"]

#: a generated file as RECORD lists it: (path in its scheme, hash field, size field)
Written = tuple[str, str, str]


def posix_shebang(interpreter: str) -> bytes:
    """The first line (or lines) of a console script installer writes for
    POSIX: ``#!`` and the interpreter where a kernel reads it whole (no
    space, 127 bytes with ``#!`` and the newline); otherwise a line for
    ``/bin/sh`` that runs the interpreter on the script itself, which Python
    reads past as a string."""
    raw = interpreter.encode("utf-8")
    if b" " not in raw and len(raw) + 3 <= 127:
        return b"#!" + raw
    import shlex

    return b"#!/bin/sh\n'''exec' " + shlex.quote(interpreter).encode("utf-8") + b' "$0" "$@"\n' + b"' '''"


def may_exist(dirs_there: dict[str, bool], target: str) -> bool:
    """Whether ``target`` exists; a directory that did not exist when first
    looked at (``dirs_there``) holds no file yet (its files are queued or in
    placement), which spares a stat per file, and nor do the directories
    under it, which spares one per directory."""
    parent = os.path.dirname(target)
    there = dirs_there.get(parent)
    if there is None:
        # in a directory that was not there, neither was this one: no stat
        # (a wheel's directories are looked at parents first)
        there = dirs_there[parent] = dirs_there.get(os.path.dirname(parent)) is not False and os.path.isdir(parent)
    return there and os.path.lexists(target)


def inside(root: str, path: str) -> str:
    """``path`` joined to the absolute ``root`` and normalised; installer's
    ValueError if that leaves ``root``."""
    full = os.path.normpath(os.path.join(root, path))
    if not full.startswith(root if root.endswith(os.sep) else root + os.sep) and full != root:
        raise ValueError(f"Attempting to write {path} outside of the target directory")
    return full


def record_prefix(scheme_dict: Mapping[str, str], scheme: str, root_scheme: str) -> str:
    """What RECORD puts before the path of a file in another scheme than
    the root one, as installer's ``finalize_installation`` does: the
    scheme's directory relative to the root scheme's, or on Windows its
    absolute path (installer's choice there), then "/"."""
    if sys.platform == "win32":
        return os.path.abspath(scheme_dict[scheme]).replace("\\", "/") + "/"
    return os.path.relpath(scheme_dict[scheme], start=scheme_dict[root_scheme]) + "/"


def line_speller(scheme_dict: Mapping[str, str], root_scheme: str) -> Callable[[str, str, str, str], str]:
    """What spells one RECORD line of a file (its scheme, its path in it,
    hash and size fields) as installer's ``finalize_installation`` does: a
    file of another scheme than the root one gets that scheme's
    ``record_prefix``, and the path "/" separators."""
    prefixes: dict[str, str | None] = {root_scheme: None}

    def spell(scheme: str, path: str, hash_: str, size: str) -> str:
        prefix = prefixes.get(scheme, "")
        if prefix == "":
            prefix = prefixes[scheme] = record_prefix(scheme_dict, scheme, root_scheme)
        if prefix is not None:
            path = prefix + path
        if os.sep == "\\":
            path = path.replace("\\", "/")
        return record_line(path, hash_, size)

    return spell


class LayoutTarget:
    """Where one distribution's install goes and how: its scheme
    directories, interpreter, linker, and the install's options."""

    def __init__(
        self,
        scheme_dict: Mapping[str, str],
        interpreter: str,
        linker: Linker,
        *,
        overwrite: bool = True,
        levels: Sequence[int] = (),
        hash_algorithm: str = "sha256",
        dirs_there: dict[str, bool] | None = None,
    ) -> None:
        self.scheme_dict = scheme_dict
        self.interpreter = interpreter
        self.linker = linker
        self.overwrite = overwrite
        self.levels = tuple(levels)
        self.hash_algorithm = hash_algorithm
        self.written = 0  # files generated (for the report)
        self._roots: dict[str, str] = {}
        #: target directory -> whether it existed when first looked at
        self.dirs_there: dict[str, bool] = {} if dirs_there is None else dirs_there

    def root(self, scheme: str) -> str:
        root = self._roots.get(scheme)
        if root is None:
            root = self._roots[scheme] = os.path.abspath(self.scheme_dict[scheme])
        return root

    def dir_of(self, scheme: str, rel: str) -> str:
        root = self.root(scheme)
        return f"{root}/{rel}" if rel else root

    def env_dir(self) -> str:
        """Where the environment is on disk (its data scheme), for registering users."""
        return os.path.abspath(self.scheme_dict["data"])

    def write(self, scheme: str, path: str, data: bytes, executable: bool) -> Written:
        """Write a generated file (see ``Linker.write``); its RECORD fields."""
        target = inside(self.root(scheme), path)
        digest, size = self.linker.write(
            target, data, executable=executable, exclusive=not self.overwrite, algorithm=self.hash_algorithm
        )
        self.written += 1
        return path, f"{self.hash_algorithm}={record_digest(digest)}", str(size)

    def refuse_existing(self, groups: Sequence[DirJob]) -> None:
        """FileExistsError (installer's) for the first file of ``groups``
        whose target exists, before anything is placed (a directory that
        does not exist costs one stat for all its files)."""
        there = self.dirs_there
        for _, ddir, names, _, _ in groups:
            if not names:
                continue
            target = os.path.join(ddir, names[0])
            if not may_exist(there, target) and there[os.path.dirname(target)] is False:
                continue  # a directory that was not there: none of its files is
            for name in names:
                target = os.path.join(ddir, name)
                if may_exist(there, target):
                    raise FileExistsError(f"File already exists: {os.path.normpath(target)}")

    def layout_scripts(self, layout: Layout) -> list[Written]:
        """The entry's console and gui scripts from the text its layout
        keeps, under this target's interpreter (POSIX)."""
        assert layout.scripts is not None
        shebang = posix_shebang(self.interpreter) + b"\n"
        return [
            self.write("scripts", name, shebang + code.encode("utf-8"), True) for name, _, code in layout.scripts
        ]


def install_layout(
    entry: CachedWheel,
    cache: WheelCache,
    layout: Layout,
    target: LayoutTarget,
    metadata: Mapping[str, bytes],
    *,
    report: LinkReport,
    wait: bool = True,
    scripts: Callable[[], list[Written]] | None = None,
) -> list[tuple[WheelCache | str, str, str]]:
    """Install ``entry`` into ``target`` from its layout: the same files,
    modes and RECORD bytes as ``installer.install`` (a test compares them on
    real wheels), a file costing its link call and its precomputed RECORD
    line. ``scripts`` writes the entry-point scripts (None: from the
    layout, for POSIX). With ``wait`` False the links may still be in
    placement on return; the caller registers the returned users (the
    symlink-mode users of the entry) after ``linker.finish``, which with
    ``wait`` is done here."""
    linker = target.linker
    written_before = target.written
    root_scheme = layout.root
    line = line_speller(target.scheme_dict, root_scheme)

    rows: list[tuple[str, str]] = []
    if layout.entry_points:
        written = scripts() if scripts is not None else target.layout_scripts(layout)
        rows.extend((path, line("scripts", path, hash_, size)) for path, hash_, size in written)
    lines = list(layout.lines)
    tree = str(entry.tree)
    interpreter = f"#!{target.interpreter}\n".encode()
    for index, kind, scheme, path, a, b in layout.special:
        if kind == "write":  # a script whose #!python shebang is rewritten (installer's fix_shebang)
            with open(f"{tree}/{a}", "rb") as f:
                f.readline()
                data = interpreter + f.read()
            _, hash_, size = target.write(scheme, path, data, bool(b))
            lines[index] = line(scheme, path, hash_, size)
        else:  # linked, in a scheme other than the root one
            lines[index] = line(scheme, path, a, str(b))
    rows.extend(zip(layout.keys, lines, strict=True))
    placement = Placement(link_groups(layout, tree, target.dir_of), source_root=tree)
    placement.users.append((cache, entry.key, target.env_dir()))
    if target.levels:
        for pycs in pyc_dirs(cache, entry, target.levels, layout.root, target.dir_of):
            placement.groups.append(pycs.group)
            for pyc in pycs.group[2]:
                record_path = f"{pycs.rel_dir}/{pyc}"
                rows.append((record_path, line(pycs.scheme, record_path, "", "")))
    if not target.overwrite:
        target.refuse_existing(placement.groups)
    report.merge(execute(placement, linker, wait=wait))
    dist_info = entry.dist_info
    for filename, contents in metadata.items():
        path, hash_, size = target.write(root_scheme, f"{dist_info}/{filename}", contents, False)
        rows.append((path, line(root_scheme, path, hash_, size)))
    record_path = f"{dist_info}/RECORD"
    rows.append((record_path, line(root_scheme, record_path, "", "")))
    rows.sort(key=_first)  # stable, as installer's sorted(key=path)
    target.write(root_scheme, record_path, "".join([r[1] for r in rows]).encode("utf-8"), False)
    report.written += target.written - written_before
    return [] if wait else placement.users


def _first(row: tuple[str, str]) -> str:
    return row[0]
