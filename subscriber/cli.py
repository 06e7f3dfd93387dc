"""``blo-sub``: a node's client (``run``) and the officer's commands.

Commands: ``run``, ``inbox``, ``show``, ``status``, and for an incident's photos
``photos`` and ``map``.

    blo-sub run    --bundle kh-blo-bavet.json -h broker.example.org -p 8883
    blo-sub inbox  --bundle kh-blo-bavet.json [--lang km] [--json]
    blo-sub show   --bundle kh-blo-bavet.json ID [--json]
    blo-sub status --bundle kh-blo-bavet.json [--json]
    blo-sub photos --bundle kh-nacd.json ID --out DIR
    blo-sub map    --bundle kh-nacd.json ID --out map.png

The node's files live in ``--data`` (default ``blo-data/NODE``): inbox.sqlite3
and outbox.sqlite3, shared by the running client and these commands. ``--json``
prints one JSON document for scripts (``show --json`` does not mark the message
read: a script is not a person reading it).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from certs import EnrolmentBundle
from publisher import Outbox
from publisher.errors import DataFolderError
from schemas import BloError, Incident, Kind, Lang, Role
from subscriber.client import NodeClient
from subscriber.inbox import Inbox, Stored
from subscriber.receipts import settle

if TYPE_CHECKING:
    from rich.console import Console

    from schemas.seal import Opener

__all__ = ["main", "node_folder"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blo-sub", description="A blo-alert node: keep the link, read the inbox."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        p.add_argument("--bundle", type=Path, required=True, help="the node's enrolment bundle")
        p.add_argument("--data", type=Path, help="the node's folder (default blo-data/NODE)")
        return p

    run = command("run", "connect and keep connected: receive, store, send, catch up")
    run.add_argument("-h", "--host", default="127.0.0.1", help="broker host (default %(default)s)")
    run.add_argument(
        "-p", "--port", type=int, default=8883, help="broker TLS port (default %(default)s)"
    )
    run.add_argument(
        "-v", "--verbose", action="store_true", help="also log each step (and paho's own log)"
    )
    from web.cli import add_web_flags  # (the web app: web/)

    add_web_flags(run)
    languages = [lang.value for lang in Lang]
    lang_help = "language to show messages in, else English (default %(default)s)"
    for name, text in (
        ("inbox", "list the messages held"),
        ("status", "link state, why it is not up, queues, keysets, gaps, refusals"),
    ):
        p = command(name, text)
        p.add_argument("--lang", default="en", choices=languages, help=lang_help)
        p.add_argument("--all", action="store_true", help="include receipts")
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
    show = command("show", "show one message in full and mark it read")
    show.add_argument("id", help="the message id, or its first characters")
    show.add_argument("--lang", default="en", choices=languages, help=lang_help)
    show.add_argument("--json", action="store_true", help="print JSON (does not mark it read)")
    trends = command("trends", "the trend summary HQ sent this office: its level and signals")
    trends.add_argument("--lang", default="en", choices=languages, help=lang_help)
    trends.add_argument("--json", action="store_true", help="print JSON for scripts")
    incident_id = "the incident's id, or its first characters, or 'latest'"
    photos = command("photos", "write an incident's photos (full images, else previews)")
    photos.add_argument("id", help=incident_id)
    photos.add_argument("--out", type=Path, required=True, help="the folder to write them to")
    photos.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to this long for the incident and its photos to arrive "
        "(default: write what is here)",
    )
    drawn = command("map", "draw an incident's map: its position, its photos, the office")
    drawn.add_argument("id", help=incident_id)
    drawn.add_argument("--out", type=Path, required=True, help="the PNG file to write")
    from interchange.cli import add_export  # (blo-sub export: interchange/)

    add_export(command("export", "alerts and incidents as CAP 1.2, GeoJSON, KML or CoT"))
    return parser


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))


def node_folder(data: Path | None, node: str) -> Path:
    """The node's data folder (``--data``, default blo-data/NODE), created if missing.

    Raises ``DataFolderError`` naming it when it is a file or cannot be made.
    """
    folder = data or Path("blo-data") / node
    if folder.exists() and not folder.is_dir():
        raise DataFolderError(f"--data {folder} is a file: give a folder for {node}'s files")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataFolderError(
            f"--data {folder}: {exc.strerror}: give a folder for {node}'s inbox and outbox"
        ) from None
    return folder


def _folder(args: argparse.Namespace, bundle: EnrolmentBundle) -> Path:
    return node_folder(args.data, bundle.node)


def _run(bundle: EnrolmentBundle, args: argparse.Namespace) -> None:
    # The tablet's long-running process: rich only for a person at a terminal.
    handler: logging.Handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )
    from web.cli import web_server

    # Built before the link starts: a bind the web app refuses stops here (status 1).
    web = web_server(bundle, _folder(args, bundle), args)
    client = NodeClient(bundle, args.host, args.port, _folder(args, bundle))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    client.start()
    if web is not None:
        print(f"{bundle.node}: web app at {web.start()}", flush=True)
    done.wait()
    if web is not None:
        web.stop()
    client.stop()


def _show(bundle: EnrolmentBundle, args: argparse.Namespace, console: Console) -> int:
    from subscriber.views import message_view

    folder = _folder(args, bundle)
    inbox = Inbox(folder / "inbox.sqlite3", opener=bundle.opener())
    found = inbox.find(args.id.lower())
    if len(found) != 1:
        what = "no message" if not found else f"{len(found)} messages"
        console.print(f"{what} with an id starting {args.id!r}: see 'blo-sub inbox'")
        return 1
    item = found[0]
    now = datetime.now(UTC).replace(microsecond=0)
    if args.json:
        from subscriber.views import message_json

        doc = message_json(item, Lang(args.lang), now, inbox.cancelled())
        if isinstance(item.body, Incident) and item.body.attachments:
            from subscriber.photos import photo_states

            doc["photos"] = [
                {"number": p.number, "state": p.state, "file": str(p.path) if p.path else None}
                for p in photo_states(item.body, folder)
            ]
        _print_json(doc)
        return 0
    console.print(message_view(item, Lang(args.lang)))
    if isinstance(item.body, Incident) and item.body.attachments:
        from subscriber.photos import photo_states
        from subscriber.views import photos_table

        console.print(photos_table(photo_states(item.body, folder)))
    # The read and the receipt it owes are one transaction; settle queues it.
    if inbox.mark_read(item.msg_id, now, owe_receipt=bundle.role is Role.BLO):
        outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
        if settle(inbox, outbox, bundle.node, now):
            console.print("[dim]marked read; the read receipt goes out with the next link[/dim]")
    return 0


def _incident(
    folder: Path, prefix: str, console: Console, opener: Opener, wait: float = 0.0
) -> tuple[Stored, Incident] | None:
    """The incident ``prefix`` names ("latest": the newest), waiting up to ``wait``
    seconds for one to arrive when none is held yet ('blo-sub run' may be receiving it)."""
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        inbox = Inbox(folder / "inbox.sqlite3", opener=opener)
        try:
            if prefix == "latest":
                found = inbox.messages((Kind.INCIDENT,))[:1]
            else:
                found = [
                    i for i in inbox.find(prefix.lower()) if i.sealed.header.kind is Kind.INCIDENT
                ]
        finally:
            inbox.close()
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if len(found) != 1:
        what = "no incident" if not found else f"{len(found)} incidents"
        console.print(f"{what} with an id starting {prefix!r}: see 'blo-sub inbox'")
        return None
    body = found[0].body
    if not isinstance(body, Incident):  # sealed (confidential) and not for this node
        console.print(
            f"incident {found[0].msg_id.hex()} is sealed and not readable on this node: {body}"
        )
        return None
    return found[0], body


def _photos(folder: Path, args: argparse.Namespace, console: Console) -> int:
    from subscriber.photos import photo_states, write_photos

    found = _incident(folder, args.id, console, args.opener, wait=args.wait)
    if found is None:
        return 1
    _, incident = found
    if not incident.attachments:
        console.print("this incident has no photos")
        return 1
    deadline = time.monotonic() + max(args.wait, 0)
    waiting = [s for s in photo_states(incident, folder) if not s.complete]
    while waiting and time.monotonic() < deadline:  # 'blo-sub run' is fetching them
        time.sleep(0.5)
        waiting = [s for s in photo_states(incident, folder) if not s.complete]
    for path, what in write_photos(incident, folder, args.out):
        console.print(f"{path}  {what}")
    if waiting:
        console.print(
            f"{len(waiting)} of {len(incident.attachments)} photo(s) not complete yet "
            f"({'; '.join(f'photo {s.number}: {s.state}' for s in waiting)}): "
            "they arrive while 'blo-sub run' is connected; run this again then"
        )
        return 1
    return 0


def _map(folder: Path, args: argparse.Namespace, console: Console) -> int:
    from photos.map import Office, photo_marks, render_map

    found = _incident(folder, args.id, console, args.opener)
    if found is None:
        return 1
    item, incident = found
    sender = item.sealed.header.sender
    image = render_map(
        incident.position,
        photos=photo_marks(incident.attachments, incident.position),
        office=Office(sender),
        title=f"incident {item.msg_id.hex()[:8]} from {sender}",
    )
    try:
        args.out.write_bytes(image.png)
    except OSError as exc:
        console.print(f"{args.out}: {exc.strerror}")
        return 1
    console.print(
        f"{args.out}: {image.width}x{image.height} map of the incident, "
        f"{len(incident.attachments)} photo(s) and {sender}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-sub``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        bundle = EnrolmentBundle.load(args.bundle)
        folder = _folder(args, bundle)
        if args.command == "run":
            _run(bundle, args)
            return 0
        if args.command == "export":
            from interchange.cli import run_export

            return run_export(Inbox(folder / "inbox.sqlite3"), args, datetime.now(UTC))
        # rich only for the commands that draw: the running client never loads it (1.2 MiB).
        from rich.console import Console

        from subscriber.views import inbox_table, status_table

        console = Console(soft_wrap=False)
        if args.command == "show":
            return _show(bundle, args, console)
        elif args.command == "trends":
            from subscriber.views import trend_json, trend_view

            found = Inbox(folder / "inbox.sqlite3").messages((Kind.TREND,))
            if args.json:
                _print_json(trend_json(found[0]) if found else None)
                return 0
            if not found:
                console.print("no trend summary yet: HQ sends one after its weekly analysis")
                return 0
            console.print(trend_view(found[0], Lang(args.lang)))
        elif args.command in ("photos", "map"):
            args.opener = bundle.opener()
            return (_photos if args.command == "photos" else _map)(folder, args, console)
        elif args.command == "inbox":
            inbox = Inbox(folder / "inbox.sqlite3", opener=bundle.opener())
            kinds = (Kind.ALERT, Kind.BULLETIN, Kind.INCIDENT) + (
                (Kind.RECEIPT,) if args.all else ()
            )
            if args.json:
                from subscriber.views import message_json

                now, cancelled = datetime.now(UTC), inbox.cancelled()
                _print_json(
                    [
                        message_json(item, Lang(args.lang), now, cancelled)
                        for item in inbox.messages(kinds)
                    ]
                )
                return 0
            console.print(
                inbox_table(
                    inbox.messages(kinds), Lang(args.lang), datetime.now(UTC), inbox.cancelled()
                )
            )
        elif args.command == "status":
            inbox = Inbox(folder / "inbox.sqlite3")
            outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
            sent, waiting = outbox.counts()
            if args.json:
                _print_json(
                    {
                        "node": bundle.node,
                        "link": "never started",
                        "last_error": None,
                        **inbox.state(),
                        "outbox": {"waiting": waiting, "sent": sent},
                        "inbox": {"held": inbox.count(), "quarantined": len(inbox.quarantined())},
                        "rejected": inbox.rejections(),
                    }
                )
                return 0
            console.print(
                status_table(
                    inbox.state(),
                    waiting,
                    sent,
                    inbox.count(),
                    inbox.rejections(),
                    len(inbox.quarantined()),
                )
            )
    except BloError as exc:
        from rich.console import Console  # (as above: only once there is something to draw)

        Console(stderr=True, soft_wrap=True).print(
            f"[red]blo-sub: error:[/red] {exc}", highlight=False
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
