"""Linux: reflink clones with the FICLONE ioctl (XFS with reflink, btrfs, ...)."""

from __future__ import annotations

import fcntl
import os

from .posix import PosixPlatform, _unlink_quietly

TYPE_CHECKING = False  # (typing itself would be a third of a helper process's start)
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FICLONE", "LinuxPlatform"]

#: _IOW(0x94, 9, int), from linux/fs.h
FICLONE = 0x40049409


class LinuxPlatform(PosixPlatform):
    name = "linux"

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        for _, exc in _clone_each(((src, dst),), source_mtime, perm, None):
            raise exc

    def _clone_pairs(
        self, pairs: Iterable[tuple[str, str]], source_mtime: bool, perm: int | None, placed: list[str] | None
    ) -> list[tuple[int, OSError]]:
        if type(self).clone_file is not LinuxPlatform.clone_file:
            # a subclass's own clone_file (a test's fault injection), per file
            return super()._clone_pairs(pairs, source_mtime, perm, placed)
        return _clone_each(pairs, source_mtime, perm, placed)

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


def _clone_each(
    pairs: Iterable[tuple[str, str]], source_mtime: bool, perm: int | None, placed: list[str] | None
) -> list[tuple[int, OSError]]:
    """Clone each (cache file, new file) pair, trying every one; the
    failures by index; each new file appended to ``placed`` once in place.
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
    rd = os.O_RDONLY | os.O_CLOEXEC
    wr = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    execute = perm is not None and perm & 0o111
    append = placed.append if placed is not None else None
    for index, (src, dst) in enumerate(pairs):
        try:
            sfd = open_(src, rd)
            try:
                mtime = source_mtime and dst.endswith(".py")
                if perm is None or mtime:
                    st = fstat(sfd)
                bits = st.st_mode & 0o777 if perm is None else perm
                dfd = open_(dst, wr, bits)
                try:
                    ioctl(dfd, FICLONE, sfd)
                    if execute:
                        os.fchmod(dfd, bits)
                    if mtime:
                        os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
                except BaseException:
                    close(dfd)
                    _unlink_quietly(dst)
                    raise
                close(dfd)
            finally:
                close(sfd)
        except OSError as exc:
            failures.append((index, exc))
            continue
        if append is not None:
            append(dst)
    return failures
