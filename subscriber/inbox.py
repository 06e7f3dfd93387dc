"""The node's inbox: accepted messages, quarantine, receipts, counters and link state.

One SQLite file (WAL), shared by the running client and the officer's
commands (``blo-sub inbox``, ``show``, ``status``). A message is in this file
before its MQTT acknowledgement is sent, so a crash of the process between the
two means a redelivery (dropped here as a duplicate), never a loss.

Received messages are committed with ``synchronous=NORMAL``: a commit is in
the WAL (the kernel's, not yet the disk's) when the ack goes, so a killed or
crashed client loses nothing, and a power cut may lose the last commits. Those
messages are copies: the archive holds every one (``synchronous=FULL``), and the
client asks it for everything after the newest it holds at each start
(``NodeClient``), so a lost tail comes back. One fsync per delivery was the
largest cost of a fleet sharing a disk. What exists only here is committed with
an fsync: an officer's reading (``mark_read``) and the trust kept
(``save_trust``: a revocation must hold from the first message after a restart);
the outbox (a node's own incidents and receipts) is ``synchronous=FULL`` too.

Receipts the node owes (``delivered`` for a stored alert, ``read`` for an
opened one) are recorded as a flag on the message row *in the same
transaction* as the message or its reading; the client clears the flag once
the receipt is in the outbox. The outbox is another file, and SQLite in WAL
mode commits atomically per file only, so a crash between the two leaves the
flag set and the client queues the receipt at its next start (the receipt's
id is derived from the alert's, so it is never queued twice).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from publisher import connect
from schemas import (
    Accepted,
    Alert,
    Kind,
    MsgType,
    Receipt,
    ReceiptStatus,
    Sealed,
    WireModel,
    open_envelope,
)
from schemas.seal import Opener, SealedBody, Unopened
from subscriber.errors import InboxError

__all__ = [
    "OWE_DELIVERED",
    "OWE_READ",
    "QUARANTINE_DROPPED",
    "QUARANTINE_PER_SENDER",
    "QUARANTINE_TOTAL",
    "Inbox",
    "Stored",
]

# Bits of messages.owed: the receipts this node still has to queue for a message.
OWE_DELIVERED = 1
OWE_READ = 2
# PRAGMA user_version of the current layout; 2: (sender, epoch, seq) and owed receipts.
_LAYOUT = 2

#: Unknown-key envelopes kept per claimed sender, and in all. Anyone who can
#: publish where a node reads can send envelopes under keys nobody knows; the
#: oldest go first, and each one dropped is counted under QUARANTINE_DROPPED.
QUARANTINE_PER_SENDER = 50
QUARANTINE_TOTAL = 500
QUARANTINE_DROPPED = "quarantine_full"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    msg_id   BLOB    PRIMARY KEY,
    sender   TEXT    NOT NULL,
    epoch    INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    scope    TEXT    NOT NULL,
    topic    TEXT    NOT NULL,
    issued   INTEGER NOT NULL,
    expires  INTEGER NOT NULL,
    received INTEGER NOT NULL,
    read_at  INTEGER,
    data     BLOB    NOT NULL,
    owed     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (sender, epoch, seq)
);
CREATE INDEX IF NOT EXISTS messages_owed ON messages(owed) WHERE owed != 0;
CREATE TABLE IF NOT EXISTS receipts (
    of     BLOB    NOT NULL,
    node   TEXT    NOT NULL,
    status INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (of, node, status)
);
CREATE TABLE IF NOT EXISTS cancels (target BLOB NOT NULL, by BLOB NOT NULL, kind INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, data BLOB NOT NULL,
    received INTEGER NOT NULL, detail TEXT NOT NULL, sender TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS trust (
    key TEXT PRIMARY KEY, version INTEGER NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_COUNT_REFUSED = (
    "INSERT INTO rejected VALUES (?, ?) ON CONFLICT(reason) DO UPDATE SET count = count + ?"
)


@dataclass(frozen=True, slots=True)
class Stored:
    """A message held in the inbox, with its verified header and decoded body."""

    sealed: Sealed
    body: WireModel
    topic: str
    received: datetime
    read_at: datetime | None

    @property
    def msg_id(self) -> bytes:
        return self.sealed.header.msg_id


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Inbox:
    """One node's inbox file; safe from several threads and processes."""

    def __init__(self, path: Path, *, opener: Opener | None = None) -> None:
        """``opener`` (the node's encryption keys) opens sealed messages as they are read;
        without one, or for a message not sealed for this node, ``body`` is ``Unopened``."""
        self.path = path
        self.opener = opener
        self._db: sqlite3.Connection = connect(path)
        # Survives a killed process (the commit is in the WAL before the ack), not a
        # power cut (no fsync per commit): what a cut loses, the archive gives back
        # at the next start (see the module docstring).
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            layout = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and layout != _LAYOUT:
                raise InboxError(
                    f"{path} was written by an older blo-alert (layout {layout}, this one "
                    f"reads {_LAYOUT}): move the file aside; the archive replays what it held"
                )
            if not tables:
                # Tables and layout number in one transaction: a tablet killed between
                # the two left tables of "layout 0" that it then refused to open.
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version = {_LAYOUT}; COMMIT;"
                )
            else:
                self._db.executescript(_SCHEMA)  # what this layout added since (no write)
        except sqlite3.Error as exc:
            raise InboxError(f"{path}: {exc}") from None
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed at the end or rolled back on any error.
        ``durable``: fsync it (and, WAL being one log, every commit before it), for
        what the archive cannot give back."""
        with self._lock:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    def _write(
        self, statements: list[tuple[str, tuple[Any, ...]]], *, durable: bool = False
    ) -> int:
        with self._transaction(durable=durable) as db:
            return sum(db.execute(sql, args).rowcount for sql, args in statements)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- messages ----------------------------------------------------------------------

    def add(self, accepted: Accepted, now: datetime, *, owe_receipts: bool = False) -> bool:
        """Commit an accepted message; False if it was already held."""
        return self._write(self._statements(accepted, now, owe_receipts)) > 0

    def add_many(
        self,
        batch: list[Accepted],
        now: datetime,
        refused: Mapping[str, int] | None = None,
        *,
        owe_receipts: bool = False,
    ) -> list[bool]:
        """Commit several accepted messages, and counts of ``refused`` ones by reason, in
        one transaction (one commit, not one each).

        With ``owe_receipts``, each new alert is marked as owing a ``delivered``
        receipt (see ``owed``). Returns, for each message, whether it was new. All
        or none are committed.
        """
        if not batch and not refused:
            return []
        new = []
        with self._transaction() as db:
            for accepted in batch:
                first, *rest = self._statements(accepted, now, owe_receipts)
                new.append(db.execute(*first).rowcount > 0)
                for sql, args in rest:
                    db.execute(sql, args)
            for reason, count in (refused or {}).items():
                db.execute(_COUNT_REFUSED, (reason, count, count))
        return new

    @staticmethod
    def _statements(
        accepted: Accepted, now: datetime, owe_receipts: bool = False
    ) -> list[tuple[str, tuple[Any, ...]]]:
        h, body = accepted.header, accepted.body
        owed = OWE_DELIVERED if owe_receipts and h.kind is Kind.ALERT else 0
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT OR IGNORE INTO messages VALUES (?,?,?,?,?,?,?,?,?,?,NULL,?,?)",
                (
                    h.msg_id,
                    h.sender,
                    h.epoch,
                    h.seq,
                    int(h.kind),
                    str(h.scope),
                    accepted.topic,
                    int(h.issued.timestamp()),
                    int(h.expires.timestamp()),
                    int(now.timestamp()),
                    accepted.raw,
                    owed,
                ),
            )
        ]
        if isinstance(body, Receipt):
            statements.append(
                (
                    "INSERT OR IGNORE INTO receipts VALUES (?,?,?,?)",
                    (
                        body.of,
                        h.sender,
                        list(ReceiptStatus).index(body.status),
                        int(body.at.timestamp()),
                    ),
                )
            )
        if isinstance(body, Alert) and body.msg_type is not MsgType.ALERT:
            statements += [
                (
                    "INSERT INTO cancels VALUES (?,?,?)",
                    (ref, h.msg_id, list(MsgType).index(body.msg_type)),
                )
                for ref in body.references
            ]
        return statements

    def sequences(self) -> list[tuple[str, int, int]]:
        """Every (sender, epoch, seq) held, to rebuild the replay window at start."""
        return self._read("SELECT sender, epoch, seq FROM messages ORDER BY sender, epoch, seq")

    def message_ids(self) -> list[bytes]:
        """The id of every message held (to rebuild a receiver's duplicate check)."""
        return [row[0] for row in self._read("SELECT msg_id FROM messages")]

    def owed(self) -> list[tuple[bytes, str, int]]:
        """(message id, its sender, OWE_* bits) of every message still owing a receipt."""
        return self._read("SELECT msg_id, sender, owed FROM messages WHERE owed != 0")

    def settle(self, settled: list[tuple[bytes, int]]) -> None:
        """The receipts ``bits`` of each (``msg_id``, ``bits``) are in the outbox: stop owing
        them, all in one transaction (one fsync for a batch of alerts, not one each)."""
        self._write(
            [
                ("UPDATE messages SET owed = owed & ~? WHERE msg_id = ?", (bits, msg_id))
                for msg_id, bits in settled
            ]
        )

    def messages(
        self, kinds: tuple[Kind, ...] = (Kind.ALERT, Kind.BULLETIN, Kind.INCIDENT)
    ) -> list[Stored]:
        """Held messages of ``kinds``, newest first."""
        wanted = {int(k) for k in kinds}
        rows = [
            row[1:]
            for row in self._read(
                "SELECT kind, data, topic, received, read_at FROM messages "
                "ORDER BY issued DESC, seq DESC"
            )
            if row[0] in wanted
        ]
        return [self._stored(*row) for row in rows]

    def find(self, prefix_hex: str) -> list[Stored]:
        """Messages whose id (hex) starts with ``prefix_hex``."""
        rows = self._read(
            "SELECT data, topic, received, read_at FROM messages WHERE hex(msg_id) LIKE ?",
            (prefix_hex.upper() + "%",),
        )
        return [self._stored(*row) for row in rows]

    def _stored(self, data: bytes, topic: str, received: int, read_at: int | None) -> Stored:
        sealed = open_envelope(data)
        received_at = _ts(received)
        assert received_at is not None
        # The inbox keeps sealed messages sealed on disk; they are opened as they are read.
        body = sealed.open_body(self.opener) if self.opener else sealed.decode_body()
        if isinstance(body, SealedBody):
            who = ", ".join(body.nodes)
            body = Unopened(
                recipients=tuple(body.nodes),
                reason=f"sealed for {who}; read with the recipient's bundle to open it",
            )
        return Stored(sealed, body, topic, received_at, _ts(read_at))

    def mark_read(self, msg_id: bytes, now: datetime, *, owe_receipt: bool = False) -> bool:
        """Record the first reading (owing a ``read`` receipt if an alert and
        ``owe_receipt``); False if it had been read before."""
        owed = OWE_READ if owe_receipt else 0
        return (
            self._write(
                [
                    (
                        "UPDATE messages SET read_at = ?, "
                        "owed = owed | (CASE WHEN kind = ? THEN ? ELSE 0 END) "
                        "WHERE msg_id = ? AND read_at IS NULL",
                        (int(now.timestamp()), int(Kind.ALERT), owed, msg_id),
                    )
                ],
                # An officer's reading exists only here (its receipt may be out already).
                durable=True,
            )
            > 0
        )

    def cancelled(self) -> dict[bytes, int]:
        """Alert ids replaced (1: updated) or cancelled (2) by a later alert."""
        return {target: kind for target, kind in self._read("SELECT target, kind FROM cancels")}

    def receipts(self, of: bytes) -> dict[str, dict[str, datetime]]:
        """Receipts for message ``of``: node -> {"delivered": when, "read": when}."""
        out: dict[str, dict[str, datetime]] = {}
        statuses = list(ReceiptStatus)
        for node, status, at in self._read(
            "SELECT node, status, at FROM receipts WHERE of = ?", (of,)
        ):
            when = _ts(at)
            assert when is not None
            out.setdefault(node, {})[statuses[status].value] = when
        return out

    def count(self) -> int:
        """How many messages are held (all kinds)."""
        return int(self._read("SELECT count(*) FROM messages")[0][0])

    # -- quarantine, rejections, trust, state ------------------------------------------------

    def quarantine(
        self,
        topic: str,
        data: bytes,
        detail: str,
        now: datetime,
        sender: str = "",
        *,
        per_sender: int = QUARANTINE_PER_SENDER,
        total: int = QUARANTINE_TOTAL,
    ) -> int:
        """Keep a message signed by a key not yet known, for a retry; returns how many
        older ones were dropped to stay within ``per_sender`` (of the claimed sender,
        which nobody has verified yet) and ``total``. Drops are counted as refusals."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO quarantine (topic, data, received, detail, sender) "
                "SELECT ?,?,?,?,? WHERE NOT EXISTS (SELECT 1 FROM quarantine WHERE data = ?)",
                (topic, data, int(now.timestamp()), detail, sender, data),
            )
            dropped = db.execute(
                "DELETE FROM quarantine WHERE sender = ? AND id NOT IN "
                "(SELECT id FROM quarantine WHERE sender = ? ORDER BY id DESC LIMIT ?)",
                (sender, sender, per_sender),
            ).rowcount
            dropped += db.execute(
                "DELETE FROM quarantine WHERE id NOT IN "
                "(SELECT id FROM quarantine ORDER BY id DESC LIMIT ?)",
                (total,),
            ).rowcount
            if dropped:
                db.execute(_COUNT_REFUSED, (QUARANTINE_DROPPED, dropped, dropped))
        return dropped

    def quarantined(self) -> list[tuple[int, str, bytes]]:
        """(id, topic, data) of every quarantined message."""
        return self._read("SELECT id, topic, data FROM quarantine ORDER BY id")

    def release(self, ids: list[int]) -> None:
        """Drop quarantined messages (after they were accepted or finally refused)."""
        self._write([("DELETE FROM quarantine WHERE id = ?", (i,)) for i in ids])

    def count_rejection(self, reason: str) -> None:
        """Count one refused message."""
        self._write([(_COUNT_REFUSED, (reason, 1, 1))])

    def rejections(self) -> dict[str, int]:
        """Refused messages by reason."""
        return dict(self._read("SELECT reason, count FROM rejected ORDER BY reason"))

    def save_trust(self, kind: Kind, country: str, version: int, data: bytes) -> None:
        """Keep the newest keyset or revocation list of ``country``."""
        self._write(
            [
                (
                    "INSERT INTO trust VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET "
                    "version = excluded.version, data = excluded.data "
                    "WHERE excluded.version > version",
                    (f"{kind.label}:{country}", version, data),
                )
            ],
            # A revocation list must hold from the next start's first message on,
            # before the broker or the archive has sent it again.
            durable=True,
        )

    def trust_messages(self) -> list[bytes]:
        """Every kept trust message (keysets first)."""
        return [row[0] for row in self._read("SELECT data FROM trust ORDER BY key")]

    def set_state(self, **values: Any) -> None:
        """Record link state and other facts for ``blo-sub status``."""
        self._write(
            [
                (
                    "INSERT INTO state VALUES (?,?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value)),
                )
                for key, value in values.items()
            ]
        )

    def state(self) -> dict[str, Any]:
        """What the running client last recorded."""
        return {key: json.loads(value) for key, value in self._read("SELECT key, value FROM state")}

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
