"""The field summary: always within 1 KB, whatever the names and however many signals."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Crime, Lang, unpack_model
from schemas.codec import pack
from trends.counts import Counts, SeriesKey
from trends.detectors import Detector, Signal
from trends.report import Analysis, Level
from trends.summary import MAX_SUMMARY, TrendSummary, summary_for

WEEK = 2900
names = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz ABCKMPTកខគឃងចឆជញដណតថទធនបផពភមយរលវសហឡអ"),
    min_size=1,
    max_size=160,
).filter(lambda t: t.strip() == t and t)


def analysis(place: str, signals: list[Signal]) -> Analysis:
    empty = Counts(
        [],
        WEEK,
        np.zeros((0, 1), dtype=np.int64),
        *[np.zeros((0, 1))] * 2,
        [],
        *[np.zeros((0, 1))] * 3,
        {},
    )
    level = Level("kh-blo-bavet", place, "kh", "kh-vn-bavet", 7, 1.4, 2.2, "heroin")
    return Analysis(WEEK, empty, empty, empty, signals, [level], 100)


@settings(max_examples=60, deadline=None)
@given(
    place=names,
    others=st.lists(
        st.tuples(
            names,
            st.sampled_from(list(Detector)),
            st.sampled_from(["crossing", "region", "country"]),
        ),
        max_size=12,
    ),
)
def test_summary_is_within_budget_and_decodes(
    place: str, others: list[tuple[str, Detector, str]]
) -> None:
    signals = []
    for i, (where, detector, level) in enumerate(others):
        key = SeriesKey(
            where if level != "crossing" else place,
            Crime.DRUG_TRAFFICKING,
            "methamphetamine",
            office="kh-blo-bavet" if level == "crossing" else "",
            country="kh",
            region="kh-vn-bavet" if level == "region" else "",
            level=level,  # type: ignore[arg-type]
        )
        if level == "region":
            key = SeriesKey("kh-vn-bavet", key.crime, key.substance, level="region")
        if level == "country":
            key = SeriesKey("kh", key.crime, key.substance, level="country")
        signals.append(Signal(detector, key, WEEK, 5.0 + i, 1.0, 1.0, 1e-5, "kg", 30))
    summary = summary_for(analysis(place, signals), "kh-blo-bavet")
    wire = pack(summary)
    assert len(wire) <= MAX_SUMMARY
    assert unpack_model(TrendSummary, wire, max_len=MAX_SUMMARY) == summary
    assert set(summary.headline) == {Lang.EN, Lang.KM}
    # Own crossing first, then the region, then the country.
    order = [{"crossing": 0, "region": 1, "country": 2}[s.key.level] for s in signals]
    kept = len(summary.signals)
    assert kept <= 8
    assert [s.place for s in summary.signals] == [
        s.key.place for _o, s in sorted(zip(order, signals, strict=True), key=lambda x: x[0])
    ][:kept]
