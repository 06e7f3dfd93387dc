"""``blo-pub``: compose and queue alerts, incidents and bulletins; see who received an alert.

    blo-pub alert    --bundle kh-nacd.json --scope country:kh --category drug_seizure \\
                     --severity severe --headline "..." --headline-km "..." [--file alert.json]
    blo-pub incident --bundle kh-blo-bavet.json --crime drug_trafficking --lat 11.08 --lon 106.18 \\
                     --item methamphetamine:1.9:kg:crystal --photo seizure.jpg
    blo-pub bulletin --bundle kh-blo-bavet.json --to vn-blo-mocbai --headline "..."
    blo-pub receipts --bundle kh-nacd.json ALERT_ID

Messages are signed and committed to the node's outbox (``--data``, default
blo-data/NODE) and sent by the node's running ``blo-sub run``; ``--send -h HOST
-p PORT`` sends them now instead (only when no ``blo-sub run`` is running for
that node: both would use the node's one session).

Exit status: 0 queued (and, with ``--send``, sent); 1 an error, or a message
that could never arrive (nothing queued); 2 a usage error; 3 ``--send`` could
not send everything in ``--wait`` seconds (it stays queued; the reason is
printed); 130 interrupted (what was queued stays queued).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from certs import EnrolmentBundle
from photos.store import Quotas
from publisher.compose import (
    load_document,
    parse_duration,
    parse_item,
    photo_attachment,
    prepare_photos,
)
from publisher.errors import ComposeError
from publisher.outbox import Outbox
from publisher.submit import addressed_offices, node_trust, submit_document
from schemas import (
    Agency,
    BloError,
    Category,
    Crime,
    Scope,
    Severity,
)
from subscriber import Inbox, NodeClient
from subscriber.cli import node_folder

__all__ = ["EXIT_QUEUED", "main"]

#: ``--send`` gave up with messages still in the outbox (they stay queued).
EXIT_QUEUED = 3
#: Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

_LANGS = ("en", "km")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blo-pub", description="Send blo-alert messages.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, add_help=False)
        p.add_argument("--help", action="help", help="show this help and exit")
        p.add_argument("--bundle", type=Path, required=True, help="the node's enrolment bundle")
        p.add_argument("--data", type=Path, help="the node's folder (default blo-data/NODE)")
        return p

    def sending(p: argparse.ArgumentParser) -> None:
        p.add_argument("--file", type=Path, help="a JSON or TOML document with the fields")
        p.add_argument("--expires-in", default="7d", help="e.g. 12h, 7d (default 7d)")
        p.add_argument("--send", action="store_true", help="connect and send now")
        p.add_argument(
            "-h", "--host", default="127.0.0.1", help="broker host (default %(default)s)"
        )
        p.add_argument(
            "-p", "--port", type=int, default=8883, help="broker TLS port (default %(default)s)"
        )
        p.add_argument(
            "--wait",
            type=float,
            default=30.0,
            help="with --send, seconds to try before giving up (default %(default)s)",
        )

    def texts(p: argparse.ArgumentParser, fields: tuple[str, ...]) -> None:
        for field in fields:
            for lang in _LANGS:
                flag = f"--{field}" if lang == "en" else f"--{field}-{lang}"
                p.add_argument(flag, dest=f"{field}_{lang}", help=f"{field} in {lang}")

    alert = command("alert", "an alert from an HQ or a regional coordinator")
    sending(alert)
    alert.add_argument("--scope", help="all, country:kh, region:NAME, node:ID")
    alert.add_argument("--category", choices=[c.value for c in Category])
    alert.add_argument("--severity", choices=[s.value for s in Severity])
    alert.add_argument("--urgency", default="immediate")
    alert.add_argument("--certainty", default="observed")
    alert.add_argument("--status", default="actual", choices=["actual", "exercise", "test"])
    alert.add_argument("--update", metavar="ID", help="this alert updates an earlier one")
    alert.add_argument("--cancel", metavar="ID", help="this alert cancels an earlier one")
    texts(alert, ("headline", "description", "instruction"))
    alert.add_argument(
        "--confidential",
        action="store_true",
        help="seal it for the nodes that may read it: the broker and the archive cannot",
    )
    alert.add_argument(
        "--from-cap", type=Path, metavar="FILE.xml", help="a CAP 1.2 alert: mapped, shown, sent"
    )

    incident = command("incident", "an incident report from a BLO to its HQ")
    sending(incident)
    incident.add_argument("--crime", choices=[c.value for c in Crime])
    incident.add_argument("--occurred", help="ISO time (default now)")
    incident.add_argument("--lat", type=float)
    incident.add_argument("--lon", type=float)
    incident.add_argument("--accuracy", type=int, help="metres")
    incident.add_argument("--place")
    incident.add_argument("--crossing")
    incident.add_argument(
        "--item", action="append", default=[], help="SUBSTANCE:QUANTITY:UNIT[:FORM] (repeatable)"
    )
    incident.add_argument("--detained", type=int)
    incident.add_argument(
        "--agency", action="append", default=[], choices=[a.value for a in Agency]
    )
    incident.add_argument(
        "--photo",
        action="append",
        default=[],
        type=Path,
        help="a photo (JPEG, PNG) to send with the incident (repeatable): its GPS position "
        "and time go into the signed incident, a preview and the full image travel in chunks",
    )
    incident.add_argument(
        "--keep-original",
        action="store_true",
        help="send each photo's own bytes (metadata cut out) instead of a 1,600 px copy",
    )
    incident.add_argument(
        "--quota",
        type=float,
        default=Quotas().per_office / 2**20,
        metavar="MIB",
        help="photos this office may hold in its blob store (default %(default)g MiB)",
    )
    incident.add_argument(
        "--confidential",
        action="store_true",
        help="seal it for its readers (HQ, observers): the broker and the archive cannot "
        "read it; photos travel unsealed, so not with --photo",
    )
    texts(incident, ("narrative",))

    bulletin = command("bulletin", "a bulletin to counterpart offices across the border")
    sending(bulletin)
    bulletin.add_argument("--to", action="append", default=[], help="counterpart (repeatable)")
    bulletin.add_argument("--category", default="other", choices=[c.value for c in Category])
    texts(bulletin, ("headline", "body"))

    receipts = command("receipts", "who has received and read an alert (HQ)")
    receipts.add_argument("id", help="the alert's id, or its first characters")
    return parser


def _text_blocks(args: argparse.Namespace, fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for lang in _LANGS:
        block = {f: getattr(args, f"{f}_{lang}") for f in fields if getattr(args, f"{f}_{lang}")}
        if block:
            out[lang] = block
    return out


def _document(args: argparse.Namespace, outbox: Outbox, now: datetime) -> dict[str, Any]:
    doc: dict[str, Any] = load_document(args.file) if args.file else {}
    if getattr(args, "from_cap", None):  # the CAP mapping lives in interchange/
        from interchange.publish import cap_document

        doc = {**cap_document(args.from_cap, Console(soft_wrap=True)), **doc}
    doc["kind"] = args.command
    set_ = {k: v for k, v in vars(args).items() if v not in (None, [], False)}
    if args.command == "alert":
        for key in ("scope", "category", "severity", "urgency", "certainty", "status"):
            if key in set_:
                doc[key] = set_[key]
        doc.setdefault("msg_type", "alert")
        for flag, msg_type in (("update", "update"), ("cancel", "cancel")):
            if flag in set_:
                found = outbox.find(bytes.fromhex(set_[flag][: len(set_[flag]) // 2 * 2]))
                if len(found) != 1:
                    raise ComposeError(
                        f"--{flag} {set_[flag]}: no single alert of this node has an id starting so"
                    )
                doc["msg_type"] = msg_type
                doc["references"] = [found[0].msg_id.hex()]
        texts = _text_blocks(args, ("headline", "description", "instruction"))
        if texts:
            doc["text"] = {**doc.get("text", {}), **texts}
    elif args.command == "incident":
        doc.setdefault("scope", f"country:{args.bundle_node[:2]}")
        doc["occurred"] = set_.get("occurred", doc.get("occurred", now.isoformat()))
        for key, name in (
            ("crime", "crime"),
            ("place", "place"),
            ("crossing", "crossing"),
            ("detained", "persons_detained"),
        ):
            if key in set_:
                doc[name] = set_[key]
        if "lat" in set_ or "lon" in set_:
            position = {"lat": args.lat, "lon": args.lon}
            if args.accuracy is not None:
                position["accuracy_m"] = args.accuracy
            doc["position"] = position
        if args.item:
            doc["items"] = [parse_item(i) for i in args.item]
        if args.agency:
            doc["agencies"] = args.agency
        narrative = {
            lang: block["narrative"] for lang, block in _text_blocks(args, ("narrative",)).items()
        }
        if narrative:
            doc["narrative"] = {**doc.get("narrative", {}), **narrative}
        if args.photo:
            args.prepared = prepare_photos(
                args.photo, doc.get("position"), keep_original=args.keep_original
            )
            doc["attachments"] = [photo_attachment(p) for p in args.prepared]
    elif args.command == "bulletin":
        if args.to:
            doc["scope"] = "bulletin:" + ",".join(args.to)
        doc["category"] = set_.get("category", doc.get("category", "other"))
        texts = _text_blocks(args, ("headline", "body"))
        if texts:
            doc["text"] = {**doc.get("text", {}), **texts}
    return doc


def _send_now(
    bundle: EnrolmentBundle, folder: Path, args: argparse.Namespace, console: Console
) -> int:
    """Connect, send what the outbox holds, leave. Returns the exit status."""
    client = NodeClient(bundle, args.host, args.port, folder)
    client.start()
    deadline = time.monotonic() + args.wait
    waiting = -1  # not yet counted: so too after Ctrl-C, which still reports what stays
    try:
        while client.outbox.counts()[1] and time.monotonic() < deadline:
            time.sleep(0.2)
        _, waiting = client.outbox.counts()
    finally:
        why = client.link.last
        client.stop()
        if waiting:
            left = Outbox(folder / "outbox.sqlite3", bundle.signer())
            waiting = left.counts()[1]
            left.close()
            reason = why or (
                "the link is up but the broker did not acknowledge them in time"
                if client.connected.is_set()
                else f"no link to {args.host}:{args.port} yet"
            )
            Console(stderr=True, soft_wrap=True).print(
                f"[yellow]blo-pub: {waiting} message(s) still queued: {reason}; they go out "
                "with the node's next link ('blo-sub run', or --send again)[/yellow]",
                highlight=False,
            )
    if waiting:
        return EXIT_QUEUED
    console.print("sent")
    return 0


_trust = node_trust  # (kept under its old name for callers of this module)


def _receipts(bundle: EnrolmentBundle, folder: Path, prefix: str, console: Console) -> int:
    outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
    found = [
        q
        for q in outbox.find(bytes.fromhex(prefix[: len(prefix) // 2 * 2]))
        if q.msg_id.hex().startswith(prefix.lower())
    ]
    if len(found) != 1:
        console.print(f"no single alert of {bundle.node} has an id starting {prefix!r}")
        return 1
    alert = found[0]
    scope = Scope.parse(alert.scope)
    store = _trust(bundle, folder, datetime.now(UTC))
    inbox = Inbox(folder / "inbox.sqlite3")
    offices = addressed_offices(store, scope)
    got = inbox.receipts(alert.msg_id)
    table = Table(title=f"alert {alert.msg_id.hex()[:8]} to {scope}", title_justify="left")
    for column in ("office", "delivered", "read"):
        table.add_column(column, no_wrap=True)
    missing = 0
    for office in offices:
        marks = got.get(office, {})
        delivered, read = marks.get("delivered"), marks.get("read")
        missing += delivered is None
        table.add_row(
            office,
            delivered.strftime("%Y-%m-%d %H:%M") if delivered else Text("not yet", style="red"),
            read.strftime("%Y-%m-%d %H:%M") if read else Text("-", style="dim"),
        )
    console.print(table)
    delivered_n = sum(1 for o in offices if "delivered" in got.get(o, {}))
    read_n = sum(1 for o in offices if "read" in got.get(o, {}))
    console.print(
        f"{len(offices)} offices: {delivered_n} delivered, {read_n} read, "
        f"{missing} not yet received"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``blo-pub``; returns the exit status."""
    args = _parser().parse_args(argv)
    console = Console(soft_wrap=True)
    try:
        bundle = EnrolmentBundle.load(args.bundle)
        folder = node_folder(args.data, bundle.node)
        if args.command == "receipts":
            return _receipts(bundle, folder, args.id, console)
        args.bundle_node = bundle.node
        outbox = Outbox(folder / "outbox.sqlite3", bundle.signer())
        # The sender's local time and offset (an officer in Phnom Penh reads +07:00).
        now = datetime.now().astimezone().replace(microsecond=0)
        try:
            doc = _document(args, outbox, now)
        finally:
            outbox.close()
        photos = getattr(args, "prepared", [])
        # Refused before it is signed, by the rules every receiver and broker apply;
        # the web app's forms go through the same function (publisher/submit.py).
        done = submit_document(
            bundle,
            folder,
            doc,
            now=now,
            expires_in=parse_duration(args.expires_in),
            photos=photos,
            quota=int(args.quota * 2**20) if photos else None,
            confidential=getattr(args, "confidential", False),
        )
        draft, queued = done.draft, done.queued
        if photos:
            console.print(
                f"{len(photos)} photo(s) kept for sending ({done.photo_bytes} bytes): this node's "
                "'blo-sub run' serves them to HQ and the archive as they ask"
            )
        recipients = done.sealed_for
        sealed = f", sealed for {', '.join(recipients)}" if recipients else ""
        console.print(
            f"{draft.kind.label} {queued.msg_id.hex()} queued as #{queued.seq} "
            f"to {draft.scope} ({len(queued.data)} bytes{sealed})"
        )
        if args.send:
            return _send_now(bundle, folder, args, console)
    except KeyboardInterrupt:
        Console(stderr=True, soft_wrap=True).print("blo-pub: interrupted", highlight=False)
        return EXIT_INTERRUPTED
    except BloError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]blo-pub: error:[/red] {exc}", highlight=False
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
