"""The durable outbox: a message is signed and on disk before any network I/O.

``submit`` takes the next sequence number, seals the envelope and commits it in
one SQLite transaction (WAL, ``synchronous=FULL``). The sequence number lives
in the same file and is never handed out twice, even across a crash or a
second process (``blo-pub`` and ``blo-sub run`` share the outbox). A message
is marked sent when the broker acknowledges every topic it went to; until
then, and after any crash or reboot, it is sent again. Repeats are harmless:
receivers drop duplicates by sequence number and message id.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.errors import OutboxError
from schemas import Kind, Scope, Signer, WireModel, open_envelope, seal, topics_for

__all__ = ["Outbox", "Queued"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    msg_id   BLOB    NOT NULL UNIQUE,
    kind     INTEGER NOT NULL,
    scope    TEXT    NOT NULL,
    topics   TEXT    NOT NULL,
    data     BLOB    NOT NULL,
    created  INTEGER NOT NULL,
    sent     INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox(seq) WHERE sent IS NULL;
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Queued:
    """A sealed message waiting in (or sent from) the outbox."""

    seq: int
    msg_id: bytes
    kind: Kind
    scope: str
    topics: tuple[str, ...]
    data: bytes
    sent: int | None = None


def connect(path: Path) -> sqlite3.Connection:
    """An SQLite connection in WAL mode with full sync, for one of a node's files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise OutboxError(f"{path}: {exc}") from None
    return db


class Outbox:
    """One node's outbox file; safe to use from several threads and processes."""

    def __init__(self, path: Path, signer: Signer) -> None:
        self.path = path
        self.signer = signer
        self._db = connect(path)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def submit(
        self,
        body: WireModel,
        scope: Scope,
        *,
        issued: datetime,
        expires: datetime,
        msg_id: bytes | None = None,
    ) -> Queued:
        """Seal ``body`` with the next sequence number and commit it. Raises ``BloError``."""
        return self.submit_many([(body, scope)], issued=issued, expires=expires, msg_id=msg_id)[0]

    def submit_many(
        self,
        items: list[tuple[WireModel, Scope]],
        *,
        issued: datetime,
        expires: datetime,
        msg_id: bytes | None = None,
    ) -> list[Queued]:
        """Seal and commit several messages with consecutive numbers, in one transaction
        (one fsync: a tablet's receipts for a batch of alerts). All or none are queued."""
        if msg_id is not None and len(items) != 1:
            raise OutboxError("a message id can be given for a single message only")
        queued: list[Queued] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT value FROM outbox_meta WHERE key = 'last_seq'"
                ).fetchone()
                seq = row[0] if row else 0
                for body, scope in items:
                    seq += 1
                    queued.append(self._insert(seq, body, scope, issued, expires, msg_id))
                self._db.execute(
                    "INSERT INTO outbox_meta VALUES ('last_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (seq,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return queued

    def _insert(
        self,
        seq: int,
        body: WireModel,
        scope: Scope,
        issued: datetime,
        expires: datetime,
        msg_id: bytes | None,
    ) -> Queued:
        data = seal(
            self.signer, body, seq=seq, scope=scope, issued=issued, expires=expires, msg_id=msg_id
        )
        header = open_envelope(data).header
        topics = topics_for(header.kind, scope, self.signer.sender)
        if not topics:
            raise OutboxError(f"a {header.kind.label} cannot be sent to {scope}")
        self._db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
            (
                seq,
                header.msg_id,
                int(header.kind),
                str(scope),
                "\n".join(topics),
                data,
                int(issued.timestamp()),
            ),
        )
        return Queued(seq, header.msg_id, header.kind, str(scope), topics, data)

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[Queued]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [
            Queued(seq, msg_id, Kind(kind), scope, tuple(topics.split("\n")), data, sent)
            for seq, msg_id, kind, scope, topics, data, sent in rows
        ]

    _COLUMNS = "SELECT seq, msg_id, kind, scope, topics, data, sent FROM outbox"

    def pending(self, limit: int = 1000) -> list[Queued]:
        """Unsent messages, oldest first."""
        return self._rows(f"{self._COLUMNS} WHERE sent IS NULL ORDER BY seq LIMIT ?", (limit,))

    def range(self, first: int, last: int | None) -> list[Queued]:
        """Messages ``first``..``last`` (for a resend request)."""
        return self._rows(
            f"{self._COLUMNS} WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last if last is not None else 2**63 - 1),
        )

    def find(self, msg_id_prefix: bytes) -> list[Queued]:
        """Messages whose id starts with ``msg_id_prefix``."""
        upper = msg_id_prefix + b"\xff" * (16 - len(msg_id_prefix))
        return self._rows(
            f"{self._COLUMNS} WHERE msg_id >= ? AND msg_id <= ?", (msg_id_prefix, upper)
        )

    def mark_sent(self, seq: int, when: datetime) -> None:
        """Record that the broker acknowledged message ``seq`` on every topic."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET sent = ? WHERE seq = ? AND sent IS NULL",
                (int(when.timestamp()), seq),
            )

    def counts(self) -> tuple[int, int]:
        """(sent, waiting)."""
        with self._lock:
            sent, waiting = self._db.execute(
                "SELECT count(sent), count(*) - count(sent) FROM outbox"
            ).fetchone()
        return int(sent), int(waiting)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
