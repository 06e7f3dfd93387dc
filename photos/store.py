"""The blob store: photo chunks a node holds, in one SQLite file.

A blob gets in only after a signed, accepted message described it: the caller
``register``s the ``BlobRef``s of an accepted incident (with the sending office and
the message id), and only then are chunks of those blobs taken. A chunk is checked
against the registered description on its own (``chunks.verify_chunk``); when the
last one arrives the whole file is assembled and re-hashed (Merkle root and
SHA-256) before the blob is marked complete. ``need`` answers what is still
missing, so a receiver resumes by asking for that only.

Quotas are reserved at registration, by declared size: per sending office and in
total. A blob that would go over either is refused then, with ``QuotaError``
saying how much room is left, so a chunk is never refused half-way for lack of
room. ``ensure_room`` lets a sender check before it publishes.

``prune`` applies a ``Retention``: blobs whose newest describing message is older
than the policy allows lose their chunks and their room; a small tombstone row
stays, so a restart's resume or a redelivery of the same message does not fetch
them again (a *new* message describing the same blob does).

WAL mode and ``synchronous=FULL`` like the outbox; one connection
behind a lock, safe from several threads; ``BEGIN IMMEDIATE`` makes writes from
several processes take turns. No clock is read: ``now`` is an argument. Chunks
from the network never raise: ``put_chunk`` returns ``Stored`` or ``Refused``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from photos.chunks import (
    Chunk,
    ChunkReason,
    NeedMap,
    Refused,
    Verified,
    assemble,
    chunk_count,
    verify_chunk,
)
from photos.errors import BlobError, QuotaError, StoreError, UnknownBlobError
from schemas.messages import Attachment, BlobRef

__all__ = [
    "ARCHIVE_RETENTION",
    "TABLET_RETENTION",
    "BlobStatus",
    "BlobStore",
    "Pruned",
    "Quotas",
    "Retention",
    "Stored",
    "blob_refs",
    "retention_from",
]

# PRAGMA user_version of this layout (2 added blobs.pruned; a layout 1 file is migrated).
_LAYOUT = 2
_MIB = 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    root       BLOB    PRIMARY KEY,
    sha256     BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    media_type TEXT    NOT NULL,
    chunk_size INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    office     TEXT    NOT NULL,
    registered INTEGER NOT NULL,
    held       INTEGER NOT NULL DEFAULT 0,
    complete   INTEGER,
    failed     TEXT,
    pruned     INTEGER
);
CREATE INDEX IF NOT EXISTS blobs_sha256 ON blobs(sha256);
CREATE INDEX IF NOT EXISTS blobs_office ON blobs(office);
CREATE TABLE IF NOT EXISTS refs (
    root   BLOB NOT NULL,
    msg_id BLOB NOT NULL,
    PRIMARY KEY (root, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_msg ON refs(msg_id);
CREATE TABLE IF NOT EXISTS chunks (
    root  BLOB    NOT NULL,
    idx   INTEGER NOT NULL,
    data  BLOB    NOT NULL,
    proof BLOB    NOT NULL,
    PRIMARY KEY (root, idx)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Quotas:
    """Bytes of blobs a store holds (declared sizes, reserved at registration)."""

    per_office: int = 256 * _MIB
    total: int = 2048 * _MIB


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a store keeps blobs, counted from the newest accepted message that
    described each (None: for ever, within the quotas). ``partial`` is how long a
    blob still being fetched is waited for; after that its chunks go and it is no
    longer asked for."""

    complete: timedelta | None = timedelta(days=90)
    partial: timedelta | None = timedelta(days=14)


#: A tablet's photos: the archive keeps them longer, so a tablet frees its room.
TABLET_RETENTION = Retention()
#: The archive's: complete photos until an operator says otherwise (they are
#: evidence), a transfer that never finished for a month.
ARCHIVE_RETENTION = Retention(complete=None, partial=timedelta(days=30))


def retention_from(env: Mapping[str, str], prefix: str, default: Retention) -> Retention:
    """``default`` with ``PREFIX_KEEP_DAYS`` (complete blobs) and ``PREFIX_PARTIAL_DAYS``
    (incomplete ones) from ``env`` applied: a number of days (decimals allowed) or
    ``forever``. Raises ``StoreError`` naming the variable for any other value."""

    def days(name: str, current: timedelta | None) -> timedelta | None:
        text = env.get(f"{prefix}_{name}", "").strip()
        if not text:
            return current
        if text.lower() == "forever":
            return None
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not 0 < value < 100_000:  # also refuses nan and inf
            raise StoreError(
                f"{prefix}_{name}={text!r}: give a number of days above 0, or 'forever'"
            )
        return timedelta(days=value)

    return Retention(
        complete=days("KEEP_DAYS", default.complete),
        partial=days("PARTIAL_DAYS", default.partial),
    )


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one ``prune`` removed: the blobs (their last state) and the bytes freed."""

    blobs: tuple[BlobStatus, ...]
    freed: int

    @property
    def complete(self) -> int:
        return sum(1 for b in self.blobs if b.is_complete)

    @property
    def partial(self) -> int:
        return len(self.blobs) - self.complete


@dataclass(frozen=True, slots=True)
class BlobStatus:
    """Where one blob stands: how many of its chunks are held, complete, or failed."""

    ref: BlobRef
    office: str
    held: int
    chunks: int
    complete: datetime | None
    failed: str | None
    #: When its chunks were dropped by the retention policy (None: not pruned).
    pruned: datetime | None = None

    @property
    def is_complete(self) -> bool:
        return self.complete is not None and self.pruned is None


@dataclass(frozen=True, slots=True)
class Stored:
    """A chunk taken: ``new`` unless it was held already; ``complete`` once the whole
    blob is assembled and re-hashed."""

    root: bytes
    index: int
    new: bool
    complete: bool


def blob_refs(attachment: Attachment) -> list[BlobRef]:
    """The blobs an attachment describes: its preview first, then the full file."""
    refs = [attachment.preview] if attachment.preview is not None else []
    full = attachment.full
    return [*refs, full] if full is not None else refs


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _mib(value: int) -> str:
    return f"{value / _MIB:.1f} MiB"


class BlobStore:
    """One node's blob store file; safe from several threads and processes."""

    def __init__(self, path: Path, quotas: Quotas | None = None) -> None:
        self.path = path
        self.quotas = quotas or Quotas()
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            layout = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables and layout == 1:  # before retention: one column more, nothing pruned
                self._db.execute("ALTER TABLE blobs ADD COLUMN pruned INTEGER")
                layout = _LAYOUT
            if tables and layout != _LAYOUT:
                raise StoreError(
                    f"{path} is a blob store of layout {layout}, this blo-alert reads "
                    f"{_LAYOUT}: move the file aside; photos are fetched again"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {_LAYOUT}")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: {exc}; check the folder and the disk") from None

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    # -- plumbing ----------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"{self.path}: {exc}; check the disk") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from None

    @staticmethod
    def _ref(row: Sequence[Any]) -> BlobRef:
        root, sha, size, media, chunk_size = row[:5]
        return BlobRef(
            sha256=sha, size=size, media_type=media, chunk_size=chunk_size, merkle_root=root
        )

    # -- quotas -----------------------------------------------------------------------

    def used(self, office: str | None = None) -> int:
        """Bytes reserved by ``office``'s blobs, or by all blobs."""
        if office is None:
            sql = "SELECT coalesce(sum(size), 0) FROM blobs WHERE pruned IS NULL"
            return int(self._read(sql)[0][0])
        sql = "SELECT coalesce(sum(size), 0) FROM blobs WHERE office = ? AND pruned IS NULL"
        return int(self._read(sql, (office,))[0][0])

    def _check_room(self, db: sqlite3.Connection, office: str, adding: int) -> None:
        held = "SELECT coalesce(sum(size), 0) FROM blobs WHERE pruned IS NULL"
        used_office = int(db.execute(held + " AND office = ?", (office,)).fetchone()[0])
        used_total = int(db.execute(held).fetchone()[0])
        if used_office + adding > self.quotas.per_office:
            raise QuotaError(
                f"{self.path}: {_mib(adding)} of photos from {office} would go over its "
                f"quota of {_mib(self.quotas.per_office)} ({_mib(used_office)} held); "
                "send fewer or smaller photos, or free older ones"
            )
        if used_total + adding > self.quotas.total:
            raise QuotaError(
                f"{self.path}: {_mib(adding)} of photos would go over the store's quota of "
                f"{_mib(self.quotas.total)} ({_mib(used_total)} held); free older photos"
            )

    def ensure_room(self, office: str, refs: Sequence[BlobRef]) -> None:
        """Raise ``QuotaError`` if ``refs`` (not yet held) would not fit for ``office``:
        what a sender checks before it publishes an incident with photos."""
        with self._tx() as db:
            self._check_room(db, office, self._new_bytes(db, refs))

    @staticmethod
    def _new_bytes(
        db: sqlite3.Connection, refs: Sequence[BlobRef], msg_id: bytes | None = None
    ) -> int:
        """Bytes ``refs`` would add: blobs not registered, and pruned blobs that a new
        message (``msg_id`` not among their references) would bring back."""
        unique = {ref.merkle_root: ref for ref in refs}
        held = set()
        for root in unique:
            row = db.execute("SELECT pruned FROM blobs WHERE root = ?", (root,)).fetchone()
            if row is None:
                continue
            if row[0] is not None:
                known = db.execute(
                    "SELECT 1 FROM refs WHERE root = ? AND msg_id = ?", (root, msg_id)
                ).fetchone()
                if known is None:
                    continue  # comes back: counts again
            held.add(root)
        return sum(ref.size for root, ref in unique.items() if root not in held)

    # -- descriptions -----------------------------------------------------------------

    def register(
        self, refs: Sequence[BlobRef], *, office: str, msg_id: bytes, now: datetime
    ) -> list[BlobStatus]:
        """Admit the blobs a signed, accepted message (``msg_id`` from ``office``)
        describes: all of them, or none if they would go over a quota (``QuotaError``).
        A blob already registered just gains the reference, and its retention counts
        from ``now``. A pruned blob comes back (to be fetched again) only for a message
        that did not describe it before. Raises ``BlobError`` if a blob is described
        differently from how an earlier message described it."""
        with self._tx() as db:
            for ref in refs:
                row = db.execute(
                    "SELECT root, sha256, size, media_type, chunk_size FROM blobs WHERE root = ?",
                    (ref.merkle_root,),
                ).fetchone()
                if row is not None and self._ref(row) != ref:
                    raise BlobError(
                        f"blob {ref.merkle_root.hex()[:16]} is described differently by "
                        f"message {msg_id.hex()} than before; keeping the first description"
                    )
            self._check_room(db, office, self._new_bytes(db, refs, msg_id))
            stamp = int(now.timestamp())
            for ref in refs:
                fresh = (
                    db.execute(
                        "INSERT OR IGNORE INTO refs VALUES (?, ?)", (ref.merkle_root, msg_id)
                    ).rowcount
                    > 0
                )
                if fresh:  # a new message: the blob is wanted again, and from now
                    db.execute(
                        "UPDATE blobs SET registered = max(registered, ?), pruned = NULL,"
                        " complete = CASE WHEN pruned IS NULL THEN complete END"
                        " WHERE root = ?",
                        (stamp, ref.merkle_root),
                    )
                db.execute(
                    "INSERT OR IGNORE INTO blobs (root, sha256, size, media_type, chunk_size,"
                    " n, office, registered) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        ref.merkle_root,
                        ref.sha256,
                        ref.size,
                        ref.media_type,
                        ref.chunk_size,
                        chunk_count(ref.size, ref.chunk_size),
                        office,
                        stamp,
                    ),
                )
        return [self.status(ref.merkle_root) for ref in refs]

    def described(self, msg_id: bytes) -> bool:
        """True if ``msg_id``'s blobs were registered (pruned ones included)."""
        return bool(self._read("SELECT 1 FROM refs WHERE msg_id = ? LIMIT 1", (msg_id,)))

    def prune(self, retention: Retention, now: datetime) -> Pruned:
        """Drop the chunks of blobs older than ``retention`` allows (complete and
        incomplete ones by their own limits), freeing their quota; a tombstone row
        keeps them from being fetched again for the same message."""
        limits = ((retention.complete, "NOT NULL"), (retention.partial, "NULL"))
        with self._tx() as db:
            gone: list[BlobStatus] = []
            for keep, complete in limits:
                if keep is None:
                    continue
                cutoff = int((now - keep).timestamp())
                rows = db.execute(
                    self._STATUS + f" WHERE pruned IS NULL AND complete IS {complete}"
                    " AND registered < ?",
                    (cutoff,),
                ).fetchall()
                gone += [self._status(row) for row in rows]
            stamp = int(now.timestamp())
            for status in gone:
                root = status.ref.merkle_root
                db.execute("DELETE FROM chunks WHERE root = ?", (root,))
                db.execute("UPDATE blobs SET held = 0, pruned = ? WHERE root = ?", (stamp, root))
        return Pruned(tuple(gone), sum(s.ref.size for s in gone))

    def forget(self, msg_id: bytes) -> int:
        """Drop a message's references; blobs no message refers to any more are deleted
        with their chunks (their quota is freed). Returns how many blobs went."""
        with self._tx() as db:
            roots = [r[0] for r in db.execute("SELECT root FROM refs WHERE msg_id = ?", (msg_id,))]
            db.execute("DELETE FROM refs WHERE msg_id = ?", (msg_id,))
            gone = 0
            for root in roots:
                if db.execute("SELECT 1 FROM refs WHERE root = ?", (root,)).fetchone() is None:
                    db.execute("DELETE FROM chunks WHERE root = ?", (root,))
                    gone += db.execute("DELETE FROM blobs WHERE root = ?", (root,)).rowcount
        return gone

    # -- chunks -----------------------------------------------------------------------

    _STATUS = (
        "SELECT root, sha256, size, media_type, chunk_size, office, held, n, complete, failed,"
        " pruned FROM blobs"
    )

    def _status(self, row: Sequence[Any]) -> BlobStatus:
        return BlobStatus(
            ref=self._ref(row),
            office=row[5],
            held=row[6],
            chunks=row[7],
            complete=_ts(row[8]),
            failed=row[9],
            pruned=_ts(row[10]),
        )

    def put_chunk(self, chunk: Chunk, now: datetime) -> Stored | Refused:
        """Check a chunk against its registered blob and keep it; assemble and re-hash
        the blob when it is the last one. Never raises for a bad chunk."""
        with self._tx() as db:
            row = db.execute(self._STATUS + " WHERE root = ?", (chunk.root,)).fetchone()
            if row is None:
                return Refused(
                    ChunkReason.UNKNOWN_BLOB,
                    f"no accepted message describes blob {chunk.root.hex()[:16]}",
                )
            status = self._status(row)
            if status.pruned is not None:
                return Refused(
                    ChunkReason.PRUNED,
                    f"blob {chunk.root.hex()[:16]} was pruned on {status.pruned:%Y-%m-%d}",
                )
            if status.failed is not None:
                return Refused(ChunkReason.BAD_FILE, status.failed)
            checked = verify_chunk(chunk, status.ref)
            if not isinstance(checked, Verified):
                return checked
            new = (
                db.execute(
                    "INSERT OR IGNORE INTO chunks VALUES (?,?,?,?)",
                    (chunk.root, chunk.index, chunk.data, b"".join(chunk.proof)),
                ).rowcount
                > 0
            )
            if not new:
                return Stored(chunk.root, chunk.index, new=False, complete=status.is_complete)
            held = status.held + 1
            db.execute("UPDATE blobs SET held = ? WHERE root = ?", (held, chunk.root))
            if held < status.chunks:
                return Stored(chunk.root, chunk.index, new=True, complete=False)
            pieces = dict(
                db.execute("SELECT idx, data FROM chunks WHERE root = ?", (chunk.root,)).fetchall()
            )
            try:
                assemble(status.ref, pieces)
            except BlobError as exc:
                # Every chunk matched the signed root, so the description itself is
                # wrong: keep nothing of it, and refuse its chunks from now on.
                db.execute("DELETE FROM chunks WHERE root = ?", (chunk.root,))
                db.execute(
                    "UPDATE blobs SET held = 0, failed = ? WHERE root = ?", (str(exc), chunk.root)
                )
                return Refused(ChunkReason.BAD_FILE, str(exc))
            db.execute(
                "UPDATE blobs SET complete = ? WHERE root = ?", (int(now.timestamp()), chunk.root)
            )
            return Stored(chunk.root, chunk.index, new=True, complete=True)

    # -- questions --------------------------------------------------------------------

    def status(self, root: bytes) -> BlobStatus:
        """A registered blob's state. Raises ``UnknownBlobError``."""
        rows = self._read(self._STATUS + " WHERE root = ?", (root,))
        if not rows:
            raise UnknownBlobError(f"{self.path}: no accepted message describes {root.hex()[:16]}")
        return self._status(rows[0])

    def blobs_of(self, msg_id: bytes) -> list[BlobStatus]:
        """The blobs a message described, in the order they were registered."""
        rows = self._read(
            self._STATUS.replace(" FROM blobs", " FROM blobs JOIN refs USING (root)")
            + " WHERE refs.msg_id = ? ORDER BY blobs.rowid",
            (msg_id,),
        )
        return [self._status(row) for row in rows]

    def find(self, sha256: bytes) -> BlobStatus | None:
        """A registered blob with this whole-file SHA-256, complete ones first."""
        rows = self._read(
            self._STATUS + " WHERE sha256 = ? AND pruned IS NULL ORDER BY complete IS NULL, rowid",
            (sha256,),
        )
        return self._status(rows[0]) if rows else None

    def need(self, root: bytes) -> NeedMap:
        """Which chunks of a blob are still missing: what a resume asks for."""
        status = self.status(root)
        held = {r[0] for r in self._read("SELECT idx FROM chunks WHERE root = ?", (root,))}
        return NeedMap(status.chunks, (i for i in range(status.chunks) if i not in held))

    def missing(self) -> list[tuple[BlobStatus, NeedMap]]:
        """Every incomplete blob and what it needs, previews (smaller) first."""
        rows = self._read(
            self._STATUS
            + " WHERE complete IS NULL AND failed IS NULL AND pruned IS NULL ORDER BY size, rowid"
        )
        return [(self._status(row), self.need(row[0])) for row in rows]

    def chunk(self, root: bytes, index: int) -> Chunk | None:
        """A held chunk with its proof, to serve to a node that asks for it."""
        rows = self._read(
            "SELECT data, proof FROM chunks WHERE root = ? AND idx = ?", (root, index)
        )
        if not rows:
            return None
        data, proof = rows[0]
        return Chunk(
            root=root,
            index=index,
            data=data,
            proof=tuple(proof[i : i + 32] for i in range(0, len(proof), 32)),
        )

    def read(self, root: bytes) -> bytes:
        """A complete blob's bytes, re-hashed on the way out. Raises ``BlobError`` if it
        is not complete, ``UnknownBlobError`` if it was never described."""
        status = self.status(root)
        if status.pruned is not None:
            raise BlobError(
                f"blob {root.hex()[:16]} was pruned on {status.pruned:%Y-%m-%d} "
                "(the retention policy); the archive keeps photos longer"
            )
        if not status.is_complete:
            raise BlobError(
                f"blob {root.hex()[:16]} has {status.held} of {status.chunks} chunks; "
                "it can be read once complete"
            )
        pieces = dict(self._read("SELECT idx, data FROM chunks WHERE root = ?", (root,)))
        return assemble(status.ref, pieces)
