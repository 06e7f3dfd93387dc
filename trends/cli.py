"""``blo-trends``: weekly counts, signals and levels from a node's inbox or the archive.

blo-trends --bundle kh-nacd.json [--data DIR]     an HQ's inbox
blo-trends --archive blo-data/kh-archive/archive.sqlite3
    [--week 2026-W26] [--json] [--lang km] [--plots DIR]
blo-trends simulate --offices 74 --years 3 --seed 7 --out sim
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas import BloError
from trends.detectors import Signal
from trends.errors import SimulateError, SourceError
from trends.report import LEVEL_WEEKS, Analysis, analyse, read_since
from trends.sources import Incidents, newest, read_archive, read_inbox
from trends.text import CRIME_KM, khmer_digits
from trends.weeks import label, week_of, week_of_date

__all__ = ["main"]

_WORDS = {
    "en": {
        "signals": "Active signals, week {week}",
        "none": "No active signals in week {week}.",
        "levels": "Levels per crossing, week {week}",
        "crossing": "Crossing",
        "country": "Country",
        "this": "This week",
        "usual": "Usual (12 wk)",
        "cusual": "Country usual",
        "top": "Most frequent",
        "where": "Where",
        "detector": "Detector",
        "line": "What it says",
        "read": "{n} incident records ({span}) from {src}",
        "unreadable": "{n} stored messages could not be decoded and are left out",
    },
    "km": {
        "signals": "សញ្ញាសកម្ម សប្តាហ៍ {week}",
        "none": "គ្មានសញ្ញាសកម្មក្នុងសប្តាហ៍ {week}។",
        "levels": "កម្រិតតាមច្រកព្រំដែន សប្តាហ៍ {week}",
        "crossing": "ច្រកព្រំដែន",
        "country": "ប្រទេស",
        "this": "សប្តាហ៍នេះ",
        "usual": "ធម្មតា (១២ សប្តាហ៍)",
        "cusual": "ធម្មតាប្រទេស",
        "top": "ញឹកញាប់បំផុត",
        "where": "ទីកន្លែង",
        "detector": "វិធីរកឃើញ",
        "line": "ខ្លឹមសារ",
        "read": "កំណត់ត្រាករណី {n} ({span}) ពី {src}",
        "unreadable": "សារ {n} មិនអាចអានបាន ហើយមិនត្រូវបានរាប់បញ្ចូលទេ",
    },
}


_LEVELS = {
    "en": {"crossing": "crossing", "region": "border region", "country": "country"},
    "km": {"crossing": "ច្រកព្រំដែន", "region": "តំបន់ព្រំដែន", "country": "ប្រទេស"},
}


def _week(text: str) -> int:
    try:
        year, _, number = text.upper().partition("-W")
        return week_of_date(date.fromisocalendar(int(year), int(number), 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO week such as 2026-W26") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="blo-trends",
        description="Trends and emerging threats: weekly counts per crossing and crime, "
        "explainable signals, levels. 'blo-trends simulate --help' for the simulator.",
        add_help=False,
    )
    # --help only, as in every blo- command (-h is a broker's host in the others).
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--bundle", type=Path, help="the node's enrolment bundle (finds its inbox)")
    p.add_argument("--data", type=Path, help="the node's folder (default blo-data/NODE)")
    p.add_argument("--archive", type=Path, help="the archive's store file instead of an inbox")
    p.add_argument(
        "--week",
        type=_week,
        help="the week to analyse, e.g. 2026-W26 (default: the last complete week)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--lang", default="en", choices=["en", "km"], help="language of the report (default en)"
    )
    p.add_argument("--plots", type=Path, help="write PNG plots into this folder")
    p.add_argument("--rows", type=int, default=40, help="crossings shown in the table (default 40)")
    p.add_argument(
        "--publish",
        action="store_true",
        help="queue each office's signed trend summary in this HQ node's outbox "
        "(sent by its running blo-sub run); needs --bundle",
    )
    return p


def _sim_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="blo-trends simulate",
        description="Write a realistic incident history as signed incidents (PKI, HQ inboxes, "
        "an archive store) with a truth file of the injected outbreaks.",
        add_help=False,
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("--offices", type=int, default=74, help="offices, 1 to 74 (default 74)")
    p.add_argument("--years", type=float, default=3, help="years of history (default 3)")
    p.add_argument(
        "--seed", type=int, default=1, help="random seed, which fixes the history (default 1)"
    )
    p.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    p.add_argument(
        "--end",
        type=date.fromisoformat,
        help="a day in the last week simulated "
        "(default: a week ago, so the last complete week is the newest)",
    )
    p.add_argument("--no-events", action="store_true", help="inject nothing (false-alarm runs)")
    return p


def _where(args: argparse.Namespace) -> tuple[Path, bool]:
    """The file to read and whether it is an archive store."""
    if args.archive:
        return args.archive, True
    if args.data is None and args.bundle is None:
        raise SourceError("give --bundle (and --data) of a node, or --archive FILE")
    folder = args.data
    if folder is None:
        from certs import EnrolmentBundle

        folder = Path("blo-data") / EnrolmentBundle.load(args.bundle).node
    return folder / "inbox.sqlite3", False


def _signal_doc(s: Signal) -> dict[str, Any]:
    return {
        "detector": s.detector.value,
        "level": s.key.level,
        "place": s.key.place,
        "office": s.key.office or None,
        "country": s.key.country,
        "crime": s.key.crime.value,
        "substance": s.key.substance or None,
        "week": label(s.week),
        "observed": s.observed,
        "expected": round(s.expected, 3),
        "sd": round(s.spread, 3),
        "p": s.p,
        "unit": s.unit or None,
        "text": {"en": s.explain("en"), "km": s.explain("km")},
    }


def _series_doc(a: Analysis) -> list[dict[str, Any]]:
    """This week's count and quantity of every series active in the last 12 weeks."""
    c = a.counts
    col = c.index(a.week)
    lo = max(col - LEVEL_WEEKS + 1, 0)
    out = []
    for s, key in enumerate(c.keys):
        recent = c.counts[s, lo : col + 1]
        if not recent.any():
            continue
        out.append(
            {
                "office": key.office,
                "crossing": key.place,
                "crime": key.crime.value,
                "substance": key.substance or None,
                "this_week": int(c.counts[s, col]),
                "usual": round(float(recent.mean()), 3),
                "quantity": round(float(c.quantity[s, col]), 3) if c.units[s] else None,
                "unit": c.units[s] or None,
            }
        )
    return out


def _json(a: Analysis, src: Incidents) -> str:
    return json.dumps(
        {
            "source": str(src.source),
            "week": a.week_label,
            "records": a.incidents,
            "unreadable": src.unreadable,
            "signals": [_signal_doc(s) for s in a.signals],
            "series": _series_doc(a),
            "levels": [
                {
                    "office": lv.office,
                    "crossing": lv.crossing,
                    "country": lv.country,
                    "region": lv.region,
                    "this_week": lv.this_week,
                    "usual": round(lv.usual, 2),
                    "country_usual": round(lv.country_usual, 2),
                    "top": lv.top,
                }
                for lv in a.levels
            ],
        },
        ensure_ascii=False,
        indent=1,
    )


def _table(a: Analysis, src: Incidents, lang: str, rows: int) -> None:
    from rich.console import Console
    from rich.table import Table

    w = _WORDS[lang]
    num = khmer_digits if lang == "km" else str
    # Piped output gets a width that fits the table, not rich's default of 80.
    console = Console(width=None if sys.stdout.isatty() else 120)
    span = f"{label(a.counts.first_week)} - {a.week_label}"
    console.print(
        w["read"].format(n=num(str(a.incidents)), src=src.source, span=num(span)), soft_wrap=True
    )
    if src.unreadable:
        console.print(w["unreadable"].format(n=num(str(src.unreadable))), style="bold yellow")
    week = num(a.week_label)
    if a.signals:
        t = Table(title=w["signals"].format(week=week), title_justify="left")
        t.add_column(w["where"])
        t.add_column(w["detector"])
        t.add_column(w["line"])
        for s in a.signals:
            t.add_row(
                _LEVELS[lang][s.key.level],
                s.detector.value,
                s.explain(lang),
                style="bold red" if s.key.level == "crossing" else "",
            )
        console.print(t)
    else:
        console.print(w["none"].format(week=week))
    t = Table(title=w["levels"].format(week=week), title_justify="left")
    for col in ("crossing", "country", "this", "usual", "cusual", "top"):
        t.add_column(w[col], justify="right" if col in ("this", "usual", "cusual") else "left")
    flagged = {s.key.office for s in a.signals if s.key.level == "crossing"}
    shown = sorted(
        a.levels, key=lambda lv: (lv.office not in flagged, -lv.this_week / max(lv.usual, 0.5))
    )[:rows]
    for lv in shown:
        top = lv.top
        if lang == "km":
            from trends.text import SUBSTANCE_KM

            crimes = {c.value.replace("_", " "): km for c, km in CRIME_KM.items()}
            top = crimes.get(top) or SUBSTANCE_KM.get(top, top)
        t.add_row(
            lv.crossing,
            lv.country.upper(),
            num(str(lv.this_week)),
            num(f"{lv.usual:.1f}"),
            num(f"{lv.country_usual:.1f}"),
            top,
            style="bold" if lv.office in flagged else "",
        )
    console.print(t)


def _analyse(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    path, archive = _where(args)
    last = newest(path, archive)
    if last is None:
        raise SourceError(f"{path} holds no incidents: nothing to analyse")
    now = datetime.now(UTC)
    # The last complete week by the clock, unless the data ends earlier (an old copy).
    latest = week_of(datetime.fromtimestamp(last, UTC))
    week = args.week if args.week is not None else min(week_of(now) - 1, latest)
    # Only what the detectors' longest baseline needs is read (plots show a year of
    # flags, each with its own baseline: they read everything).
    since = 0 if args.plots else read_since(week)
    src = read_archive(path, since) if archive else read_inbox(path, since)
    a = analyse(src, week)
    if args.json:
        print(_json(a, src))
    else:
        _table(a, src, args.lang, args.rows)
    if args.plots:
        from trends.plots import plot_all

        pngs = plot_all(a, args.plots)
        for png in pngs:
            print(f"wrote {png}", file=sys.stderr if args.json else sys.stdout)
        if not pngs:
            print(
                "no plots: no complete week of incidents yet "
                "(the current week counts once it ends)",
                file=sys.stderr,
            )
    if args.publish:
        _publish(args, a)
    return 0


def _publish(args: argparse.Namespace, a: Analysis) -> None:
    """Sign and queue one summary per office of this HQ's country that the keyset holds."""
    from certs import EnrolmentBundle
    from publisher import Outbox
    from schemas import Kind, Role, Scope, country_of, may_send
    from trends.summary import summary_for

    if args.bundle is None:
        raise SourceError("--publish signs as a node: give the HQ's --bundle")
    bundle = EnrolmentBundle.load(args.bundle)
    now = datetime.now(UTC).replace(microsecond=0)
    trust = bundle.trust_store(now)
    me, country = trust.node(bundle.node), country_of(bundle.node)
    keyset = trust.keyset(country)
    if me is None or keyset is None or me.role is not Role.HQ:
        raise SourceError(f"{bundle.node} is not an HQ in its keyset: only an HQ publishes trends")
    offices = {n.node for n in keyset.nodes if n.role is Role.BLO and n.revoked is None}
    folder = args.data or Path("blo-data") / bundle.node
    outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
    queued, skipped = 0, []
    try:
        for level in a.levels:
            scope = Scope.node(level.office)
            if level.office not in offices or may_send(me, Kind.TREND, scope, keyset):
                skipped.append(level.office)
                continue
            summary = summary_for(a, level.office)
            outbox.submit(summary, scope, issued=now, expires=now + timedelta(days=14))
            queued += 1
    finally:
        outbox.close()
    print(f"{queued} trend summaries queued in {folder}/outbox.sqlite3 for week {label(a.week)}")
    if skipped:
        shown = ", ".join(sorted(skipped)[:8]) + (" ..." if len(skipped) > 8 else "")
        print(f"{len(skipped)} offices not in {country}'s keyset or not {bundle.node}'s: {shown}")


def _simulate(argv: Sequence[str]) -> int:
    from trends.simulate import history, write

    args = _sim_parser().parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        raise SimulateError(f"{args.out} is not empty: give a new folder for the simulation")
    now = datetime.now(UTC).replace(microsecond=0)
    end = args.end or (now - timedelta(days=7)).date()
    hist = history(
        args.offices,
        args.years,
        args.seed,
        datetime(end.year, end.month, end.day, tzinfo=UTC),
        inject=not args.no_events,
    )
    print(
        f"{len(hist.incidents)} incidents at {len(hist.offices)} offices, weeks "
        f"{label(hist.truth.first_week)} to {label(hist.truth.last_week)}, "
        f"{len(hist.truth.events)} injected events"
    )
    paths = write(hist, args.out, now, progress=None)
    print(f"archive store: {paths['archive']}")
    print(f"truth file:    {paths['truth']}")
    for name, path in paths.items():
        if name.endswith("-nacd"):
            print(f"inbox of {name}: {path} (bundle {args.out}/pki/{name[:2]}/bundles/{name}.json)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-trends``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["simulate"]:
            return _simulate(argv[1:])
        return _analyse(argv)
    except BloError as exc:
        print(f"blo-trends: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
