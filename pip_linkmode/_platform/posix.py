"""Generic POSIX primitives, and the interface the other platforms share."""

from __future__ import annotations

import enum
import errno
import os

TYPE_CHECKING = False  # (typing itself would be a third of a helper process's start)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["Cause", "Platform", "PosixPlatform", "O_BINARY", "NEW_FILE", "read_at", "private_reads"]

_COPY_CHUNK = 1024 * 1024
#: ``os.link`` of a link makes a link to it, not to what it names (where
#: the system can say so: linkat)
_LINK_AS_IS: dict[str, bool] = {"follow_symlinks": False} if os.link in os.supports_follow_symlinks else {}

#: Part of every ``os.open`` flag set: Windows opens a descriptor in text
#: mode without it, and ``os.write`` then turns each ``\n`` into ``\r\n``.
O_BINARY: int = getattr(os, "O_BINARY", 0)
#: Flags of a file created here: new (never an existing file), binary.
NEW_FILE: int = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_BINARY

#: Can ``read_at`` share a descriptor between readers (``os.pread``)? Where
#: not (Windows), it seeks, so the descriptor must be the caller's alone.
private_reads: bool = not hasattr(os, "pread")


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``: ``os.pread`` where there is one;
    elsewhere a seek and a read on a descriptor no one else reads
    (``private_reads``)."""
    if not private_reads:
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


class Cause(str, enum.Enum):
    """Why a link mode cannot work between a cache and a target."""

    CROSS_DEVICE = "cache and target are on different filesystems"
    UNSUPPORTED = "the target filesystem does not support this kind of link"
    PRIVILEGE = "the process lacks the privilege to create this kind of link"
    LINK_LIMIT = "the cache file has reached the filesystem's limit of links"


# errnos that mean "this mode does not work here", not "this file failed".
_UNSUPPORTED_ERRNOS = {
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.ENOSYS,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EBADF,
}


class Platform:
    """What the linker needs from an operating system.

    Every method takes plain ``str`` paths, raises ``OSError`` on failure
    and never opens an existing destination for writing: a destination must
    not exist (``FileExistsError`` otherwise).
    """

    name = "generic"
    #: can ``clone_tree`` clone a whole directory in one call?
    clones_directories = False

    def fspath(self, path: str) -> str:
        """The spelling of ``path`` to hand to system calls."""
        return path

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        """A copy-on-write clone; with ``source_mtime``, a Python source
        (``.py``) keeps the cache file's mtime, which a linked cached ``.pyc``
        is checked against (without it, the clone's mtime is its creation,
        as a fresh file's is).

        ``perm``: the clone's permission bits, as pip gives a file it
        extracts: the file is created with them (the umask applies), and
        execute bits among them are set whatever the umask. None: the cache
        file's bits, less the umask. A platform whose clone call copies the
        cache file's bits itself (macOS, Windows) keeps those: the same
        bits wherever the cache was filled under the same umask.
        """
        raise OSError(errno.EOPNOTSUPP, "cloning is not available on this platform")

    def clone_files(
        self,
        sp: str,
        dp: str,
        names: Sequence[str],
        *,
        source_mtime: bool = True,
        perm: int | None = None,
        placed: list[str] | None = None,
    ) -> list[tuple[int, OSError]]:
        """``clone_file`` of each of ``names`` from directory ``sp`` into
        ``dp`` (both given with their trailing "/"), trying every one; the
        failures, as (index in ``names``, error). ``placed``: each new
        file's path is appended to it as soon as the file is in place (so
        an interrupt mid-call leaves none unaccounted for)."""
        return self._each_file(
            lambda src, dst: self.clone_file(src, dst, source_mtime=source_mtime, perm=perm), sp, dp, names, placed
        )

    def hardlink_files(
        self, sp: str, dp: str, names: Sequence[str], *, placed: list[str] | None = None
    ) -> list[tuple[int, OSError]]:
        """``hardlink`` of each of ``names``, as ``clone_files``."""
        return self._each_file(self.hardlink, sp, dp, names, placed)

    def place_files(
        self,
        op: str,
        sp: str,
        dp: str,
        names: Sequence[str],
        *,
        source_mtime: bool = True,
        perm: int | None = None,
        placed: list[str] | None = None,
    ) -> list[tuple[int, OSError]]:
        """A directory's files placed by ``op`` ("clone", "hardlink" or
        "symlink", a ``LinkMode`` value), as ``clone_files``: the one call
        of the linker's threads and helper processes alike."""
        if op == "clone":
            return self.clone_files(sp, dp, names, source_mtime=source_mtime, perm=perm, placed=placed)
        if op == "hardlink":
            return self.hardlink_files(sp, dp, names, placed=placed)
        if op == "symlink":
            return self._each_file(self.symlink, sp, dp, names, placed)
        raise ValueError(f"no placement of a directory's files by {op!r}")

    @staticmethod
    def _each_file(
        op: Callable[[str, str], None], sp: str, dp: str, names: Sequence[str], placed: list[str] | None
    ) -> list[tuple[int, OSError]]:
        """``op(cache file, new file)`` for each of ``names``, trying every
        one (the batch calls' work, a call per file; a platform may do it in
        one loop of the system calls)."""
        failures: list[tuple[int, OSError]] = []
        for index, name in enumerate(names):
            try:
                op(sp + name, dp + name)
            except OSError as exc:
                failures.append((index, exc))
                continue
            except ValueError as exc:  # a name the system cannot take (a NUL byte)
                failures.append((index, OSError(errno.EINVAL, str(exc))))
                continue
            if placed is not None:
                placed.append(dp + name)
        return failures

    def helper_class(self) -> str | None:
        """``module:class`` that a helper process builds to place files
        with these same primitives (``linker.helpers.Helpers``); None: no helpers
        (a platform with injected calls, or one whose files are not worth
        a process)."""
        return None

    def widen_pipe(self, fd: int, size: int) -> None:
        """Let the pipe ``fd`` (a helper's input) hold ``size`` bytes where
        the system lets a process set that; here it does not."""

    def clone_tree(self, src: str, dst: str) -> None:
        raise OSError(
            errno.EOPNOTSUPP, "cloning a directory whole is not available here"
        )

    def hardlink(self, src: str, dst: str) -> None:
        # a link at ``src`` is linked itself, never followed (link(2)'s
        # rule, which Python 3.14's os.link no longer keeps by default)
        os.link(self.fspath(src), self.fspath(dst), **_LINK_AS_IS)

    def symlink(self, src: str, dst: str) -> None:
        os.symlink(self.fspath(src), self.fspath(dst))

    def dir_link(self, target: str, link: str) -> None:
        """A link to a directory (a junction on Windows)."""
        os.symlink(self.fspath(target), self.fspath(link), target_is_directory=True)

    def copy_file(self, src: str, dst: str) -> None:
        """Copy bytes, mode bits and mtime; ``dst`` must not exist."""
        s, d = self.fspath(src), self.fspath(dst)
        with open(s, "rb") as fsrc:
            st = os.fstat(fsrc.fileno())
            fd = os.open(d, NEW_FILE, st.st_mode & 0o777)
            try:
                with open(fd, "wb", closefd=False) as fdst:
                    self._copy_bytes(fsrc, fdst, st.st_size)
                self._finish_copy(fd, d, st)
            except BaseException:
                os.close(fd)
                _unlink_quietly(d)
                raise
            os.close(fd)

    def _copy_bytes(self, fsrc: object, fdst: object, size: int) -> None:
        import shutil  # (here: a helper process placing clones does without it)

        shutil.copyfileobj(fsrc, fdst, _COPY_CHUNK)  # type: ignore[arg-type]

    def _finish_copy(self, fd: int, path: str, st: os.stat_result) -> None:
        """Give a fresh copy or clone the source's mode bits and mtime."""
        if os.chmod in os.supports_fd:
            os.fchmod(fd, st.st_mode & 0o7777)
        else:
            os.chmod(path, st.st_mode & 0o7777)
        if os.utime in os.supports_fd:
            os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def replace(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst`` atomically."""
        os.replace(self.fspath(src), self.fspath(dst))

    def classify(self, exc: OSError) -> Cause | None:
        """Why a link failed, when the cause is the mode rather than the file."""
        if exc.errno == errno.EXDEV:
            return Cause.CROSS_DEVICE
        if exc.errno == errno.EMLINK:
            return Cause.LINK_LIMIT
        if exc.errno == errno.EPERM:
            return Cause.PRIVILEGE
        if exc.errno in _UNSUPPORTED_ERRNOS:
            return Cause.UNSUPPORTED
        return None

    def remedy(self, exc: OSError, mode: str) -> str:
        """A sentence telling the user what to do about ``exc``."""
        if exc.errno == errno.ENOSPC:
            return "free some space on that filesystem, or point the cache elsewhere"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return "check that the directory is writable by this user"
        if exc.errno == errno.ENAMETOOLONG:
            return "the path is longer than this filesystem allows"
        return f"retry with --link-mode=copy if {mode} keeps failing here"


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class PosixPlatform(Platform):
    name = "posix"
