"""Linux: reflink clones with the FICLONE ioctl (XFS with reflink, btrfs, ...)."""

from __future__ import annotations

import errno
import fcntl
import os

from .posix import PosixPlatform

TYPE_CHECKING = False  # (typing itself would be a third of a helper process's start)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["FICLONE", "LinuxPlatform"]

#: _IOW(0x94, 9, int), from linux/fs.h
FICLONE = 0x40049409


class LinuxPlatform(PosixPlatform):
    name = "linux"

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        # (by path: one file is not worth opening its two directories)
        for _, exc in _clone_each_at(None, None, "", (src,), (dst,), source_mtime, perm, None):
            raise exc

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
        if type(self).clone_file is not LinuxPlatform.clone_file:
            # a subclass's own clone_file (a test's fault injection), per file
            return super().clone_files(sp, dp, names, source_mtime=source_mtime, perm=perm, placed=placed)
        return _in_dirs(sp, dp, len(names), lambda sfd, dfd: _clone_each_at(
            sfd, dfd, dp, names, names, source_mtime, perm, placed
        ))

    def hardlink_files(
        self, sp: str, dp: str, names: Sequence[str], *, placed: list[str] | None = None
    ) -> list[tuple[int, OSError]]:
        if type(self).hardlink is not LinuxPlatform.hardlink:
            return super().hardlink_files(sp, dp, names, placed=placed)
        return _in_dirs(sp, dp, len(names), lambda sfd, dfd: _link_each_at(sfd, dfd, dp, names, placed))

    def helper_class(self) -> str | None:
        # only this exact class (a subclass may be a test's fault injection
        # a helper would not have)
        return f"{__name__}:LinuxPlatform" if type(self) is LinuxPlatform else None

    def widen_pipe(self, fd: int, size: int) -> None:
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass  # (over the user's pipe budget: it stays as it is)

    def _copy_bytes(self, fsrc: object, fdst: object, size: int) -> None:
        # sendfile copies in the kernel; fall back to read/write where refused.
        infd = fsrc.fileno()  # type: ignore[attr-defined]
        outfd = fdst.fileno()  # type: ignore[attr-defined]
        offset = 0
        try:
            while offset < size:
                sent = os.sendfile(outfd, infd, offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError:
            if offset:
                raise
            super()._copy_bytes(fsrc, fdst, size)


# A group's files are placed relative to its two directories, each opened
# once (``_in_dirs``): the kernel then looks up one name per file, not the
# whole path twice (the cache's and the target's, a dozen components
# each); 10% of a hardlink install's system time. A directory swapped
# meanwhile changes nothing: every file of the group goes where the
# directory opened first is. O_PATH: a directory this user may enter but
# not list (a cache made under umask 026 is 0751 to others) serves as
# well as it did by path (opening it to read would be refused).
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def _in_dirs(
    sp: str, dp: str, count: int, place: Callable[[int, int], list[tuple[int, OSError]]]
) -> list[tuple[int, OSError]]:
    """``place(cache dir fd, target dir fd)`` for ``count`` files; each of
    them fails with the error of a directory that cannot be opened (or of
    a path the system cannot take, a NUL byte)."""
    try:
        sfd = os.open(sp, _DIR)
        try:
            dfd = os.open(dp, _DIR)
        except BaseException:
            os.close(sfd)
            raise
    except OSError as exc:
        return [(index, exc) for index in range(count)]
    except ValueError as exc:
        return [(index, OSError(errno.EINVAL, str(exc))) for index in range(count)]
    try:
        return place(sfd, dfd)
    finally:
        os.close(dfd)
        os.close(sfd)


def _link_each_at(
    sfd: int, dfd: int, dp: str, names: Sequence[str], placed: list[str] | None
) -> list[tuple[int, OSError]]:
    """Hard-link each of ``names`` from ``sfd`` into ``dfd`` (never through
    a link at the source: ``link(2)``'s own rule), trying every one."""
    failures: list[tuple[int, OSError]] = []
    link = os.link
    append = placed.append if placed is not None else None
    for index, name in enumerate(names):
        try:
            link(name, name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            failures.append((index, exc))
            continue
        except ValueError as exc:
            failures.append((index, OSError(errno.EINVAL, str(exc))))
            continue
        if append is not None:
            append(dp + name)
    return failures


def _clone_each_at(
    sfd: int | None,
    dfd: int | None,
    dp: str,
    snames: Sequence[str],
    dnames: Sequence[str],
    source_mtime: bool,
    perm: int | None,
    placed: list[str] | None,
) -> list[tuple[int, OSError]]:
    """Clone each of ``snames`` in the cache directory ``sfd`` to the
    matching new file of ``dnames`` in ``dfd`` (``dp``; None for both:
    whole paths), trying every one;
    the failures by index; each new file appended to ``placed`` once in
    place. A link in the cache (which holds none of its own) is refused,
    not followed (ELOOP).

    One loop with the system calls and nothing else per file: a clone
    install is CPU-bound, and a Python call per file shows.

    A new file is created with ``perm``, or the source's mode bits (the
    umask applies, as to any new file), and gets ``perm``'s execute bits
    whatever the umask (pip's rule for a file the wheel marks executable).
    With ``source_mtime``, a Python source gets the cache file's mtime,
    which its cached .pyc is checked against: a separate system call and,
    on XFS, a separate log transaction (a tenth of a clone install). With
    ``perm`` given, nothing else needs the source stat'ed.
    """
    failures: list[tuple[int, OSError]] = []
    open_, close, fstat, ioctl = os.open, os.close, os.fstat, fcntl.ioctl
    rd = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
    wr = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    execute = perm is not None and perm & 0o111
    append = placed.append if placed is not None else None
    for index, (name, dname) in enumerate(zip(snames, dnames, strict=True)):
        try:
            src = open_(name, rd, dir_fd=sfd)
            try:
                mtime = source_mtime and dname.endswith(".py")
                if perm is None or mtime:
                    st = fstat(src)
                bits = st.st_mode & 0o777 if perm is None else perm
                dst = open_(dname, wr, bits, dir_fd=dfd)
                try:
                    ioctl(dst, FICLONE, src)
                    if execute:
                        os.fchmod(dst, bits)
                    if mtime:
                        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                except BaseException:
                    close(dst)
                    try:
                        os.unlink(dname, dir_fd=dfd)
                    except OSError:
                        pass
                    raise
                close(dst)
            finally:
                close(src)
        except OSError as exc:
            failures.append((index, exc))
            continue
        except ValueError as exc:
            failures.append((index, OSError(errno.EINVAL, str(exc))))
            continue
        if append is not None:
            append(dp + dname)
    return failures
