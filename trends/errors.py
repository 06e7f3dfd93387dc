"""The exception tree of the trends package, under blo-alert's one root::

BloError
└── TrendsError          anything trends cannot do
    ├── SourceError      an inbox or archive file that cannot be read
    ├── SimulateError    a simulation asked for something impossible
    └── SummaryError     a trend summary too large for the wire budget
"""

from __future__ import annotations

from schemas.errors import BloError

__all__ = ["SimulateError", "SourceError", "SummaryError", "TrendsError"]


class TrendsError(BloError):
    """Base of every error raised by the trends package."""


class SourceError(TrendsError):
    """An inbox or archive file that cannot be read; the message names the file."""


class SimulateError(TrendsError):
    """Simulation parameters out of range; the message says which and what is allowed."""


class SummaryError(TrendsError):
    """A trend summary that does not fit its size budget (1 KB per office)."""
