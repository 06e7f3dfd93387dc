"""blo-alert trends: from signed incidents to signals that officers and HQ act on.

Pure core (no sockets, no clock: the week is an argument): ``records`` and
``counts`` turn incidents into weekly series per crossing x crime x substance and
their roll-ups; ``detectors`` flags weeks (EARS C2, Poisson exceedance, first seen,
quantity spikes, a Farrington-style GLM) as ``Signal``s that explain themselves
(``text``); ``report`` analyses one week; ``summary`` is the <= 1 KB body for the
field. Around it: ``sources`` reads an inbox or the archive store, ``plots`` draws
PNGs, ``simulate`` writes a history of signed incidents with its truth, ``evaluate``
scores signals against it, and ``cli`` is ``blo-trends``.
"""

from trends.counts import Counts, SeriesKey, rollup, weekly_counts
from trends.detectors import Detector, Settings, Signal, detect
from trends.errors import SimulateError, SourceError, SummaryError, TrendsError
from trends.records import Record, records_of
from trends.report import Analysis, Level, analyse
from trends.sources import Incidents, read_archive, read_inbox
from trends.summary import MAX_SUMMARY, TrendSummary, summary_for

__all__ = [
    "MAX_SUMMARY",
    "Analysis",
    "Counts",
    "Detector",
    "Incidents",
    "Level",
    "Record",
    "SeriesKey",
    "Settings",
    "Signal",
    "SimulateError",
    "SourceError",
    "SummaryError",
    "TrendSummary",
    "TrendsError",
    "analyse",
    "detect",
    "read_archive",
    "read_inbox",
    "records_of",
    "rollup",
    "summary_for",
    "weekly_counts",
]
