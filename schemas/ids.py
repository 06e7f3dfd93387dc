"""Names on the wire: node ids, country codes, region names and scopes.

A node id is ``<country>-<name>`` in lower case (``kh-nacd``, ``kh-blo-bavet``,
``vn-blo-mocbai``), so every id says which country's root vouches for it and is
safe as an MQTT topic level (no ``/``, ``+``, ``#``). A country's root signs
trust messages under the bare country code (``kh``), which no node id can equal.

A scope is the audience of one message, bound into its signature::

    all                      every office in every country
    country:kh               every office of one country
    region:kh-vn-bavet       every office in one border region
    node:kh-blo-bavet        one office
    bulletin:vn-blo-mocbai   the named counterpart offices (comma-separated)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints

__all__ = [
    "COUNTRIES",
    "CountryCode",
    "NodeId",
    "RegionName",
    "Scope",
    "ScopeKind",
    "country_of",
    "is_country",
    "is_node_id",
    "is_region",
]

#: The six countries of the Greater Mekong Subregion programme.
COUNTRIES = frozenset({"kh", "cn", "la", "mm", "th", "vn"})

_COUNTRY = r"[a-z]{2}"
_NODE = r"[a-z]{2}-[a-z0-9]+(?:-[a-z0-9]+)*"
_REGION = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_NODE_RE = re.compile(_NODE)
_REGION_RE = re.compile(_REGION)
_COUNTRY_RE = re.compile(_COUNTRY)
MAX_NAME = 40

NodeId = Annotated[str, StringConstraints(pattern=f"^{_NODE}$", max_length=MAX_NAME)]
CountryCode = Annotated[str, StringConstraints(pattern=f"^{_COUNTRY}$")]
RegionName = Annotated[str, StringConstraints(pattern=f"^{_REGION}$", max_length=MAX_NAME)]


def is_node_id(value: str) -> bool:
    """True if ``value`` is a well-formed node id such as ``kh-blo-bavet``."""
    return len(value) <= MAX_NAME and _NODE_RE.fullmatch(value) is not None


def is_country(value: str) -> bool:
    """True if ``value`` is a two-letter lower-case country code."""
    return _COUNTRY_RE.fullmatch(value) is not None


def is_region(value: str) -> bool:
    """True if ``value`` is a well-formed region name."""
    return len(value) <= MAX_NAME and _REGION_RE.fullmatch(value) is not None


def country_of(node: str) -> str:
    """The country code a node id (or a bare country code) belongs to."""
    return node[:2]


class ScopeKind(StrEnum):
    """The kinds of audience a message can have."""

    ALL = "all"
    COUNTRY = "country"
    REGION = "region"
    NODE = "node"
    BULLETIN = "bulletin"


_MAX_RECIPIENTS = 16


@dataclass(frozen=True, slots=True)
class Scope:
    """A parsed, validated scope. ``targets`` is empty for ``all``."""

    kind: ScopeKind
    targets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse ``all``, ``country:kh``, ``region:NAME``, ``node:ID`` or ``bulletin:ID,ID``.

        Raises ``ValueError`` naming what is wrong; callers translate it.
        """
        if text == "all":
            return cls(ScopeKind.ALL)
        head, sep, rest = text.partition(":")
        shown = text[:60]  # the text may be hostile: never echo all of it
        if not sep:
            raise ValueError(
                f"scope {shown!r} is not all, country:CC, region:NAME, node:ID or bulletin:ID,..."
            )
        try:
            kind = ScopeKind(head)
        except ValueError:
            raise ValueError(f"scope {shown!r} has unknown kind {head[:20]!r}") from None
        targets = tuple(rest.split(","))
        check = {
            ScopeKind.COUNTRY: is_country,
            ScopeKind.REGION: is_region,
            ScopeKind.NODE: is_node_id,
            ScopeKind.BULLETIN: is_node_id,
        }.get(kind)
        if check is None or not all(check(t) for t in targets):
            raise ValueError(f"scope {shown!r} names a malformed {head}")
        if kind is not ScopeKind.BULLETIN and len(targets) != 1:
            raise ValueError(f"scope {shown!r}: a {head} scope names exactly one target")
        if kind is ScopeKind.BULLETIN and (
            len(targets) > _MAX_RECIPIENTS or len(set(targets)) != len(targets)
        ):
            raise ValueError(
                f"scope {shown!r}: a bulletin names 1 to {_MAX_RECIPIENTS} distinct offices"
            )
        return cls(kind, targets)

    @classmethod
    def all(cls) -> Scope:
        """Every office."""
        return cls(ScopeKind.ALL)

    @classmethod
    def country(cls, code: str) -> Scope:
        """Every office of one country."""
        return cls.parse(f"country:{code}")

    @classmethod
    def region(cls, name: str) -> Scope:
        """Every office of one border region."""
        return cls.parse(f"region:{name}")

    @classmethod
    def node(cls, node: str) -> Scope:
        """One office."""
        return cls.parse(f"node:{node}")

    @classmethod
    def bulletin(cls, *recipients: str) -> Scope:
        """Named counterpart offices."""
        return cls.parse("bulletin:" + ",".join(recipients))

    @property
    def target(self) -> str:
        """The single target of a country, region or node scope."""
        return self.targets[0]

    def __str__(self) -> str:
        if self.kind is ScopeKind.ALL:
            return "all"
        return f"{self.kind.value}:{','.join(self.targets)}"
