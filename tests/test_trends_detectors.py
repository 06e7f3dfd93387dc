"""Each detector on hand-made series: fires on what it should, and not on what it should not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Crime
from trends.counts import weekly_counts
from trends.detectors import Detector, Settings, detect, glm_fit
from trends.records import Record

W0 = 2800  # an arbitrary week number


def series(
    counts: list[int],
    *,
    substance: str = "heroin",
    sizes: list[float] | None = None,
    office: str = "kh-blo-bavet",
    start: int = W0,
) -> list[Record]:
    out = []
    for i, c in enumerate(counts):
        for j in range(c):
            q = sizes[i] if sizes is not None and j == 0 else 1.0
            out.append(
                Record(
                    start + i,
                    office,
                    "Bavet",
                    "kh",
                    "kh-vn-bavet",
                    Crime.DRUG_TRAFFICKING,
                    substance,
                    q,
                    "kg",
                )
            )
    return out


def fired(records: list[Record], week: int, detector: Detector, **kw: object) -> bool:
    counts = weekly_counts(records)
    only = Settings(detectors=frozenset({detector}), **kw)  # type: ignore[arg-type]
    return any(s.detector is detector and s.week == week for s in detect(counts, [week], only))


BASE = [1, 0, 1, 2, 1, 0, 1, 1, 0, 1, 2, 1, 0, 1]  # 14 quiet weeks, mean about 0.9


@pytest.mark.parametrize("detector", [Detector.EARS_C2, Detector.POISSON])
def test_counting_detectors_fire_on_a_jump(detector: Detector) -> None:
    last = W0 + len(BASE)
    assert fired(series([*BASE, 9]), last, detector)
    assert not fired(series([*BASE, 2]), last, detector)
    # Too few incidents to call an outbreak, however clean the baseline and loose the limit.
    # (Another office's reports make the matrix span the 15 weeks.)
    two = series([0] * 14 + [2]) + series([1] * 15, office="kh-blo-poipet")
    loose = {"poisson_alpha": 0.05, "ears_limit": 1.0}
    assert not fired(two, last, detector, **loose)
    assert fired(two, last, detector, **loose, min_count=2)


def test_ears_sigma_is_at_least_one() -> None:
    # Exactly one incident every week (sd 0): six is a jump, three is not.
    steady = [1] * 14
    assert not fired(series([*steady, 3]), W0 + 14, Detector.EARS_C2)
    assert fired(series([*steady, 7]), W0 + 14, Detector.EARS_C2)


def test_ears_uses_a_two_week_lag() -> None:
    # A rise that began two weeks ago is still compared with the weeks before it.
    assert fired(series([*BASE[:12], 8, 8, 9]), W0 + 14, Detector.EARS_C2)


def test_poisson_catches_a_sustained_two_week_rise() -> None:
    base = [0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0]
    assert fired(series([*base, 4, 4]), W0 + 15, Detector.POISSON)
    assert not fired(series([*base, 1, 4]), W0 + 15, Detector.POISSON)


def test_first_seen_needs_a_year_of_silence_and_of_history() -> None:
    other = series([1] * 70, substance="methamphetamine")  # the office reports all along
    new = series([0] * 69 + [1], substance="ketamine")
    assert fired(other + new, W0 + 69, Detector.FIRST_SEEN)
    seen = series([1] + [0] * 68 + [1], substance="ketamine")  # seen 68 weeks ago: new again
    assert fired(other + seen, W0 + 69, Detector.FIRST_SEEN)
    recent = series([0] * 30 + [1] + [0] * 38 + [1], substance="ketamine")
    assert not fired(other + recent, W0 + 69, Detector.FIRST_SEEN)
    # An office that started reporting 19 weeks ago (the matrix itself spans 70 weeks,
    # thanks to another office): everything there is new, nothing is "first seen".
    elsewhere = series([1] * 70, substance="methamphetamine", office="kh-blo-poipet")
    young = series([1] * 20, substance="methamphetamine", start=W0 + 50)
    assert not fired(elsewhere + young + new, W0 + 69, Detector.FIRST_SEEN)


def test_quantity_spike_against_the_usual_size() -> None:
    rng = np.random.default_rng(1)
    usual = [float(v) for v in rng.lognormal(0.0, 0.5, 30)]
    for factor, expected in ((60.0, True), (3.0, False)):
        sizes = [*usual, factor]
        assert fired(series([1] * 31, sizes=sizes), W0 + 30, Detector.QUANTITY) is expected
    # Too little history to know the usual size.
    assert not fired(series([1] * 4, sizes=[1, 1, 1, 60]), W0 + 3, Detector.QUANTITY)


def seasonal(weeks: int, seed: int, outbreak: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    t = np.arange(weeks)
    mu = 3.0 * (1 + 0.5 * np.cos(2 * np.pi * t / (365.25 / 7)))
    y = rng.poisson(mu)
    y[-1] += outbreak
    return [int(v) for v in y]


def test_glm_fires_on_an_outbreak_only_after_two_years() -> None:
    y = seasonal(110, 3, outbreak=14)
    assert fired(series(y), W0 + 109, Detector.GLM)
    assert not fired(series(seasonal(110, 3)), W0 + 109, Detector.GLM)
    short = seasonal(100, 3, outbreak=14)
    assert not fired(series(short), W0 + 99, Detector.GLM)


def test_batched_glm_matches_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    t = np.arange(104)
    angle = 2 * np.pi * t / (365.25 / 7)
    design = np.stack([np.ones(104), t / 52, np.sin(angle), np.cos(angle)], axis=1)
    ys = np.asarray([seasonal(104, seed) for seed in range(4)], dtype=float)
    beta, phi = glm_fit(ys, design)
    for row, b, f in zip(ys, beta, phi, strict=True):
        ref = sm.GLM(row, design, family=sm.families.Poisson()).fit(scale="X2")
        assert np.allclose(b, ref.params, atol=1e-6)
        assert f == pytest.approx(max(ref.scale, 1.0), rel=1e-6)


@settings(max_examples=40, deadline=None)
@given(level=st.integers(0, 30), weeks=st.integers(16, 120))
def test_a_constant_series_never_alarms(level: int, weeks: int) -> None:
    counts = weekly_counts(series([level] * weeks))
    signals = detect(counts, range(W0, W0 + weeks))
    assert [s for s in signals if s.detector is not Detector.FIRST_SEEN] == []


def test_explanations_in_english_and_khmer() -> None:
    counts = weekly_counts(series([*BASE, 9]))
    (signal, *_rest) = [s for s in detect(counts, [W0 + 14]) if s.detector is Detector.POISSON]
    line = signal.explain("en")
    assert line.startswith(
        "Bavet, heroin: 9 incidents this week, baseline 0.9 +- 0.7, p < 0.0001 (Poisson)"
    )
    km = signal.explain("km")
    assert "ហេរ៉ូអ៊ីន" in km
    assert "៩" in km
    assert "9" not in km.split("(")[0]
