"""The signed trend summary for one office, built from an analysis: its level against
its country's, and the active signals near it, in English and Khmer, in at most 1 KB.

The body model is part of the wire contract (schemas.trend, ``Kind.TREND``);
``blo-trends publish`` queues one per office in HQ's outbox.
"""

from __future__ import annotations

from schemas import MAX_SUMMARY, Lang, SignalKind, SummarySignal, TrendSummary, pack
from trends.detectors import Detector, Signal
from trends.errors import SummaryError
from trends.report import Analysis, Level
from trends.text import khmer_digits

__all__ = ["MAX_SUMMARY", "SummarySignal", "TrendSummary", "summary_for"]


def _headline(level: Level, lang: str) -> str:
    if lang == "km":
        return khmer_digits(
            f"{level.crossing}: {level.this_week} ករណីសប្តាហ៍នេះ; ធម្មតា {level.usual:.1f}; "
            f"មធ្យមប្រទេស {level.country_usual:.1f}"
        )
    return (
        f"{level.crossing}: {level.this_week} incidents this week; usual {level.usual:.1f}; "
        f"country average {level.country_usual:.1f}"
    )


def _near(level: Level, signal: Signal) -> bool:
    k = signal.key
    if k.level == "crossing":
        return k.office == level.office
    if k.level == "region":
        return k.place == level.region
    return k.place == level.country


def summary_for(analysis: Analysis, office: str, limit: int = MAX_SUMMARY) -> TrendSummary:
    """The summary of ``office``: as many of its nearby signals (own crossing first, then
    its region, then its country) as fit in ``limit`` bytes. Raises ``SummaryError`` if
    the office is unknown or even its headline does not fit."""
    level = next((lv for lv in analysis.levels if lv.office == office), None)
    if level is None:
        raise SummaryError(f"{office} has no incidents in this analysis: nothing to summarise")
    rank = {"crossing": 0, "region": 1, "country": 2}
    near = sorted(
        (s for s in analysis.signals if _near(level, s)),
        key=lambda s: (rank[s.key.level], s.p if s.p is not None else 0.0),
    )
    kinds = {d: SignalKind(d.value) for d in Detector}
    items = [
        SummarySignal(
            kind=kinds[s.detector],
            place=s.key.place,
            observed=round(s.observed, 2),
            expected=round(s.expected, 2),
            text={Lang.EN: s.explain("en")[:300], Lang.KM: s.explain("km")[:300]},
        )
        for s in near[:8]
    ]
    base = dict(
        office=office,
        crossing=level.crossing,
        week=analysis.week,
        this_week=level.this_week,
        usual=round(level.usual, 2),
        country_usual=round(level.country_usual, 2),
        headline={Lang.EN: _headline(level, "en"), Lang.KM: _headline(level, "km")},
    )
    while True:
        summary = TrendSummary(**base, signals=tuple(items))  # type: ignore[arg-type]
        if len(pack(summary)) <= limit:
            return summary
        if not items:
            raise SummaryError(
                f"the summary of {office} is {len(pack(summary))} bytes without signals, "
                f"over the {limit}-byte budget"
            )
        items.pop()
