"""One analysis of one week: counts, roll-ups, signals and each crossing's level.

Pure: the incidents and the week come in as arguments (the CLI reads the file
and the clock); nothing here touches a socket, a file or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import numpy as np

from trends.counts import Counts, rollup, weekly_counts
from trends.detectors import Settings, Signal, detect
from trends.records import Record, records_of
from trends.sources import Incidents
from trends.weeks import label, monday

__all__ = ["LEVEL_WEEKS", "Analysis", "Level", "analyse", "history_weeks", "read_since"]

#: The weeks a crossing's usual level is averaged over.
LEVEL_WEEKS = 12


def history_weeks(settings: Settings | None = None) -> int:
    """How many weeks before the analysed one every detector needs (the longest
    baseline: the GLM's two years and lag); older incidents change nothing."""
    st = settings or Settings()
    return max(
        st.glm_weeks + st.lag,
        st.first_seen_weeks + 1,
        st.spike_weeks + 1,
        st.poisson_weeks + st.lag,
        st.ears_weeks + st.lag,
        LEVEL_WEEKS,
    )


def read_since(week: int, settings: Settings | None = None) -> int:
    """The Unix time from which incidents must be read to analyse ``week`` exactly as
    with all of them: the start of the longest baseline, less a day for time zones
    (an incident's week is its local date's)."""
    start = monday(week - history_weeks(settings)) - timedelta(days=1)
    return int(datetime.combine(start, time(), UTC).timestamp())


@dataclass(frozen=True, slots=True)
class Level:
    """A crossing's level: this week's incidents against its own usual and its country's."""

    office: str
    crossing: str
    country: str
    region: str
    this_week: int
    usual: float
    #: The mean over the country's crossings of their usual level.
    country_usual: float
    #: The most frequent crime or substance over the last ``LEVEL_WEEKS`` weeks.
    top: str


@dataclass(frozen=True)
class Analysis:
    """Everything ``blo-trends`` shows for one week."""

    week: int
    counts: Counts
    countries: Counts
    regions: Counts
    signals: list[Signal]
    levels: list[Level]
    incidents: int

    @property
    def week_label(self) -> str:
        """``2026-W26``."""
        return label(self.week)


def _levels(counts: Counts, week: int) -> list[Level]:
    col = counts.index(week)
    lo = max(col - LEVEL_WEEKS + 1, 0)
    per: dict[str, list[int]] = {}
    for s, key in enumerate(counts.keys):
        per.setdefault(key.office, []).append(s)
    rows = []
    for office, series in per.items():
        first = counts.keys[series[0]]
        window = counts.counts[series, lo : col + 1]
        top = max(range(len(series)), key=lambda i: window[i].sum())
        rows.append(
            (
                office,
                first,
                int(counts.counts[series, col].sum()),
                float(window.sum(axis=0).mean()),
                counts.keys[series[top]].what,
            )
        )
    usual_by_country: dict[str, list[float]] = {}
    for _office, key, _now, usual, _top in rows:
        usual_by_country.setdefault(key.country, []).append(usual)
    return sorted(
        (
            Level(
                office,
                key.place,
                key.country,
                key.region,
                now,
                usual,
                float(np.mean(usual_by_country[key.country])),
                top,
            )
            for office, key, now, usual, top in rows
        ),
        key=lambda lv: (lv.country, -lv.this_week, lv.crossing),
    )


def analyse(
    source: Incidents | Sequence[Record],
    week: int | None = None,
    settings: Settings | None = None,
) -> Analysis:
    """Analyse ``week`` (default: the newest week with an incident) of ``source``."""
    records = records_of(source.items, source.regions) if isinstance(source, Incidents) else source
    newest = max((r.week for r in records), default=0)
    week = newest if week is None else week
    counts = weekly_counts(records, last_week=week)
    countries = rollup(counts, "country")
    regions = rollup(counts, "region")
    signals = [
        *detect(counts, [week], settings),
        *detect(countries, [week], settings),
        *detect(regions, [week], settings),
    ]
    return Analysis(week, counts, countries, regions, signals, _levels(counts, week), len(records))
