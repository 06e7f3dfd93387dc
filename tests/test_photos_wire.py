"""The photo reference inside the signed Incident: appended, optional, and small.

Attachment gained chunk_size, merkle_root, preview and position_source at its end
(the codec is positional and append-only), so a bare attachment and a photo-less
incident encode byte for byte as before; see docs/design.md, "Photos".
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta, timezone

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from photos.chunks import split
from photos.store import blob_refs
from schemas.codec import pack, unpack_model
from schemas.envelope import Signer, open_envelope, seal
from schemas.ids import Scope
from schemas.messages import Attachment, BlobRef, Crime, Incident, Position, PositionSource

BAVET = Position(lat=11.0791, lon=106.1846)
TAKEN = datetime(2026, 11, 28, 9, 41, 7, tzinfo=timezone(timedelta(hours=7)))


def _photo(
    seed: int, size: int = 400_000, source: PositionSource = PositionSource.EXIF
) -> Attachment:
    full, _ = split(os.urandom(size), "image/jpeg")
    preview, _ = split(os.urandom(20_000), "image/jpeg")
    return Attachment(
        sha256=full.sha256, size=full.size, media_type=full.media_type, position=BAVET,
        taken=TAKEN, chunk_size=full.chunk_size, merkle_root=full.merkle_root,
        preview=preview, position_source=source,
    )  # fmt: skip


def _incident(attachments: tuple[Attachment, ...] = ()) -> Incident:
    return Incident(
        crime=Crime.DRUG_TRAFFICKING, occurred=TAKEN, position=BAVET, attachments=attachments
    )


def test_a_bare_attachment_encodes_as_before() -> None:
    sha = hashlib.sha256(b"photo").digest()
    bare = Attachment(sha256=sha, size=1003, media_type="image/jpeg")
    # The layout before photos travelled: [sha256, size, media_type], nothing more.
    assert pack(bare) == msgpack.packb([sha, 1003, "image/jpeg"], use_bin_type=True)
    placed = Attachment(sha256=sha, size=1003, media_type="image/jpeg", position=BAVET)
    assert len(msgpack.unpackb(pack(placed))) == 4


def test_a_photo_less_incident_is_unchanged() -> None:
    incident = _incident()
    expected = msgpack.packb([0, [int(TAKEN.timestamp()), 28], [11.0791, 106.1846]])
    assert pack(incident) == expected


def test_a_photo_reference_round_trips_in_a_signed_incident() -> None:
    photo = _photo(1)
    no_gps = _photo(2, source=PositionSource.INCIDENT)
    incident = _incident((photo, no_gps))
    assert unpack_model(Incident, pack(incident), max_len=1 << 20) == incident
    signer = Signer("kh-blo-bavet", Ed25519PrivateKey.generate())
    now = datetime(2026, 11, 30, tzinfo=UTC)
    wire = seal(signer, incident, seq=1, scope=Scope.parse("country:kh"), issued=now,
                expires=now + timedelta(days=1))  # fmt: skip
    body = open_envelope(wire).decode_body()
    assert body == incident
    assert isinstance(body, Incident)
    assert blob_refs(body.attachments[0]) == [photo.preview, photo.full]
    assert body.attachments[1].position_source is PositionSource.INCIDENT


def test_ten_photos_cost_the_signed_incident_little() -> None:
    # A Merkle root per blob, not a hash per chunk: ten 2 MB photos add ~2.1 KB, not ~80 KB.
    bare = len(pack(_incident()))
    ten = len(pack(_incident(tuple(_photo(i, 2 * 1024 * 1024) for i in range(10)))))
    assert (ten - bare) / 10 < 260


def test_position_source_codes_are_pinned() -> None:
    assert [m.value for m in PositionSource] == ["exif", "incident"]


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ({"chunk_size": 8192}, "go together"),
        ({"merkle_root": bytes(32)}, "go together"),
        ({"chunk_size": 100, "merkle_root": bytes(32)}, "greater than or equal to 1024"),
        ({"position_source": PositionSource.EXIF}, "none is given"),
    ],
)
def test_inconsistent_photo_references_are_refused(
    extra: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        Attachment(sha256=bytes(32), size=10, media_type="image/jpeg", **extra)  # type: ignore[arg-type]


def test_full_is_none_for_a_bare_reference() -> None:
    assert Attachment(sha256=bytes(32), size=10, media_type="image/png").full is None
    photo = _photo(3)
    assert photo.merkle_root is not None
    assert photo.full == BlobRef(
        sha256=photo.sha256, size=photo.size, media_type="image/jpeg",
        chunk_size=8192, merkle_root=photo.merkle_root,
    )  # fmt: skip
