"""The durable outbox: a message is signed and on disk before any network I/O.

``submit`` takes the next sequence number, seals the envelope and commits it in
one SQLite transaction (WAL, ``synchronous=FULL``). The sequence number lives
in the same file and is never handed out twice, even across a crash or a
second process (``blo-pub`` and ``blo-sub run`` share the outbox). A message
is marked sent when the broker acknowledges every topic it went to; until
then, and after any crash or reboot, it is sent again. Repeats are harmless:
receivers drop duplicates by sequence number and message id.

Each outbox file draws a random ``epoch`` when it is created and signs it into
every header: sequence numbers count within it. A second outbox of the same
identity (a reinstalled tablet, another ``--data`` folder, a replaced key)
starts again at #1 under another epoch, so no receiver can take its messages
for the first one's and drop them as duplicates.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from publisher.errors import OutboxError
from schemas import MAX_EPOCH, Kind, Scope, Signer, WireModel, open_envelope, seal, topics_for
from schemas.seal import RecipientKey

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
    """An SQLite connection in WAL mode with full sync, for one of a node's files (the
    inbox lowers it for the copies it receives: ``subscriber.inbox``)."""
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
        self._lock = threading.Lock()
        try:
            self._db.executescript(_SCHEMA)
            self.epoch = self._epoch()
        except sqlite3.Error as exc:
            raise OutboxError(f"{path}: {exc}") from None

    def _epoch(self) -> int:
        """This file's epoch, drawn once when it is first opened (under a write lock,
        so two processes opening a new file at once agree on it)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute("SELECT value FROM outbox_meta WHERE key = 'epoch'").fetchone()
            if row is None:
                row = (1 + secrets.randbelow(MAX_EPOCH),)
                self._db.execute("INSERT INTO outbox_meta VALUES ('epoch', ?)", row)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(row[0])

    def submit(
        self,
        body: WireModel,
        scope: Scope,
        *,
        issued: datetime,
        expires: datetime,
        msg_id: bytes | None = None,
        seal_for: Sequence[RecipientKey] | None = None,
    ) -> Queued:
        """Seal ``body`` with the next sequence number and commit it. Raises ``BloError``.

        With ``seal_for`` the body is encrypted for those recipients before it is
        signed (publisher.sealing decides who).
        """
        return self.submit_many(
            [(body, scope)], issued=issued, expires=expires, msg_id=msg_id, seal_for=seal_for
        )[0]

    def submit_many(
        self,
        items: list[tuple[WireModel, Scope]],
        *,
        issued: datetime,
        expires: datetime,
        msg_id: bytes | None = None,
        msg_ids: list[bytes] | None = None,
        seal_for: Sequence[RecipientKey] | None = None,
    ) -> list[Queued]:
        """Seal and commit several messages with consecutive numbers, in one transaction
        (one fsync: a tablet's receipts for a batch of alerts). All or none are queued.

        With ``msg_ids`` (one per item), an item whose id the outbox already holds
        is skipped: queueing is idempotent, e.g. for receipts owed after a crash.
        Returns what was queued now.
        """
        if seal_for is not None and len(items) != 1:
            raise OutboxError("recipients to seal for can be given for a single message only")
        if msg_id is not None and len(items) != 1:
            raise OutboxError("a message id can be given for a single message only")
        if msg_ids is not None and len(msg_ids) != len(items):
            raise OutboxError("one message id per message, or none")
        skip_held = msg_ids is not None
        ids: list[bytes | None] = list(msg_ids) if msg_ids is not None else [msg_id] * len(items)
        queued: list[Queued] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT value FROM outbox_meta WHERE key = 'last_seq'"
                ).fetchone()
                seq = row[0] if row else 0
                for (body, scope), given in zip(items, ids, strict=True):
                    if (
                        skip_held
                        and self._db.execute(
                            "SELECT 1 FROM outbox WHERE msg_id = ?", (given,)
                        ).fetchone()
                    ):
                        continue
                    seq += 1
                    queued.append(self._insert(seq, body, scope, issued, expires, given, seal_for))
                self._db.execute(
                    "INSERT INTO outbox_meta VALUES ('last_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (seq,),
                )
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise OutboxError(
                        f"{self.path}: a message with this id is already in the outbox"
                    ) from None
                if isinstance(exc, sqlite3.Error):
                    raise OutboxError(f"{self.path}: {exc}") from None
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
        seal_for: Sequence[RecipientKey] | None = None,
    ) -> Queued:
        data = seal(
            self.signer,
            body,
            seq=seq,
            scope=scope,
            issued=issued,
            expires=expires,
            msg_id=msg_id,
            epoch=self.epoch,
            seal_for=seal_for,
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
