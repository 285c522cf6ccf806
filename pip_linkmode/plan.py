"""Recorded installs: an install into a fresh environment, replayed into the next one.

Seeding a new environment installs the same wheels the same way every
time. The first such install is recorded as a *plan*, stored in the cache
under ``plans/<key>.json``: the files it linked (cache path, path in the
environment, size), and the files it generated (RECORD, INSTALLER,
REQUESTED, scripts), with every occurrence of the environment's
interpreter path (and on Windows its ``pythonw.exe``, and the
environment's own path as RECORD spells it there) replaced by a
placeholder and, for RECORD, which rows hash such a file.

Replaying a plan into another fresh environment of the same layout takes
the entries' locks, checks that every entry the plan links from is still
published, hands the same link jobs to the same ``Linker`` (so modes,
fallbacks, warnings and errors are exactly an install's) and writes the
generated files fresh, with the new interpreter path and, in RECORD, their
new hashes and sizes. It opens no wheel, parses no RECORD of the cache and
imports no ``installer``: that is what makes a seeded venv cost little more
than the links themselves.

The key covers everything the outcome depends on (interpreter, wheel
files by path and stat, link mode asked for, bytecode levels and
invalidation mode, umask, layout of the environment, versions of
pip-linkmode and installer), so a plan is replayed only where a fresh
install would do the same. Anything a plan cannot express (an
interpreter path that needs installer's ``/bin/sh`` shebang, a file that
existed before, a generated file naming the environment otherwise than
through a placeholder) is simply not recorded, and the next run installs
normally. On Windows a ``.exe`` launcher is the launcher, ``#!`` and the
interpreter, then a zip: its bytes are the same up to the path, as a
script's are.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import errno
import io
import json
import os
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# hashlib loads OpenSSL (3 ms, a twentieth of a replayed venv); the builtin
# sha256 gives the same digests.
try:
    from _sha2 import sha256  # type: ignore[import-not-found]  # Python 3.12+
except ImportError:
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,no-redef]  # up to 3.11
    except ImportError:  # pragma: no cover - builds without the builtin modules
        from hashlib import sha256  # type: ignore[assignment,no-redef]

from . import __version__, _platform
from ._cachecore import (
    EntryLock,
    OsFileLock,
    all_safe_relpaths,
    check_path,
    lock_path,
    make_dirs,
    register_root,
)
from .linker import Linker, LinkError, LinkJob, LinkReport, write_beside
from .modes import LinkMode
from .placement import Placement, execute

__all__ = ["PLAN_FORMAT", "Replayed", "plan_key", "record", "replay", "snapshot"]

PLAN_FORMAT = 2  # 2: a cached .pyc's member also holds its mtime, checked before it is linked
_PLACEHOLDER = b"\x00pip-linkmode-interpreter\x00"
_GUI_PLACEHOLDER = b"\x00pip-linkmode-gui-interpreter\x00"
_ROOT_PLACEHOLDER = b"\x00pip-linkmode-root\x00/"
_RECORD_DIALECT = {"delimiter": ",", "quotechar": '"', "lineterminator": "\n"}


class Replayed:
    """What a replay installed: ``installed`` ("name-version"), the link
    report, and the keys of the cache entries it linked from."""

    def __init__(self, installed: list[str], report: LinkReport, entries: list[str]) -> None:
        self.installed = installed
        self.report = report
        self.entries = entries


def plain_interpreter(path: str) -> bool:
    """Can a script's shebang name this interpreter directly (installer's simple form)?

    Only then is a script's content the same up to the path itself. A
    Windows launcher takes the path as it is, whatever its length.
    """
    try:
        raw = path.encode("ascii")
    except UnicodeEncodeError:
        return False
    if os.name == "nt":
        return all(32 <= c < 127 and c != 0x22 for c in raw)
    return (
        os.name == "posix"
        and len(raw) + 3 <= 127
        and all(33 <= c < 127 and c not in b"\"'\\" for c in raw)
    )


def _native(path: str) -> str:
    """``path`` with the system's separators (the linker is given "/" paths)."""
    return os.path.normpath(path) if os.altsep else path


def _spellings(env_root: str, interpreter: str) -> list[tuple[bytes, bytes]]:
    """(what a generated file holds, its placeholder), in the order to replace.

    The interpreter in scripts' shebangs (on Windows also ``pythonw.exe``
    beside it, which GUI launchers name), then the environment's path
    followed by "/", as RECORD spells the files of another scheme on
    Windows (installer records them by absolute path there).
    """
    found = [(interpreter.encode("ascii"), _PLACEHOLDER)]
    head, name = os.path.split(interpreter)
    if os.name == "nt" and name.lower() == "python.exe":
        found.append((os.path.join(head, "pythonw.exe").encode("ascii"), _GUI_PLACEHOLDER))
    found.append(((env_root.replace(os.sep, "/") + "/").encode("ascii"), _ROOT_PLACEHOLDER))
    return found


def _module_stamp(name: str) -> list[object]:
    """Where a package's code lives and its stat: changes when it is upgraded."""
    from importlib.util import find_spec

    spec = find_spec(name)
    origin = spec.origin if spec is not None else None
    if not origin:
        return [name, None]
    st = os.stat(origin)
    return [origin, st.st_size, st.st_mtime_ns]


def plan_key(
    wheels: Sequence[str],
    layout: Mapping[str, str],
    link_mode: LinkMode,
    levels: Sequence[int],
    installer_name: str,
) -> str:
    """The key of the plan for installing ``wheels`` with these settings.

    ``layout`` maps scheme names to paths relative to the environment root.
    """
    import py_compile

    invalidation = py_compile._get_default_invalidation_mode().name  # type: ignore[attr-defined]
    umask = _platform.umask()
    stamps = []
    for wheel in wheels:
        st = os.stat(wheel)
        stamps.append([os.path.abspath(wheel), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
    data = [
        PLAN_FORMAT,
        __version__,
        _module_stamp("installer"),
        os.path.realpath(sys.executable),
        sys.version,
        sys.implementation.cache_tag,
        sys.pycache_prefix,
        stamps,
        sorted(layout.items()),
        str(link_mode),
        list(levels),
        invalidation,
        installer_name,
        umask,
    ]
    return sha256(json.dumps(data).encode("utf-8", "surrogateescape")).hexdigest()[:40]


def snapshot(root: str) -> set[str]:
    """Every file and link under ``root``, relative to it (what exists before an install)."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            found.add(os.path.normpath(os.path.join(rel, name)))
    return found


def _inside(path: str, root: str) -> str | None:
    """``path`` relative to ``root``, or None when it is not below it."""
    if not path.startswith(root + os.sep):
        return None
    return path[len(root) + 1 :]


def _split_common_suffix(src: str, dst: str) -> tuple[str, str, str]:
    """(src base, dst base, common trailing path) of two relative paths."""
    s, d = src.split(os.sep), dst.split(os.sep)
    n = 0
    while n < min(len(s), len(d)) - 1 and s[-1 - n] == d[-1 - n]:
        n += 1
    n = max(n, 1) if s[-1] == d[-1] else 0
    cut_s, cut_d = len(s) - n, len(d) - n
    return os.sep.join(s[:cut_s]), os.sep.join(d[:cut_d]), os.sep.join(s[cut_s:])


def record(
    cache_root: str,
    key: str,
    env_root: str,
    interpreter: str,
    journal: Iterable[tuple[str, str, int]],
    before: set[str],
    installed: Sequence[str],
) -> bool:
    """Store the plan of the install that just went into ``env_root``.

    ``journal`` lists what the Linker placed (cache path, target path, size);
    ``before`` what the environment held before the install. Returns whether
    a plan was stored: nothing is when the install is not one a plan can
    repeat exactly (best effort; an install never fails because of this).
    """
    try:
        plan = _build(cache_root, env_root, interpreter, journal, before, installed)
        if plan is None:
            return False
        plans = os.path.join(cache_root, "plans")
        register_root(cache_root)  # write_beside writes the plan as the cache's own file
        make_dirs(cache_root, plans)  # (through no link)
        from .cache_admin import record_produced

        path, data = os.path.join(plans, f"{key}.json"), json.dumps(plan).encode("utf-8")
        record_produced(path, data)  # its hash, for `cache verify`
        write_beside(path, data)
        return True
    except (OSError, ValueError, csv.Error):
        return False


def _build(
    cache_root: str,
    env_root: str,
    interpreter: str,
    journal: Iterable[tuple[str, str, int]],
    before: set[str],
    installed: Sequence[str],
) -> dict[str, object] | None:
    cache_root, env_root, interpreter = _native(cache_root), _native(env_root), _native(interpreter)
    if not plain_interpreter(interpreter) or _inside(interpreter, env_root) is None:
        return None
    try:
        spellings = _spellings(env_root, interpreter)
    except UnicodeEncodeError:
        return None
    named = {env_root.encode("utf-8"), env_root.replace(os.sep, "/").encode("utf-8")}
    groups: dict[tuple[str, str], list[list[object]]] = {}
    linked: set[str] = set()
    entries: set[str] = set()
    for src, dst, size in journal:
        s, d = _inside(_native(src), cache_root), _inside(_native(dst), env_root)
        if s is None or d is None or d in before or d in linked:
            return None
        parts = s.split(os.sep)
        if len(parts) < 3 or parts[0] != "entries":
            return None
        entries.add(parts[1])
        linked.add(d)
        sbase, dbase, rel = _split_common_suffix(s, d)
        if not rel:
            return None  # a file renamed on its way: not this format's business
        member: list[object] = [rel, size]
        if rel.endswith(".pyc"):  # checked before a replay links it, as the engine checks it
            member.append(os.lstat(_native(src)).st_mtime_ns)
        groups.setdefault((sbase, dbase), []).append(member)
    generated: dict[str, tuple[bytes, int]] = {}
    for rel in sorted(snapshot(env_root) - before - linked):
        path = os.path.join(env_root, rel)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or rel.endswith(".pyc"):
            # the plan would not know how to make it, or bytecode compiled
            # into this environment (it names the environment's paths)
            return None
        with open(path, "rb") as f:
            generated[rel] = (f.read(), stat.S_IMODE(st.st_mode))
    files: list[dict[str, object]] = []
    templated: dict[str, str] = {}  # rel -> sha256 RECORD digest of the recorded content
    for rel, (data, _mode) in generated.items():
        if any(needle in data for needle, _ in spellings[:-1]):
            templated[rel] = _record_hash(data)
    for rel, (data, mode) in generated.items():
        template = data
        for needle, placeholder in spellings:
            template = template.replace(needle, placeholder)
        if any(path in template for path in named):
            return None  # it names the environment some other way: a replay could not fix it
        item: dict[str, object] = {
            "path": rel,
            "mode": mode,
            "data": base64.b64encode(template).decode("ascii"),
        }
        if os.path.basename(rel) == "RECORD" and templated:
            patch = _record_patch(rel, data, templated, env_root)
            if patch is None:
                return None
            if patch:
                item["patch"] = patch
        files.append(item)
    required = [os.path.join("entries", k, "entry.json") for k in sorted(entries)]
    for k in sorted(entries):
        entry_dir = os.path.join(cache_root, "entries", k)
        required += [
            os.path.join("entries", k, n)
            for n in sorted(os.listdir(entry_dir))
            if n.startswith(f"bytecode-{sys.implementation.cache_tag}-")
        ]
    return {
        "format": PLAN_FORMAT,
        "installed": list(installed),
        "entries": sorted(entries),
        "required": required,
        "links": [[s, d, members] for (s, d), members in groups.items()],
        "generated": files,
    }


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _record_patch(
    rel: str, data: bytes, templated: Mapping[str, str], env_root: str
) -> list[list[object]] | None:
    """Rows of a RECORD that hash a templated file: [[row index, file], ...].

    None when RECORD does not read back to the same bytes (then a replay
    could not rewrite it faithfully) or hashes a templated file otherwise.
    """
    text = data.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if _write_rows(rows) != text:
        return None
    base = os.path.dirname(os.path.dirname(rel))  # RECORD paths are relative to the dist-info's parent
    patch: list[list[object]] = []
    for i, row in enumerate(rows):
        if len(row) != 3:
            continue
        target = os.path.normpath(os.path.join(base, row[0].replace("/", os.sep)))
        if os.path.isabs(target):  # another scheme's file, on Windows
            target = _inside(target, env_root) or target
        if target in templated:
            if row[1] != templated[target] or not row[2].isdigit():
                return None
            patch.append([i, target])
    return patch


def _write_rows(rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, **_RECORD_DIALECT).writerows(rows)  # type: ignore[arg-type]
    return buf.getvalue()


def replay(
    cache_root: str,
    key: str,
    env_root: str,
    interpreter: str,
    link_mode: LinkMode,
) -> Replayed | None:
    """Replay the plan ``key`` into the fresh environment ``env_root``.

    None (nothing done) when there is no usable plan: none recorded, an
    entry it links from removed, the interpreter path not plain. Errors
    while placing roll back what was placed and are raised, as an install's.
    """
    env_root, interpreter = _native(env_root), _native(interpreter)
    if not plain_interpreter(interpreter):
        return None
    try:
        spellings = _spellings(env_root, interpreter)
    except UnicodeEncodeError:
        return None
    try:
        with open(os.path.join(cache_root, "plans", f"{key}.json"), "rb") as f:
            plan = json.loads(f.read())
        if plan.get("format") != PLAN_FORMAT:
            return None
        entries: list[str] = plan["entries"]
        _check_paths(plan)
    except UnsafePlan:
        # written by someone else than this code: never used, and the
        # install that follows records the plan again
        with contextlib.suppress(OSError):  # (reached through no planted link)
            plan_file = os.path.join(cache_root, "plans", f"{key}.json")
            check_path(cache_root, plan_file, final=False)
            os.unlink(plan_file)
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    lock_paths = [lock_path(cache_root, k) for k in entries]
    locks = [EntryLock(OsFileLock(path), path) for path in lock_paths]
    held: list[EntryLock] = []
    try:
        for lock in locks:  # sorted keys: the global lock order
            lock.acquire(blocking=True)
            held.append(lock)
        if not all(os.path.exists(os.path.join(cache_root, p)) for p in plan["required"]):
            return None  # an entry was removed or changed since: install normally
        return _place(plan, cache_root, env_root, spellings, link_mode)
    finally:
        for lock in reversed(held):
            lock.release()


def _unchanged(path: str, size: int, mtime_ns: int) -> bool:
    """Is the cache file at ``path`` the regular file of that size and mtime it was?"""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == size and st.st_mtime_ns == mtime_ns


class UnsafePlan(ValueError):
    """A plan read back from the cache names a path that leaves its root."""


def _check_paths(plan: Mapping[str, Any]) -> None:
    """Every path a plan joins to the cache or to the environment is
    relative, in normal form and stays below it (the rules archive members
    are held to), and every link source is inside an entry's tree;
    UnsafePlan otherwise. A plan's separators are the system's."""
    def portable(path: object) -> str:
        if not isinstance(path, str):
            raise UnsafePlan(f"not a path: {path!r}")
        return path.replace(os.sep, "/") if os.sep != "/" and "/" not in path else path

    cache_side: list[str] = []
    env_side: list[str] = []
    for sbase, dbase, members in plan["links"]:
        src, dst = portable(sbase), portable(dbase)
        parts = src.split("/")
        if len(parts) < 3 or parts[0] != "entries" or parts[2] != "tree":
            raise UnsafePlan(f"a link from outside the entries: {sbase!r}")
        for rel, *_ in members:
            member = portable(rel)
            cache_side.append(f"{src}/{member}")
            env_side.append(f"{dst}/{member}" if dst else member)
    env_side.extend(portable(item["path"]) for item in plan["generated"])
    cache_side.extend(portable(path) for path in plan["required"])
    if not all_safe_relpaths(cache_side) or not all_safe_relpaths(env_side):
        raise UnsafePlan("a path that leaves its directory")


def _place(
    plan: Mapping[str, object],
    cache_root: str,
    env_root: str,
    spellings: Sequence[tuple[bytes, bytes]],
    link_mode: LinkMode,
) -> Replayed | None:
    join = os.path.join
    jobs = []
    for sbase, dbase, members in plan["links"]:  # type: ignore[attr-defined]
        src, dst = join(cache_root, sbase, ""), join(env_root, dbase, "")
        for rel, size, *stamp in members:
            if stamp and not _unchanged(src + rel, size, stamp[0]):
                return None  # a cached .pyc changed since: the engine checks and compiles it again
            jobs.append(LinkJob(src + rel, dst + rel, size))
    linker = Linker(link_mode)
    entries: list[str] = plan["entries"]  # type: ignore[assignment]
    placement = Placement(files=jobs, users=[(cache_root, key, env_root) for key in entries])
    try:
        report = execute(placement, linker)
        contents: dict[str, bytes] = {}
        files: list[dict[str, object]] = plan["generated"]  # type: ignore[assignment]
        for item in files:
            data = base64.b64decode(str(item["data"]))
            for value, placeholder in spellings:
                data = data.replace(placeholder, value)
            contents[str(item["path"])] = data
        for item in files:
            rel = str(item["path"])
            data = contents[rel]
            patch: list[list[object]] = item.get("patch") or []  # type: ignore[assignment]
            if patch:
                rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
                for index, target in patch:
                    body = contents[str(target)]
                    rows[int(index)][1:] = [_record_hash(body), str(len(body))]  # type: ignore[call-overload]
                data = _write_rows(rows).encode("utf-8")
            path = join(env_root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_beside(path, data, int(item["mode"]))  # type: ignore[call-overload]
            linker.created.append(path)
            report.written += 1
    except LinkError as exc:
        linker.rollback()
        if exc.errno == errno.ENOENT and os.path.isdir(env_root):
            return None  # a cache file went missing (a damaged entry): install normally
        raise
    except BaseException:
        linker.rollback()
        raise
    return Replayed(list(plan["installed"]), report, list(entries))  # type: ignore[call-overload]
