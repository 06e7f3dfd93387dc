"""Trends at full size: 74 offices x 3 years of signed incidents, read and analysed.

    .venv/bin/python bench/trends.py [--seed 7] [--keep DIR]

Simulates the history (not timed), writes it as signed incidents into an archive
store, then times what ``blo-trends --archive`` does for one week: read and decode
every incident, count, roll up, run every detector. Prints JSON with
``trends.seconds`` (the analysis) and the detection figures against the truth
file, with an outbreak-free history of the same size for the false alarms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trends.counts import weekly_counts
from trends.detectors import detect
from trends.evaluate import score
from trends.records import records_of
from trends.report import analyse, read_since
from trends.simulate import history, incidents_of, write
from trends.sources import newest, read_archive
from trends.weeks import week_of


def measure(seed: int, folder: Path, offices: int = 74, years: int = 3) -> dict[str, float]:
    """Simulate ``offices`` x ``years`` (not timed), then time one week's analysis."""
    hist = history(offices, years, seed=seed)
    now = datetime(2026, 7, 6, tzinfo=UTC)
    write(hist, folder / "sim", now)
    best = float("inf")
    for _ in range(3):
        # What ``blo-trends --archive FILE`` does for the newest week.
        start = time.perf_counter()
        path = folder / "sim" / "archive.sqlite3"
        last = newest(path, archive=True)
        assert last is not None
        week = week_of(datetime.fromtimestamp(last, UTC))
        analysis = analyse(read_archive(path, read_since(week)), week)
        best = min(best, time.perf_counter() - start)
    everything = analyse(read_archive(path), week)
    result = score(
        detect(
            everything.counts,
            range(everything.counts.first_week, everything.counts.last_week + 1),
        ),
        hist.truth,
    )
    clean = history(offices, years, seed=seed + 1000, inject=False)
    counts = weekly_counts(
        records_of(incidents_of(clean), {o.node: o.region for o in clean.offices})
    )
    quiet = score(detect(counts, range(counts.first_week, counts.last_week + 1)), clean.truth)
    return {
        "trends.seconds": round(best, 3),
        "trends.records_read": analysis.incidents,
        "trends.records": everything.incidents,
        "trends.recall_outbreaks": round(result.recall("outbreak"), 3),
        "trends.recall_new_substances": round(result.recall("new_substance"), 3),
        "trends.recall_quantity": round(result.recall("quantity"), 3),
        "trends.events": sum(result.injected.values()),
        "trends.false_per_100_office_weeks": round(quiet.false_per_100, 3),
        "trends.quantity_false_per_100_office_weeks": round(quiet.quantity_false_per_100, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="keep the simulation in this folder")
    args = parser.parse_args()
    if args.keep:
        print(json.dumps(measure(args.seed, args.keep), indent=1))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(measure(args.seed, Path(tmp)), indent=1))


if __name__ == "__main__":
    main()
