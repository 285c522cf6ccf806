"""What goes where: a cache entry's layout, and the Placement it resolves to in a target.

An entry describes itself once, scheme-relative (``Layout``, kept beside
the entry as ``layout.json``): its files directory by directory with their
RECORD lines and executable bits, which files are special (a script whose
shebang is rewritten, a file of another scheme than the root one). An
install resolves that against its target (scheme directories, bytecode
levels) into a ``Placement``: the directories to create and the files to
place in each, the files placed one by one, and the environments to
register as symlink-mode users of the entries. Every door hands its
Placement to ``execute``, which gives it to the ``Linker``:
``install_wheels`` and ``installer.install`` through ``LinkingDestination``,
the pip door (``pip_plugin``), and recorded venv seeds (``plan.replay``).
What each door generates per environment (scripts, RECORD, INSTALLER...)
stays that door's, written with its own rules after the placement.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import operator
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ._cachecore import RECORD_SPECIALS, all_safe_relpaths, plain_record_fields
from .linker import DirJob, Linker, LinkJob, LinkReport, write_beside
from .modes import LinkMode

if TYPE_CHECKING:
    from installer.utils import Scheme

    from .cache import CachedFile, CachedWheel, WheelCache
    from .source import CachedWheelSource

#: installer's scheme names (``installer.utils.SCHEME_NAMES``; a replayed
#: plan imports no installer)
_SCHEME_NAMES = ("purelib", "platlib", "headers", "scripts", "data")

__all__ = [
    "Layout",
    "Placement",
    "PycDir",
    "execute",
    "handed_positions",
    "kept_positions",
    "link_groups",
    "load_layout",
    "pyc_dirs",
    "record_line",
    "register_symlink_users",
    "route",
]


def route(source: CachedWheelSource) -> tuple[Scheme, list[tuple[Scheme, str, CachedFile]]] | None:
    """(root scheme, [(scheme, path in scheme, file)]) as installer would
    route the entry's files, or None where installer must do it itself."""
    from installer.utils import SCHEME_NAMES, Scheme, parse_metadata_file

    wheel = parse_metadata_file(source.read_dist_info("WHEEL"))
    version = wheel["Wheel-Version"]
    if not (version and version.startswith("1.")):
        return None  # installer raises its own error
    root = Scheme("purelib" if wheel["Root-Is-Purelib"] == "true" else "platlib")
    data = f"{source.data_dir}/"
    record_path = f"{source.dist_info_dir}/RECORD"
    files: list[tuple[Scheme, str, CachedFile]] = []
    for cached in source.entry.files:
        path = cached.path
        if path == record_path:
            continue
        if "__pycache__/" in path:
            return None  # installer skips these, with a warning
        if path.startswith(data):
            scheme, _, rest = path[len(data):].partition("/")
            if scheme not in SCHEME_NAMES or not rest:
                return None  # installer's error
            files.append((Scheme(scheme), rest, cached))
        else:
            files.append((root, path, cached))
    return root, files


def record_line(path: str, hash_: str, size: str) -> str:
    """One RECORD line, exactly as installer's csv writer spells it."""
    if RECORD_SPECIALS.isdisjoint(path):
        return f"{path},{hash_},{size}\n"
    import csv  # (only a path with a comma, quote or line break: most installs never need it)

    out = io.StringIO()
    csv.writer(out, delimiter=",", quotechar='"', lineterminator="\n").writerow((path, hash_, size))
    return out.getvalue()


class Layout(NamedTuple):
    """What a cache entry's files become in any install, computed once per
    entry and kept beside it (``layout.json``): an install then adds only
    what depends on the target (its directories, generated files)."""

    root: str  # the root scheme, purelib or platlib
    #: (scheme, archive dir, dir in the scheme, file names, sizes, whether
    #: the wheel marks them executable): files to link, directory by
    #: directory, parents first ('' is the root)
    groups: list[tuple[str, str, str, list[str], list[int], bool]]
    keys: list[str]  # per file, in the wheel's order: its path in its scheme
    lines: list[str]  # its RECORD line; "" for the files in ``special``
    #: (index, "link", scheme, path, hash, size) for a file linked into a
    #: scheme other than the root one (its RECORD path depends on the
    #: target); (index, "write", "scripts", path, archive path, executable)
    #: for a script whose shebang is rewritten per environment
    special: list[tuple[int, str, str, str, Any, Any]]
    entry_points: bool
    #: with entry points, per script in installer's order: (name, section,
    #: the POSIX script installer generates after its shebang line), so
    #: that a POSIX install writes them without importing installer; None
    #: where that does not apply (no entry points, or a name that is not a
    #: plain file name)
    scripts: list[tuple[str, str, str]] | None = None
    #: what ``installer.install`` reads of the entry's manifest when the
    #: destination places the entry from this layout, so that it is not read:
    #: the source's ``dist_info_filenames``, and the manifest rows
    #: ``[position, path, hash, size, executable, python_shebang]`` of the
    #: files it is handed (``handed_positions``), by position
    dist_info: list[str] | None = None
    handed: list[list[Any]] | None = None


def kept_positions(layout: Layout, data_dir: str) -> list[int]:
    """The positions of the files ``installer.install`` is still handed when
    the rest of the entry is placed from its layout: a script it writes
    itself (``#!python``), and, to be safe, a file at the root named as the
    entry's ``.data`` directory."""
    kept = [index for index, kind, *_ in layout.special if kind == "write"]
    if data_dir in layout.keys:
        kept.extend(index for index, key in enumerate(layout.keys) if key == data_dir)
    return kept


def handed_positions(layout: Layout, data_dir: str) -> list[int]:
    """Every position installer is handed when the entry is placed from its
    layout: the first file (the destination places the entry at it), then
    ``kept_positions``; in order."""
    return sorted({0, *kept_positions(layout, data_dir)}) if layout.keys else []


_LAYOUT_FILE = "layout.json"
#: 1: files of .data/<root scheme>/ were looked for at the root; 2: no
#: executable bits; 3: no scripts; 4: no dist-info names or handed rows
_LAYOUT_VERSION = 5
#: the interpreter the scripts of a layout are generated for: a plain path
#: (installer writes ``#!`` and the path, then a newline)
_PLACEHOLDER = "/pip-linkmode-interpreter"


def stored_layout(entry: CachedWheel) -> Layout | None | Literal[False]:
    """The layout kept beside the entry; None: installer must route this
    wheel itself; False: none usable is kept (missing, damaged, older or
    tampered with: ``load_layout`` computes it again)."""
    try:
        data = json.loads((entry.root / _LAYOUT_FILE).read_bytes())
        if data.get("v") == _LAYOUT_VERSION:
            if data.get("none"):
                return None
            return _checked_layout(Layout(*data["layout"]), entry.data_dir)
    except (OSError, ValueError, TypeError, LookupError):  # (LookupError: a row too short too)
        pass
    return False


def load_layout(source: CachedWheelSource) -> Layout | None:
    """The entry's layout (None: installer must route this wheel itself),
    read from beside the entry or computed and kept there; once per source
    (``CachedWheelSource.stored_layout``)."""
    stored = source.stored_layout()
    if stored is not False:
        return stored
    path = source.entry.root / _LAYOUT_FILE
    layout = _build_layout(source)
    source.layout_found(layout)
    data = {"v": _LAYOUT_VERSION, "none": layout is None, "layout": layout}
    payload = json.dumps(data).encode("utf-8")
    with contextlib.suppress(OSError):  # a read-only cache: computed each time
        from .cache_admin import record_produced

        record_produced(path, payload)  # its hash, for `cache verify`
        write_beside(os.fspath(path), payload)
    return layout


def _checked_layout(layout: Layout, data_dir: str) -> Layout:
    """``layout`` as read back from the cache, if every path in it stays
    inside its scheme or the entry's tree, every RECORD line lists its own
    file (a line is written into the environment's RECORD, which pip
    uninstall deletes by) and it has a row for each file installer is handed
    (``data_dir``: the entry's ``.data`` directory); ValueError otherwise.
    Paths are checked in one pass over them all: well under a microsecond a
    file."""
    if layout.root not in ("purelib", "platlib") or not isinstance(layout.entry_points, bool):
        raise ValueError("root scheme")
    if layout.scripts is not None:
        if not layout.entry_points or not all(
            type(name) is str and _plain_name(name) and section in ("console", "gui") and type(code) is str
            for name, section, code in layout.scripts
        ):
            raise ValueError("scripts")
    schemes = set(_SCHEME_NAMES)
    paths: list[str] = []
    names: list[str] = []
    for scheme, sdir, ddir, group_names, sizes, _ in layout.groups:
        if scheme not in schemes or len(group_names) != len(sizes):
            raise ValueError("group")
        # (a parent group's archive dir may keep its "/": a .data scheme's top)
        paths.extend(d for d in (sdir[:-1] if sdir.endswith("/") else sdir, ddir) if d)
        names.extend(group_names)
    keys, lines = layout.keys, layout.lines
    if len(keys) != len(lines):
        raise ValueError("keys")
    #: position -> (kind, scheme, archive path or hash, executable or size)
    specials: dict[int, tuple[str, str, Any, Any]] = {}
    hashes: list[str] = []  # (written into RECORD: one field each)
    for index, kind, scheme, path, a, b in layout.special:
        if not (type(index) is int and 0 <= index < len(keys)) or keys[index] != path:
            raise ValueError(f"special {path!r}")
        if kind not in ("write", "link") or scheme not in schemes:
            raise ValueError(f"special {path!r}")
        if kind == "write":
            paths.append(a)
        else:
            hashes.append(a)
        specials[index] = (kind, scheme, a, b)
    # a line is empty exactly where one special row gives the file's (else
    # RECORD would list the file as an empty line: not at all)
    empty = itertools.compress(range(len(lines)), map(operator.not_, lines))
    if len(specials) != len(layout.special) or specials.keys() != set(empty):
        raise ValueError("special rows")
    dist_info, handed = layout.dist_info, layout.handed
    if (
        type(dist_info) is not list
        or not all(type(name) is str for name in dist_info)
        or dist_info[-1:] != ["RECORD"]
        or ("entry_points.txt" in dist_info) != layout.entry_points
    ):
        raise ValueError("dist-info names")
    paths.extend(dist_info)
    if type(handed) is not list or [row[0] for row in handed] != handed_positions(layout, data_dir):
        raise ValueError("handed rows")
    for position, path, hash_, size, executable, shebang in handed:
        if type(position) is not int or type(path) is not str or type(hash_) is not str:
            raise ValueError(f"handed row {path!r}")
        if type(size) is not int or size < 0 or type(executable) is not bool or type(shebang) is not bool:
            raise ValueError(f"handed row {path!r}")
        if path not in _handed_paths(layout, data_dir, specials.get(position), keys[position]):
            raise ValueError(f"handed row {path!r}")
        # installer rewrites exactly the scripts the layout keeps (a file of
        # another scheme may start with "#!python" too: it is never rewritten)
        special = specials.get(position)
        if special is not None and special[0] == "write":
            if not shebang or executable is not bool(special[3]):
                raise ValueError(f"handed row {path!r}")
        elif special is not None and special[1] == "scripts" and shebang:
            raise ValueError(f"handed row {path!r}")
        hashes.append(hash_)
    if not plain_record_fields(hashes):
        raise ValueError("a hash that is not one RECORD field")
    if "/" in "\n".join(names) or not all_safe_relpaths([*paths, *names, *keys]):
        raise ValueError("a path that leaves its directory")
    if not _lines_list_their_keys(keys, lines):
        raise ValueError("a RECORD line that does not list its own file")
    return layout


def _handed_paths(layout: Layout, data_dir: str, special: tuple[str, str, Any, Any] | None, key: str) -> tuple[str, ...]:
    """The archive path a file at a position whose key (its path in its
    scheme) is ``key`` may have: a script's own, a file of another scheme's
    under the ``.data`` directory; a root-scheme file's is the key, or the
    key under the ``.data`` directory's root scheme (the layout lists both
    by the key alone)."""
    if special is None:
        return key, f"{data_dir}/{layout.root}/{key}"
    kind, scheme, a, _ = special
    return (a,) if kind == "write" else (f"{data_dir}/{scheme}/{key}",)


def _lines_list_their_keys(keys: list[str], lines: list[str]) -> bool:
    """Is each non-empty line exactly one RECORD row whose path is its key?
    With no key that RECORD quotes (nearly always), in a few passes over
    them all: every line starts with its key and a comma, ends with the
    only newline in it, and holds no quote or carriage return."""
    if not plain_record_fields(keys):
        return all(
            not line or line == record_line(key, *_fields(line)) for key, line in zip(keys, lines, strict=True)
        )
    present = list(itertools.compress(lines, lines))
    joined = "\x00".join(present) + "\x00"
    return (
        '"' not in joined
        and "\r" not in joined
        and joined.count("\n") == len(present) == joined.count("\n\x00")
        and all(map(str.startswith, present, map(operator.add, itertools.compress(keys, lines), itertools.repeat(","))))
    )


def _fields(line: str) -> tuple[str, str]:
    """The hash and size of a RECORD line read back (ValueError: not one row of three)."""
    import csv

    rows = list(csv.reader(io.StringIO(line, newline="")))
    if len(rows) != 1 or len(rows[0]) != 3:
        raise ValueError("not one RECORD row")
    return rows[0][1], rows[0][2]


def _build_layout(source: CachedWheelSource) -> Layout | None:
    routed = route(source)
    if routed is None:
        return None
    root, files = routed
    groups: dict[tuple[str, str, bool], tuple[str, str, str, list[str], list[int], bool]] = {}
    keys: list[str] = []
    lines: list[str] = []
    special: list[tuple[int, str, str, str, Any, Any]] = []

    def group(
        scheme: str, sdir: str, ddir: str, executable: bool = False
    ) -> tuple[str, str, str, list[str], list[int], bool]:
        """The group of a directory's files, executable or not (keyed by
        where they are in the wheel: a scheme's files may come from the
        root and from .data)."""
        found = groups.get((scheme, sdir, executable))
        if found is None:
            if ddir:  # parents first: creating a directory then costs one mkdir
                cut = len(ddir) - len(ddir.rpartition("/")[0])
                group(scheme, sdir[: len(sdir) - cut], ddir[: len(ddir) - cut])
            found = groups[(scheme, sdir, executable)] = (scheme, sdir, ddir, [], [], executable)
        return found

    for index, (scheme, path, cached) in enumerate(files):
        keys.append(path)
        if scheme == "scripts" and cached.python_shebang:
            lines.append("")
            special.append((index, "write", scheme, path, cached.path, cached.executable))
            continue
        if scheme == root:
            lines.append(record_line(path, cached.hash, str(cached.size)))
        else:
            lines.append("")
            special.append((index, "link", scheme, path, cached.hash, cached.size))
        ddir, _, name = path.rpartition("/")
        sdir = cached.path.rpartition("/")[0]
        _, _, _, names, sizes, _ = group(scheme, sdir, ddir, cached.executable)
        names.append(name)
        sizes.append(cached.size)
    dist_info = source.listed_dist_info_filenames()
    entry_points = "entry_points.txt" in dist_info
    scripts = _posix_scripts(source.read_dist_info("entry_points.txt")) if entry_points else None
    layout = Layout(root, list(groups.values()), keys, lines, special, entry_points, scripts, dist_info)
    handed = [
        [index, cached.path, cached.hash, cached.size, cached.executable, cached.python_shebang]
        for index in handed_positions(layout, source.data_dir)
        for cached in (files[index][2],)
    ]
    return layout._replace(handed=handed)


def _posix_scripts(entry_points: str) -> list[tuple[str, str, str]] | None:
    """(name, section, script after its shebang line) per console or gui
    script, as installer generates them for POSIX; None if a name is not a
    plain file name (installer then writes it itself)."""
    from installer.scripts import Script
    from installer.utils import parse_entrypoints

    head = f"#!{_PLACEHOLDER}\n".encode()
    scripts: list[tuple[str, str, str]] = []
    try:
        for name, module, attr, section in parse_entrypoints(entry_points):
            script_name, data = Script(name, module, attr, section).generate(_PLACEHOLDER, "posix")
            if script_name != name or not _plain_name(name) or not data.startswith(head):
                return None
            scripts.append((name, section, data[len(head):].decode("utf-8")))
    except Exception:  # noqa: BLE001 - a file installer cannot parse: its own path raises its error
        return None
    return scripts


def _plain_name(name: str) -> bool:
    """A file name of one component, the same on every system."""
    return all_safe_relpaths([name]) and "/" not in name and ":" not in name


class Placement:
    """One install's files from the cache, resolved against its target.

    (A plain class: ``dataclasses`` and the ``inspect`` it imports cost a
    seeded venv 5 ms, a twentieth of its time.)
    """

    __slots__ = ("groups", "files", "source_root", "users")

    def __init__(
        self,
        groups: list[DirJob] | None = None,
        files: list[LinkJob] | None = None,
        source_root: str | None = None,
        users: list[tuple[WheelCache | str, str, str]] | None = None,
    ) -> None:
        #: directories (parents first) and the files linked into each
        self.groups: list[DirJob] = [] if groups is None else groups
        #: files placed one by one (they keep the cache file's permission bits)
        self.files: list[LinkJob] = [] if files is None else files
        #: every group's cache directory is inside it, on its filesystem (an
        #: entry's tree): its device is read once
        self.source_root = source_root
        #: (cache, entry key, environment root): registered as a symlink-mode
        #: user of the entry if any file is placed by symlink
        self.users: list[tuple[WheelCache | str, str, str]] = [] if users is None else users

    def __repr__(self) -> str:
        return (f"Placement({len(self.groups)} groups, {len(self.files)} files, "
                f"source_root={self.source_root!r}, users={self.users!r})")


def link_groups(
    layout: Layout, tree: str, dir_of: Callable[[str, str], str], *, skip: Sequence[str] = ()
) -> list[DirJob]:
    """The layout's files to link, directory by directory: ``dir_of(scheme,
    dir in the scheme)`` is the target directory; schemes in ``skip`` are
    left out (a door that writes them itself)."""
    return [
        (f"{tree}/{sdir}" if sdir else tree, dir_of(scheme, ddir), names, sizes, executable)
        for scheme, sdir, ddir, names, sizes, executable in layout.groups
        if scheme not in skip
    ]


class PycDir(NamedTuple):
    """Cached bytecode for one source directory, resolved against a target."""

    group: DirJob  # the pycs to link into the target's __pycache__
    scheme: str
    rel_dir: str  # the __pycache__ directory, relative to its scheme


def pyc_dirs(
    cache: WheelCache, entry: CachedWheel, levels: Sequence[int], root: str, dir_of: Callable[[str, str], str]
) -> list[PycDir]:
    """The entry's cached .pyc files for ``levels``, compiled by the running
    interpreter, directory by directory (a door lists them in RECORD with
    its own rule)."""
    from .bytecode import pyc_groups

    found: list[PycDir] = []
    for group in pyc_groups(cache, entry, levels, root):
        rel_dir = f"{group.ddir}/__pycache__" if group.ddir else "__pycache__"
        job: DirJob = (group.src_dir, dir_of(group.scheme, rel_dir), group.names, group.sizes, False)
        found.append(PycDir(job, group.scheme, rel_dir))
    return found


def execute(placement: Placement, linker: Linker, *, wait: bool = True) -> LinkReport:
    """Place ``placement`` with ``linker``: its groups (handed to worker
    threads), then its single files; then register its users if anything
    was symlinked. With ``wait`` False the groups may still be in placement
    when this returns: the caller registers the users after
    ``linker.finish`` (a user is found by its link to the entry's METADATA,
    which must exist by then)."""
    report = LinkReport(requested=linker.mode)
    if placement.groups:
        report.merge(linker.run_dirs(placement.groups, wait=wait, source_root=placement.source_root))
    if placement.files:
        report.merge(linker.run(placement.files))
    if wait:
        register_symlink_users(report, placement.users)
    return report


def register_symlink_users(report: LinkReport, users: Sequence[tuple[WheelCache | str, str, str]]) -> None:
    """Record each environment as a user of its entry if ``report`` placed
    any file by symlink: ``cache clean`` and ``prune`` then keep the entry."""
    if not users or not report.counts[LinkMode.SYMLINK]:
        return
    from .cache import WheelCache
    from .cache_admin import record_user

    for cache, key, env_dir in dict.fromkeys(users):
        record_user(cache if isinstance(cache, WheelCache) else WheelCache(cache), key, env_dir)
