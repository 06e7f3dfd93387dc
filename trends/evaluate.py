"""Scoring signals against a simulation's truth file: recall and false alarms.

An injected event is detected when a detector of its kind flags its series
(office x crime x substance) within ``within`` weeks of its start (outbreaks by
a counting detector, new substances by first seen, large seizures by the
quantity spike). A false alarm is an office-week with a signal that no injected
event explains; rates are per 100 office-weeks evaluated (weeks with a full
baseline behind them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trends.detectors import Detector, Signal
from trends.simulate import Event, Truth

__all__ = ["KIND_DETECTORS", "Score", "score"]

_COUNTING = frozenset({Detector.EARS_C2, Detector.POISSON, Detector.GLM})
KIND_DETECTORS: dict[str, frozenset[Detector]] = {
    "outbreak": _COUNTING,
    "new_substance": frozenset({Detector.FIRST_SEEN}),
    "quantity": frozenset({Detector.QUANTITY}),
}


@dataclass(frozen=True)
class Score:
    """Detection measured against a truth file."""

    detected: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    missed: list[Event] = field(default_factory=list)
    office_weeks: int = 0
    false_alarm_weeks: int = 0
    false_by_detector: dict[str, int] = field(default_factory=dict)
    #: Office-weeks with an unexplained quantity spike (not in ``false_alarm_weeks``).
    quantity_false_weeks: int = 0

    def recall(self, kind: str | None = None) -> float:
        """Share of injected events (of ``kind``, or all) detected in time."""
        kinds = [kind] if kind else list(self.injected)
        total = sum(self.injected.get(k, 0) for k in kinds)
        return sum(self.detected.get(k, 0) for k in kinds) / total if total else 1.0

    @property
    def false_per_100(self) -> float:
        """Office-weeks with a false alarm, per 100 office-weeks evaluated."""
        return 100 * self.false_alarm_weeks / self.office_weeks if self.office_weeks else 0.0

    @property
    def quantity_false_per_100(self) -> float:
        """Office-weeks with an unexplained quantity spike, per 100 office-weeks."""
        return 100 * self.quantity_false_weeks / self.office_weeks if self.office_weeks else 0.0


def _series(signal: Signal, event: Event) -> bool:
    k = signal.key
    return (
        k.office == event.office
        and k.crime.value == event.crime
        and k.substance == (event.substance)
    )


#: The detectors whose false alarms are held to the 1-per-100-office-weeks budget:
#: those that say "more incidents than usual". Quantity spikes (one large seizure)
#: are scored on their own (Score.quantity_false_per_100).
OUTBREAK_DETECTORS = frozenset({*_COUNTING, Detector.FIRST_SEEN})


def score(signals: Iterable[Signal], truth: Truth, *, within: int = 2, warmup: int = 14) -> Score:
    """Score ``signals`` (over the whole history) against ``truth``."""
    signals = [s for s in signals if s.key.level == "crossing"]
    spikes = _false_weeks([s for s in signals if s.detector is Detector.QUANTITY], truth, warmup)
    detected: dict[str, int] = {}
    injected: dict[str, int] = {}
    missed: list[Event] = []
    for event in truth.events:
        injected[event.kind] = injected.get(event.kind, 0) + 1
        wanted = KIND_DETECTORS[event.kind]
        hit = any(
            s.detector in wanted
            and _series(s, event)
            and event.start_week <= s.week <= event.start_week + within
            for s in signals
        )
        if hit:
            detected[event.kind] = detected.get(event.kind, 0) + 1
        else:
            missed.append(event)
    false_weeks, by_detector = _false_weeks(
        [s for s in signals if s.detector in OUTBREAK_DETECTORS], truth, warmup
    )
    weeks = truth.last_week - truth.first_week + 1 - warmup
    return Score(
        detected,
        injected,
        missed,
        len(truth.offices) * max(weeks, 0),
        len(false_weeks),
        by_detector,
        len(spikes[0]),
    )


def _false_weeks(
    signals: list[Signal], truth: Truth, warmup: int
) -> tuple[set[tuple[str, int]], dict[str, int]]:
    # A signal is explained by an event on its series from its start until a baseline
    # has forgotten it (its weeks plus the longest baseline, 14 weeks).
    false_weeks: set[tuple[str, int]] = set()
    by_detector: dict[str, int] = {}
    for s in signals:
        if s.week < truth.first_week + warmup:
            continue
        if any(
            _series(s, e) and e.start_week <= s.week < e.start_week + e.weeks + warmup
            for e in truth.events
        ):
            continue
        if (s.key.office, s.week) not in false_weeks:
            false_weeks.add((s.key.office, s.week))
            by_detector[s.detector.value] = by_detector.get(s.detector.value, 0) + 1
    return false_weeks, by_detector
