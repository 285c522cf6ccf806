"""Inspecting and maintaining a WheelCache: info, list, verify, clean, prune.

Removal takes each entry's lock (installs hold it while they link from an
entry, so neither sees the other half-done), renames the entry out of
``entries/`` first, never follows a symlink or junction, and copes with
read-only files. Entries that a still-existing symlink-mode environment
uses are kept unless ``force`` is given.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .cache import CachedWheel, CacheError, WheelCache, record_digest, remove_tree

__all__ = ["CacheInfo", "Problem", "clean", "info", "list_entries", "prune", "verify", "users_of", "record_user"]


@dataclass
class CacheInfo:
    root: Path
    entries: int = 0
    files: int = 0
    size_on_disk: int = 0
    shared_by_hardlinks: int = 0  # bytes environments hold through extra hard links

    def render(self) -> str:
        return "\n".join(
            [
                f"Location: {self.root}",
                f"Entries: {self.entries}",
                f"Files: {self.files}",
                f"Size on disk: {_human(self.size_on_disk)}",
                f"Shared with environments by hardlinks: {_human(self.shared_by_hardlinks)} "
                "(clones share blocks invisibly; symlinks point here)",
            ]
        )


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def info(cache: WheelCache) -> CacheInfo:
    result = CacheInfo(cache.root)
    seen: set[tuple[int, int]] = set()
    for entry in cache.iter_entries():
        result.entries += 1
        for dirpath, _dirs, files in os.walk(entry.root):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                result.files += 1
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                result.size_on_disk += getattr(st, "st_blocks", 0) * 512 or st.st_size
                if st.st_nlink > 1:
                    result.shared_by_hardlinks += (st.st_nlink - 1) * st.st_size
    return result


def _bytecode_tags(entry: CachedWheel) -> list[str]:
    return sorted({p.name.split("-")[1] for p in entry.root.glob("bytecode-*.json")})


def list_entries(cache: WheelCache, projects: Iterable[str] = ()) -> list[str]:
    """One line per entry: project, version, tags, size, bytecode tags, last used."""
    wanted = {_norm(p) for p in projects}
    lines = []
    for entry in cache.iter_entries():
        if wanted and _norm(entry.name) not in wanted:
            continue
        tags = "-".join(entry.filename[:-4].split("-")[-3:])
        used = _last_used(entry)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used)) if used else "never"
        pyc = ",".join(_bytecode_tags(entry)) or "-"
        lines.append(f"{entry.name} {entry.version} {tags} {_human(entry.size)} bytecode:{pyc} last-used:{when} {entry.key[:12]}")
    return lines


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _last_used(entry: CachedWheel) -> float | None:
    try:
        return (entry.root / "last-used").stat().st_mtime
    except OSError:
        return None


@dataclass
class Problem:
    entry: CachedWheel
    path: str
    what: str  # "modified" or "missing"

    def render(self) -> str:
        return f"{self.what}: {self.path} (entry {self.entry.name} {self.entry.version}, {self.entry.key[:12]})"




def verify(cache: WheelCache) -> list[Problem]:
    """Re-hash every cached file against the wheel's verified RECORD."""
    problems = []
    for entry in cache.iter_entries():
        for f in entry.files:
            path = entry.path_of(f.path)
            algo, _, expected = f.hash.partition("=")
            h = hashlib.new(algo)
            try:
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            except FileNotFoundError:
                problems.append(Problem(entry, str(path), "missing"))
                continue
            if record_digest(h.digest()) != expected or os.path.getsize(path) != f.size:
                problems.append(Problem(entry, str(path), "modified"))
    return problems


def repair(cache: WheelCache, problems: list[Problem]) -> list[str]:
    """Re-create damaged entries from their wheel, else remove them."""
    done = []
    for key in sorted({p.entry.key for p in problems}):
        entry = next(p.entry for p in problems if p.entry.key == key)
        source = _source_of(entry)
        _remove_entry(cache, entry)
        if source and os.path.exists(source):
            cache.get(source)
            done.append(f"re-created {entry.name} {entry.version} from {source}")
        else:
            done.append(f"removed {entry.name} {entry.version} (its wheel is gone; the next install unpacks it again)")
    return done


def _source_of(entry: CachedWheel) -> str | None:
    import json

    try:
        return str(json.loads((entry.root / "entry.json").read_text("utf-8")).get("source") or "") or None
    except (OSError, ValueError):
        return None


# -- users: symlink-mode environments depend on the cache ----------------------

def record_user(cache: WheelCache, key: str, env_dir: str) -> None:
    """Remember that a symlink-mode environment links into entry ``key``."""
    users = cache.root / "users" / key
    users.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(os.path.abspath(env_dir).encode()).hexdigest()[:16]
    (users / name).write_text(os.path.abspath(env_dir), "utf-8")


def users_of(cache: WheelCache, key: str) -> list[str]:
    """Environments recorded for ``key`` that still exist and still link into it."""
    users = cache.root / "users" / key
    if not users.is_dir():
        return []
    tree = str(cache.entry_dir(key))
    alive = []
    for f in users.iterdir():
        env = f.read_text("utf-8")
        if _links_into(env, tree):
            alive.append(env)
        else:
            f.unlink()
    return sorted(alive)


def _links_into(env: str, tree: str) -> bool:
    if not os.path.isdir(env):
        return False
    for dirpath, _dirs, files in os.walk(env):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and os.readlink(p).startswith(tree):
                return True
    return False


# -- removal -----------------------------------------------------------------

def _remove_entry(cache: WheelCache, entry: CachedWheel) -> None:
    with cache.lock(entry.key):
        if not entry.root.exists():
            return
        doomed = cache.tmp_dir / f"removing-{entry.key}-{secrets.token_hex(4)}"
        os.rename(entry.root, doomed)  # gone from entries/ at once
    remove_tree(doomed)
    remove_tree(cache.root / "users" / entry.key)


@dataclass
class Removal:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # why each kept entry was kept


def _remove(cache: WheelCache, entries: Iterable[CachedWheel], force: bool) -> Removal:
    out = Removal()
    for entry in entries:
        users = users_of(cache, entry.key)
        if users and not force:
            out.kept.append(
                f"{entry.name} {entry.version}: used by symlink-mode environment(s) {', '.join(users)} "
                "(they would break; use --force to remove anyway)"
            )
            continue
        _remove_entry(cache, entry)
        out.removed.append(f"{entry.name} {entry.version}")
    return out


def clean(cache: WheelCache, projects: Iterable[str] = (), force: bool = False) -> Removal:
    """Remove all entries, or those of the named projects."""
    wanted = {_norm(p) for p in projects}
    entries = [e for e in cache.iter_entries() if not wanted or _norm(e.name) in wanted]
    out = _remove(cache, entries, force)
    _prune_index(cache)
    return out


def prune(cache: WheelCache, older_than_days: float | None = None, force: bool = False) -> Removal:
    """Remove leftovers of interrupted runs, and entries unused for N days."""
    out = Removal()
    if cache.tmp_dir.is_dir():
        for leftover in sorted(cache.tmp_dir.iterdir()):
            key = leftover.name.split("-")[0] if not leftover.name.startswith("removing-") else None
            if key:
                lock = cache.lock(key)
                with lock:  # nobody is unpacking this entry right now
                    remove_tree(leftover)
            else:
                remove_tree(leftover)
            out.removed.append(f"leftover {leftover.name}")
    for stray in cache.entries_dir.glob("*/tree/**/.*.plm-inode") if cache.entries_dir.is_dir() else []:
        stray.unlink()
    if older_than_days is not None:
        limit = time.time() - older_than_days * 86400
        old = [e for e in cache.iter_entries() if (_last_used(e) or 0) < limit]
        sub = _remove(cache, old, force)
        out.removed += sub.removed
        out.kept += sub.kept
    _prune_index(cache)
    return out


def _prune_index(cache: WheelCache) -> None:
    """Forget wheel files whose entry is gone (the index is only a shortcut),
    and recorded plans that link from a removed entry (see ``plan``)."""
    plans = cache.root / "plans"
    for path in sorted(plans.glob("*.json")) if plans.is_dir() else []:
        try:
            keys = [str(k) for k in json.loads(path.read_bytes())["entries"]]
        except (OSError, ValueError, KeyError, TypeError):
            keys = [""]
        if not all(k and (cache.entry_dir(k) / "entry.json").is_file() for k in keys):
            with contextlib.suppress(OSError):
                path.unlink()
    if not cache.index_dir.is_dir():
        return
    for path in cache.index_dir.iterdir():
        try:
            key = str(json.loads(path.read_bytes())["key"])
        except (OSError, ValueError, KeyError, TypeError):
            key = ""
        if not key or not (cache.entry_dir(key) / "entry.json").is_file():
            with contextlib.suppress(OSError):
                path.unlink()


def require_cache(cache: WheelCache) -> None:
    if not cache.root.exists():
        raise CacheError(f"no cache at {cache.root}")
