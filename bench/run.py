"""blo-alert benchmarks, side by side with raw paho on the same broker in the same run.

    python bench/run.py [--quick] [--json FILE] [--brokers amqtt,mosquitto] [NAME ...]

NAME is any of size, fanout, receive, catchup, scale, memory, trends, photo, web, link
(default: all).
Each figure is a ratio (or a count) measured in one run, because absolute
timings on a shared 2-core machine are noisy; each table gives the median of
the rounds and their spread. ``--quick`` runs tiny sizes (the smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from bench import fanout, link, memory, scale
from bench import photo as photo_bench
from bench import size as size_bench
from bench import trends as trends_bench
from bench import web as web_bench
from bench.harness import Fleet, broker, fleet, spread
from broker import mosquitto_binary

NAMES = [
    "size",
    "fanout",
    "receive",
    "catchup",
    "scale",
    "memory",
    "trends",
    "photo",
    "web",
    "link",
]
MODES = ("raw", "project")


class Plan:
    """Sizes of a full run, or of ``--quick``."""

    def __init__(self, quick: bool) -> None:
        self.rounds = 1 if quick else 3
        self.fanout_rounds = 1 if quick else 2
        self.tablets = 6 if quick else 74
        self.rate = 20.0 if quick else 100.0
        self.seconds = 1.0 if quick else 10.0
        # A rate 74 tablet pipelines sharing this machine's 2 cores keep up with.
        self.sustained_rate = 10.0
        # The delivery rate at which the backlog stays flat: rates tried in turn (each
        # round ``flat_seconds`` long) until one is not kept up with.
        self.flat_rates = [10.0] if quick else [10.0, 20.0, 40.0, 80.0, 160.0]
        self.flat_seconds = 1.0 if quick else 6.0
        # link: alerts at a rate through a link cut every ~3 s; an idle tablet for a while.
        self.link_alerts = 10 if quick else 150
        self.link_rate = 5.0
        self.link_life = 3.0
        self.idle_seconds = 3.0 if quick else 65.0  # covers the minute's catch-up request
        self.receive_count = 200 if quick else 3000
        self.catchup_count = 100 if quick else 1000
        self.scale_steps = {
            # A country's keyset holds about 1,400 nodes (MAX_BODY, since each entry
            # carries its sealing key too): the largest fleet one PKI can enrol.
            "mosquitto": [20, 40] if quick else [500, 1000, 1400],
            "amqtt": [20, 40] if quick else [250, 500, 1000, 1400],
        }
        self.scale_seconds = 60.0 if quick else 120.0
        # photo: ~2 MB over ~256 kbit/s (about a minute a path), or ~100 KB over a fast link.
        self.photo_side = 520 if quick else 2400
        self.photo_rate = 4_000_000.0 if quick else photo_bench.SHAPED_RATE
        self.photo_within = 60.0 if quick else 600.0


def versions() -> dict[str, str]:
    """Versions the figures were taken with."""
    found = {"python": platform.python_version()}
    for package in ("amqtt", "paho-mqtt", "cryptography", "msgpack", "pydantic"):
        found[package] = version(package)
    binary = mosquitto_binary()
    if binary:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
        first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
        found["mosquitto"] = first.removeprefix("mosquitto version ").strip()
    return found


def _cell(values: list[float], digits: int = 1) -> str:
    mid, low, high = spread(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def _verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def _rounds(
    run: Callable[[str, int], dict[str, Any]], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Raw and project rounds interleaved, so drift in the machine hits both alike."""
    out: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for number in range(rounds):
        for mode in MODES:
            out[mode].append(run(mode, number))
    return out


def bench_size(console: Console, *_: Any) -> dict[str, Any]:
    figures = size_bench.measure(size_bench.load(size_bench.REFERENCE))
    figures.update(size_bench.measure_bulletin())  # bulletin_plain, bulletin_sealed
    table = Table(title="size: the reference alert on the wire, bytes")
    table.add_column("format")
    table.add_column("bytes", justify="right")
    for name, value in figures.items():
        table.add_row(name, f"{value:,}")
    console.print(table)
    console.print(f"goal blo_signed <= 640: {_verdict(figures['blo_signed'] <= 640)}")
    return figures


def bench_trends(console: Console, quick: bool, work: Path) -> dict[str, Any]:
    """74 offices x 3 years of signed incidents analysed for one week (goal <= 3 s)."""
    offices, years = (6, 1) if quick else (74, 3)
    figures = trends_bench.measure(7, work / "trends", offices, years)
    table = Table(title=f"trends: {offices} offices x {years} years, one week analysed")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name.removeprefix("trends."), f"{value:,}")
    console.print(table)
    if not quick:
        console.print(f"goal seconds <= 3: {_verdict(figures['trends.seconds'] <= 3)}")
    return {key.removeprefix("trends."): value for key, value in figures.items()}


def _fanout_at(
    plan: Plan, made: Fleet, work: Path, kind: str, rate: float, rounds: int
) -> dict[str, Any]:
    runs = _rounds(
        lambda mode, n: fanout.fanout_round(
            kind,
            mode,
            made,
            work / f"fanout-{kind}-{rate:g}-{mode}-{n}",
            tablets=plan.tablets,
            rate=rate,
            seconds=plan.seconds,
        ),
        rounds,
    )
    p50 = {m: [r["p50_ms"] for r in runs[m]] for m in MODES}
    p99 = {m: [r["p99_ms"] for r in runs[m]] for m in MODES}
    return {
        "rate": rate,
        "p50_ms": spread(p50["project"])[0],
        "p99_ms": spread(p99["project"])[0],
        "raw_p50_ms": spread(p50["raw"])[0],
        "raw_p99_ms": spread(p99["raw"])[0],
        "p99_ratio": spread(p99["project"])[0] / spread(p99["raw"])[0],
        "lost": sum(r["lost"] for m in MODES for r in runs[m]),
        "broker_mib": max(r["broker_mib"] for r in runs["project"]),
        "cells": {
            m: (_cell(p50[m]), _cell(p99[m]), sum(r["lost"] for r in runs[m])) for m in MODES
        },
        "rounds": runs,
    }


#: A fan-out round is kept up with if nothing is lost and 99% of deliveries are
#: committed within this long of their send: a backlog that grows for a round's
#: seconds pushes its last deliveries past it.
FLAT_P99_MS = 1000.0


def _flat_rate(plan: Plan, made: Fleet, work: Path, kind: str, mode: str) -> dict[str, Any]:
    """The highest of ``plan.flat_rates`` at which ``mode``'s fleet keeps up (0 if none)."""
    best, tried = 0.0, []
    for rate in plan.flat_rates:
        got = fanout.fanout_round(
            kind,
            mode,
            made,
            work / f"flat-{kind}-{mode}-{rate:g}",
            tablets=plan.tablets,
            rate=rate,
            seconds=plan.flat_seconds,
        )
        flat = got["lost"] == 0 and got["p99_ms"] <= FLAT_P99_MS
        tried.append({"rate": rate, "flat": flat, **got})
        if not flat:
            break
        best = rate
    return {"rate": best, "tried": tried}


def bench_fanout(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    """Latency at a rate the tablets keep up with; and the delivery rate at which the
    backlog stays flat, ours against raw paho's (side by side)."""
    results: dict[str, Any] = {}
    table = Table(
        title=f"fanout: HQ -> {plan.tablets} tablets, QoS 1, {plan.sustained_rate:g} alerts/s "
        f"for {plan.seconds:g} s a round; latency ms (median of rounds [spread])"
    )
    for column in ("broker", "path", "p50 ms", "p99 ms", "lost", "p99 ratio"):
        table.add_column(column, justify="right" if column not in ("broker", "path") else "left")
    flat_table = Table(
        title=f"fanout: the delivery rate at which the backlog stays flat ({plan.tablets} "
        f"tablets sharing this machine; 0 lost, p99 <= {FLAT_P99_MS:g} ms; rates tried "
        f"{', '.join(f'{r:g}' for r in plan.flat_rates)} alerts/s)"
    )
    for column in ("broker", "ours alerts/s", "raw alerts/s", "ratio"):
        flat_table.add_column(column)
    for kind in brokers:
        sustained = _fanout_at(plan, made, work, kind, plan.sustained_rate, plan.fanout_rounds)
        for mode in MODES:
            p50, p99, lost = sustained["cells"][mode]
            last = ""
            if mode == "project":
                ratio = sustained["p99_ratio"]
                last = f"{ratio:.2f} {_verdict(ratio <= 1.5)} (goal <= 1.5)"
            table.add_row(kind, mode, p50, p99, str(lost), last)
        del sustained["cells"]
        flat = {mode: _flat_rate(plan, made, work, kind, mode) for mode in MODES}
        ours, raw = flat["project"]["rate"], flat["raw"]["rate"]
        top = " (highest tried)" if raw == plan.flat_rates[-1] else ""
        flat_table.add_row(
            kind, f"{ours:g}", f"{raw:g}{top}", f"{ours / raw:.2f}" if raw else "n/a"
        )
        results[kind] = {
            **sustained,
            "flat_rate": ours,
            "raw_flat_rate": raw,
            "flat_ratio": ours / raw if raw else float("nan"),
            "flat": flat,
        }
    console.print(table)
    console.print(flat_table)
    return results


def _one_tablet(
    console: Console,
    title: str,
    round_: Callable[..., dict[str, Any]],
    key: str,
    unit: str,
    goal: tuple[str, float],
    plan: Plan,
    made: Fleet,
    work: Path,
    brokers: list[str],
    count: int,
) -> dict[str, Any]:
    """receive and catchup: one figure per path, and the project/raw ratio against a goal."""
    results: dict[str, Any] = {}
    table = Table(title=title)
    for column in ("broker", f"project {unit}", f"raw {unit}", f"ratio (goal {goal[0]} {goal[1]})"):
        table.add_column(column)
    digits = 0 if unit == "msgs/s" else 3
    for kind in brokers:
        runs = _rounds(
            lambda mode, n, kind=kind: round_(
                kind, mode, made, work / f"{key}-{kind}-{mode}-{n}", count=count
            ),
            plan.rounds,
        )
        values = {m: [r[key] for r in runs[m]] for m in MODES}
        ratio = spread(values["project"])[0] / spread(values["raw"])[0]
        met = ratio >= goal[1] if goal[0] == ">=" else ratio <= goal[1]
        results[kind] = {
            "ratio": ratio,
            key: spread(values["project"])[0],
            f"raw_{key}": spread(values["raw"])[0],
            "rounds": runs,
        }
        table.add_row(
            kind,
            _cell(values["project"], digits),
            _cell(values["raw"], digits),
            f"{ratio:.2f} {_verdict(met)}",
        )
    console.print(table)
    return results


def bench_receive(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    title = f"receive: one tablet draining {plan.receive_count:,} messages; msgs/s"
    return _one_tablet(
        console,
        title,
        fanout.receive_round,
        "msgs_per_s",
        "msgs/s",
        (">=", 0.6),
        plan,
        made,
        work,
        brokers,
        plan.receive_count,
    )


def bench_catchup(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    title = (
        f"catchup: {plan.catchup_count:,} alerts queued while offline; "
        "seconds from reconnect to the last one committed"
    )
    return _one_tablet(
        console,
        title,
        fanout.catchup_round,
        "seconds",
        "s",
        ("<=", 1.5),
        plan,
        made,
        work,
        brokers,
        plan.catchup_count,
    )


def bench_scale(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    results: dict[str, Any] = {}
    table = Table(title="scale: tablets on one broker, one alert to all, 0 loss")
    for column in ("broker", "tablets", "connected", "accepted", "connect s", "broker MiB", ""):
        table.add_column(column)
    goals = {"mosquitto": 2000, "amqtt": 500}
    for kind in brokers:
        reached, steps = 0, []
        for count in plan.scale_steps[kind]:
            if count > len(made.tablets):
                break
            got = scale.step(kind, made, work / f"scale-{kind}-{count}", count, plan.scale_seconds)
            steps.append(got)
            table.add_row(
                kind,
                f"{count:,}",
                f"{got['connected']:,}",
                f"{got['accepted']:,}",
                f"{got['connect_s']:.1f}",
                f"{got['broker_mib']:.0f}",
                "[green]ok[/green]" if got["ok"] else "[red]failed[/red]",
            )
            if not got["ok"]:
                break
            reached = count
        results[kind] = {"tablets": reached, "steps": steps}
    console.print(table)
    for kind in brokers:
        reached = results[kind]["tablets"]
        verdict = _verdict(reached >= goals[kind])
        console.print(f"scale {kind}: {reached:,} (goal >= {goals[kind]:,}) {verdict}")
    return results


def bench_memory(
    console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str], done: dict[str, Any]
) -> Any:
    kind = "amqtt" if "amqtt" in brokers else brokers[0]
    runs = [
        memory.tablet_round(kind, made, work / f"memory-{n}", count=plan.catchup_count)
        for n in range(plan.rounds)
    ]
    tablet = spread([r["tablet_mib"] for r in runs])[0]
    console.print(
        f"memory: blo-sub run after catching up on {plan.catchup_count:,} alerts: "
        f"{_cell([r['tablet_mib'] for r in runs])} MiB peak (goal <= 40) {_verdict(tablet <= 40)}"
    )
    # The embedded broker with every tablet connected, during a fan-out the tablets
    # keep up with; and its peak under the agreed rate, where messages pile up in it.
    if "amqtt" in done.get("fanout", {}):
        broker_mib = done["fanout"]["amqtt"]["broker_mib"]
        tried = done["fanout"]["amqtt"]["flat"]["project"]["tried"]
        overload_mib = max(t["broker_mib"] for t in tried)
    else:
        broker_mib = fanout.fanout_round(
            "amqtt",
            "project",
            made,
            work / "memory-broker",
            tablets=plan.tablets,
            rate=plan.sustained_rate,
            seconds=min(plan.seconds, 3.0),
        )["broker_mib"]
        overload_mib = float("nan")
    console.print(
        f"memory: embedded broker with {plan.tablets} tablets connected, "
        f"{plan.sustained_rate:g} alerts/s: {broker_mib:.1f} MiB peak (goal <= 60) "
        f"{_verdict(broker_mib <= 60)}"
        + (
            f"; highest during the flat-rate search: {overload_mib:.1f} MiB"
            if not math.isnan(overload_mib)
            else ""
        )
    )
    return {
        "tablet_mib": tablet,
        "broker_mib": broker_mib,
        "broker_mib_flat_search": overload_mib,
        "rounds": runs,
    }


def bench_photo(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    """One photo, Bavet -> HQ through the rate-limited proxy: ours vs raw paho, interleaved."""
    picture = photo_bench.camera_photo(work / "photo.jpg", plan.photo_side)
    size = sum(len(b) for b in photo_bench.blobs(picture))
    results: dict[str, Any] = {}
    table = Table(
        title=f"photo: {size:,} bytes (preview + full, --keep-original) Bavet -> HQ, "
        f"link {plan.photo_rate * 8 / 1000:,.0f} kbit/s, no cuts"
    )
    for column in ("broker", "project s", "raw s", "ratio (goal <= 1.3)", "wire (goal <= 1.1)"):
        table.add_column(column)
    rounds = {"raw": photo_bench.raw_round, "project": photo_bench.project_round}
    for kind in brokers:
        with broker(kind, made, work / f"photo-{kind}" / "broker") as run:
            runs = _rounds(
                lambda mode, n, run=run, kind=kind: rounds[mode](
                    made,
                    run.port,
                    work / f"photo-{kind}" / f"{mode}-{n}",
                    picture,
                    plan.photo_rate,
                    plan.photo_within,
                ),
                1,
            )
        seconds = runs["project"][0]["seconds"]
        raw_seconds = runs["raw"][0]["seconds"]
        ratio = seconds / raw_seconds
        wire_ratio = runs["project"][0]["wire"] / size
        results[kind] = {
            "seconds": seconds,
            "raw_seconds": raw_seconds,
            "ratio": ratio,
            "wire_ratio": wire_ratio,
            "raw_wire_ratio": runs["raw"][0]["wire"] / size,
            "bytes": size,
        }
        table.add_row(
            kind,
            f"{seconds:.1f}",
            f"{raw_seconds:.1f}",
            f"{ratio:.2f} {_verdict(ratio <= 1.3)}",
            f"{wire_ratio:.3f} {_verdict(wire_ratio <= 1.1)}",
        )
    console.print(table)
    return results


def bench_link(console: Console, plan: Plan, made: Fleet, work: Path, brokers: list[str]) -> Any:
    """Bytes on a tablet's metered link: per delivered alert with cuts, and idle a day."""
    results: dict[str, Any] = {}
    table = Table(
        title=f"link: one tablet through the fault proxy; {plan.link_alerts} alerts at "
        f"{plan.link_rate:g}/s, cut every ~{plan.link_life:g} s; every byte both ways"
    )
    for column in (
        "broker",
        "bytes/alert",
        "/ alert + receipt envelopes (goal <= 1.5)",
        "/ alert envelope",
        "links",
        "dups",
        "idle KB/day",
    ):
        table.add_column(column)
    for kind in brokers:
        cut = link.bytes_round(
            kind,
            made,
            work / f"link-{kind}",
            alerts=plan.link_alerts,
            rate=plan.link_rate,
            mean_life=plan.link_life,
        )
        idle = link.idle_round(kind, made, work / f"idle-{kind}", seconds=plan.idle_seconds)
        ratio = cut["bytes_per_alert_ratio"]
        table.add_row(
            kind,
            f"{cut['bytes_per_alert']:,.0f}",
            f"{ratio:.2f} {_verdict(ratio <= 1.5)}",
            f"{cut['bytes_per_alert_alert_only_ratio']:.2f}",
            str(cut["connections"]),
            str(cut["duplicates"]),
            f"{idle['kb_per_day']:,.0f}",
        )
        results[kind] = {**cut, "idle_kb_per_day": idle["kb_per_day"], "idle": idle}
    console.print(table)
    return results


def summary(console: Console, out: dict[str, Any], brokers: list[str]) -> dict[str, Any]:
    """The issue's goals side by side, from this run's figures."""
    rows: list[tuple[str, str, Callable[[dict[str, Any], str], float], Callable[[float], bool]]]
    rows = [
        (
            "fanout p99 ratio at the sustained rate",
            "<= 1.5",
            lambda o, k: o["fanout"][k]["p99_ratio"],
            lambda v: v <= 1.5,
        ),
        (
            "flat-backlog rate, ours / raw (alerts/s)",
            "",
            lambda o, k: o["fanout"][k]["flat_ratio"],
            lambda v: True,
        ),
        ("receive ratio", ">= 0.6", lambda o, k: o["receive"][k]["ratio"], lambda v: v >= 0.6),
        ("catch-up ratio", "<= 1.5", lambda o, k: o["catchup"][k]["ratio"], lambda v: v <= 1.5),
        (
            "tablet MiB (blo-sub run, 1,000 caught up)",
            "<= 40",
            lambda o, k: o["memory"]["tablet_mib"],
            lambda v: v <= 40,
        ),
        (
            "link bytes / envelope bytes, cuts every ~3 s",
            "<= 1.5",
            lambda o, k: o["link"][k]["bytes_per_alert_ratio"],
            lambda v: v <= 1.5,
        ),
        ("idle tablet KB/day", "", lambda o, k: o["link"][k]["idle_kb_per_day"], lambda v: True),
    ]
    table = Table(title="issue 15: the goals side by side (this run)")
    table.add_column("figure")
    for kind in brokers:
        table.add_column(kind, justify="right")
    table.add_column("goal")
    figures: dict[str, Any] = {}
    for name, goal, get, ok in rows:
        cells = []
        for kind in brokers:
            try:
                value = get(out, kind)
            except KeyError:
                cells.append("-")
                continue
            figures.setdefault(kind, {})[name] = value
            cells.append(f"{value:,.2f} " + (_verdict(ok(value)) if goal else ""))
        table.add_row(name, *cells, goal)
    console.print(table)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(NAMES))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run?")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--brokers", default="amqtt,mosquitto")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(NAMES)}")
    names = args.names or NAMES
    brokers = [b for b in args.brokers.split(",") if b]
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for the tables
        console = Console(width=max(console.width, 132))
    if "mosquitto" in brokers and mosquitto_binary() is None:
        console.print(
            "[yellow]mosquitto is not installed: apt-get install mosquitto; skipped[/yellow]"
        )
        brokers.remove("mosquitto")
    plan = Plan(args.quick)
    out: dict[str, Any] = {"versions": versions(), "quick": args.quick}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="blo-bench-") as tmp:
        work = Path(tmp)
        # The offices' own fleet (their keysets are a real country's size), and
        # for scale alone one as large as its largest step.
        nets = set(names) - {"size", "scale", "trends", "web"}
        made = fleet(work / "fleet", plan.tablets) if nets else None
        for name in names:
            if name == "size":
                out["size"] = bench_size(console)
                continue
            if name == "web":  # HQ's page in Chromium: web.hq_page_kb, web.hq_load_ms
                sizes = (8, 10) if args.quick else (74, 100)
                out["web"] = {k[4:]: v for k, v in web_bench.measure(work / "web", *sizes).items()}
                console.print(f"web: {out['web']} (goals <= 150 KB, <= 1000 ms)")
                continue
            if name == "trends":
                console.rule(name)
                out["trends"] = bench_trends(console, args.quick, work)
                continue
            console.rule(name)
            if name == "scale":
                largest = max(s for k in brokers for s in plan.scale_steps[k])
                big = fleet(work / "scale-fleet", largest, bundled=0)
                out[name] = bench_scale(console, plan, big, work, brokers)
                continue
            assert made is not None
            if name == "memory":
                out[name] = bench_memory(console, plan, made, work, brokers, out)
            else:
                out[name] = globals()[f"bench_{name}"](console, plan, made, work, brokers)
    out["goals"] = summary(console, out, brokers)
    out["seconds"] = time.monotonic() - started
    console.print(f"versions: {out['versions']}; {out['seconds']:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
