"""The exception tree of interchange, rooted in schemas.errors.BloError::

BloError
└── InterchangeError     a message cannot be moved to or from another format
    ├── ExportError      nothing (or not this) can be exported: names the id or option
    └── CapError         a CAP file that cannot be read as a blo-alert alert
        ├── UnsafeXmlError   a DTD, entity or external reference: refused unread
        └── UnmappableError  valid CAP holding something blo-alert cannot carry
"""

from __future__ import annotations

from schemas.errors import BloError

__all__ = ["CapError", "ExportError", "InterchangeError", "UnmappableError", "UnsafeXmlError"]


class InterchangeError(BloError):
    """A message cannot be moved to or from another system's format."""


class ExportError(InterchangeError):
    """The messages asked for cannot be exported (unknown id, nothing matches)."""


class CapError(InterchangeError):
    """A CAP document that is not well-formed or not valid CAP 1.2; names the source."""


class UnsafeXmlError(CapError):
    """XML with a DTD, entity declaration or external reference (bomb, XXE): refused."""


class UnmappableError(CapError):
    """Valid CAP 1.2 holding a value blo-alert cannot carry; says which and what to do."""
