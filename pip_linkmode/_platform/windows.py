"""Windows: block cloning on ReFS / Dev Drive, hardlinks on NTFS, junctions.

Every path handed to a system call is an extended ``\\\\?\\`` path, so paths
longer than 260 characters work without the ``LongPathsEnabled`` setting.
The system calls sit behind ``WindowsCalls`` so tests on other systems can
inject them and run the same logic.
"""

from __future__ import annotations

import errno
import ntpath
import os
import secrets

from .posix import Cause, Platform

__all__ = ["ASIDE_SUFFIX", "WindowsCalls", "WindowsPlatform", "extended_path", "WINERROR"]

#: A file in use (a loaded ``.pyd``) is renamed to ``.NAME.HEX.plm-old``
#: beside itself to be replaced; the linker removes such names later.
ASIDE_SUFFIX = ".plm-old"

#: Windows error codes the project gives meaning to.
WINERROR = {
    "INVALID_FUNCTION": 1,
    "ACCESS_DENIED": 5,
    "NOT_SAME_DEVICE": 17,
    "SHARING_VIOLATION": 32,
    "NOT_SUPPORTED": 50,
    "INVALID_PARAMETER": 87,
    "FILENAME_EXCED_RANGE": 206,
    "TOO_MANY_LINKS": 1142,
    "PRIVILEGE_NOT_HELD": 1314,
}

_PREFIX = "\\\\?\\"
_FSCTL_DUPLICATE_EXTENTS_TO_FILE = 0x00098344
#: GetVolumeInformation's flag of a volume that can clone blocks (ReFS, Dev Drive)
_FILE_SUPPORTS_BLOCK_REFCOUNTING = 0x08000000
_FSCTL_GET_INTEGRITY_INFORMATION = 0x0009027C


def extended_path(path: str) -> str:
    """``path`` as an extended-length path (``\\\\?\\C:\\...``)."""
    if path.startswith(_PREFIX):
        return path
    spelled = path.replace("/", "\\")
    if spelled.startswith("\\\\"):
        return _PREFIX + "UNC\\" + ntpath.normpath(spelled)[2:]
    drive, _ = ntpath.splitdrive(spelled)
    if not drive:
        # Not an absolute DOS path: leave it as given for the OS to resolve.
        return path
    return _PREFIX + ntpath.normpath(spelled)


class WindowsCalls:  # pragma: no cover - runs on Windows only
    """The real Win32 calls, through ctypes and ``_winapi``."""

    def link(self, src: str, dst: str) -> None:
        os.link(src, dst)

    def symlink(self, src: str, dst: str) -> None:
        os.symlink(src, dst)
        if not os.path.lexists(dst):
            # Wine reports success and creates nothing: treat it as what a
            # Windows without the privilege says (error 1314).
            raise OSError(
                errno.EACCES, "the system reported the symlink made, but it is not there",
                dst, WINERROR["PRIVILEGE_NOT_HELD"],
            )

    def replace(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def create_junction(self, target: str, link: str) -> None:
        import _winapi

        _winapi.CreateJunction(target, link)  # type: ignore[attr-defined]

    def copy_file(self, src: str, dst: str) -> None:
        import shutil

        if os.path.lexists(dst):
            raise FileExistsError(17, "File exists", dst)
        shutil.copy2(src, dst)

    def duplicate_extents(self, src: str, dst: str) -> None:
        """Clone ``src`` into a new file ``dst`` (ReFS block cloning)."""
        import ctypes
        from ctypes import wintypes

        k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        k32.CreateFileW.restype = wintypes.HANDLE
        invalid = wintypes.HANDLE(-1).value

        def check(ok: object) -> None:
            if not ok:
                err = ctypes.get_last_error()  # type: ignore[attr-defined]
                raise OSError(None, ctypes.FormatError(err), src, err, dst)  # type: ignore[attr-defined]

        generic_read, generic_write = 0x80000000, 0x40000000
        share_read, open_existing, create_new = 0x1, 3, 1
        hs = k32.CreateFileW(src, generic_read, share_read, None, open_existing, 0, None)
        check(hs != invalid)
        try:
            size = os.stat(src).st_size
            hd = k32.CreateFileW(dst, generic_read | generic_write, 0, None, create_new, 0, None)
            check(hd != invalid)
            ok = False
            try:
                if not size:
                    # Nothing to clone: say whether this volume could, or the
                    # first file of an install, often an empty __init__.py,
                    # would pass the link mode's probe on any volume.
                    flags = wintypes.DWORD()
                    if not k32.GetVolumeInformationByHandleW(
                        hd, None, 0, None, None, ctypes.byref(flags), None, 0
                    ) or not flags.value & _FILE_SUPPORTS_BLOCK_REFCOUNTING:
                        err = WINERROR["NOT_SUPPORTED"]
                        raise OSError(None, ctypes.FormatError(err), src, err, dst)  # type: ignore[attr-defined]
                else:
                    # The clone range must be a multiple of the cluster size:
                    # extend the target to the rounded size, clone, then trim.
                    cluster = _cluster_size(k32, dst)
                    rounded = (size + cluster - 1) // cluster * cluster

                    class _Dup(ctypes.Structure):
                        _fields_ = [
                            ("FileHandle", wintypes.HANDLE),
                            ("SourceFileOffset", ctypes.c_longlong),
                            ("TargetFileOffset", ctypes.c_longlong),
                            ("ByteCount", ctypes.c_longlong),
                        ]

                    eof = ctypes.c_longlong(rounded)
                    check(k32.SetFilePointerEx(hd, eof, None, 0))
                    check(k32.SetEndOfFile(hd))
                    dup = _Dup(hs, 0, 0, rounded)
                    ret = wintypes.DWORD()
                    check(
                        k32.DeviceIoControl(
                            hd, _FSCTL_DUPLICATE_EXTENTS_TO_FILE, ctypes.byref(dup),
                            ctypes.sizeof(dup), None, 0, ctypes.byref(ret), None,
                        )
                    )
                    check(k32.SetFilePointerEx(hd, ctypes.c_longlong(size), None, 0))
                    check(k32.SetEndOfFile(hd))
                ok = True
            finally:
                k32.CloseHandle(hd)
                if not ok:
                    try:
                        os.unlink(dst)
                    except OSError:
                        pass
        finally:
            k32.CloseHandle(hs)
        st = os.stat(src)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


_kernel32: object = None


def change_time(path: str) -> int | None:  # pragma: no cover - Windows
    """NTFS's ChangeTime of ``path`` (100 ns units): updated by every write
    and metadata change, and never set back by tools, unlike ``st_ctime``,
    which on Windows is the creation time. None where it cannot be read."""
    import ctypes
    from ctypes import wintypes

    global _kernel32
    if _kernel32 is None:
        k32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        k32.CreateFileW.restype = wintypes.HANDLE
        k32.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
                                    wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
        k32.GetFileInformationByHandleEx.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
        k32.CloseHandle.argtypes = [wintypes.HANDLE]
        _kernel32 = k32
    k32 = _kernel32

    class _BasicInfo(ctypes.Structure):
        _fields_ = [
            ("CreationTime", ctypes.c_longlong),
            ("LastAccessTime", ctypes.c_longlong),
            ("LastWriteTime", ctypes.c_longlong),
            ("ChangeTime", ctypes.c_longlong),
            ("FileAttributes", wintypes.DWORD),
        ]

    file_read_attributes, share_all, open_existing, backup_semantics = 0x80, 0x7, 3, 0x02000000
    handle = k32.CreateFileW(extended_path(path), file_read_attributes, share_all, None,  # type: ignore[attr-defined]
                             open_existing, backup_semantics, None)
    if handle is None or handle == wintypes.HANDLE(-1).value:
        return None
    try:
        info = _BasicInfo()
        if not k32.GetFileInformationByHandleEx(handle, 0, ctypes.byref(info), ctypes.sizeof(info)):  # type: ignore[attr-defined]
            return None
        return int(info.ChangeTime)
    finally:
        k32.CloseHandle(handle)  # type: ignore[attr-defined]


def _cluster_size(k32: object, path: str) -> int:  # pragma: no cover - Windows
    import ctypes
    from ctypes import wintypes

    root = ntpath.splitdrive(path.replace(_PREFIX, ""))[0] + "\\"
    spc, bps, free, total = (wintypes.DWORD() for _ in range(4))
    if not k32.GetDiskFreeSpaceW(root, ctypes.byref(spc), ctypes.byref(bps), ctypes.byref(free), ctypes.byref(total)):  # type: ignore[attr-defined]
        return 4096
    return int(spc.value * bps.value) or 4096


class WindowsPlatform(Platform):
    name = "windows"

    def __init__(self, calls: WindowsCalls | None = None) -> None:
        self.calls = calls or WindowsCalls()

    def fspath(self, path: str) -> str:
        return extended_path(path)

    def clone_file(
        self, src: str, dst: str, *, source_mtime: bool = True, perm: int | None = None
    ) -> None:
        # duplicate_extents gives every clone the source's times (and
        # its attributes: there are no mode bits to give).
        self.calls.duplicate_extents(self.fspath(src), self.fspath(dst))

    def hardlink(self, src: str, dst: str) -> None:
        self.calls.link(self.fspath(src), self.fspath(dst))

    def symlink(self, src: str, dst: str) -> None:
        self.calls.symlink(self.fspath(src), self.fspath(dst))

    def dir_link(self, target: str, link: str) -> None:
        # Junctions need no privilege, unlike directory symlinks.
        self.calls.create_junction(self.fspath(target), self.fspath(link))

    def copy_file(self, src: str, dst: str) -> None:
        self.calls.copy_file(self.fspath(src), self.fspath(dst))

    def replace(self, src: str, dst: str) -> None:
        """Rename over ``dst``; if Windows refuses (a loaded ``.pyd``),
        move ``dst`` aside first, then rename into its place."""
        s, d = self.fspath(src), self.fspath(dst)
        try:
            self.calls.replace(s, d)
            return
        except PermissionError as exc:
            if getattr(exc, "winerror", None) not in (
                WINERROR["ACCESS_DENIED"],
                WINERROR["SHARING_VIOLATION"],
            ):
                raise
            first = exc
        head, tail = ntpath.split(d)
        aside = ntpath.join(head, f".{tail}.{secrets.token_hex(4)}{ASIDE_SUFFIX}")
        try:
            self.calls.rename(d, aside)
        except OSError as exc:
            raise PermissionError(
                first.errno,
                f"cannot replace {dst}: it is in use by a running process and "
                "cannot be moved aside either; close the programs using this "
                "environment and retry",
                dst,
            ) from exc
        self.calls.replace(s, d)
        try:
            self.calls.unlink(aside)
        except OSError:
            pass  # still mapped: the next install replacing a file here removes it

    def classify(self, exc: OSError) -> Cause | None:
        code = getattr(exc, "winerror", None)
        if code == WINERROR["PRIVILEGE_NOT_HELD"]:
            return Cause.PRIVILEGE
        if code == WINERROR["NOT_SAME_DEVICE"]:
            return Cause.CROSS_DEVICE
        if code == WINERROR["TOO_MANY_LINKS"]:
            return Cause.LINK_LIMIT
        if code in (
            WINERROR["INVALID_FUNCTION"],
            WINERROR["NOT_SUPPORTED"],
            WINERROR["INVALID_PARAMETER"],
        ):
            return Cause.UNSUPPORTED
        if code is not None:
            return None
        return super().classify(exc)

    def remedy(self, exc: OSError, mode: str) -> str:
        code = getattr(exc, "winerror", None)
        if code == WINERROR["PRIVILEGE_NOT_HELD"]:
            return (
                "symlinks need Developer Mode (Settings > System > For developers) "
                "or an elevated shell; or use --link-mode=hardlink"
            )
        if code in (WINERROR["INVALID_FUNCTION"], WINERROR["NOT_SUPPORTED"], WINERROR["INVALID_PARAMETER"]):
            if mode in ("clone", "reflink"):
                return (
                    "this volume cannot clone blocks: cloning needs ReFS or a Dev Drive; "
                    "use --link-mode=hardlink on NTFS"
                )
            return f"this volume does not support {mode}s (FAT or a network share?); use --link-mode=copy"
        if code == WINERROR["FILENAME_EXCED_RANGE"]:
            return (
                "the path is over 260 characters; pip-linkmode uses \\\\?\\ "
                "extended paths, so this comes from another tool: enable "
                "LongPathsEnabled or use a shorter target directory"
            )
        return super().remedy(exc, mode)
