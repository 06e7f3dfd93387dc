"""photos/store.py: only described blobs, chunks checked on arrival, resume, quotas, threads."""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from photos.chunks import ChunkReason, NeedMap, Refused, Verified, split, verify_chunk
from photos.errors import BlobError, QuotaError, StoreError, UnknownBlobError
from photos.store import BlobStore, Quotas, Stored, blob_refs
from schemas.messages import Attachment

NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
MSG = bytes(range(16))
BAVET = "KH-BAVET"
_SERIAL = itertools.count()


def _blob(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs.db")


def test_a_chunk_no_message_described_is_refused_and_not_kept(store: BlobStore) -> None:
    ref, chunks = split(_blob(20_000), "image/jpeg")
    result = store.put_chunk(chunks[0], NOW)
    assert isinstance(result, Refused)
    assert result.reason is ChunkReason.UNKNOWN_BLOB
    with pytest.raises(UnknownBlobError):
        store.need(ref.merkle_root)
    assert store.chunk(ref.merkle_root, 0) is None
    # Positive control: once described, the same chunk is taken.
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    assert store.put_chunk(chunks[0], NOW) == Stored(ref.merkle_root, 0, new=True, complete=False)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.randoms(use_true_random=False), size=st.integers(1, 60_000))
def test_chunks_in_any_order_with_repeats_complete_exactly_once(
    tmp_path: Path, order: random.Random, size: int
) -> None:
    store = BlobStore(tmp_path / f"s{next(_SERIAL)}.db")
    data = _blob(size, size)
    ref, chunks = split(data, "image/png", 4096)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    arrivals = [*chunks, *order.sample(chunks, k=len(chunks) // 2)]
    order.shuffle(arrivals)
    completions = 0
    for chunk in arrivals:
        result = store.put_chunk(chunk, NOW)
        assert isinstance(result, Stored)
        completions += result.new and result.complete
    assert completions == 1
    assert store.read(ref.merkle_root) == data
    assert len(store.need(ref.merkle_root)) == 0
    store.close()


def test_resume_after_a_kill_asks_only_for_what_is_missing(tmp_path: Path) -> None:
    data = _blob(2 * 1024 * 1024)
    ref, chunks = split(data, "image/jpeg")
    first = BlobStore(tmp_path / "blobs.db")
    first.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    for chunk in chunks[:100]:
        first.put_chunk(chunk, NOW)
    del first  # the tablet dies mid-transfer; nothing is closed cleanly

    again = BlobStore(tmp_path / "blobs.db")
    need = again.need(ref.merkle_root)
    assert need.missing() == list(range(100, 256))
    request = need.encode()
    assert len(request) == 4  # what crosses the link to ask: four bytes
    asked = NeedMap.decode(request, 256).missing()
    for index in asked:
        again.put_chunk(chunks[index], NOW)
    status = again.status(ref.merkle_root)
    assert status.is_complete
    assert (status.held, status.chunks) == (256, 256)
    assert again.read(ref.merkle_root) == data


def test_a_tampered_chunk_is_refused_and_the_good_one_taken_after(store: BlobStore) -> None:
    ref, chunks = split(_blob(30_000), "image/jpeg")
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    bad = chunks[1].model_copy(update={"data": b"\x00" + chunks[1].data[1:]})
    result = store.put_chunk(bad, NOW)
    assert isinstance(result, Refused)
    assert result.reason is ChunkReason.BAD_PROOF
    assert 1 in store.need(ref.merkle_root)
    assert isinstance(store.put_chunk(chunks[1], NOW), Stored)
    assert 1 not in store.need(ref.merkle_root)


def test_held_chunks_are_served_with_a_proof_that_checks(store: BlobStore) -> None:
    ref, chunks = split(_blob(50_000), "image/jpeg")
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    store.put_chunk(chunks[3], NOW)
    served = store.chunk(ref.merkle_root, 3)
    assert served == chunks[3]
    assert served is not None
    assert isinstance(verify_chunk(served, ref), Verified)


def test_a_wrongly_described_file_never_completes(store: BlobStore) -> None:
    data = _blob(20_000)
    ref, chunks = split(data, "image/jpeg")
    lying = ref.model_copy(update={"sha256": bytes(32)})
    store.register([lying], office=BAVET, msg_id=MSG, now=NOW)
    results = [store.put_chunk(c, NOW) for c in chunks]
    last = results[-1]
    assert isinstance(last, Refused)
    assert last.reason is ChunkReason.BAD_FILE
    status = store.status(ref.merkle_root)
    assert not status.is_complete
    assert status.held == 0
    assert status.failed is not None
    assert "SHA-256 is not the one signed" in status.failed
    assert store.chunk(ref.merkle_root, 0) is None  # nothing of it is kept
    with pytest.raises(BlobError, match="0 of 3 chunks"):
        store.read(ref.merkle_root)


def test_quota_per_office_and_in_total(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "q.db", Quotas(per_office=100_000, total=150_000))
    a, _ = split(_blob(60_000, 1), "image/jpeg")
    b, _ = split(_blob(60_000, 2), "image/jpeg")
    c, _ = split(_blob(60_000, 3), "image/jpeg")
    store.register([a], office=BAVET, msg_id=MSG, now=NOW)
    store.register([a], office=BAVET, msg_id=bytes(16), now=NOW)  # held already: free
    assert store.used(BAVET) == 60_000
    with pytest.raises(QuotaError, match=r"from KH-BAVET would go over its quota of 0\.1 MiB"):
        store.register([b], office=BAVET, msg_id=MSG, now=NOW)
    with pytest.raises(QuotaError, match="from KH-BAVET"):
        store.ensure_room(BAVET, [b])
    store.ensure_room("VN-MOCBAI", [b])
    store.register([b], office="VN-MOCBAI", msg_id=b"\x01" * 16, now=NOW)
    with pytest.raises(QuotaError, match=r"the store's quota of 0\.1 MiB \(0\.1 MiB held\)"):
        store.register([c], office="TH-MAESOT", msg_id=b"\x02" * 16, now=NOW)
    # All or none: a message whose second blob does not fit registers neither.
    with pytest.raises(QuotaError):
        store.register([a, c], office="TH-MAESOT", msg_id=b"\x03" * 16, now=NOW)
    with pytest.raises(UnknownBlobError):
        store.status(c.merkle_root)
    # Forgetting the messages that referred to a blob frees its room.
    assert store.forget(MSG) == 0  # the second message still refers to blob a
    assert store.forget(bytes(16)) == 1
    assert store.used(BAVET) == 0
    store.register([c], office="TH-MAESOT", msg_id=b"\x02" * 16, now=NOW)


def test_a_blob_described_two_ways_keeps_the_first(store: BlobStore) -> None:
    ref, _ = split(_blob(9000), "image/jpeg")
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    other = ref.model_copy(update={"media_type": "image/png"})
    with pytest.raises(BlobError, match="described differently"):
        store.register([other], office=BAVET, msg_id=bytes(16), now=NOW)
    assert store.status(ref.merkle_root).ref == ref


def test_an_attachment_lists_preview_then_full(store: BlobStore) -> None:
    preview, _ = split(_blob(20_000, 1), "image/jpeg")
    full, _ = split(_blob(300_000, 2), "image/jpeg")
    attachment = Attachment(
        sha256=full.sha256,
        size=full.size,
        media_type=full.media_type,
        chunk_size=full.chunk_size,
        merkle_root=full.merkle_root,
        preview=preview,
    )
    assert blob_refs(attachment) == [preview, full]
    store.register(blob_refs(attachment), office=BAVET, msg_id=MSG, now=NOW)
    assert [s.ref for s in store.blobs_of(MSG)] == [preview, full]
    assert [s.ref for s, _ in store.missing()] == [preview, full]  # previews first
    assert store.find(full.sha256) is not None
    bare = Attachment(sha256=bytes(32), size=5, media_type="image/jpeg")
    assert blob_refs(bare) == []


def test_threads_share_one_store(store: BlobStore) -> None:
    data = _blob(400_000)
    ref, chunks = split(data, "image/jpeg", 1024)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    errors: list[BaseException] = []

    def feed(part: int) -> None:
        try:
            for chunk in chunks[part::4] + chunks[(part + 1) % 4 :: 4]:
                assert isinstance(store.put_chunk(chunk, NOW), Stored)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=feed, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert store.status(ref.merkle_root).held == len(chunks)
    assert store.read(ref.merkle_root) == data


def test_unusable_files_say_which_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        BlobStore(tmp_path)  # a folder, not a file
    old = tmp_path / "old.db"
    sqlite3.connect(old).executescript("CREATE TABLE x (a); PRAGMA user_version = 7;")
    with pytest.raises(StoreError, match=r"layout 7.*move the file aside"):
        BlobStore(old)


def test_no_clock_is_read(store: BlobStore) -> None:
    ref, chunks = split(os.urandom(1500), "image/jpeg", 1024)
    store.register([ref], office=BAVET, msg_id=MSG, now=NOW)
    for chunk in chunks:
        store.put_chunk(chunk, datetime(2030, 1, 1, tzinfo=UTC))
    assert store.status(ref.merkle_root).complete == datetime(2030, 1, 1, tzinfo=UTC)
