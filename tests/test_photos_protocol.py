"""The transfer protocol's sans-I/O core (photos/transfer.py): frames, asks, serving order."""

from __future__ import annotations

import os

import pytest

from photos.chunks import NeedMap, split
from photos.errors import BlobError
from photos.store import BlobStatus
from photos.transfer import Asking, Serving, check_source, decode_need, encode_need

ROOT = bytes(range(32))


def status(office: str = "kh-blo-bavet", size: int = 100_000, held: int = 0) -> BlobStatus:
    ref, _ = split(os.urandom(size), "image/jpeg")
    n = -(-size // ref.chunk_size)
    return BlobStatus(ref=ref, office=office, held=held, chunks=n, complete=None, failed=None)


def test_a_need_frame_round_trips_and_bad_ones_are_refused() -> None:
    need = NeedMap(300, range(200, 300))
    root, back = decode_need(encode_need(ROOT, need))
    assert (root, back) == (ROOT, need)
    assert len(encode_need(ROOT, need)) < 45  # a tail after a cut: a few bytes
    for bad in (b"", b"\x93", encode_need(ROOT, need)[:-1], b"\x93\xc4\x01x\x01\xc4\x01\x00"):
        with pytest.raises(BlobError):
            decode_need(bad)


def test_previews_are_served_before_full_images_within_the_budget() -> None:
    serving = Serving()
    serving.asked(b"F" * 32, 2_000_000, NeedMap(245, range(245)))
    serving.asked(b"P" * 32, 23_000, NeedMap(3, range(3)))
    first = serving.take(4)
    assert first == [(b"P" * 32, 0), (b"P" * 32, 1), (b"P" * 32, 2), (b"F" * 32, 0)]
    serving.asked(b"F" * 32, 2_000_000, NeedMap(245, [0, 1]))  # merged, 0 asked again
    assert serving.take(2) == [(b"F" * 32, 0), (b"F" * 32, 1)]
    assert len(serving) == 243


def test_asks_wait_for_progress_and_alternate_to_the_archive() -> None:
    asking = Asking("kh-nacd", "kh-archive", patience=8.0)
    blob = status()
    need = NeedMap(blob.chunks, range(blob.chunks))
    assert [a.holder for a in asking.due([(blob, need)], 0.0)] == ["kh-blo-bavet"]
    assert asking.due([(blob, need)], 5.0) == []  # not yet
    asking.progress(7.0)  # a chunk of any blob arrived: the holder is busy
    assert asking.due([(blob, need)], 10.0) == []
    assert [a.holder for a in asking.due([(blob, need)], 15.5)] == ["kh-archive"]
    assert [a.holder for a in asking.due([(blob, need)], 24.0)] == ["kh-blo-bavet"]
    # A sender never asks for its own photos (blo-pub is still storing them).
    assert Asking("kh-blo-bavet", "kh-archive").due([(blob, need)], 0.0) == []


def test_a_chunk_comes_only_from_its_sender_or_an_archive_on_its_country() -> None:
    blob = status()

    def is_archive(node: str) -> bool:
        return node == "kh-archive"

    assert check_source("kh", "kh-blo-bavet", blob, is_archive) is None
    assert check_source("kh", "kh-archive", blob, is_archive) is None
    assert check_source("kh", "kh-blo-poipet", blob, is_archive) is not None
    assert check_source("vn", "kh-blo-bavet", blob, is_archive) is not None
