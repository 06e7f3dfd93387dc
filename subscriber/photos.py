"""The photo transfer's MQTT edge: one node's blob store on its link.

``PhotoLink`` is used by the node client (subscriber/client.py) and the archive
(broker/blobs.py) through a few calls:

- ``accepted(results)`` after messages are committed: an incident's photos are
  registered in the blob store (quotas apply; a blob no accepted message describes
  is never stored), and asked for;
- ``on_message(topic, payload)`` for ``blo/chunk/...`` and ``blo/need/...``: a chunk
  is checked against the signed description and stored (``photos.store``), a need
  is queued for serving; returns False for other topics;
- ``resume(held)`` once at start, with the incidents the node already stored: the
  photos of one stored just before a crash (before ``accepted`` registered them)
  are registered and fetched, as the redelivery that would have done it is refused
  as a duplicate (or, on amqtt, never comes);
- ``tick()`` from the ticker: asks for what is missing (``photos.transfer.Asking``),
  and hourly drops what the retention policy no longer keeps (``prune``);
- a small pump thread publishes asked-for chunks with at most ``window`` of them
  unacknowledged by the broker, so a message queued meanwhile waits for a few
  chunks at most (8 KiB each), never for a whole photo.

Completed photos are also written, re-hashed, to ``DATA/photos/`` (what ``blo-sub
show`` lists). A bad chunk or need is counted and logged, never raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from photos.chunks import MAX_CHUNK_FRAME, Chunk, Refused
from photos.errors import PhotoError, StoreError, UnknownBlobError
from photos.store import (
    TABLET_RETENTION,
    BlobStatus,
    BlobStore,
    Pruned,
    Retention,
    blob_refs,
    retention_from,
)
from photos.transfer import Asking, Serving, check_source, decode_need, encode_need
from schemas import Accepted, BloError, Kind, Role
from schemas.base import WireModel
from schemas.codec import unpack_model
from schemas.envelope import Header
from schemas.ids import country_of
from schemas.messages import Attachment, BlobRef, Incident
from schemas.topics import chunk_source, chunk_topic, need_asker, need_topic
from schemas.truststore import TrustStore

__all__ = [
    "BLOB_FILE",
    "PhotoLink",
    "PhotoState",
    "photo_file",
    "photo_link",
    "photo_states",
    "write_photos",
]

#: The blob store in a node's data folder (blo-pub writes it, blo-sub run serves it).
BLOB_FILE = "blobs.sqlite3"

log = logging.getLogger("blo.photos")

#: The environment variables of a node's retention policy: BLO_PHOTOS_KEEP_DAYS and
#: BLO_PHOTOS_PARTIAL_DAYS (days, or 'forever'; photos.store.retention_from).
RETENTION_ENV = "BLO_PHOTOS"

#: Seconds between two prunes by the ticker (the first comes at the first tick).
PRUNE_EVERY = 3600.0

#: Seconds a chunk just published is not published again for another need: longer
#: than a need takes to cross, shorter than a receiver's patience before it asks again.
ECHO = 2.0

_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/heic": ".heic"}


def photo_file(folder: Path, status: BlobStatus) -> Path:
    """Where a complete blob is written in ``folder``: named by its SHA-256."""
    return folder / f"{status.ref.sha256.hex()[:16]}{_EXT.get(status.ref.media_type, '.bin')}"


class PhotoLink:
    """One node's photo transfer over its MQTT client (see the module docstring)."""

    def __init__(
        self,
        me: str,
        store: BlobStore,
        client: mqtt.Client,
        *,
        archive: str | Callable[[], str | None] | None,
        is_archive: Callable[[str], bool],
        clock: Callable[[], datetime],
        out: Path | None = None,
        window: int = 2,
        patience: float = 8.0,
        retention: Retention = TABLET_RETENTION,
    ) -> None:
        self.me = me
        self.store = store
        self.client = client
        self.clock = clock
        self.out = out
        self.window = window
        self.is_archive = is_archive
        self.retention = retention
        self._prune_at = 0.0  # monotonic: the first tick prunes
        # The archive to fall back on, looked up at each tick when given as a function:
        # a node enrolled before its archive learns of it from a later keyset.
        self._find_archive = archive if callable(archive) else None
        self.asking = Asking(me, None if callable(archive) else archive, patience)
        self.serving = Serving()
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._inflight: list[mqtt.MQTTMessageInfo] = []
        # When each chunk was last published: a need sent before the receiver saw it
        # (two receivers asking at once, one answer multicast to both) is not served twice.
        self._served: dict[tuple[bytes, int], float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pump: threading.Thread | None = None

    # -- registering ---------------------------------------------------------------------

    def accepted(self, results: Iterable[Accepted]) -> None:
        """Register the photos of newly accepted incidents (and ask for them at once)."""
        now = self.clock()
        for result in results:
            self._register(result.header, result.body, now)
        self._wake.set()

    def resume(self, held: Iterable[tuple[Header, WireModel, datetime]]) -> int:
        """Register the photos of incidents this node stored earlier (``held``: each
        header, body and when it was received) that its blob store does not know: an
        incident committed just before a crash, whose photos ``accepted`` never saw.
        Incidents older than the retention's ``partial`` limit are left alone (their
        photos would be pruned at once). Returns how many incidents were resumed."""
        now = self.clock()
        oldest = None if self.retention.partial is None else now - self.retention.partial
        resumed = 0
        for header, body, received in held:
            if oldest is not None and received < oldest:
                continue
            if not isinstance(body, Incident) or not any(blob_refs(a) for a in body.attachments):
                continue
            try:
                if self.store.described(header.msg_id):
                    continue
            except PhotoError as exc:
                log.warning("%s: %s", self.me, exc)
                return resumed
            if self._register(header, body, now):
                resumed += 1
                log.info("%s: photos of %s resumed", self.me, header.msg_id.hex())
        self.stats["resumed"] += resumed
        self._wake.set()
        return resumed

    def _register(self, header: Header, body: WireModel, now: datetime) -> bool:
        if header.kind is not Kind.INCIDENT or not isinstance(body, Incident):
            return False
        refs = [ref for a in body.attachments for ref in blob_refs(a)]
        if not refs:
            return False
        try:
            self.store.register(refs, office=header.sender, msg_id=header.msg_id, now=now)
        except PhotoError as exc:  # over quota, or described differently: said once
            log.warning("%s: photos of %s not kept: %s", self.me, header.msg_id.hex(), exc)
            self.stats["not_registered"] += 1
            return False
        return True

    # -- retention -----------------------------------------------------------------------

    def prune(self) -> Pruned:
        """Drop what the retention policy no longer keeps: chunks (and their quota) in
        the store, and the written files in ``DATA/photos/``."""
        pruned = self.store.prune(self.retention, self.clock())
        for status in pruned.blobs:
            if self.out is None or self.store.find(status.ref.sha256) is not None:
                continue  # no files, or the same bytes are still kept for another blob
            with contextlib.suppress(FileNotFoundError):
                photo_file(self.out, status).unlink()
        if pruned.blobs:
            self.stats["pruned"] += len(pruned.blobs)
            log.info(
                "%s: pruned %d complete and %d unfinished photo blob(s), %d bytes freed",
                self.me,
                pruned.complete,
                pruned.partial,
                pruned.freed,
            )
        return pruned

    # -- receiving -----------------------------------------------------------------------

    def on_message(self, topic: str, payload: bytes) -> bool:
        """Handle a chunk or need; False if ``topic`` is neither (not ours)."""
        source = chunk_source(topic)
        if source is not None:
            self._chunk(source, payload)
            return True
        asker = need_asker(topic)
        if asker is not None:
            self._need(asker[1], payload)
            return True
        return False

    def _refuse(self, reason: str, detail: str, topic: str) -> None:
        self.stats[f"refused_{reason}"] += 1
        log.info("%s: chunk refused on %s: %s: %s", self.me, topic, reason, detail)

    def _chunk(self, source: tuple[str, str], payload: bytes) -> None:
        topic = chunk_topic(*source)
        try:
            chunk = unpack_model(Chunk, payload, max_len=MAX_CHUNK_FRAME)
        except BloError as exc:
            self._refuse("malformed", str(exc), topic)
            return
        try:
            status = self.store.status(chunk.root)
        except UnknownBlobError as exc:
            self._refuse("unknown_blob", str(exc), topic)
            return
        if status.is_complete:
            self.stats["duplicate"] += 1
            return
        why = check_source(source[0], source[1], status, self.is_archive)
        if why is not None:
            self._refuse("wrong_topic", why, topic)
            return
        try:
            stored = self.store.put_chunk(chunk, self.clock())
        except PhotoError as exc:
            log.warning("%s: %s", self.me, exc)
            return
        if isinstance(stored, Refused):
            self._refuse(stored.reason.value, stored.detail, topic)
            return
        self.stats["chunks" if stored.new else "duplicate"] += 1
        if stored.new:
            self.asking.progress(time.monotonic())
        if stored.complete:
            self.stats["complete"] += 1
            self.asking.forget([chunk.root])
            self._write(chunk.root)

    def _write(self, root: bytes) -> None:
        if self.out is None:
            return
        try:
            status = self.store.status(root)
            data = self.store.read(root)  # re-hashed on the way out
            self.out.mkdir(parents=True, exist_ok=True)
            path = photo_file(self.out, status)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        except (PhotoError, OSError) as exc:
            log.warning("%s: a complete photo could not be written: %s", self.me, exc)

    def _need(self, asker: str, payload: bytes) -> None:
        try:
            root, need = decode_need(payload)
            status = self.store.status(root)
            held = self.store.need(root)  # what this holder lacks itself
        except PhotoError as exc:
            self.stats["need_ignored"] += 1
            log.debug("%s: need from %s ignored: %s", self.me, asker, exc)
            return
        if need.n != status.chunks:
            self.stats["need_ignored"] += 1
            return
        for index in held.missing():
            if index in need:
                need.held(index)  # cannot serve what it does not hold
        now = time.monotonic()
        for index in need.missing():
            if now - self._served.get((root, index), -ECHO) < ECHO:
                need.held(index)  # just sent, multicast: on its way to this asker too
        with self._lock:
            self.serving.asked(root, status.ref.size, need)
        self.stats["needs"] += 1
        self._wake.set()

    # -- sending -------------------------------------------------------------------------

    def tick(self) -> None:
        """Ask for what is missing (at once, then after ``patience`` without progress)."""
        if self._pump is None:
            self._pump = threading.Thread(
                target=self._run_pump, name=f"{self.me}-photos", daemon=True
            )
            self._pump.start()
        old = time.monotonic() - 60
        self._served = {k: t for k, t in self._served.items() if t > old}  # stays small
        if self._find_archive is not None:
            self.asking.archive = self._find_archive()
        try:
            if time.monotonic() >= self._prune_at:
                self._prune_at = time.monotonic() + PRUNE_EVERY
                self.prune()
            missing = self.store.missing()
        except PhotoError as exc:
            log.warning("%s: %s", self.me, exc)
            return
        for ask in self.asking.due(missing, time.monotonic()):
            info = self.client.publish(
                need_topic(ask.holder, self.me), encode_need(ask.root, ask.need), qos=0
            )
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.stats["asked"] += 1
                self.stats["asked_chunks"] += len(ask.need)

    def _run_pump(self) -> None:
        while not self._stop.is_set():
            # Poll only while there is work (a chunk in flight frees room when its
            # PUBACK comes, which paho does not signal here); idle, sleep until woken:
            # 74 idle tablets polling every 20 ms cost a tenth of a core.
            with self._lock:
                busy = bool(self._inflight) or len(self.serving) > 0
            self._wake.wait(0.02 if busy else None)
            self._wake.clear()
            try:
                self._send_some()
            except Exception:  # the pump must outlive any one chunk
                log.exception("%s: sending photo chunks failed", self.me)
                time.sleep(0.5)

    def _send_some(self) -> None:
        self._inflight = [i for i in self._inflight if not _done(i)]
        room = self.window - len(self._inflight)
        if room <= 0 or not self.client.is_connected():
            return
        with self._lock:
            batch = self.serving.take(room)
        for at, (root, index) in enumerate(batch):
            chunk = self.store.chunk(root, index)
            if chunk is None:
                continue
            status = self.store.status(root)
            topic = chunk_topic(country_of(status.office), self.me)
            info = self.client.publish(topic, chunk.encode(), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                # The link went: paho keeps this one for the next link (QoS 1); the
                # rest go back in the queue.
                with self._lock:
                    for later_root, later in batch[at + 1 :]:
                        size = self.store.status(later_root).ref.size
                        self.serving.requeue(later_root, size, [later])
                return
            self.stats["served"] += 1
            if (root, index) in self._served:
                self.stats["served_again"] += 1  # asked again: lost, or its holder restarted
            self._served[(root, index)] = time.monotonic()
            self._inflight.append(info)

    def close(self) -> None:
        """Stop the pump and close the store."""
        self._stop.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(5)
        self.store.close()


def _done(info: mqtt.MQTTMessageInfo) -> bool:
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # paho gave it up (link lost): no longer in flight
        return True


def photo_link(
    me: str,
    data: Path,
    client: mqtt.Client,
    trust: TrustStore,
    clock: Callable[[], datetime],
    **options: Any,
) -> PhotoLink:
    """The ``PhotoLink`` of node ``me`` with its data folder ``data``: the blob store is
    ``DATA/blobs.sqlite3`` (shared with ``blo-pub``), complete photos go to ``DATA/photos``.
    Asks fall back to the archive of ``me``'s country, as the trust store names it.
    The retention policy is ``TABLET_RETENTION`` with ``BLO_PHOTOS_KEEP_DAYS`` and
    ``BLO_PHOTOS_PARTIAL_DAYS`` applied (``StoreError`` for a bad value), unless
    ``retention`` is given."""

    def role(node: str) -> Role | None:
        entry = trust.node(node)
        return entry.role if entry is not None else None

    def archive() -> str | None:  # from the keyset held now, which may be newer
        keyset = trust.keyset(country_of(me))
        found = [n.node for n in keyset.nodes if n.role is Role.ARCHIVE] if keyset else []
        return found[0] if found else None

    options.setdefault("retention", retention_from(os.environ, RETENTION_ENV, TABLET_RETENTION))
    return PhotoLink(
        me,
        BlobStore(data / BLOB_FILE),
        client,
        archive=archive,
        is_archive=lambda node: role(node) is Role.ARCHIVE,
        clock=clock,
        out=data / "photos",
        **options,
    )


# -- reading: what blo-sub show / photos / map use ----------------------------------------


@dataclass(frozen=True, slots=True)
class PhotoState:
    """Where one of an incident's photos stands at this node."""

    number: int
    attachment: Attachment
    state: str  # complete, preview only, n of m chunks
    path: Path | None  # the full image if complete, else the preview if complete
    complete: bool


def _blob_state(store: BlobStore | None, ref: BlobRef | None) -> tuple[str, bool]:
    if ref is None:
        return "not sent", False
    if store is None:
        return "not registered", False
    try:
        status = store.status(ref.merkle_root)
    except UnknownBlobError:
        return "not registered (over quota?)", False
    if status.pruned is not None:
        return f"pruned {status.pruned:%Y-%m-%d} (retention; the archive keeps it)", False
    if status.failed is not None:
        return f"failed: {status.failed}", False
    if status.is_complete:
        return "complete", True
    return f"{status.held} of {status.chunks} chunks", False


def photo_states(incident: Incident, data: Path) -> list[PhotoState]:
    """The state of each photo of ``incident`` in the node folder ``data``."""
    path = data / BLOB_FILE
    store = BlobStore(path) if path.exists() else None
    try:
        out = []
        for number, attachment in enumerate(incident.attachments, 1):
            preview, preview_done = _blob_state(store, attachment.preview)
            full, full_done = _blob_state(store, attachment.full)
            where = None
            for ref, done in ((attachment.full, full_done), (attachment.preview, preview_done)):
                if done and ref is not None and store is not None:
                    where = photo_file(data / "photos", store.status(ref.merkle_root))
                    break
            if full_done:
                state = "complete"
            elif preview_done:
                state = f"preview only; full image {full}"
            else:
                state = f"preview {preview}; full image {full}"
            out.append(PhotoState(number, attachment, state, where, full_done))
        return out
    finally:
        if store is not None:
            store.close()


def write_photos(incident: Incident, data: Path, out: Path) -> list[tuple[Path, str]]:
    """Write ``incident``'s photos held at ``data`` into ``out`` as photo-N.EXT (the full
    image) or photo-N-preview.jpg (the preview, while the full image is incomplete),
    each re-hashed on the way out. Returns what was written and what is still missing."""
    path = data / BLOB_FILE
    if not path.exists():
        return []
    store = BlobStore(path)
    written: list[tuple[Path, str]] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for number, attachment in enumerate(incident.attachments, 1):
            full, preview = attachment.full, attachment.preview
            for ref, name in ((full, f"photo-{number}"), (preview, f"photo-{number}-preview")):
                if ref is None or _blob_state(store, ref)[0] != "complete":
                    continue
                target = out / f"{name}{_EXT.get(ref.media_type, '.bin')}"
                target.write_bytes(store.read(ref.merkle_root))
                written.append((target, "full image" if ref is full else "preview"))
                break
    except OSError as exc:
        raise StoreError(f"{out}: {exc.strerror}; check the folder") from None
    finally:
        store.close()
    return written
