"""One swap for code built on ``installer``: ``install()`` takes what ``installer.install`` takes, and links.

A tool that installs with ``installer.install(source, destination,
additional_metadata)`` changes that one call to
``pip_linkmode.installer_api.install(...)`` with the same arguments:

- ``source`` may be installer's ``WheelFile`` (as ``WheelFile.open(path)``
  gives), a ``CachedWheelSource``, or a wheel file's path; files then come
  from the shared cache (the wheel is unpacked into it once);
- ``destination`` may be installer's ``SchemeDictionaryDestination`` or a
  subclass of it (poetry's, pdm's): it is turned into a
  ``LinkingDestination`` with the same fields and, for a subclass, its own
  methods kept (``linking_destination``), so its ``write_to_fs`` still sees
  every file.

The install is all or nothing: a failure removes what it created. Several
installs in one ``LinkBatch`` (``batch=``) are placed while the next is
prepared, and are all or nothing together.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any, cast

from installer.destinations import SchemeDictionaryDestination, WheelDestination
from installer.sources import WheelFile, WheelSource

from .batch import LinkBatch
from .cache import WheelCache
from .destination import LinkingDestination
from .modes import LinkMode, link_mode_from_env, parse_link_mode
from .source import CachedWheelSource

__all__ = ["install", "linking_destination", "linking_source"]

#: subclasses made for tools' own destination classes, by class
_linking_classes: dict[type, type] = {}


def linking_destination(
    destination: WheelDestination, link_mode: LinkMode | str | None = None, *, batch: LinkBatch | None = None
) -> WheelDestination:
    """``destination`` as a ``LinkingDestination``.

    A ``LinkingDestination`` is returned as it is; a
    ``SchemeDictionaryDestination`` becomes one with the same fields (and
    ``link_mode``, None: ``PIP_LINK_MODE`` or auto, or the ``batch``'s
    mode; in ``batch``, a ``LinkBatch``, if given: any other destination
    with a ``batch`` is refused with ValueError); an instance of a
    subclass of it becomes an instance of a class deriving from both that
    subclass and ``LinkingDestination``, with its attributes copied, so
    the subclass's overrides apply to every file. Any other destination is
    returned unchanged (it gets no links).
    """
    if isinstance(destination, LinkingDestination) or not isinstance(destination, SchemeDictionaryDestination):
        if batch is not None and getattr(destination, "batch", None) is not batch:
            raise ValueError(
                f"a {type(destination).__name__} is no destination of this LinkBatch: give a "
                "SchemeDictionaryDestination (or a subclass), or a LinkingDestination made with batch="
            )
        return destination
    if link_mode is None:
        mode = batch.link_mode if batch is not None else link_mode_from_env()
    else:
        mode = parse_link_mode(link_mode)
    cls = type(destination)
    if cls is SchemeDictionaryDestination:
        linking_cls: type = LinkingDestination
    else:
        linking_cls = _linking_classes.get(cls) or _linking_classes.setdefault(
            cls, type(f"Linking{cls.__name__}", (cls, LinkingDestination), {"__module__": cls.__module__})
        )
    known = {f.name for f in fields(SchemeDictionaryDestination)}
    kwargs = {name: getattr(destination, name) for name in known if hasattr(destination, name)}
    # (LinkingDestination's own __init__: a subclass's may take other arguments)
    linked: Any = object.__new__(linking_cls)
    LinkingDestination.__init__(linked, **kwargs, link_mode=mode, batch=batch)
    for name, value in vars(destination).items():  # a subclass's own attributes
        if name not in known:
            setattr(linked, name, value)
    return linked  # type: ignore[no-any-return]


@contextlib.contextmanager
def linking_source(
    source: WheelSource | str | os.PathLike[str], cache: WheelCache | str | os.PathLike[str] | None = None
) -> Iterator[WheelSource]:
    """``source`` as a ``CachedWheelSource``: a ``WheelFile`` or a path is
    opened from the cache; any other source is yielded unchanged."""
    if isinstance(source, (str, os.PathLike)):
        path: str | None = os.fspath(source)
    elif isinstance(source, WheelFile):
        path = source._zipfile.filename  # (its archive's path: WheelFile keeps no other)
    else:
        path = None
    if path is None:
        yield cast(WheelSource, source)
        return
    with CachedWheelSource.open(path, cache) as cached:
        yield cached


def install(
    source: WheelSource | str | os.PathLike[str],
    destination: WheelDestination,
    additional_metadata: Mapping[str, bytes] | None = None,
    *,
    cache: WheelCache | str | os.PathLike[str] | None = None,
    link_mode: LinkMode | str | None = None,
    batch: LinkBatch | None = None,
) -> None:
    """``installer.install(source, destination, additional_metadata)``,
    with files placed by links from the cache (see the module's text). In
    a ``batch`` (``LinkBatch``, entered) the files may still be in
    placement when this returns, and are in place at the batch's end."""
    import installer

    target: Any = linking_destination(destination, link_mode, batch=batch)
    metadata = dict(additional_metadata or {})
    with linking_source(source, cache) as cached:
        if isinstance(target, LinkingDestination) and isinstance(cached, CachedWheelSource):
            target.install_cached(cached, metadata)
        else:
            installer.install(cached, target, metadata)
