"""``CachedWheelSource``: an ``installer`` WheelSource backed by a cache entry."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from installer.records import InvalidRecordEntry, RecordEntry, parse_record_file
from installer.sources import WheelContentElement, WheelSource, _WheelFileValidationError

from .cache import CachedFile, CachedWheel, WheelCache

if TYPE_CHECKING:
    from .placement import Layout

__all__ = ["CachedFileStream", "CachedWheelSource", "raise_as_installer_would"]


class CachedFileStream:
    """A read-only binary stream over a cached file that also says where it lives.

    ``LinkingDestination`` reads ``cache_path`` and ``cached`` and links the
    file instead of reading it; the file is only opened if someone reads.
    The reading half of a binary file's interface (``read``, ``readinto``,
    ``readline``, iteration, ``seek``, ``tell``, ``close``, a context
    manager), on a plain object: an install makes one per file, and an
    ``io`` object costs several times as much to make and to close.
    """

    __slots__ = ("_closed", "_f", "cache_path", "cached", "handover", "source")

    def __init__(
        self,
        cache_path: str,
        cached: CachedFile,
        source: CachedWheelSource | None = None,
        handover: Handover | None = None,
    ) -> None:
        self.cache_path = cache_path
        self.cached = cached
        self.source = source
        #: the walk of ``installer.install`` this stream comes from (``get_contents``)
        self.handover = handover
        self._f: io.BufferedReader | None = None
        self._closed = False

    def _file(self) -> io.BufferedReader:
        if self._f is None:
            if self._closed:
                raise ValueError("I/O operation on closed file.")
            self._f = open(self.cache_path, "rb")  # noqa: SIM115 - closed by close()
        return self._f

    @property
    def name(self) -> str:
        return self.cache_path

    @property
    def mode(self) -> str:
        return "rb"

    @property
    def closed(self) -> bool:
        return self._closed

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._file().fileno()

    def flush(self) -> None:
        pass

    def read(self, size: int | None = -1) -> bytes:
        return self._file().read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._file().read1(size)

    def readall(self) -> bytes:
        return self._file().read()

    def readinto(self, b: bytearray | memoryview) -> int:
        return self._file().readinto(b)

    def readline(self, size: int | None = -1) -> bytes:
        return self._file().readline(-1 if size is None else size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._file().readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._file())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file().seek(offset, whence)

    def tell(self) -> int:
        return self._file().tell() if self._f is not None else 0

    def close(self) -> None:
        self._closed = True
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> CachedFileStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CachedWheelSource(WheelSource):
    """A stand-in for installer's ``WheelFile`` whose files come from a cache entry.

    The same public members with the same signatures and exceptions
    (``open``, ``dist_info_dir``, ``dist_info_filenames``, ``data_dir``,
    ``read_dist_info``, ``validate_record``, ``get_contents``,
    ``validation_error``); its streams carry their cache path, so that
    ``LinkingDestination`` links the file instead of reading it.
    """

    validation_error = _WheelFileValidationError

    def __init__(self, entry: CachedWheel, cache: WheelCache | None = None) -> None:
        dist_info = entry.dist_info[: -len(".dist-info")]
        distribution, _, version = dist_info.rpartition("-")
        super().__init__(distribution=distribution, version=version)
        self.entry = entry
        self.cache = cache or WheelCache(entry.root.parent.parent)
        self._tree = str(entry.tree)
        #: the entry's layout as ``placement.stored_layout`` gives it (a
        #: Layout, None: none applies, False: none kept), once read or made
        self._layout: Layout | None | Literal[False] | object = _UNREAD

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, path: os.PathLike[str] | str, cache: WheelCache | str | os.PathLike[str] | None = None
    ) -> Iterator[CachedWheelSource]:
        """``WheelFile.open(path)``, from the cache (``cache``: a WheelCache or
        its directory; None: the default cache): the wheel is unpacked into
        it first if need be."""
        wheel_cache = cache if isinstance(cache, WheelCache) else WheelCache(cache)
        with wheel_cache.open(path) as source:
            yield source

    @property
    def dist_info_dir(self) -> str:
        return self.entry.dist_info

    @functools.cached_property
    def data_dir(self) -> str:
        """installer's (``CachedWheel.data_dir``), computed once
        (``installer.install`` reads it twice per file)."""
        return self.entry.data_dir

    @property
    def dist_info_filenames(self) -> list[str]:
        layout = self.stored_layout()
        if layout:  # (its names are those of the manifest: read no manifest for them)
            return list(layout.dist_info or ())
        return self.listed_dist_info_filenames()

    def listed_dist_info_filenames(self) -> list[str]:
        """``dist_info_filenames`` from the entry's manifest."""
        prefix = self.entry.dist_info + "/"
        names = [f.path[len(prefix):] for f in self.entry.files if f.path.startswith(prefix)]
        names.append("RECORD")
        return names

    def stored_layout(self) -> Layout | None | Literal[False]:
        """``placement.stored_layout`` of the entry, read once per source
        (or the layout ``load_layout`` made for it: ``layout_found``)."""
        layout = self._layout
        if layout is _UNREAD:
            from .placement import stored_layout

            layout = self._layout = stored_layout(self.entry)
        return layout  # type: ignore[return-value]

    def layout_found(self, layout: Layout | None) -> None:
        """The layout ``placement.load_layout`` made for the entry: this source's from now on."""
        self._layout = layout

    def read_dist_info(self, filename: str) -> str:
        """The text of a file of the .dist-info directory; KeyError if the
        wheel has no such file (as ``WheelFile``'s zip archive raises)."""
        try:
            return self.entry.path_of(f"{self.entry.dist_info}/{filename}").read_text("utf-8")
        except IsADirectoryError:
            return ""  # (a zip's directory entry reads as nothing)
        except FileNotFoundError:
            raise KeyError(f"There is no item named '{self.entry.dist_info}/{filename}' in the archive") from None

    def validate_record(self, *, validate_contents: bool = True) -> None:
        """``WheelFile.validate_record``, against the cache entry.

        Every file must be listed in RECORD with a hash and size (RECORD
        itself without); with ``validate_contents`` each cached file is read
        again and checked against them, so a file changed in the cache since
        it was unpacked is caught here. Problems raise
        ``_WheelFileValidationError`` listing each, in installer's words.
        """
        where = self.entry.filename
        record_path = f"{self.entry.dist_info}/RECORD"
        try:
            lines = self.read_dist_info("RECORD").splitlines()
            rows = {row[0]: row for row in parse_record_file(lines)}
        except Exception as exc:
            raise _WheelFileValidationError([f"Unable to retrieve `RECORD` from {where}: {exc!r}"]) from exc
        issues: list[str] = []
        for signature in _SIGNATURES:  # not RECORD's to list (they sign it)
            if f"{self.entry.dist_info}/{signature}" in rows:
                issues.append(
                    f"In {where}, digital signature file {self.entry.dist_info}/{signature} "
                    "is incorrectly contained in RECORD."
                )
        for cached in self.entry.files:
            if cached.path.rpartition("/")[2] in _SIGNATURES and cached.path.startswith(self.entry.dist_info + "/"):
                continue
            elements = rows.pop(cached.path, None)
            if elements is None:
                issues.append(f"In {where}, {cached.path} is not mentioned in RECORD")
                continue
            try:
                record = RecordEntry.from_elements(*elements)
            except InvalidRecordEntry as exc:
                issues.extend(
                    f"In {where}, entry in RECORD file for {cached.path} is invalid: {issue}" for issue in exc.issues
                )
                continue
            if cached.path == record_path:
                if record.hash_ is not None or record.size is not None:
                    issues.append(f"In {where}, RECORD file incorrectly contains hash / size.")
                continue
            if record.hash_ is None or record.size is None:
                issues.append(f"In {where}, hash / size of {cached.path} is not included in RECORD")
            if validate_contents:
                try:
                    with open(f"{self._tree}/{cached.path}", "rb") as stream:
                        matches = record.validate_stream(cast(BinaryIO, stream))
                except OSError as exc:
                    matches = False
                    issues.append(f"In {where}, {cached.path} cannot be read from the cache: {exc}")
                    continue
                if not matches:
                    issues.append(f"In {where}, hash / size of {cached.path} didn't match RECORD")
        if issues:
            raise _WheelFileValidationError(issues)

    def positioned_files(self) -> list[CachedFile]:
        """The entry's files by position (``Handover``): in the wheel's
        order, its own RECORD left out, as ``Layout.keys`` counts them."""
        own_record = f"{self.entry.dist_info}/RECORD"
        return [f for f in self.entry.files if f.path != own_record]

    def get_contents(self) -> Iterator[WheelContentElement]:
        """Every file of the wheel, as ``WheelFile`` gives them, RECORD last
        (with no hash or size, as RECORD lists itself). Cached files come as
        ``CachedFileStream``s; RECORD as a plain stream (it is never linked).

        One exception, for ``installer.install`` alone: when it walks this
        very generator (not one wrapping it) for its own destination, each
        stream carries a ``Handover``. A ``LinkingDestination`` that is that
        destination and writes files its own way (no subclass's
        ``write_to_fs``, no ``write_file`` of the instance's own) may place
        the whole entry from its layout at the first file and set the
        handover's ``keep``: the files placed are then not handed to
        installer any more (only those in ``keep`` are), and that destination's
        ``finalize_installation`` lists them in RECORD where installer would
        have. Any other caller gets every file, and may leave some out.
        """
        tree = self._tree
        handover = _installers_handover(self)
        own_record = f"{self.entry.dist_info}/RECORD"
        position = 0  # among the files but the wheel's own RECORD, as a layout counts them
        layout = self.stored_layout() if handover is not None else None
        files: Iterable[CachedFile]
        if handover is not None and layout and layout.handed:  # (the manifest is read only if need be)
            yield from self._handed_from_layout(handover, layout.handed)
            files = ()
            if handover.keep is None:  # not placed whole: the rest one by one, from the manifest
                position = 1
                files = itertools.islice(self.positioned_files(), 1, None)
        else:
            files = self.entry.files
        for f in files:
            if handover is not None and f.path != own_record:
                at, position = position, position + 1
                keep = handover.keep
                if keep is not None and at not in keep:
                    continue  # placed already: listed in RECORD by the destination
                handover.handed.append(at)
            stream = CachedFileStream(f"{tree}/{f.path}", f, self, handover)
            with stream:
                yield (f.path, f.hash, str(f.size)), cast(BinaryIO, stream), f.executable
        record = f"{self.entry.dist_info}/RECORD"
        with open(f"{tree}/{record}", "rb") as plain:
            yield (record, "", ""), cast(BinaryIO, plain), False

    def _handed_from_layout(self, handover: Handover, rows: list[list[Any]]) -> Iterator[WheelContentElement]:
        """``get_contents``'s walk for installer when the layout has the rows
        it hands over (``Layout.handed``): the first file, then, if its
        destination placed the entry whole at it, the files it keeps in
        ``keep``; the manifest is not read. The caller goes on from the
        second file if the destination did not."""
        tree = self._tree
        for position, path, hash_, size, executable, shebang in rows:
            if position:
                keep = handover.keep
                if keep is None:
                    return  # (the caller hands the rest)
                if position not in keep:
                    continue
            handover.handed.append(position)
            cached = CachedFile(path, hash_, size, bool(executable), bool(shebang))
            stream = CachedFileStream(f"{tree}/{path}", cached, self, handover)
            with stream:
                yield (path, hash_, str(size)), cast(BinaryIO, stream), cached.executable


class Handover:
    """One walk of a ``CachedWheelSource``'s files by ``installer.install``
    (``get_contents``): its destination, what that destination has placed
    already, and what was therefore not handed over."""

    __slots__ = ("destination", "handed", "keep")

    def __init__(self, destination: object) -> None:
        #: installer's destination for this install
        self.destination = destination
        #: None: hand over every file; else the positions of the files that
        #: are still handed over (a position counts the wheel's files in
        #: their order, its own RECORD left out, as ``Layout.keys`` does)
        self.keep: frozenset[int] | None = None
        #: the positions of the files handed over so far, in order
        self.handed: list[int] = []


def _installers_handover(source: CachedWheelSource) -> Handover | None:
    """A ``Handover`` if ``installer.install`` itself is walking this
    source's own ``get_contents`` (called from the generator, before its
    first file); None for any other caller."""
    if type(source).get_contents is not CachedWheelSource.get_contents:
        return None  # (a subclass may filter what it hands over)
    core = sys.modules.get("installer._core")
    code = getattr(getattr(core, "install", None), "__code__", None)
    if code is None:
        return None
    try:
        caller = sys._getframe(2)  # 0: here, 1: the generator, 2: what resumed it
    except ValueError:  # driven from C code with no Python frame above
        return None
    if caller.f_code is not code:
        return None
    names = caller.f_locals
    if names.get("source") is not source:
        return None
    return Handover(names.get("destination"))


#: ``CachedWheelSource._layout`` before the entry's layout is looked for
_UNREAD = object()

#: signature files of RECORD, which RECORD does not list
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")


def raise_as_installer_would(path: str | os.PathLike[str]) -> None:
    """Raise what ``WheelFile.open(path)`` and its ``dist_info_dir`` raise
    for this file (a file name that is no wheel's, a wrong or second
    .dist-info directory); return if they raise nothing."""
    import zipfile

    from installer.sources import WheelFile
    from installer.utils import parse_wheel_filename

    parse_wheel_filename(os.path.basename(os.fspath(path)))  # ValueError: Not a valid wheel filename
    try:
        with zipfile.ZipFile(path) as archive:
            WheelFile(archive).dist_info_dir  # noqa: B018 - installer's checks of the .dist-info
    except (OSError, zipfile.BadZipFile):
        return
