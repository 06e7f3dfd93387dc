"""Weekly counts per crossing x crime (x substance for drugs), and their roll-ups.

A ``Counts`` is a matrix: one row per series, one column per week, with the
quantities seized beside the counts (summed, and the largest single seizure,
in the series' unit). Roll-ups add rows up per country or per border region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from schemas import Crime
from trends.records import Record

__all__ = ["Counts", "SeriesKey", "rollup", "weekly_counts"]

Level = Literal["crossing", "country", "region"]


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    """What one series counts: where (a crossing, or a country or region roll-up) and what."""

    place: str
    crime: Crime
    substance: str = ""
    #: The office (node id) for a crossing; "" for a roll-up.
    office: str = ""
    country: str = ""
    region: str = ""
    level: Level = "crossing"

    @property
    def what(self) -> str:
        """The substance for drugs, else the crime: ``methamphetamine``, ``migrant smuggling``."""
        return self.substance or self.crime.value.replace("_", " ")


@dataclass(frozen=True)
class Counts:
    """Weekly series: ``counts[s, w]`` incidents of series ``keys[s]`` in week
    ``first_week + w``; ``quantity`` their summed amount and ``largest`` the largest
    single seizure, both in ``units[s]`` ("" when the series is not weighed)."""

    keys: list[SeriesKey]
    first_week: int
    counts: npt.NDArray[np.int64]
    quantity: npt.NDArray[np.float64]
    largest: npt.NDArray[np.float64]
    units: list[str]
    #: Per week, the weighed seizures (in the series' unit), the sum of their logs and of
    #: their squared logs: the quantity spike's per-seizure baseline.
    weighed: npt.NDArray[np.float64]
    log_sum: npt.NDArray[np.float64]
    log_sq: npt.NDArray[np.float64]
    #: First week each office reported anything (first seen needs a year of history).
    office_start: dict[str, int]

    @property
    def n_weeks(self) -> int:
        """How many weeks the matrix spans."""
        return int(self.counts.shape[1])

    @property
    def last_week(self) -> int:
        """The last week held."""
        return self.first_week + self.n_weeks - 1

    def index(self, week: int) -> int:
        """The column of ``week``."""
        return week - self.first_week


def weekly_counts(
    records: Sequence[Record], first_week: int | None = None, last_week: int | None = None
) -> Counts:
    """Count ``records`` per crossing x crime x substance and week.

    Weeks outside ``first_week``..``last_week`` are left out (defaults: the data's span).
    """
    weeks = [r.week for r in records]
    lo = first_week if first_week is not None else min(weeks, default=0)
    hi = last_week if last_week is not None else max(weeks, default=lo)
    n = max(hi - lo + 1, 1)
    index: dict[tuple[str, str, Crime, str], int] = {}
    keys: list[SeriesKey] = []
    unit_votes: list[dict[str, int]] = []
    rows: list[int] = []
    cols: list[int] = []
    amounts: list[float] = []
    units: list[str] = []
    office_start: dict[str, int] = {}
    for r in records:
        start = office_start.get(r.office)
        if start is None or r.week < start:
            office_start[r.office] = r.week
        if not lo <= r.week <= hi:
            continue
        k = (r.office, r.crossing, r.crime, r.substance)
        s = index.get(k)
        if s is None:
            s = index[k] = len(keys)
            keys.append(SeriesKey(r.crossing, r.crime, r.substance, r.office, r.country, r.region))
            unit_votes.append({})
        rows.append(s)
        cols.append(r.week - lo)
        amounts.append(r.quantity)
        units.append(r.unit)
        if r.unit:
            unit_votes[s][r.unit] = unit_votes[s].get(r.unit, 0) + 1
    series_unit = [max(v, key=v.__getitem__) if v else "" for v in unit_votes]
    counts = np.zeros((len(keys), n), dtype=np.int64)
    quantity = np.zeros((len(keys), n))
    largest = np.zeros((len(keys), n))
    weighed = np.zeros((len(keys), n))
    log_sum = np.zeros((len(keys), n))
    log_sq = np.zeros((len(keys), n))
    if rows:
        r_ = np.asarray(rows)
        c_ = np.asarray(cols)
        np.add.at(counts, (r_, c_), 1)
        # Only amounts in the series' own unit are summed (tablets never add to kg).
        same = np.asarray(
            [u == series_unit[s] and u != "" for s, u in zip(rows, units, strict=True)]
        )
        a_ = np.asarray(amounts)
        if same.any():
            np.add.at(quantity, (r_[same], c_[same]), a_[same])
            np.maximum.at(largest, (r_[same], c_[same]), a_[same])
            logs = np.log(a_[same])
            np.add.at(weighed, (r_[same], c_[same]), 1.0)
            np.add.at(log_sum, (r_[same], c_[same]), logs)
            np.add.at(log_sq, (r_[same], c_[same]), logs * logs)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return Counts(
        [keys[i] for i in order],
        lo,
        counts[order],
        quantity[order],
        largest[order],
        [series_unit[i] for i in order],
        weighed[order],
        log_sum[order],
        log_sq[order],
        office_start,
    )


def rollup(counts: Counts, level: Literal["country", "region"]) -> Counts:
    """Add the crossings' series up per country or per border region (per crime x substance)."""
    place: Callable[[SeriesKey], str] = (
        (lambda k: k.country) if level == "country" else (lambda k: k.region)
    )
    groups: dict[SeriesKey, list[int]] = {}
    for s, key in enumerate(counts.keys):
        name = place(key)
        rolled = SeriesKey(
            name,
            key.crime,
            key.substance,
            country=key.country,
            region=name if level == "region" else "",
            level=level,
        )
        groups.setdefault(rolled, []).append(s)
    keys = sorted(groups)
    n = counts.n_weeks

    def summed(matrix: npt.NDArray[np.float64] | npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        out = np.zeros((len(keys), n))
        for g, key in enumerate(keys):
            out[g] = matrix[groups[key]].sum(axis=0)
        return out

    units = []
    quantity = np.zeros((len(keys), n))
    largest = np.zeros((len(keys), n))
    weighed = np.zeros((len(keys), n))
    log_sum = np.zeros((len(keys), n))
    log_sq = np.zeros((len(keys), n))
    for g, key in enumerate(keys):
        members = groups[key]
        unit = max((counts.units[s] for s in members), key=[counts.units[s] for s in members].count)
        same = [s for s in members if counts.units[s] == unit]
        units.append(unit)
        if unit:
            quantity[g] = counts.quantity[same].sum(axis=0)
            largest[g] = counts.largest[same].max(axis=0)
            weighed[g] = counts.weighed[same].sum(axis=0)
            log_sum[g] = counts.log_sum[same].sum(axis=0)
            log_sq[g] = counts.log_sq[same].sum(axis=0)
    return Counts(
        keys,
        counts.first_week,
        summed(counts.counts).astype(np.int64),
        quantity,
        largest,
        units,
        weighed,
        log_sum,
        log_sq,
        {},
    )
