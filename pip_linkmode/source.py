"""``CachedWheelSource``: an ``installer`` WheelSource backed by a cache entry."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, cast

from installer.sources import WheelContentElement, WheelSource

from .cache import CachedFile, CachedWheel, WheelCache

__all__ = ["CachedFileStream", "CachedWheelSource"]


class CachedFileStream(io.RawIOBase):
    """A read-only stream over a cached file that also says where it lives.

    ``LinkingDestination`` reads ``cache_path`` and ``cached`` and links the
    file instead of reading it; the file is only opened if someone reads.
    """

    def __init__(self, cache_path: str, cached: CachedFile, source: CachedWheelSource | None = None) -> None:
        super().__init__()
        self.cache_path = cache_path
        self.cached = cached
        self.source = source
        self._f: BinaryIO | None = None

    def _file(self) -> BinaryIO:
        if self._f is None:
            self._f = cast(BinaryIO, open(self.cache_path, "rb"))  # noqa: SIM115
        return self._f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        return self._file().readinto(b)  # type: ignore[attr-defined, no-any-return]

    def read(self, size: int = -1) -> bytes:
        return self._file().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._file().readline(-1 if size is None else size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file().seek(offset, whence)

    def tell(self) -> int:
        return self._file().tell() if self._f else 0

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        super().close()


class CachedWheelSource(WheelSource):
    """Yields a cache entry's files as streams that carry their cache path."""

    def __init__(self, entry: CachedWheel, cache: WheelCache | None = None) -> None:
        dist_info = entry.dist_info[: -len(".dist-info")]
        distribution, _, version = dist_info.rpartition("-")
        super().__init__(distribution=distribution, version=version)
        self.entry = entry
        self.cache = cache or WheelCache(entry.root.parent.parent)
        self._tree = str(entry.tree)

    @property
    def dist_info_dir(self) -> str:
        return self.entry.dist_info

    @property
    def dist_info_filenames(self) -> list[str]:
        prefix = self.entry.dist_info + "/"
        names = [f.path[len(prefix):] for f in self.entry.files if f.path.startswith(prefix)]
        names.append("RECORD")
        return names

    def read_dist_info(self, filename: str) -> str:
        return self.entry.path_of(f"{self.entry.dist_info}/{filename}").read_text("utf-8")

    def validate_record(self) -> None:
        """Nothing to do: every file was verified against RECORD when cached."""

    def get_contents(self) -> Iterator[WheelContentElement]:
        tree = self._tree
        for f in self.entry.files:
            stream = CachedFileStream(f"{tree}/{f.path}", f, self)
            with stream:
                yield (f.path, f.hash, str(f.size)), cast(BinaryIO, stream), f.executable
