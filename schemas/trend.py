"""The trend summary an HQ sends each office: its crossing's level against its
country's, and the active signals near it, in English and Khmer, in at most 1 KB.

A message kind of its own (``Kind.TREND``) to one office (scope ``node:ID``),
published on that office's topic: the same ACL as an alert to one office, and
only an HQ may send it to its own country's offices (authority.py). The
analysis that fills it lives in the ``trends`` package.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from schemas.base import ShortText, WireModel
from schemas.ids import NodeId
from schemas.messages import Lang

__all__ = ["MAX_SUMMARY", "SignalKind", "SummarySignal", "TrendSummary"]

#: The wire budget of one office's summary body.
MAX_SUMMARY = 1024


class SignalKind(StrEnum):
    """The detector behind a summarised signal (wire codes by position: append only)."""

    EARS_C2 = "ears_c2"
    POISSON = "poisson"
    FIRST_SEEN = "first_seen"
    QUANTITY = "quantity_spike"
    GLM = "farrington_glm"


_Line = Annotated[str, Field(min_length=1, max_length=300)]


class SummarySignal(WireModel):
    """One active signal near the office, with its line per language."""

    kind: SignalKind
    place: ShortText
    observed: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    expected: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    text: Annotated[dict[Lang, _Line], Field(min_length=1)]


class TrendSummary(WireModel):
    """One office's trend summary for one week."""

    office: NodeId
    crossing: ShortText
    #: The week as its Monday's week number (trends/weeks.py) and ISO label.
    week: Annotated[int, Field(ge=0)]
    this_week: Annotated[int, Field(ge=0)]
    usual: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    country_usual: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    headline: Annotated[dict[Lang, _Line], Field(min_length=1)]
    signals: Annotated[tuple[SummarySignal, ...], Field(max_length=8)] = ()
