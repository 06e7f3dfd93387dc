"""PNG pictures of the trends (matplotlib, Agg: no display, no network).

* ``crossings-CC.png``: small multiples, one panel per crossing of country CC:
  weekly incidents (all crimes) over the last year, the baseline band (mean +- 2 sd
  of the 12 weeks before, lagged 2 weeks) and the weeks with a signal: a red dot on
  the line for "more incidents than usual" (EARS, Poisson, GLM), marks along the top
  for "first seen" and "large seizure" (one series, often one incident, which the
  crossing's total need not show).
* ``heatmap.png``: crossings x weeks, colour by incidents as a multiple of the
  crossing's own average over the year shown (3x and more is the darkest),
  crossings grouped by country, signal weeks boxed.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.colors import PowerNorm
from matplotlib.patches import Rectangle

from trends.detectors import Detector, Settings, Signal, detect
from trends.report import Analysis
from trends.weeks import label, monday

__all__ = ["plot_all"]

_WEEKS = 52


def _totals(analysis: Analysis) -> tuple[list[str], list[str], npt.NDArray[np.float64]]:
    counts = analysis.counts
    offices: dict[str, list[int]] = {}
    for s, key in enumerate(counts.keys):
        offices.setdefault(key.office, []).append(s)
    order = sorted(offices, key=lambda o: (o[:2], counts.keys[offices[o][0]].place))
    names = [counts.keys[offices[o][0]].place for o in order]
    totals = np.stack([counts.counts[offices[o]].sum(axis=0) for o in order]).astype(float)
    return order, names, totals


#: How each kind of signal is marked: counting detectors on the incidents line; first
#: seen and large seizures (one series, often a single incident) along the top.
_COUNTING = {Detector.EARS_C2, Detector.POISSON, Detector.GLM}


def _flagged(analysis: Analysis, settings: Settings | None) -> dict[str, dict[int, set[Detector]]]:
    counts = analysis.counts
    weeks = range(max(analysis.week - _WEEKS + 1, counts.first_week), analysis.week + 1)
    out: dict[str, dict[int, set[Detector]]] = {}
    signals: list[Signal] = detect(counts, weeks, settings)
    for s in signals:
        out.setdefault(s.key.office, {}).setdefault(s.week, set()).add(s.detector)
    return out


def _band(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    w = x.size
    mean = np.full(w, np.nan)
    sd = np.full(w, np.nan)
    for t in range(w):
        base = x[max(t - 14, 0) : max(t - 2, 0)]
        if base.size >= 8:
            mean[t], sd[t] = base.mean(), base.std(ddof=1)
    return mean, sd


def plot_all(analysis: Analysis, folder: Path, settings: Settings | None = None) -> list[Path]:
    """Write the small multiples (one file per country) and the heat map into ``folder``.

    Writes nothing, and returns no paths, when there is no series to draw (every
    incident held falls in the current week, which is not counted until it ends).
    """
    if not analysis.counts.keys:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    offices, names, totals = _totals(analysis)
    flagged = _flagged(analysis, settings)
    end = analysis.counts.index(analysis.week) + 1
    start = max(end - _WEEKS, 0)
    weeks = np.arange(start, end) + analysis.counts.first_week
    dates = [monday(int(w)) for w in weeks]
    written = []
    for country in sorted({o[:2] for o in offices}):
        rows = [i for i, o in enumerate(offices) if o[:2] == country]
        cols = min(4, len(rows))
        nrows = math.ceil(len(rows) / cols)
        fig, axes = plt.subplots(
            nrows, cols, figsize=(max(4 * cols, 9), 2.2 * nrows + 1.0), sharex=True, squeeze=False
        )
        for ax in axes.flat[len(rows) :]:
            ax.set_visible(False)
        for ax, i in zip(axes.flat, rows, strict=False):
            full = totals[i, :end]
            mean, sd = _band(full)
            x, m, s = full[start:], mean[start:], sd[start:]
            ax.fill_between(
                dates,
                np.maximum(m - 2 * s, 0),
                m + 2 * s,
                color="#9ecae1",
                alpha=0.6,
                linewidth=0,
                label="baseline +- 2 sd",
            )
            ax.plot(dates, m, color="#3182bd", linewidth=0.8)
            ax.step(dates, x, where="mid", color="#222222", linewidth=1.0, label="incidents")
            marks = flagged.get(offices[i], {})
            top = max(float(np.nanmax(np.r_[x, m + 2 * s])), 1.0) * 1.08
            for kinds, style, text, on_top in (
                (_COUNTING, {"color": "#d62728", "marker": "o"}, "more incidents", False),
                ({Detector.FIRST_SEEN}, {"color": "#ff7f0e", "marker": "v"}, "first seen", True),
                ({Detector.QUANTITY}, {"color": "#6a3d9a", "marker": "D"}, "large seizure", True),
            ):
                hits = [j for j, w in enumerate(weeks) if marks.get(int(w), set()) & kinds]
                ax.scatter(
                    [dates[j] for j in hits],
                    [top] * len(hits) if on_top else x[hits],
                    s=16,
                    zorder=3,
                    label=text,
                    clip_on=False,
                    **style,
                )
            ax.set_ylim(0, top * 1.06)
            ax.set_title(names[i], fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
            ax.grid(axis="y", linewidth=0.3)
        handles, texts = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, texts, loc="lower center", fontsize=8, ncol=5, frameon=False)
        fig.suptitle(
            f"{country.upper()}: incidents per week per crossing, to {analysis.week_label}",
            fontsize=11,
        )
        fig.autofmt_xdate()
        fig.tight_layout(rect=(0, 0.5 / fig.get_figheight(), 1, 1))
        path = folder / f"crossings-{country}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.16 * len(offices) + 1.2)))
    # Each crossing against its own average of the year shown: a busy crossing is not
    # red every week, and a quiet one's doubling stands out.
    raw = totals[:, start:end]
    view = raw / np.maximum(raw.mean(axis=1, keepdims=True), 0.1)
    image = ax.imshow(
        view,
        aspect="auto",
        cmap="YlOrRd",
        interpolation="nearest",
        norm=PowerNorm(0.7, vmin=0, vmax=3.0),
    )
    for i, office in enumerate(offices):
        for j, w in enumerate(weeks):
            if int(w) in flagged.get(office, {}):
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#08306b", linewidth=1.0
                    )
                )
    ax.set_yticks(range(len(offices)))
    ax.set_yticklabels(
        [f"{o[:2].upper()} {n}" for o, n in zip(offices, names, strict=True)], fontsize=6
    )
    step = 4
    ax.set_xticks(range(0, len(weeks), step))
    ax.set_xticklabels([label(int(w)) for w in weeks[::step]], fontsize=7, rotation=60)
    for i in range(1, len(offices)):
        if offices[i][:2] != offices[i - 1][:2]:
            ax.axhline(i - 0.5, color="#555555", linewidth=0.6)
    bar = fig.colorbar(image, ax=ax, fraction=0.03, extend="max")
    bar.set_label("incidents, times the crossing's average of the year")
    ax.set_title(
        f"Incidents per crossing and week against its average (boxes: signals), "
        f"to {analysis.week_label}"
    )
    fig.tight_layout()
    path = folder / "heatmap.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(path)
    return written
