"""Photo retention and resume: photos/store.py (prune, tombstones), subscriber/photos.py
(files, refusals, resume at start) and broker/blobs.py (the archive's resume).

Sans-I/O where it can be: ``now`` is passed, the link's clock is a variable, and no
broker runs (a PhotoLink that prunes, takes chunks and resumes publishes nothing).
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from netsim import Net

from broker.archive import ArchiveStore
from broker.blobs import archive_blobs, archived_incidents
from photos.chunks import Chunk, ChunkReason, Refused, split
from photos.errors import BlobError, StoreError
from photos.store import (
    ARCHIVE_RETENTION,
    TABLET_RETENTION,
    BlobStore,
    Retention,
    Stored,
    retention_from,
)
from schemas import Accepted, Crime, Scope, topics_for
from schemas.kinds import Kind
from schemas.messages import Attachment, BlobRef, Incident, Position
from subscriber.photos import PhotoLink, photo_file
from subscriber.photos import _blob_state as blob_state

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
BAVET = "kh-blo-bavet"
MSG, OTHER = b"\x01" * 16, b"\x02" * 16


def _blob(size: int, seed: int) -> tuple[BlobRef, list[Chunk]]:
    return split(random.Random(seed).randbytes(size), "image/jpeg")


def _fill(store: BlobStore, chunks: list[Chunk], now: datetime = NOW) -> None:
    for chunk in chunks:
        assert isinstance(store.put_chunk(chunk, now), Stored)


def test_the_policy_drops_complete_and_unfinished_blobs_by_their_own_limits(
    tmp_path: Path,
) -> None:
    store = BlobStore(tmp_path / "b.db")
    done, done_chunks = _blob(30_000, 1)
    half, half_chunks = _blob(30_000, 2)
    store.register([done, half], office=BAVET, msg_id=MSG, now=NOW)
    _fill(store, done_chunks)
    _fill(store, half_chunks[:2])
    policy = Retention(complete=90 * DAY, partial=14 * DAY)
    assert store.prune(policy, NOW + 13 * DAY).blobs == ()  # the control: all kept
    assert store.used() == 60_000
    # Two weeks on, the unfinished one is given up: chunks and quota go, no more asks.
    pruned = store.prune(policy, NOW + 15 * DAY)
    assert [b.ref for b in pruned.blobs] == [half]
    assert (pruned.complete, pruned.partial, pruned.freed) == (0, 1, 30_000)
    assert store.chunk(half.merkle_root, 0) is None
    assert store.used(BAVET) == 30_000
    assert [s.ref for s, _ in store.missing()] == []
    refused = store.put_chunk(half_chunks[3], NOW + 15 * DAY)
    assert isinstance(refused, Refused)
    assert refused.reason is ChunkReason.PRUNED
    assert store.read(done.merkle_root)  # the complete one is still readable
    # Ninety days on, the complete one goes too, with its bytes.
    pruned = store.prune(policy, NOW + 91 * DAY)
    assert [b.ref for b in pruned.blobs] == [done]
    assert pruned.complete == 1
    assert store.used() == 0
    with pytest.raises(BlobError, match="pruned on 2027-03-01"):
        store.read(done.merkle_root)
    assert not store.status(done.merkle_root).is_complete
    assert store.find(done.sha256) is None
    assert store.prune(policy, NOW + 400 * DAY).blobs == ()  # once only


def test_a_pruned_blob_comes_back_only_for_a_new_message(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "b.db")
    ref, chunks = _blob(20_000, 3)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    _fill(store, chunks)
    store.prune(Retention(complete=DAY), NOW + 2 * DAY)
    # The same message again (a redelivery, a resume at start): it stays pruned.
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW + 3 * DAY)
    assert store.status(ref.merkle_root).pruned is not None
    assert store.described(MSG)
    assert store.missing() == []
    # A new message describing the same photo wants it again: fetched from scratch.
    store.register([ref], office=BAVET, msg_id=OTHER, now=NOW + 3 * DAY)
    status = store.status(ref.merkle_root)
    assert (status.pruned, status.complete, status.held) == (None, None, 0)
    assert [s.ref for s, _ in store.missing()] == [ref]
    assert store.used(BAVET) == 20_000
    _fill(store, chunks, NOW + 3 * DAY)
    assert store.status(ref.merkle_root).is_complete


def test_retention_counts_from_the_newest_message_describing_a_blob(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "b.db")
    ref, chunks = _blob(10_000, 4)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    _fill(store, chunks)
    store.register([ref], office=BAVET, msg_id=OTHER, now=NOW + 80 * DAY)
    assert store.prune(TABLET_RETENTION, NOW + 100 * DAY).blobs == ()
    assert store.prune(TABLET_RETENTION, NOW + 171 * DAY).complete == 1


def test_for_ever_keeps_everything(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "b.db")
    ref, chunks = _blob(10_000, 5)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    _fill(store, chunks)
    assert ARCHIVE_RETENTION.complete is None
    assert store.prune(ARCHIVE_RETENTION, NOW + 10_000 * DAY).blobs == ()
    assert store.prune(Retention(None, None), NOW + 10_000 * DAY).blobs == ()


def test_retention_from_the_environment() -> None:
    env = {"BLO_PHOTOS_KEEP_DAYS": "30", "BLO_PHOTOS_PARTIAL_DAYS": "0.5"}
    assert retention_from(env, "BLO_PHOTOS", TABLET_RETENTION) == Retention(30 * DAY, DAY / 2)
    assert retention_from({}, "BLO_PHOTOS", TABLET_RETENTION) == TABLET_RETENTION
    keep = retention_from({"X_KEEP_DAYS": "Forever"}, "X", TABLET_RETENTION)
    assert keep == Retention(None, TABLET_RETENTION.partial)
    for bad in ("0", "-3", "a week", "nan", "inf"):
        with pytest.raises(StoreError, match=r"BLO_PHOTOS_PARTIAL_DAYS=.*days above 0"):
            retention_from({"BLO_PHOTOS_PARTIAL_DAYS": bad}, "BLO_PHOTOS", TABLET_RETENTION)


def test_a_store_of_the_first_layout_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    ref, chunks = _blob(9000, 6)
    old = BlobStore(path)
    old.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    _fill(old, chunks)
    old.close()
    with sqlite3.connect(path) as db:  # back to layout 1: no pruned column
        db.execute("ALTER TABLE blobs DROP COLUMN pruned")
        db.execute("PRAGMA user_version = 1")
    store = BlobStore(path)
    assert store.status(ref.merkle_root).is_complete
    assert store.prune(Retention(complete=DAY), NOW + 2 * DAY).complete == 1


# -- the node's link --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def incident_with(net: Net, refs: list[tuple[BlobRef, BlobRef]]) -> Accepted:
    """A signed incident from Bavet with these (preview, full) photos, accepted at HQ."""
    body = Incident(
        crime=Crime.DRUG_TRAFFICKING,
        occurred=net.now - timedelta(hours=1),
        position=Position(lat=11.0791, lon=106.1846),
        attachments=tuple(
            Attachment(
                sha256=full.sha256,
                size=full.size,
                media_type=full.media_type,
                chunk_size=full.chunk_size,
                merkle_root=full.merkle_root,
                preview=preview,
            )
            for preview, full in refs
        ),
    )
    scope = Scope.country("kh")
    wire = net.send(BAVET, body, scope)
    (topic,) = topics_for(Kind.INCIDENT, scope, BAVET)
    result = net.receiver("kh-nacd").receive(topic, wire, net.now)
    assert isinstance(result, Accepted), result
    return result


def hq_link(store: BlobStore, out: Path, clock: Clock, retention: Retention) -> PhotoLink:
    return PhotoLink(
        "kh-nacd",
        store,
        mqtt.Client(mqtt.CallbackAPIVersion.VERSION2),  # never connected: nothing is sent
        archive="kh-archive",
        is_archive=lambda node: node == "kh-archive",
        clock=clock,
        out=out,
        retention=retention,
    )


def test_the_link_prunes_files_and_refuses_chunks_of_what_it_pruned(
    net: Net, tmp_path: Path
) -> None:
    clock = Clock()
    link = hq_link(BlobStore(tmp_path / "b.db"), tmp_path / "photos", clock, TABLET_RETENTION)
    preview, preview_chunks = _blob(9000, 7)
    full, full_chunks = _blob(40_000, 8)
    accepted = incident_with(net, [(preview, full)])
    topic = "blo/chunk/kh/kh-blo-bavet"
    # Before an accepted message describes it, a genuine chunk is refused, not kept.
    assert link.on_message(topic, preview_chunks[0].encode())
    assert link.stats["refused_unknown_blob"] == 1
    assert link.store.used() == 0
    link.accepted([accepted])
    for chunk in preview_chunks + full_chunks:
        assert link.on_message(topic, chunk.encode())
    files = [
        photo_file(tmp_path / "photos", link.store.status(r.merkle_root)) for r in (preview, full)
    ]
    assert all(f.exists() for f in files)
    assert link.prune().blobs == ()
    clock.now += 91 * DAY
    assert link.prune().complete == 2
    assert not any(f.exists() for f in files)
    assert link.stats["pruned"] == 2
    assert blob_state(link.store, full)[0].startswith("pruned 2027-03-01")
    # A late chunk of a pruned blob is refused, not stored; at start it is not resumed.
    link.on_message(topic, full_chunks[0].encode())
    assert link.stats["refused_pruned"] == 1
    assert link.store.chunk(full.merkle_root, 0) is None
    held = [(accepted.header, accepted.body, clock.now - DAY)]
    assert link.resume(held) == 0
    assert link.store.missing() == []
    link.close()


def test_resume_registers_only_what_the_store_does_not_know(net: Net, tmp_path: Path) -> None:
    clock = Clock()
    link = hq_link(BlobStore(tmp_path / "b.db"), tmp_path / "photos", clock, TABLET_RETENTION)
    blobs = [_blob(5000, seed) for seed in range(10, 16)]
    known, lost, old = (incident_with(net, [(blobs[i][0], blobs[i + 1][0])]) for i in (0, 2, 4))
    link.accepted([known])
    # ``lost`` was stored just before a crash, unregistered; ``old`` also, but 15 days
    # ago: past the unfinished-photo limit, it would be pruned at once.
    held = [
        (m.header, m.body, NOW - age) for m, age in ((known, DAY), (lost, DAY), (old, 15 * DAY))
    ]
    assert link.resume(held) == 1
    assert link.store.described(lost.header.msg_id)
    assert not link.store.described(old.header.msg_id)
    assert link.stats["resumed"] == 1
    assert {s.ref for s, _ in link.store.missing()} == {blobs[i][0] for i in (0, 1, 2, 3)}
    assert link.resume(held) == 0  # idempotent
    link.close()


def test_the_archive_resumes_photos_of_incidents_it_stored_before_a_crash(
    net: Net, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = Path("archive.sqlite3")  # relative, as blo-broker's --data often is
    preview, _ = _blob(5000, 20)
    full, _ = _blob(20_000, 21)
    accepted = incident_with(net, [(preview, full)])
    archive = ArchiveStore(db)
    archive.add(accepted, accepted.topic, NOW)  # stored; the crash came before the photos
    archive.close()
    assert [h.msg_id for h, _, _ in archived_incidents(db, None)] == [accepted.header.msg_id]
    assert list(archived_incidents(db, NOW + DAY)) == []
    link = archive_blobs(
        "kh-archive",
        db,
        mqtt.Client(mqtt.CallbackAPIVersion.VERSION2),
        net.store(),
        lambda: NOW + DAY,
    )
    try:
        assert link.retention == ARCHIVE_RETENTION
        assert link.store.described(accepted.header.msg_id)
        assert [s.ref for s, _ in link.store.missing()] == [preview, full]
    finally:
        link.close()
