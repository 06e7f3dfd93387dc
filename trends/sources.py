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
from typing import Any

from schemas import BloError, Incident, Keyset, Kind, open_envelope
from trends.errors import SourceError

__all__ = ["Incidents", "newest", "read_archive", "read_inbox"]


@dataclass(frozen=True)
class Incidents:
    """Incidents read from one file, with their senders and the offices' regions."""

    source: Path
    items: list[tuple[str, Incident]] = field(default_factory=list)
    regions: dict[str, str] = field(default_factory=dict)
    #: Envelopes that could not be decoded (counted, never fatal).
    unreadable: int = 0


def _collect(path: Path, rows: list[tuple[int, bytes]]) -> Incidents:
    items: list[tuple[str, Incident]] = []
    regions: dict[str, str] = {}
    bad = 0
    for kind, data in rows:
        try:
            sealed = open_envelope(data)
            body = sealed.decode_body()
        except BloError:
            bad += 1  # a damaged row is counted and shown, never fatal
            continue
        if kind == Kind.INCIDENT and isinstance(body, Incident):
            items.append((sealed.header.sender, body))
        elif isinstance(body, Keyset):
            for node in body.nodes:
                if node.regions:
                    regions[node.node] = node.regions[0]
    return Incidents(path, items, regions, bad)


def _query(path: Path, sql: str, args: tuple[int, ...], what: str) -> list[tuple[Any, Any]]:
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


_INBOX = "node's inbox (DATA/inbox.sqlite3)"
_ARCHIVE = "archive store (archive.sqlite3 in the archive node's --data folder)"


def read_inbox(path: Path, since: int = 0) -> Incidents:
    """Every incident in a node's inbox file (``DATA/inbox.sqlite3``) issued at or after
    ``since`` (Unix seconds; an incident is issued after it occurred, so this keeps every
    incident that occurred since then)."""
    # The inbox keeps keysets in its own table (subscriber/inbox.py, ``trust``).
    rows = _query(
        path,
        "SELECT kind, data FROM messages WHERE kind = ? AND issued >= ? "
        "UNION ALL SELECT ?, data FROM trust",
        (int(Kind.INCIDENT), since, int(Kind.KEYSET)),
        _INBOX,
    )
    return _collect(path, rows)


def read_archive(path: Path, since: int = 0) -> Incidents:
    """Every incident in the archive's store (broker/archive.py, ``envelopes``) issued at
    or after ``since``, with the keysets held there."""
    rows = _query(
        path,
        "SELECT kind, data FROM envelopes WHERE (kind = ? AND issued >= ?) OR kind = ?",
        (int(Kind.INCIDENT), since, int(Kind.KEYSET)),
        _ARCHIVE,
    )
    return _collect(path, rows)


def newest(path: Path, archive: bool) -> int | None:
    """When the newest incident in the file was issued (Unix seconds), or None if none is."""
    table = "envelopes" if archive else "messages"
    rows = _query(
        path,
        f"SELECT max(issued), ? FROM {table} WHERE kind = ?",  # noqa: S608 - fixed names
        (0, int(Kind.INCIDENT)),
        _ARCHIVE if archive else _INBOX,
    )
    return None if not rows or rows[0][0] is None else int(rows[0][0])
