"""A pytest plugin that runs pypa/installer's own tests against pip-linkmode.

Loaded into installer's test session with ``-p installer_swap`` (see
``.ci/installer-suite``); ``PIP_LINKMODE_PEER=<source>:<mode>`` names the
combination:

- ``<source>`` is ``wheelfile`` (installer's own ``WheelFile`` objects) or
  ``cached`` (``WheelFile.open(path)`` yields
  ``pip_linkmode.WheelCache(<session dir>).open(path)``, a
  ``CachedWheelSource``);
- ``<mode>`` is a link mode (auto, clone, hardlink, symlink, copy), given to
  every ``LinkingDestination`` as its ``link_mode`` field.

``installer.destinations.SchemeDictionaryDestination`` is replaced by a
factory of ``LinkingDestination`` before installer's test modules are
imported, so their ``from installer.destinations import ...`` and
``installer.__main__``'s bind ours. The plugin proves the swap: it fails the
session when a module still holds the original class, when no
``LinkingDestination`` (or, for ``cached``, no cache entry) was used, or when
a cached run linked no file at all.

``PIP_LINKMODE_PEER_XFAIL`` names the expected-failures file (lines
``<source>:<mode> <test id> -- <reason>``, fnmatch patterns allowed in the
first two fields): those tests are marked strictly expected to fail, so a
test that starts passing is reported too. ``PIP_LINKMODE_PEER_RESULT`` names
a JSON file that receives the outcome counts and the swap's counters.
``PIP_LINKMODE_PEER_NO_FALLBACK=1`` says the requested mode works where the
tests run: a cached run whose files were placed by another mode then fails.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ENV = "PIP_LINKMODE_PEER"
ENV_XFAIL = "PIP_LINKMODE_PEER_XFAIL"
ENV_RESULT = "PIP_LINKMODE_PEER_RESULT"
ENV_NO_FALLBACK = "PIP_LINKMODE_PEER_NO_FALLBACK"
SOURCES = ("wheelfile", "cached")


@dataclass
class Swap:
    """The combination in effect and what the swapped names were used for."""

    source: str
    mode: str
    cache_dir: str | None = None
    destinations: list[Any] = field(default_factory=list)
    cached_opens: int = 0
    #: test ids during whose call a LinkingDestination was built / a cached source opened
    tests_with_destination: set[str] = field(default_factory=set)
    tests_with_cached: set[str] = field(default_factory=set)
    originals: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def combination(self) -> str:
        return f"{self.source}:{self.mode}"


_swap: Swap | None = None


def _parse_combination(value: str) -> tuple[str, str]:
    from pip_linkmode.modes import parse_link_mode

    source, sep, mode = value.partition(":")
    if not sep or source not in SOURCES:
        raise pytest.UsageError(
            f"{ENV}={value!r}: expected <source>:<mode>, source one of {', '.join(SOURCES)}"
        )
    try:
        return source, parse_link_mode(mode).value
    except ValueError as e:
        raise pytest.UsageError(f"{ENV}={value!r}: {e}") from None


def pytest_configure(config: pytest.Config) -> None:
    global _swap
    value = os.environ.get(ENV)
    if not value:
        raise pytest.UsageError(f"installer_swap needs {ENV}=<source>:<mode> (e.g. cached:hardlink)")
    source, mode = _parse_combination(value)
    swap = _swap = Swap(source, mode)

    import installer.destinations
    import installer.sources

    from pip_linkmode import LinkingDestination, WheelCache

    original_destination = installer.destinations.SchemeDictionaryDestination
    swap.originals["SchemeDictionaryDestination"] = original_destination

    def linking_destination(*args: Any, **kwargs: Any) -> Any:
        """Stands in for SchemeDictionaryDestination(...): a LinkingDestination in this mode."""
        kwargs.setdefault("link_mode", swap.mode)
        destination = LinkingDestination(*args, **kwargs)
        swap.destinations.append(destination)
        return destination

    linking_destination.__name__ = "SchemeDictionaryDestination"
    installer.destinations.SchemeDictionaryDestination = linking_destination  # type: ignore[misc, assignment]
    if "installer.__main__" in sys.modules:  # bound the original already: rebind
        sys.modules["installer.__main__"].SchemeDictionaryDestination = linking_destination  # type: ignore[attr-defined]

    if source == "cached":
        swap.cache_dir = tempfile.mkdtemp(prefix="installer-suite-cache-")
        cache = WheelCache(swap.cache_dir)
        wheel_file = installer.sources.WheelFile
        swap.originals["WheelFile.open"] = wheel_file.__dict__["open"]

        def open_cached(cls: type, path: Any) -> AbstractContextManager[Any]:
            """Stands in for WheelFile.open(path): the wheel's cache entry as a CachedWheelSource."""
            swap.cached_opens += 1
            return cache.open(path)

        wheel_file.open = classmethod(open_cached)  # type: ignore[method-assign, assignment]


def pytest_unconfigure(config: pytest.Config) -> None:
    swap = _swap
    if swap is None:
        return
    import installer.destinations
    import installer.sources

    installer.destinations.SchemeDictionaryDestination = swap.originals["SchemeDictionaryDestination"]  # type: ignore[misc]
    if "WheelFile.open" in swap.originals:
        installer.sources.WheelFile.open = swap.originals["WheelFile.open"]  # type: ignore[method-assign]
    if swap.cache_dir:
        shutil.rmtree(swap.cache_dir, ignore_errors=True)


def _expected_failures(path: str) -> list[tuple[str, str, str]]:
    """(combination pattern, test id pattern, reason) per line of the file."""
    entries = []
    for number, raw in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, reason = line.partition(" -- ")
        fields = head.split()
        if not sep or len(fields) != 2 or not reason.strip():
            raise pytest.UsageError(
                f"{path}:{number}: expected '<source>:<mode> <test id> -- <reason>', got {raw!r}"
            )
        entries.append((fields[0], fields[1], reason.strip()))
    return entries


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    swap = _swap
    assert swap is not None
    original = swap.originals["SchemeDictionaryDestination"]
    # Every module of installer's (its tests, its CLI) that imported the name
    # must hold ours; pip_linkmode's own modules subclass the original.
    rootdir = str(config.rootpath) + os.sep
    bound = 0
    for name, module in list(sys.modules.items()):
        held = getattr(module, "SchemeDictionaryDestination", None)
        ours = name.startswith("installer.") or str(getattr(module, "__file__", "")).startswith(rootdir)
        if not ours or held is None or name == "installer.destinations":
            continue
        if held is original:
            swap.problems.append(f"module {name} still binds installer's SchemeDictionaryDestination")
        else:
            bound += 1
    if not bound and any(item.nodeid.startswith("tests/test_destinations.py") for item in items):
        swap.problems.append("test_destinations.py was collected without binding SchemeDictionaryDestination")
    xfail_file = os.environ.get(ENV_XFAIL)
    if not xfail_file:
        return
    entries = _expected_failures(xfail_file)
    for item in items:
        for combination, test_id, reason in entries:
            if fnmatch.fnmatchcase(swap.combination, combination) and fnmatch.fnmatchcase(
                item.nodeid, test_id
            ):
                item.add_marker(pytest.mark.xfail(reason=f"expected by design: {reason}", strict=True))
                break


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    swap = _swap
    assert swap is not None
    destinations, opens = len(swap.destinations), swap.cached_opens
    try:
        return (yield)  # setup, call and teardown: fixtures build destinations too
    finally:
        if len(swap.destinations) > destinations:
            swap.tests_with_destination.add(item.nodeid)
        if swap.cached_opens > opens:
            swap.tests_with_cached.add(item.nodeid)


def _placed(swap: Swap) -> Counter[str]:
    """Files the LinkingDestinations placed from the cache, per mode used."""
    total: Counter[str] = Counter()
    for destination in swap.destinations:
        for mode, count in destination.report.counts.items():
            total[str(mode)] += count
    return total


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    swap = _swap
    assert swap is not None
    if session.config.option.collectonly:
        return
    if not swap.destinations:
        swap.problems.append("no LinkingDestination was built: the swap was not in effect")
    if swap.source == "cached":
        if not swap.cached_opens:
            swap.problems.append("no wheel was opened through the cache: the swap was not in effect")
        placed = _placed(swap)
        if not sum(placed.values()):
            swap.problems.append("no file was placed from the cache by a LinkingDestination")
        elif os.environ.get(ENV_NO_FALLBACK) and swap.mode != "auto" and set(placed) != {swap.mode}:
            swap.problems.append(
                f"{swap.mode} was requested and works here ({ENV_NO_FALLBACK}), but files were placed by "
                + ", ".join(sorted(placed))
            )
    if swap.problems and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _notes(swap: Swap) -> list[str]:
    notes: list[str] = []
    for destination in swap.destinations:
        for note in destination.report.notes:
            if note not in notes:
                notes.append(note)
    return notes


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    swap = _swap
    assert swap is not None
    write: Callable[[str], None] = terminalreporter.write_line
    placed = _placed(swap)
    write(
        f"installer_swap {swap.combination}: {len(swap.destinations)} LinkingDestination(s) in "
        f"{len(swap.tests_with_destination)} test(s); {swap.cached_opens} cached open(s) in "
        f"{len(swap.tests_with_cached)} test(s); files placed from the cache: "
        + (", ".join(f"{n} {m}" for m, n in sorted(placed.items())) or "none")
    )
    for note in _notes(swap):
        write(f"installer_swap {swap.combination}: note: {note}")
    for problem in swap.problems:
        terminalreporter.write_line(f"installer_swap {swap.combination}: FAILED: {problem}", red=True)
    result = os.environ.get(ENV_RESULT)
    if result:
        stats = terminalreporter.stats
        outcomes = {key: len(stats.get(key, [])) for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}
        failed = sorted(
            {
                f"{report.nodeid} ({report.when})" if report.when != "call" else report.nodeid
                for key in ("failed", "error", "xpassed")
                for report in stats.get(key, [])
                if hasattr(report, "nodeid")
            }
        )
        data = {
            "combination": swap.combination,
            "outcomes": outcomes,
            "failed": failed,
            "destinations": len(swap.destinations),
            "tests_with_destination": len(swap.tests_with_destination),
            "cached_opens": swap.cached_opens,
            "tests_with_cached": len(swap.tests_with_cached),
            "placed": dict(placed),
            "notes": _notes(swap),
            "problems": swap.problems,
        }
        Path(result).write_text(json.dumps(data, indent=1) + "\n", "utf-8")
