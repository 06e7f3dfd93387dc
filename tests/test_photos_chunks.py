"""photos/chunks.py: Merkle-described chunks, each checked on its own; need maps; reassembly."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photos.chunks import (
    DEFAULT_CHUNK_SIZE,
    Chunk,
    ChunkReason,
    NeedMap,
    Refused,
    Verified,
    assemble,
    audit_path,
    chunk_count,
    leaf_hash,
    merkle_root,
    read_chunk,
    split,
    verify_chunk,
)
from photos.errors import BlobError


def _rfc_root(leaves: list[bytes]) -> bytes:
    """RFC 9162's recursive definition, as the reference for the bottom-up tree."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _rfc_root(leaves[:k]) + _rfc_root(leaves[k:])).digest()


def _rfc_path(leaves: list[bytes], m: int) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*_rfc_path(leaves[:k], m), _rfc_root(leaves[k:])]
    return [*_rfc_path(leaves[k:], m - k), _rfc_root(leaves[:k])]


@given(st.integers(1, 70))
def test_tree_is_rfc9162s(n: int) -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(n)]
    assert merkle_root(leaves) == _rfc_root(leaves)
    for m in range(n):
        assert list(audit_path(leaves, m)) == _rfc_path(leaves, m)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 40_000), chunk_size=st.sampled_from([1024, 1500, 4096, 8192]))
def test_split_verify_assemble_round_trip(size: int, chunk_size: int) -> None:
    data = os.urandom(size)
    ref, chunks = split(data, "image/jpeg", chunk_size)
    assert len(chunks) == chunk_count(size, chunk_size) == -(-size // chunk_size)
    assert ref.sha256 == hashlib.sha256(data).digest()
    assert ref.size == size
    for chunk in chunks:
        assert verify_chunk(chunk, ref) == Verified(chunk)
        assert read_chunk(chunk.encode(), ref) == Verified(chunk)
    assert assemble(ref, {c.index: c.data for c in chunks}) == data


def test_default_chunk_size_is_8_kib_and_proof_overhead_is_small() -> None:
    data = os.urandom(2 * 1024 * 1024)
    ref, chunks = split(data, "image/jpeg")
    assert ref.chunk_size == DEFAULT_CHUNK_SIZE == 8192
    assert len(chunks) == 256
    wire = sum(len(c.encode()) for c in chunks)
    assert wire / len(data) < 1.04  # 8 proof hashes of 32 bytes per 8 KiB chunk, and framing


_REF, _CHUNKS = split(os.urandom(3 * 8192 + 100), "image/jpeg")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_bit_flip_of_a_chunk_is_refused(data: st.DataObject) -> None:
    chunk = data.draw(st.sampled_from(_CHUNKS))
    frame = bytearray(chunk.encode())
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    assert isinstance(read_chunk(bytes(frame), _REF), Refused)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_truncation_of_a_chunk_is_refused(data: st.DataObject) -> None:
    chunk = data.draw(st.sampled_from(_CHUNKS))
    frame = chunk.encode()
    cut = data.draw(st.integers(0, len(frame) - 1))
    assert isinstance(read_chunk(frame[:cut], _REF), Refused)
    # The data cut short inside a well-formed frame is refused too.
    short = data.draw(st.integers(1, len(chunk.data) - 1))
    trimmed = chunk.model_copy(update={"data": chunk.data[:short]})
    assert verify_chunk(trimmed, _REF) == Refused(ChunkReason.BAD_LENGTH, trimmed_detail(trimmed))


def trimmed_detail(chunk: Chunk) -> str:
    want = min(_REF.chunk_size, _REF.size - chunk.index * _REF.chunk_size)
    return f"chunk {chunk.index} has {len(chunk.data)} bytes, not {want}"


def test_exhaustively_every_bit_flip_and_truncation_of_a_small_chunk_is_refused() -> None:
    ref, chunks = split(os.urandom(5 * 1024 + 7), "image/png", 1024)
    for chunk in chunks:
        frame = chunk.encode()
        for cut in range(len(frame)):
            assert isinstance(read_chunk(frame[:cut], ref), Refused), (chunk.index, cut)
        for bit in range(len(frame) * 8):
            flipped = bytearray(frame)
            flipped[bit // 8] ^= 1 << (bit % 8)
            assert isinstance(read_chunk(bytes(flipped), ref), Refused), (chunk.index, bit)


def test_each_reason() -> None:
    other_ref, other = split(os.urandom(9000), "image/jpeg")
    first, last = _CHUNKS[0], _CHUNKS[-1]
    assert verify_chunk(other[0], _REF).reason is ChunkReason.OTHER_BLOB  # type: ignore[union-attr]
    moved = last.model_copy(update={"index": 1})  # the short tail posing as a full chunk
    assert verify_chunk(moved, _REF).reason is ChunkReason.BAD_LENGTH  # type: ignore[union-attr]
    # Same length, wrong place: chunk 0's bytes and proof presented as chunk 1.
    swapped = _CHUNKS[1].model_copy(update={"data": first.data})
    assert verify_chunk(swapped, _REF).reason is ChunkReason.BAD_PROOF  # type: ignore[union-attr]
    past = last.model_copy(update={"index": 9})
    assert verify_chunk(past, _REF).reason is ChunkReason.BAD_INDEX  # type: ignore[union-attr]
    no_proof = first.model_copy(update={"proof": ()})
    assert verify_chunk(no_proof, _REF).reason is ChunkReason.BAD_PROOF  # type: ignore[union-attr]
    assert read_chunk(b"\xc1", _REF).reason is ChunkReason.MALFORMED  # type: ignore[union-attr]
    assert isinstance(verify_chunk(other[0], other_ref), Verified)


def test_assemble_refuses_missing_and_wrong_chunks() -> None:
    pieces = {c.index: c.data for c in _CHUNKS}
    with pytest.raises(BlobError, match="1 of 4 chunks missing"):
        assemble(_REF, {i: d for i, d in pieces.items() if i != 2})
    with pytest.raises(BlobError, match="do not match the signed root"):
        assemble(_REF, {**pieces, 1: bytes(len(pieces[1]))})
    # A description whose SHA-256 is not the file's (a sender's mistake) never completes.
    lying = _REF.model_copy(update={"sha256": bytes(32)})
    with pytest.raises(BlobError, match="SHA-256 is not the one signed"):
        assemble(lying, pieces)


def test_split_refuses_empty_and_odd_chunk_sizes() -> None:
    with pytest.raises(BlobError, match="empty"):
        split(b"", "image/jpeg")
    with pytest.raises(BlobError, match="chunk size 100"):
        split(b"x", "image/jpeg", 100)


# -- need maps ------------------------------------------------------------------------


@given(
    st.integers(1, 3000).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1))))
)
def test_need_map_round_trips(case: tuple[int, set[int]]) -> None:
    n, missing = case
    need = NeedMap(n, missing)
    assert need.missing() == sorted(missing)
    assert len(need) == len(missing)
    wire = need.encode()
    assert NeedMap.decode(wire, n) == need
    assert len(wire) <= 1 + (n + 7) // 8  # never longer than the bitmap


def test_need_map_after_a_cut_is_a_few_bytes() -> None:
    need = NeedMap.all_missing(256)
    for i in range(100):
        need.held(i)
    assert need.missing() == list(range(100, 256))
    assert 99 not in need
    assert 100 in need
    assert len(need.encode()) == 4  # tag, gap 100, run 156 (two bytes)
    assert len(NeedMap(256, range(0, 256, 2)).encode()) == 33  # scattered: the bitmap


@given(st.binary(max_size=40), st.integers(1, 300))
def test_need_map_decode_never_crashes(data: bytes, n: int) -> None:
    try:
        need = NeedMap.decode(data, n)
    except BlobError:
        return
    assert all(0 <= i < n for i in need.missing())


@pytest.mark.parametrize(
    ("wire", "complaint"),
    [
        (b"", "empty"),
        (b"\x02", "unknown form"),
        (b"\x00", "has 1 bytes"),
        (b"\x00\x00\x01", "has 1 bytes"),
        (b"\x00\x80", "past the last"),
        (b"\x01\x05", "without its length"),
        (b"\x01\x00\x00", "empty, joined"),
        (b"\x01\x00\x02\x00\x01", "empty, joined"),
        (b"\x01\x07\x02", "past 6"),
        (b"\x01\x80\x00\x01", "shortest form"),
        (b"\x01\x80\x80\x80\x80\x01\x01", "too long"),
    ],
)
def test_need_map_decode_is_strict(wire: bytes, complaint: str) -> None:
    with pytest.raises(BlobError, match=complaint):
        NeedMap.decode(wire, 6)
