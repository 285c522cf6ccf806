"""Linux: reflink clones with the FICLONE ioctl (XFS with reflink, btrfs, ...)."""

from __future__ import annotations

import fcntl
import os

from .posix import PosixPlatform, _unlink_quietly

__all__ = ["FICLONE", "LinuxPlatform"]

#: _IOW(0x94, 9, int), from linux/fs.h
FICLONE = 0x40049409


class LinuxPlatform(PosixPlatform):
    name = "linux"

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        # Created with perm, or the source's mode bits (the umask applies,
        # as to any new file); with source_mtime, a Python source gets the
        # cache file's mtime, which its cached .pyc is checked against (a
        # separate system call and, on XFS, a separate log transaction: it
        # costs a tenth of a clone install). Every syscall saved counts
        # here: with perm given, the source is not even stat'ed.
        sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mtime = source_mtime and dst.endswith(".py")
            st = os.fstat(sfd) if perm is None or mtime else None
            bits = perm if perm is not None else st.st_mode & 0o777 if st is not None else 0
            dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, bits)
            try:
                fcntl.ioctl(dfd, FICLONE, sfd)
                if perm is not None and perm & 0o111:
                    os.fchmod(dfd, perm)  # pip's execute bits, whatever the umask
                if mtime and st is not None:
                    os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))
            except BaseException:
                os.close(dfd)
                _unlink_quietly(dst)
                raise
            os.close(dfd)
        finally:
            os.close(sfd)

    def helper_class(self) -> str | None:
        # a clone is about 60 us of kernel work; only this exact class (a
        # subclass may be a test's fault injection a helper would not have)
        return f"{__name__}:LinuxPlatform" if type(self) is LinuxPlatform else None

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
