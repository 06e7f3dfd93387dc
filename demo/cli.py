"""``blo-demo``: the field scenario in one command.

blo-demo [--broker amqtt|mosquitto] [--lang en|km] [--offices N] [--dir DIR] [--no-live]
         [--web [--web-port 8080]]
blo-demo --federated [--dir DIR]     two countries' brokers, bridged by rule

Exit status 0 only if every office received everything it should and no
office accepted anything forged; 1 otherwise; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.console import Console
from rich.live import Live

from demo.config import DemoError, DemoSettings, load_settings
from demo.scenario import Demo, OfficeStatus
from demo.view import live_view, outcome_view, story_lines
from schemas import BloError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blo-demo",
        description="Run the field scenario: NACD's seizure alert to every BLO, Bavet's "
        "incident report, a cross-border bulletin and a forgery, on real clients over TLS.",
    )
    parser.add_argument("--broker", choices=["amqtt", "mosquitto"], help="default: amqtt")
    parser.add_argument("--lang", choices=["en", "km"], help="language of the view (en)")
    parser.add_argument("--offices", type=int, help="office tablets, 3 to 500 (default 13)")
    parser.add_argument("--dir", type=Path, help="keep the PKI, inboxes and logs here")
    parser.add_argument("--no-live", dest="live", action="store_const", const=False)
    parser.add_argument("--timeout", type=float, help="seconds before giving up (120)")
    parser.add_argument("--cut-every", type=float, help="mean seconds between link cuts (3)")
    parser.add_argument("--seed", type=int, help="seed of the cuts and reading delays")
    parser.add_argument(
        "--federated",
        action="store_true",
        help="two countries, two Mosquitto brokers bridged by rule: the bulletin exchange "
        "across them",
    )
    parser.add_argument(
        "--web", action="store_const", const=True, help="serve HQ's web page while it plays"
    )
    parser.add_argument("--web-port", type=int, help="the page's port (default 8080)")
    return parser


@contextlib.contextmanager
def _folder(settings: DemoSettings) -> Iterator[Path]:
    if settings.dir is None:
        with tempfile.TemporaryDirectory(prefix="blo-demo-") as tmp:
            yield Path(tmp)
        return
    if settings.dir.exists() and any(settings.dir.iterdir()):
        raise DemoError(f"{settings.dir} is not empty: give a new or empty folder to --dir")
    settings.dir.mkdir(parents=True, exist_ok=True)
    yield settings.dir


def _title(demo: Demo) -> str:
    broker = "Mosquitto" if demo.settings.broker == "mosquitto" else "embedded broker"
    seconds = time.monotonic() - demo.started
    page = f" · HQ's page {demo.web.url}" if demo.web is not None else ""  # --web
    return f"blo-demo · {broker} · {len(demo.offices)} offices + NACD · {seconds:4.1f} s{page}"


def run(settings: DemoSettings, console: Console) -> int:
    """Run the demo with ``settings``, drawing on ``console``; returns the exit status."""
    with _folder(settings) as folder:
        logging.basicConfig(
            level=logging.INFO,
            filename=folder / "demo.log",
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            force=True,
        )
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        demo = Demo(settings, folder)
        live = settings.live and console.is_terminal
        if live:
            with Live(console=console, refresh_per_second=8, transient=False) as screen:

                def draw(demo: Demo, offices: list[OfficeStatus]) -> None:
                    view = live_view(
                        _title(demo), offices, demo.events, settings.lang, console.height
                    )
                    screen.update(view)

                outcome = demo.run(draw)
        else:
            printed = [0]

            def tell(demo: Demo, offices: list[OfficeStatus]) -> None:
                console.print(story_lines(demo.events[printed[0] :]), end="")
                printed[0] = len(demo.events)

            outcome = demo.run(tell)
            console.print(story_lines(demo.events[printed[0] :]), end="")
        console.print(outcome_view(outcome, _title(demo)))
        if settings.dir is not None:
            console.print(f"PKI, inboxes, archive and demo.log are kept in {folder}")
        return 0 if outcome.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-demo``; returns the exit status."""
    args = _parser().parse_args(argv)
    federated = vars(args).pop("federated")
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough for the summary table
        console = Console(width=max(console.width, 132))
    try:
        settings = load_settings(os.environ, vars(args))
        if federated:
            from demo.federated import run_federated

            with _folder(settings) as folder:
                return run_federated(settings, folder, console)
        return run(settings, console)
    except BloError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]blo-demo: error:[/red] {exc}", highlight=False
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
