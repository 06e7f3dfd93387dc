"""Detection measured on a simulated history against its truth file.

Small enough to run in seconds (24 offices x 3 years, unsigned: the signing path
is tested in test_trends_cli.py); README.md has the figures for 74 offices.
"""

from __future__ import annotations

from trends.counts import weekly_counts
from trends.detectors import detect
from trends.evaluate import score
from trends.records import records_of
from trends.simulate import History, history, incidents_of


def signals_of(hist: History) -> list:  # type: ignore[type-arg]
    regions = {o.node: o.region for o in hist.offices}
    counts = weekly_counts(records_of(incidents_of(hist), regions))
    return detect(counts, range(counts.first_week, counts.last_week + 1))


def test_injected_outbreaks_are_found_within_two_weeks() -> None:
    hist = history(24, 3, seed=11, outbreaks=20, new_substances=8, spikes=4)
    result = score(signals_of(hist), hist.truth)
    assert result.injected["outbreak"] == 20
    assert result.recall("outbreak") >= 0.9, result.missed
    assert result.recall("new_substance") >= 0.9, result.missed


def test_at_most_one_false_alarm_per_100_office_weeks_without_outbreaks() -> None:
    hist = history(24, 3, seed=12, inject=False)
    assert hist.truth.events == []
    result = score(signals_of(hist), hist.truth)
    assert result.office_weeks > 3000
    assert result.false_per_100 <= 1.0, result.false_by_detector
    # Quantity spikes are held to the same budget on their own.
    assert result.quantity_false_per_100 <= 1.0
