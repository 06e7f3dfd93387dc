"""Reading incidents back: from a node's inbox, or from the archive's store.

Both files hold envelopes that were verified when they were stored; they are
opened and decoded here, not verified again (the node or the archive did that
before committing them). The border region of each office comes from the
keysets held beside the incidents (an office's first region).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from schemas import BloError, Incident, Keyset, Kind, open_envelope
from trends.errors import SourceError

__all__ = ["Incidents", "read_archive", "read_inbox"]


@dataclass(frozen=True)
class Incidents:
    """Incidents read from one file, with their senders and the offices' regions."""

    source: Path
    items: list[tuple[str, Incident]] = field(default_factory=list)
    regions: dict[str, str] = field(default_factory=dict)
    #: Envelopes that could not be decoded (counted, never fatal).
    unreadable: int = 0


def _collect(path: Path, rows: list[tuple[int, bytes]]) -> Incidents:
    out = Incidents(path)
    regions: dict[str, str] = {}
    bad = 0
    for kind, data in rows:
        try:
            sealed = open_envelope(data)
            body = sealed.decode_body()
        except BloError:
            bad += 1
            continue
        if kind == Kind.INCIDENT and isinstance(body, Incident):
            out.items.append((sealed.header.sender, body))
        elif isinstance(body, Keyset):
            for node in body.nodes:
                if node.regions:
                    regions[node.node] = node.regions[0]
    out.regions.update(regions)
    return Incidents(path, out.items, out.regions, bad)


def _query(path: Path, sql: str, args: tuple[int, ...], what: str) -> list[tuple[int, bytes]]:
    if not path.is_file():
        raise SourceError(f"{path}: no such file; give the {what}")
    try:
        # Read-only: analysing must never change a node's or the archive's file.
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise SourceError(f"{path} cannot be read as the {what}: {exc}") from None


def read_inbox(path: Path) -> Incidents:
    """Every incident in a node's inbox file (``DATA/inbox.sqlite3``)."""
    # The inbox keeps keysets in its own table (subscriber/inbox.py, ``trust``).
    rows = _query(
        path,
        "SELECT kind, data FROM messages WHERE kind = ? UNION ALL SELECT ?, data FROM trust",
        (int(Kind.INCIDENT), int(Kind.KEYSET)),
        "node's inbox (DATA/inbox.sqlite3)",
    )
    return _collect(path, rows)


def read_archive(path: Path) -> Incidents:
    """Every incident in the archive's store (broker/archive.py, ``envelopes``)."""
    rows = _query(
        path,
        "SELECT kind, data FROM envelopes WHERE kind IN (?, ?)",
        (int(Kind.INCIDENT), int(Kind.KEYSET)),
        "archive store (archive.sqlite3 in the archive node's --data folder)",
    )
    return _collect(path, rows)
