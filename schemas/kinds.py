"""Message kinds and node roles: small enums every other module shares."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = ["Kind", "Role"]


class Kind(IntEnum):
    """What an envelope carries. The value is the byte on the wire: append only."""

    ALERT = 1
    INCIDENT = 2
    BULLETIN = 3
    RECEIPT = 4
    KEYSET = 5
    REVOCATION = 6
    TREND = 7

    @property
    def label(self) -> str:
        """Lower-case name, as used in documents and logs."""
        return self.name.lower()


class Role(StrEnum):
    """What a node is, which decides what it may send (see authority.py)."""

    HQ = "hq"
    BLO = "blo"
    REGIONAL = "regional"
    OBSERVER = "observer"
    #: A service identity (the archive): reads what it stores, signs nothing.
    ARCHIVE = "archive"
