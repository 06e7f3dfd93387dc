"""The archive's store and rules: every accepted envelope, kept durably, served to whom may read it.

``ArchiveStore`` is SQLite in WAL mode with ``synchronous=FULL``: a row is on
disk when ``add`` or ``add_many`` returns, so the MQTT acknowledgement that
follows can never acknowledge a message the archive would lose in a crash. The original signed
bytes are kept, never re-encoded, so a replay verifies exactly as the live
message did. ``entitled`` is the pure rule of who may be served what.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broker.errors import BrokerError
from schemas import Accepted, NodeEntry, Scope, addressed_to
from schemas.access import Action, Rules

__all__ = ["ArchiveStore", "Stored", "entitled"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS envelopes (
    sender   TEXT    NOT NULL,
    epoch    INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    msg_id   BLOB    NOT NULL UNIQUE,
    kind     INTEGER NOT NULL,
    scope    TEXT    NOT NULL,
    topic    TEXT    NOT NULL,
    issued   INTEGER NOT NULL,
    received INTEGER NOT NULL,
    data     BLOB    NOT NULL,
    PRIMARY KEY (sender, epoch, seq)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One archived envelope: where it was published and its exact bytes."""

    sender: str
    epoch: int
    seq: int
    topic: str
    scope: str
    data: bytes


def entitled(node: NodeEntry, rules: Rules, item: Stored) -> bool:
    """True if ``node`` may be served ``item``: addressed to it, and its ACL lets it read it."""
    try:
        scope = Scope.parse(item.scope)
    except ValueError:
        return False
    return addressed_to(scope, node) and rules.allows(Action.RECEIVE, item.topic)


class ArchiveStore:
    """The archive's SQLite file; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise BrokerError(f"archive {path}: {exc}") from None
        self.path = path
        self._lock = threading.Lock()

    def add(self, accepted: Accepted, topic: str, now: datetime) -> bool:
        """Store one accepted envelope; False if it was already there."""
        return self.add_many([(accepted, topic)], now)[0]

    def add_many(self, batch: Sequence[tuple[Accepted, str]], now: datetime) -> list[bool]:
        """Store several accepted envelopes (each with its topic) in one transaction.

        One fsync for the batch, not one each (group commit). Returns, for each,
        whether it was new. All or none are stored: on an error nothing is, and
        the error (``sqlite3.Error``) goes to the caller, who must not acknowledge.
        """
        if not batch:
            return []
        new: list[bool] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for accepted, topic in batch:
                    h = accepted.header
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO envelopes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            h.sender,
                            h.epoch,
                            h.seq,
                            h.msg_id,
                            int(h.kind),
                            str(h.scope),
                            topic,
                            int(h.issued.timestamp()),
                            int(now.timestamp()),
                            accepted.raw,
                        ),
                    )
                    new.append(cursor.rowcount == 1)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return new

    def durability(self) -> tuple[str, int]:
        """The journal mode and ``synchronous`` level in force ("wal", 2 = FULL)."""
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            level = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return str(mode), int(level)

    def range(
        self, sender: str, epoch: int, first: int, last: int | None, limit: int
    ) -> list[Stored]:
        """Envelopes of ``sender``'s ``epoch`` with ``first`` <= seq <= ``last``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sender, epoch, seq, topic, scope, data FROM envelopes "
                "WHERE sender = ? AND epoch = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
                (sender, epoch, first, last if last is not None else 2**63 - 1, limit),
            ).fetchall()
        return [Stored(*row) for row in rows]

    def epochs(self, sender: str) -> list[int]:
        """The epochs (outboxes) of ``sender`` held, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT epoch FROM envelopes WHERE sender = ? "
                "GROUP BY epoch ORDER BY min(received)",
                (sender,),
            ).fetchall()
        return [row[0] for row in rows]

    def sequences(self) -> Iterator[tuple[str, int, int]]:
        """Every (sender, epoch, seq) held, in order (to rebuild the replay window at start)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT sender, epoch, seq FROM envelopes ORDER BY sender, epoch, seq"
            )
            yield from rows.fetchall()

    def count(self) -> int:
        """How many envelopes are held."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM envelopes").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
