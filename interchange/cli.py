"""The ``blo-sub export`` subcommand's options and run, kept here so subscriber/cli.py
holds only the two lines that attach it."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from interchange.errors import ExportError
from schemas import Kind

if TYPE_CHECKING:
    from subscriber.inbox import Inbox

__all__ = ["add_export", "run_export"]


def _since(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-06-20") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def add_export(p: argparse.ArgumentParser) -> None:
    """The export options on ``p``."""
    p.add_argument("ids", nargs="*", metavar="ID", help="message ids, or their first characters")
    p.add_argument("--since", type=_since, help="messages sent since this date (UTC if no offset)")
    # Spelled here, not imported: the parser is built by every blo-sub command, and
    # the exporters (XML and schema libraries) load only when one runs.
    formats = ("cap", "geojson", "kml", "cot")
    p.add_argument("--format", required=True, choices=formats, help="the format to write")
    p.add_argument(
        "--out", type=Path, help="file to write (a folder for several CAP alerts); default stdout"
    )


def run_export(inbox: Inbox, args: argparse.Namespace, now: datetime) -> int:
    """Export what ``args`` select from ``inbox`` and say what was written; returns 0.

    Raises ``ExportError`` (nothing to export, or several CAP alerts without a folder).
    """
    from interchange.export import export, select

    if args.ids and args.since:
        raise ExportError("give message ids or --since, not both")
    held = [(s.sealed.header, s.body) for s in inbox.messages((Kind.ALERT, Kind.INCIDENT))]
    docs = export(select(held, args.ids, args.since), args.format, now, held)
    out: Path | None = args.out
    if out is None:
        if len(docs) > 1:
            raise ExportError(
                f"{len(docs)} alerts: CAP holds one alert per file; give --out FOLDER or one ID"
            )
        sys.stdout.buffer.write(docs[0][1])
        sys.stdout.flush()
        return 0
    try:
        if len(docs) > 1 or out.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            for name, data in docs:
                (out / name).write_bytes(data)
            print(f"wrote {len(docs)} file(s) to {out}")
            return 0
        out.write_bytes(docs[0][1])
    except OSError as exc:
        raise ExportError(f"{out}: {exc.strerror}: give a writable --out") from None
    print(f"wrote {out} ({len(docs[0][1])} bytes)")
    return 0
