"""Small, explainable detectors over weekly counts, computed for every series at once.

Each detector works on the whole ``Counts`` matrix with numpy (rolling sums by
cumulative sums), so 74 offices x 3 years take milliseconds, and returns the
weeks it flags as ``Signal``s that explain themselves (trends/text.py).

    EARS C2         7-week baseline, lagged 2 weeks; sigma at least 1 (sparse counts);
                    flags (x - mean) / sigma > 5 (the textbook 3 is measured too noisy
                    on sparse weekly counts: docs/design.md)
    Poisson         mean of a 12-week baseline lagged 2 weeks (8 weeks at least);
                    flags P(X >= x) < alpha for this week, or for the last two
                    weeks together against twice the mean
    first seen      a crime or substance at a crossing with none in the 52 weeks before,
                    at an office that has reported for 52 weeks
    quantity spike  a week's largest seizure far above the crossing's usual size:
                    log size above the mean log of the past year's seizures by 3.5 sd and 10 times
    Farrington GLM  quasi-Poisson log-linear model (level, trend, yearly sine and
                    cosine) on the 2 years before the week, lagged 2 weeks; flags the
                    2/3-power upper tail beyond alpha (docs/design.md, "Trends")

Every counting detector also needs at least ``min_count`` incidents in the week:
one or two incidents are news for first seen, not an outbreak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]

from trends.counts import Counts, SeriesKey

__all__ = ["Detector", "Settings", "Signal", "detect", "glm_fit"]

F64 = npt.NDArray[np.float64]
_YEAR = 365.25 / 7


class Detector(StrEnum):
    """The detectors, by the name a report shows."""

    EARS_C2 = "ears_c2"
    POISSON = "poisson"
    FIRST_SEEN = "first_seen"
    QUANTITY = "quantity_spike"
    GLM = "farrington_glm"


@dataclass(frozen=True, slots=True)
class Settings:
    """Thresholds (the defaults are the measured ones in README.md)."""

    ears_limit: float = 5.0
    ears_weeks: int = 7
    lag: int = 2
    min_sigma: float = 1.0
    poisson_weeks: int = 12
    poisson_min_weeks: int = 8
    poisson_alpha: float = 0.0001
    min_count: int = 3
    first_seen_weeks: int = 52
    spike_weeks: int = 52
    spike_min_seizures: int = 6
    spike_z: float = 3.5
    spike_factor: float = 10.0
    glm_weeks: int = 104
    glm_alpha: float = 0.0001
    glm_min_total: int = 10
    detectors: frozenset[Detector] = field(default_factory=lambda: frozenset(Detector))


@dataclass(frozen=True, slots=True)
class Signal:
    """One flagged week of one series, with the numbers that explain it.

    ``observed`` and ``expected`` are incidents (a seizure's size for a quantity
    spike, in ``unit``); ``spread`` is the baseline's standard deviation;
    ``p`` the tail probability under the baseline (None where it has no meaning).
    """

    detector: Detector
    key: SeriesKey
    week: int
    observed: float
    expected: float
    spread: float
    p: float | None
    unit: str = ""
    #: Weeks of history behind ``expected`` (seizures, for a quantity spike).
    baseline_n: int = 0

    def explain(self, lang: str = "en") -> str:
        """One line an officer understands, in ``lang`` (en or km)."""
        from trends.text import explain

        return explain(self, lang)


def _window_sums(x: F64, near: int, far: int) -> tuple[F64, F64]:
    """Per column t, the sum of x over columns t-far..t-near (clipped at 0) and how many
    columns that window holds."""
    s, w = x.shape
    c = np.zeros((s, w + 1))
    np.cumsum(x, axis=1, out=c[:, 1:])
    t = np.arange(w)
    hi = np.clip(t - near + 1, 0, w)
    lo = np.clip(t - far, 0, w)
    return c[:, hi] - c[:, lo], (hi - lo).astype(np.float64)


def _mean_sd(x: F64, near: int, far: int) -> tuple[F64, F64, F64]:
    total, n = _window_sums(x, near, far)
    total2, _ = _window_sums(x * x, near, far)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
        var = np.where(n > 1, (total2 - n * mean * mean) / np.maximum(n - 1, 1), 0.0)
    return mean, np.sqrt(np.maximum(var, 0.0)), np.broadcast_to(n, x.shape)


@dataclass(frozen=True)
class _Flags:
    detector: Detector
    flag: npt.NDArray[np.bool_]
    observed: F64
    expected: F64
    spread: F64
    p: F64 | None
    n: F64


def _ears(x: F64, st: Settings) -> _Flags:
    near, far = st.lag + 1, st.lag + st.ears_weeks
    mean, sd, n = _mean_sd(x, near, far)
    sigma = np.maximum(sd, st.min_sigma)
    score = (x - mean) / sigma
    flag = (n >= st.ears_weeks) & (score > st.ears_limit) & (x >= st.min_count)
    return _Flags(Detector.EARS_C2, flag, x, mean, sd, stats.norm.sf(score), n)


def _poisson(x: F64, st: Settings) -> _Flags:
    near, far = st.lag + 1, st.lag + st.poisson_weeks
    mean, sd, n = _mean_sd(x, near, far)
    # Half an incident over the window keeps a clean baseline from meaning "impossible".
    lam = (mean * n + 0.5) / np.maximum(n, 1)
    p = stats.poisson.sf(x - 1, lam)
    # The last two weeks together too: a sustained rise of 3 or 4 a week over a baseline
    # of 0.5 is clear over two weeks before any single week is (EARS C3's idea).
    two = x.copy()
    two[:, 1:] += x[:, :-1]
    p2 = stats.poisson.sf(two - 1, 2 * lam)
    p = np.minimum(p, p2)
    flag = (n >= st.poisson_min_weeks) & (p < st.poisson_alpha) & (x >= st.min_count)
    return _Flags(Detector.POISSON, flag, x, mean, sd, p, n)


def _first_seen(counts: Counts, x: F64, st: Settings) -> _Flags:
    before, n = _window_sums(x, 1, st.first_seen_weeks)
    t = np.arange(x.shape[1]) + counts.first_week
    start = np.asarray(
        [
            counts.office_start.get(k.office, counts.first_week) if k.office else counts.first_week
            for k in counts.keys
        ],
        dtype=np.float64,
    )
    known = (t[None, :] - start[:, None]) >= st.first_seen_weeks
    flag = (x > 0) & (before == 0) & known & (n >= st.first_seen_weeks)
    zero = np.zeros_like(x)
    return _Flags(Detector.FIRST_SEEN, flag, x, zero, zero, None, np.broadcast_to(n, x.shape))


def _quantity(counts: Counts, st: Settings) -> _Flags:
    big = counts.largest
    logs = np.log(np.where(big > 0, big, 1.0))
    # The usual size is that of single seizures over the past year (not of each week's
    # largest, which is larger wherever seizures are frequent).
    n, _ = _window_sums(counts.weighed, 1, st.spike_weeks)
    total, _ = _window_sums(counts.log_sum, 1, st.spike_weeks)
    total2, _ = _window_sums(counts.log_sq, 1, st.spike_weeks)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
        var = np.where(n > 1, (total2 - n * mean * mean) / np.maximum(n - 1, 1), 0.0)
    # A floor on the spread: a crossing whose seizures were all 1 kg is not alarmed by 1.3 kg.
    sd = np.maximum(np.sqrt(np.maximum(var, 0.0)), 0.1)
    margin = np.maximum(st.spike_z * sd, np.log(st.spike_factor))
    flag = (big > 0) & (n >= st.spike_min_seizures) & (logs > mean + margin)
    z = (logs - mean) / sd
    typical = np.exp(mean)
    spread = typical * (np.exp(sd) - 1)
    return _Flags(Detector.QUANTITY, flag, big, typical, spread, stats.norm.sf(z), n)


def _design(columns: npt.NDArray[np.int64], first_week: int, origin: int) -> F64:
    week = (columns + first_week).astype(np.float64)
    angle = 2 * np.pi * week / _YEAR
    trend = (columns - origin) / 52.0
    return np.stack([np.ones_like(week), trend, np.sin(angle), np.cos(angle)], axis=1)


def glm_fit(y: F64, design: F64, iterations: int = 25) -> tuple[F64, F64]:
    """Poisson GLM (log link) for every row of ``y`` at once, by iteratively reweighted
    least squares; returns (coefficients per row, quasi-Poisson dispersion per row,
    at least 1). ``tests/test_trends_detectors.py`` checks it against statsmodels."""
    s, n = y.shape
    p = design.shape[1]
    mu = y + 0.5
    eta = np.log(mu)
    beta = np.zeros((s, p))
    ridge = 1e-6 * np.eye(p)
    for _ in range(iterations):
        z = eta + (y - mu) / mu
        xtwx = np.einsum("np,sn,nq->spq", design, mu, design) + ridge
        xtwz = np.einsum("np,sn->sp", design, mu * z)
        new = np.linalg.solve(xtwx, xtwz[..., None])[..., 0]
        eta = np.clip(new @ design.T, -30, 30)
        mu = np.exp(eta)
        done = np.max(np.abs(new - beta)) < 1e-8
        beta = new
        if done:
            break
    pearson = ((y - mu) ** 2 / mu).sum(axis=1)
    phi = np.maximum(pearson / max(n - p, 1), 1.0)
    return beta, phi


def _glm(counts: Counts, x: F64, columns: Iterable[int], st: Settings) -> _Flags:
    s, w = x.shape
    flag = np.zeros((s, w), dtype=bool)
    expected = np.zeros((s, w))
    spread = np.zeros((s, w))
    p = np.ones((s, w))
    n = np.zeros((s, w))
    for t in columns:
        far = t - st.lag - st.glm_weeks
        if far < 0:
            continue
        train = np.arange(far, t - st.lag)
        y = x[:, train]
        rows = np.flatnonzero((y.sum(axis=1) >= st.glm_min_total) & (x[:, t] >= st.min_count))
        if rows.size == 0:
            continue
        design = _design(train, counts.first_week, t)
        beta, phi = glm_fit(y[rows], design)
        at = _design(np.asarray([t]), counts.first_week, t)[0]
        mu = np.exp(np.clip(beta @ at, -30, 30))
        # Farrington: never extrapolate a trend beyond what the baseline ever held.
        mu = np.minimum(mu, y[rows].max(axis=1))
        mu = np.maximum(mu, 0.05)
        obs = x[rows, t]
        # The 2/3-power transform makes a (quasi-)Poisson count nearly normal.
        z = (obs ** (2 / 3) - mu ** (2 / 3)) / ((2 / 3) * np.sqrt(phi) * mu ** (1 / 6))
        pv = stats.norm.sf(z)
        expected[rows, t] = mu
        spread[rows, t] = np.sqrt(phi * mu)
        p[rows, t] = pv
        n[rows, t] = st.glm_weeks
        flag[rows, t] = pv < st.glm_alpha
    return _Flags(Detector.GLM, flag, x, expected, spread, p, n)


def detect(
    counts: Counts, weeks: Iterable[int] | None = None, settings: Settings | None = None
) -> list[Signal]:
    """Signals in ``weeks`` (week numbers; default the last week held), strongest first
    within each week."""
    st = settings or Settings()
    wanted = sorted(set(weeks) if weeks is not None else {counts.last_week})
    columns = [counts.index(w) for w in wanted if 0 <= counts.index(w) < counts.n_weeks]
    if not counts.keys or not columns:
        return []
    x = counts.counts.astype(np.float64)
    flags: list[_Flags] = []
    on = st.detectors
    if Detector.EARS_C2 in on:
        flags.append(_ears(x, st))
    if Detector.POISSON in on:
        flags.append(_poisson(x, st))
    if Detector.FIRST_SEEN in on:
        flags.append(_first_seen(counts, x, st))
    if Detector.QUANTITY in on:
        flags.append(_quantity(counts, st))
    if Detector.GLM in on:
        flags.append(_glm(counts, x, columns, st))
    cols = np.asarray(columns)
    out: list[Signal] = []
    for f in flags:
        rows, at = np.nonzero(f.flag[:, cols])
        for s, c in zip(rows.tolist(), cols[at].tolist(), strict=True):
            out.append(
                Signal(
                    f.detector,
                    counts.keys[s],
                    counts.first_week + c,
                    float(f.observed[s, c]),
                    float(f.expected[s, c]),
                    float(f.spread[s, c]),
                    None if f.p is None else float(f.p[s, c]),
                    counts.units[s] if f.detector is Detector.QUANTITY else "",
                    int(f.n[s, c]),
                )
            )
    out.sort(key=lambda g: (g.week, g.p if g.p is not None else 0.0, g.key))
    return out
