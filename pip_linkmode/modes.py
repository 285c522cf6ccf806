"""Link modes and how a mode is chosen (flag, environment, default)."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping

__all__ = ["LinkMode", "parse_link_mode", "link_mode_from_env", "ENV_LINK_MODE"]

ENV_LINK_MODE = "PIP_LINK_MODE"


class LinkMode(str, enum.Enum):
    """How files get from the cache into an environment."""

    AUTO = "auto"
    CLONE = "clone"
    HARDLINK = "hardlink"
    SYMLINK = "symlink"
    COPY = "copy"

    def __str__(self) -> str:
        return self.value

    @property
    def verb(self) -> str:
        """Past participle used in summaries ("cloned", "hardlinked", ...)."""
        return _VERBS[self]


_VERBS = {
    LinkMode.AUTO: "placed",
    LinkMode.CLONE: "cloned",
    LinkMode.HARDLINK: "hardlinked",
    LinkMode.SYMLINK: "symlinked",
    LinkMode.COPY: "copied",
}

_ALIASES = {"reflink": LinkMode.CLONE}

CHOICES: tuple[str, ...] = tuple(m.value for m in LinkMode) + tuple(_ALIASES)


def parse_link_mode(value: str | LinkMode) -> LinkMode:
    """Turn a user's spelling into a LinkMode; ``reflink`` means ``clone``.

    Raises ValueError naming the accepted spellings.
    """
    if isinstance(value, LinkMode):
        return value
    key = value.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    try:
        return LinkMode(key)
    except ValueError:
        raise ValueError(
            f"unknown link mode {value!r}: choose one of {', '.join(CHOICES)}"
        ) from None


def link_mode_from_env(
    environ: Mapping[str, str] | None = None, default: LinkMode = LinkMode.AUTO
) -> LinkMode:
    """The mode set by ``PIP_LINK_MODE``, else ``default``."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_LINK_MODE, "").strip()
    return parse_link_mode(value) if value else default
